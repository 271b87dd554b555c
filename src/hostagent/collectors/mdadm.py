"""Linux software RAID (md) arrays from ``<procfs>/mdstat``: state, member disks, sync progress.

Each array is a paragraph of mdstat::

    md0 : active raid1 sdb1[1] sda1[0](F) sdc1[2](S)
          976630464 blocks super 1.2 [2/1] [U_]
          [==>..................]  recovery = 12.6% (123124736/976630464) finish=71.2min speed=199611K/sec

``[2/1]`` is the disks the array needs and those in sync; ``(F)`` marks a
failed member and ``(S)`` a spare. RAID0 and linear arrays print no such
pair: every listed member is needed and active. A member being rebuilt is
neither in sync nor spare, so active + failed + spare can be below the
number of members. The state is the sync action while one runs (resync,
recovering, check, reshape; a resync waiting its turn, ``resync=DELAYED``,
counts as resync at ratio 0), else active or inactive::

    host_md_state{device="md0",state="recovering"} 1.0
    host_md_state{device="md0",state="active"} 0.0
    host_md_disks{device="md0",state="active"} 1.0
    host_md_disks{device="md0",state="failed"} 1.0
    host_md_disks{device="md0",state="spare"} 1.0
    host_md_disks_required{device="md0"} 2.0
    host_md_blocks_synced_ratio{device="md0"} 0.126
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterator, List, Optional, Tuple

from ..promclient import Metric

from ._procfs import parse_file
from .base import BaseCollector, MetricSpec, register

STATE = MetricSpec("host_md_state", "gauge", "1 for the array's current state (active, inactive, or the sync action running: resync, recovering, check, reshape), 0 for the others.", ("device", "state"))
DISKS = MetricSpec("host_md_disks", "gauge", "Member disks of the array by state: active (in sync), failed, spare.", ("device", "state"))
DISKS_REQUIRED = MetricSpec("host_md_disks_required", "gauge", "Disks the array needs to be complete; fewer active ones means degraded.", ("device",))
SYNCED = MetricSpec("host_md_blocks_synced_ratio", "gauge", "Share of the running sync action (resync, recovery, check, reshape) done; present only while one runs or waits.", ("device",), "ratio")

STATES = ("active", "inactive", "resync", "recovering", "check", "reshape")
DISK_STATES = ("active", "failed", "spare")
# mdstat's word for a sync action -> the state it puts the array in.
ACTIONS = {"resync": "resync", "recovery": "recovering", "check": "check", "reshape": "reshape"}

_HEAD = re.compile(r"^(\S+) : (active|inactive)\b(.*)$")
_MEMBER = re.compile(r"^(\S+?)\[(\d+)\]((?:\([A-Z]\))*)$")
_DISK_COUNTS = re.compile(r"\[(\d+)/(\d+)\]")
_PROGRESS = re.compile(r"\b(resync|recovery|check|reshape)\s*=\s*(?:[\d.]+%\s*\((\d+)/(\d+)\)|(DELAYED|PENDING)\b)")


@dataclass(frozen=True)
class MdArray:
    """One array as mdstat describes it."""

    device: str
    state: str  # one of STATES
    active: int
    failed: int
    spare: int
    required: Optional[int]  # None for an inactive array, which says nothing of it
    synced_ratio: Optional[float]  # None when no sync action runs or waits


def _paragraphs(text: str) -> Iterator[Tuple[str, List[str]]]:
    """(head line, indented lines below it) for every array in mdstat."""
    head: Optional[str] = None
    body: List[str] = []
    for line in text.splitlines():
        if line[:1].isspace():
            if head is not None:
                body.append(line)
            continue
        if head is not None:
            yield head, body
        head, body = None, []
        if " : " in line and not line.startswith(("Personalities", "unused devices")):
            head = line
    if head is not None:
        yield head, body


def parse_array(head: str, body: List[str]) -> MdArray:
    """An array from its head line (``md0 : active raid1 sda1[0] ...``) and the lines below."""
    match = _HEAD.match(head)
    if match is None:
        raise ValueError(f"not an array line: {head!r}")
    device, activity, rest = match.groups()
    members = []
    for token in rest.split():
        member = _MEMBER.match(token)
        if member is not None:
            members.append(member.group(3))  # the flags, e.g. "(W)(F)"
        # Other tokens: the level (raid1, linear) and (read-only) / (auto-read-only).
    failed = sum("(F)" in flags for flags in members)
    spare = sum("(S)" in flags for flags in members)
    details = " ".join(body)
    counts = _DISK_COUNTS.search(details)
    if counts is not None:
        required: Optional[int] = int(counts.group(1))
        active = int(counts.group(2))
    elif activity == "active":
        # RAID0 and linear: every member that is neither failed nor spare is needed.
        active = len(members) - failed - spare
        required = active
    else:
        active, required = 0, None
    state, ratio = activity, None
    progress = _PROGRESS.search(details)
    if progress is not None and activity == "active":
        action, done, total, waiting = progress.groups()
        state = ACTIONS[action]
        ratio = 0.0 if waiting or not int(total) else int(done) / int(total)
    return MdArray(device, state, active, failed, spare, required, ratio)


def parse_mdstat(text: str) -> Tuple[MdArray, ...]:
    """Every array of an mdstat text, in file order; none is a valid answer."""
    if not text.startswith("Personalities"):
        raise ValueError("does not start with 'Personalities': not an mdstat file")
    return tuple(parse_array(head, body) for head, body in _paragraphs(text))


@register
class MdadmCollector(BaseCollector):
    """Software RAID arrays: state, disks by state, disks required, sync progress."""

    name = "mdadm"
    help = "Linux software RAID (md) arrays: state, member disks by state, disks required, sync progress (11 series per array, 10 when no sync runs)"
    metrics = (STATE, DISKS, DISKS_REQUIRED, SYNCED)

    def sample(self) -> Tuple[MdArray, ...]:
        return parse_file(self.paths.proc("mdstat"), parse_mdstat, absent="the md (software RAID) driver is not loaded")

    def families(self, sample: Tuple[MdArray, ...]) -> Iterator[Metric]:
        states, disks, required, synced = (spec.family() for spec in self.metrics)
        for array in sample:
            for state in STATES:
                states.add_metric([array.device, state], 1.0 if state == array.state else 0.0)
            for state, count in zip(DISK_STATES, (array.active, array.failed, array.spare)):
                disks.add_metric([array.device, state], count)
            if array.required is not None:
                required.add_metric([array.device], array.required)
            if array.synced_ratio is not None:
                synced.add_metric([array.device], array.synced_ratio)
        yield from (fam for fam in (states, disks, required, synced) if fam.samples)
