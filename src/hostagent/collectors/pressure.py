"""Pressure stall information (PSI): time tasks lost waiting for CPU, memory and I/O.

Reads ``<procfs>/pressure/{cpu,memory,io}``. Each file has a ``some`` line
(at least one task was waiting) and, for memory and I/O, a ``full`` line (all
non-idle tasks were stalled at once); ``total=`` is the cumulative stall time
in microseconds, served here in seconds. The kernel's avg10/60/300 are left
out: ``rate()`` of the counters gives the same for any window::

    host_pressure_cpu_waiting_seconds_total 44.93001
    host_pressure_memory_waiting_seconds_total 2.830317
    host_pressure_memory_stalled_seconds_total 2.565566
    host_pressure_io_waiting_seconds_total 12.5
    host_pressure_io_stalled_seconds_total 9.75
"""

from __future__ import annotations

import os
from typing import Dict, Iterator, Tuple

from ..promclient import Metric

from ._procfs import parse_file, parse_int
from .base import BaseCollector, MetricSpec, NotAvailable, register

CPU_WAITING = MetricSpec("host_pressure_cpu_waiting_seconds_total", "counter", "Time at least one runnable task waited for a CPU (PSI cpu some).", (), "seconds")
MEMORY_WAITING = MetricSpec("host_pressure_memory_waiting_seconds_total", "counter", "Time at least one task was stalled on memory: reclaim, refaults, swap-in (PSI memory some).", (), "seconds")
MEMORY_STALLED = MetricSpec("host_pressure_memory_stalled_seconds_total", "counter", "Time every non-idle task was stalled on memory at once, the machine doing no work (PSI memory full).", (), "seconds")
IO_WAITING = MetricSpec("host_pressure_io_waiting_seconds_total", "counter", "Time at least one task was stalled waiting for block I/O (PSI io some).", (), "seconds")
IO_STALLED = MetricSpec("host_pressure_io_stalled_seconds_total", "counter", "Time every non-idle task was stalled on block I/O at once (PSI io full).", (), "seconds")

# (resource file, line kind) -> the family it feeds. The system-wide cpu
# "full" line that newer kernels print is always 0 and is left out.
SERIES: Tuple[Tuple[str, str, MetricSpec], ...] = (
    ("cpu", "some", CPU_WAITING),
    ("memory", "some", MEMORY_WAITING),
    ("memory", "full", MEMORY_STALLED),
    ("io", "some", IO_WAITING),
    ("io", "full", IO_STALLED),
)
RESOURCES = ("cpu", "memory", "io")

# One sample: (resource, kind, seconds) for every line read.
PressureSample = Tuple[Tuple[str, str, float], ...]


def parse_pressure(text: str) -> Dict[str, float]:
    """``{"some": seconds, "full": seconds}`` from the text of one PSI file.

    A line looks like ``some avg10=0.00 avg60=0.00 avg300=0.00 total=12345``
    with ``total`` in microseconds; a file without a ``some`` line is not PSI."""
    totals: Dict[str, float] = {}
    for line in text.splitlines():
        kind, *fields = line.split() or [""]
        if kind not in ("some", "full"):
            continue
        values = dict(field.partition("=")[::2] for field in fields)
        if "total" not in values:
            raise ValueError(f"no total= field in the {kind} line: {line!r}")
        totals[kind] = parse_int(values["total"], f"{kind} total") / 1e6
    if "some" not in totals:
        raise ValueError("no 'some' line: not a pressure file")
    return totals


@register
class PressureCollector(BaseCollector):
    """PSI stall time counters for CPU, memory and I/O."""

    name = "pressure"
    help = "Pressure stall information: seconds tasks waited for CPU, memory and I/O (5 series)"
    metrics = (CPU_WAITING, MEMORY_WAITING, MEMORY_STALLED, IO_WAITING, IO_STALLED)

    def sample(self) -> PressureSample:
        """Read the three PSI files; NotAvailable when the kernel has no PSI."""
        root = self.paths.proc("pressure")
        if not os.path.isdir(root):
            raise NotAvailable(f"no {root}: kernel without PSI (CONFIG_PSI) or booted with psi=0")
        out = []
        for resource in RESOURCES:
            totals = parse_file(os.path.join(root, resource), parse_pressure)
            out += [(resource, kind, seconds) for kind, seconds in sorted(totals.items())]
        return tuple(out)

    def families(self, sample: PressureSample) -> Iterator[Metric]:
        """One counter per (resource, kind) the kernel reported."""
        got = {(resource, kind): seconds for resource, kind, seconds in sample}
        for resource, kind, spec in SERIES:
            if (resource, kind) in got:
                yield spec.single(got[(resource, kind)])
