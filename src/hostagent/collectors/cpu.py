"""CPU time per core and mode, whole-machine and per-core usage, load averages.

Reads ``<procfs>/stat`` and ``<procfs>/loadavg`` directly: one read each, and
the cpu label is the kernel's own cpu number even when some cores are offline.

    host_cpu_seconds_total{cpu="0",mode="user"} 16.74
    host_cpu_seconds_total{cpu="0",mode="idle"} 477.15
    host_cpu_usage_ratio 0.083
    host_cpu_core_usage_ratio{cpu="1"} 0.12
    host_cpu_cores 2.0
    host_load1 0.07
    host_context_switches_total 357645.0
    host_interrupts_total 177976.0
    host_forks_total 6822.0
    host_procs_running 2.0
    host_procs_blocked 0.0
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Dict, Iterator, Mapping, Optional, Sequence, Tuple

from ..promclient import Metric

from .base import BaseCollector, MetricSpec, Paths, fraction, read_text, register

# Guest time is already counted inside user and nice, so it is left out.
MODES = ("user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal")
_IDLE = MODES.index("idle")
_IOWAIT = MODES.index("iowait")
_STEAL = MODES.index("steal")

# /proc/stat counts in USER_HZ ticks.
USER_HZ = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100

CpuTimes = Tuple[float, ...]  # seconds, one per entry of MODES

# The one-number lines of /proc/stat this collector reads ("processes" counts forks).
_COUNTS = ("ctxt", "intr", "processes", "procs_running", "procs_blocked")

SECONDS = MetricSpec("host_cpu_seconds_total", "counter", "Seconds the CPUs spent in each mode.", ("cpu", "mode"), "seconds")
USAGE = MetricSpec(
    "host_cpu_usage_ratio",
    "gauge",
    "Share of the whole machine's CPU time spent busy (not idle, iowait nor steal) since the previous collection (since boot on the first).",
    (),
    "ratio",
)
CORE_USAGE = MetricSpec(
    "host_cpu_core_usage_ratio",
    "gauge",
    "Share of one core's time spent busy (not idle, iowait nor steal) since the previous collection (since boot on the first).",
    ("cpu",),
    "ratio",
)
CORES = MetricSpec("host_cpu_cores", "gauge", "Number of online logical CPUs (hardware threads).", ())
LOAD1 = MetricSpec("host_load1", "gauge", "Load average over 1 minute.", ())
LOAD5 = MetricSpec("host_load5", "gauge", "Load average over 5 minutes.", ())
LOAD15 = MetricSpec("host_load15", "gauge", "Load average over 15 minutes.", ())
CONTEXT_SWITCHES = MetricSpec("host_context_switches_total", "counter", "Context switches since boot.", ())
INTERRUPTS = MetricSpec("host_interrupts_total", "counter", "Interrupts serviced since boot.", ())
FORKS = MetricSpec("host_forks_total", "counter", "Processes and threads created (forks and clones) since boot.", ())
PROCS_RUNNING = MetricSpec("host_procs_running", "gauge", "Tasks runnable right now: running or waiting for a CPU (procs_running in /proc/stat).", ())
PROCS_BLOCKED = MetricSpec(
    "host_procs_blocked", "gauge", "Tasks blocked in uninterruptible sleep (D state, mostly waiting for I/O) right now (procs_blocked in /proc/stat).", ()
)


@dataclass(frozen=True)
class ProcStat:
    """The parts of /proc/stat this collector uses, times in seconds."""

    total: CpuTimes
    per_cpu: Tuple[Tuple[str, CpuTimes], ...]
    context_switches: int
    interrupts: int
    # None when the kernel's /proc/stat lacks the line (emulated procfs).
    forks: Optional[int] = None
    procs_running: Optional[int] = None
    procs_blocked: Optional[int] = None


@dataclass(frozen=True)
class CpuSample:
    """One run: raw counters, usage since the previous run, load averages."""

    stat: ProcStat
    usage: float
    core_usage: Tuple[Tuple[str, float], ...]
    load: Tuple[float, float, float]


def _times(fields: Sequence[str], hz: float) -> CpuTimes:
    # Old kernels print fewer columns (no steal); missing ones count as 0.
    values = [int(v) / hz for v in fields[: len(MODES)]]
    return tuple(values + [0.0] * (len(MODES) - len(values)))


def parse_proc_stat(text: str, hz: float = USER_HZ) -> ProcStat:
    """Parse the text of /proc/stat; raise ValueError if it is not /proc/stat."""
    total: Optional[CpuTimes] = None
    per_cpu = []
    counts: Dict[str, int] = {}
    for line in text.splitlines():
        key, _, rest = line.partition(" ")
        fields = rest.split()
        if key == "cpu":
            total = _times(fields, hz)
        elif key.startswith("cpu") and key[3:].isdigit():
            per_cpu.append((key[3:], _times(fields, hz)))
        elif key in _COUNTS and fields:
            counts[key] = int(fields[0])
    if total is None or "ctxt" not in counts or "intr" not in counts:
        raise ValueError("not a /proc/stat text: missing the cpu, ctxt or intr line")
    return ProcStat(
        total,
        tuple(per_cpu),
        counts["ctxt"],
        counts["intr"],
        counts.get("processes"),
        counts.get("procs_running"),
        counts.get("procs_blocked"),
    )


def parse_loadavg(text: str) -> Tuple[float, float, float]:
    """The three load averages from the text of /proc/loadavg."""
    fields = text.split()
    if len(fields) < 3:
        raise ValueError(f"not a /proc/loadavg text: {text!r}")
    return float(fields[0]), float(fields[1]), float(fields[2])


def busy_ratio(prev: Optional[CpuTimes], cur: CpuTimes) -> float:
    """Share of CPU time busy between two readings: not idle, not waiting on
    I/O and not stolen by the hypervisor, the same definition the recording
    rule ``instance:host_cpu_utilisation:rate5m`` and the CPU alert use.

    Without a previous reading, or when no tick passed since it, the counters
    since boot are used. Per-mode deltas are clamped at 0 because the kernel's
    iowait counter can go backwards."""
    deltas = cur if prev is None else tuple(max(c - p, 0.0) for c, p in zip(cur, prev))
    if sum(deltas) <= 0:
        deltas = cur
    total = sum(deltas)
    return fraction(total - deltas[_IDLE] - deltas[_IOWAIT] - deltas[_STEAL], total)


@register
class CpuCollector(BaseCollector):
    """CPU seconds per core and mode, usage ratios, load and core count."""

    name = "cpu"
    # Fresh enough for a 15 s scrape to get data at most 5 s old, and a
    # divisor of it, so successive scrapes see data exactly 15 s apart.
    default_interval = 5.0
    help = "CPU time per core and mode, usage ratios, load averages, context switches, interrupts, forks and runnable and blocked tasks"
    metrics = (SECONDS, USAGE, CORE_USAGE, CORES, LOAD1, LOAD5, LOAD15, CONTEXT_SWITCHES, INTERRUPTS, FORKS, PROCS_RUNNING, PROCS_BLOCKED)

    def __init__(self, options: Optional[Mapping[str, Any]] = None, paths: Optional[Paths] = None) -> None:
        super().__init__(options, paths)
        self._prev_total: Optional[CpuTimes] = None
        self._prev_per_cpu: Dict[str, CpuTimes] = {}

    def sample(self) -> CpuSample:
        """Read /proc/stat and /proc/loadavg and compute usage since the last run."""
        stat = parse_proc_stat(read_text(self.paths.proc("stat")))
        load = parse_loadavg(read_text(self.paths.proc("loadavg")))
        usage = busy_ratio(self._prev_total, stat.total)
        cores = tuple((cpu, busy_ratio(self._prev_per_cpu.get(cpu), times)) for cpu, times in stat.per_cpu)
        self._prev_total = stat.total
        # Rebuilt every run so a core taken offline is forgotten.
        self._prev_per_cpu = dict(stat.per_cpu)
        return CpuSample(stat, usage, cores, load)

    def families(self, sample: CpuSample) -> Iterator[Metric]:
        """Metric families of one sample, in declaration order."""
        fam = SECONDS.family()
        for cpu, times in sample.stat.per_cpu:
            for mode, value in zip(MODES, times):
                fam.add_metric([cpu, mode], value)
        yield fam
        yield USAGE.single(sample.usage)
        fam = CORE_USAGE.family()
        for cpu, ratio in sample.core_usage:
            fam.add_metric([cpu], ratio)
        yield fam
        yield CORES.single(len(sample.stat.per_cpu))
        yield LOAD1.single(sample.load[0])
        yield LOAD5.single(sample.load[1])
        yield LOAD15.single(sample.load[2])
        yield CONTEXT_SWITCHES.single(sample.stat.context_switches)
        yield INTERRUPTS.single(sample.stat.interrupts)
        for spec, value in ((FORKS, sample.stat.forks), (PROCS_RUNNING, sample.stat.procs_running), (PROCS_BLOCKED, sample.stat.procs_blocked)):
            if value is not None:
                yield spec.single(value)
