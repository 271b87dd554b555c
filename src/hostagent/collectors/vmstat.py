"""Virtual memory event counters from ``<procfs>/vmstat``: OOM kills, page faults, paging.

``pgpgin``/``pgpgout`` are counted by the kernel in KiB (it converts from
512-byte sectors when printing), so they are multiplied by 1024 here to give
bytes. ``pgfault`` counts every page fault, minor and major; ``pgmajfault``
only those that had to read from disk. Swap traffic is the memory
collector's ``host_swap_*_bytes_total``::

    host_oom_kills_total 0.0
    host_memory_page_faults_total 5.067661e+06
    host_memory_major_page_faults_total 1127.0
    host_memory_paged_in_bytes_total 1.677169664e+09
    host_memory_paged_out_bytes_total 1.556557824e+09
"""

from __future__ import annotations

from typing import Dict, Iterator, Tuple

from ..promclient import Metric

from ._procfs import parse_file, parse_int
from .base import BaseCollector, MetricSpec, register

KIB = 1024

# (vmstat field, multiplier to base units, family)
FIELDS: Tuple[Tuple[str, int, MetricSpec], ...] = (
    ("oom_kill", 1, MetricSpec("host_oom_kills_total", "counter", "Processes killed by the kernel's out-of-memory killer since boot (vmstat oom_kill).", ())),
    ("pgfault", 1, MetricSpec("host_memory_page_faults_total", "counter", "Page faults since boot, minor and major (vmstat pgfault).", ())),
    ("pgmajfault", 1, MetricSpec("host_memory_major_page_faults_total", "counter", "Major page faults since boot: faults that had to wait for a read from disk (vmstat pgmajfault).", ())),
    ("pgpgin", KIB, MetricSpec("host_memory_paged_in_bytes_total", "counter", "Bytes paged in from block devices since boot, file reads and swap-in alike (vmstat pgpgin, KiB times 1024).", (), "bytes")),
    ("pgpgout", KIB, MetricSpec("host_memory_paged_out_bytes_total", "counter", "Bytes paged out to block devices since boot, writeback and swap-out alike (vmstat pgpgout, KiB times 1024).", (), "bytes")),
)
WANTED = frozenset(field for field, _, _ in FIELDS)

# The raw vmstat values read, by field name, in file order.
VmstatSample = Tuple[Tuple[str, int], ...]


def parse_vmstat(text: str) -> Dict[str, int]:
    """The wanted fields of a /proc/vmstat text, raw (pages, KiB or events).

    ``oom_kill`` is absent before Linux 4.13 and is then left out; the other
    fields exist on every kernel, so their absence means this is not vmstat."""
    values: Dict[str, int] = {}
    for line in text.splitlines():
        name, _, value = line.partition(" ")
        if name in WANTED:
            values[name] = parse_int(value.strip(), name)
    missing = sorted(WANTED - {"oom_kill"} - set(values))
    if missing:
        raise ValueError(f"no {', '.join(missing)} field: not a vmstat file")
    return values


@register
class VmstatCollector(BaseCollector):
    """OOM kills, page faults and paging traffic from /proc/vmstat."""

    name = "vmstat"
    help = "Virtual memory events from /proc/vmstat: OOM kills, page faults, bytes paged in and out (5 series)"
    metrics = tuple(spec for _, _, spec in FIELDS)

    def sample(self) -> VmstatSample:
        values = parse_file(self.paths.proc("vmstat"), parse_vmstat)
        return tuple(sorted(values.items()))

    def families(self, sample: VmstatSample) -> Iterator[Metric]:
        values = dict(sample)
        for field, scale, spec in FIELDS:
            if field in values:
                yield spec.single(values[field] * scale)
