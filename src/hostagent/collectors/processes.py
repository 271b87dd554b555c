"""Process counts by state, total threads, and the top processes by CPU and memory.

The exported processes are the union of the ``top_n`` using the most CPU and
the ``top_n`` using the most resident memory, so there are at most 2 x top_n.
CPU usage is measured between two runs (1.0 = one full core), per process
identity (pid and start time). A process first seen in this run has no
measurement yet: it is left out of the CPU ranking and, if exported for its
memory, shows 0. Processes at 0 CPU or 0 bytes are not ranked either, so an
idle machine exports few series. Command lines are never read: the name is
the kernel's command name (at most 15 characters), read from
``<procfs>/<pid>/comm`` for the exported processes only.

    host_processes{state="running"} 2.0
    host_processes{state="sleeping"} 79.0
    host_processes{state="zombie"} 0.0
    host_processes_threads 143.0
    host_process_cpu_usage_ratio{name="postgres",pid="812",username="postgres"} 0.35
    host_process_resident_memory_bytes{name="postgres",pid="812",username="postgres"} 1.342177e+08
    host_process_memory_usage_ratio{name="postgres",pid="812",username="postgres"} 0.0053
"""

from __future__ import annotations

import heapq
import os
import pwd
from collections import Counter
from dataclasses import dataclass
from time import monotonic
from typing import Any, Dict, Iterable, Iterator, List, Mapping, NamedTuple, Optional, Tuple

import psutil
from ..promclient import Metric

from .base import BaseCollector, MetricSpec, Option, Paths, fraction, register

# Always exported, with 0, so rules and dashboards never see them vanish.
COMMON_STATES = ("running", "sleeping", "disk-sleep", "stopped", "zombie", "idle")

# Only what the sample needs: each attribute costs /proc reads per process.
# "name" is left out on purpose: psutil reads the command line to lengthen
# 15-character names, and command lines may hold secrets.
_ATTRS = ["pid", "status", "num_threads", "cpu_times", "memory_info", "create_time", "uids"]

Identity = Tuple[int, float]  # (pid, create_time): a pid reused later is a new process

TOP = ("pid", "name", "username")
STATES = MetricSpec("host_processes", "gauge", "Number of processes in each state.", ("state",))
THREADS = MetricSpec("host_processes_threads", "gauge", "Number of threads of all processes.", ())
CPU_USAGE = MetricSpec("host_process_cpu_usage_ratio", "gauge", "CPU used by a top process since the previous collection; 1.0 is one full core.", TOP, "ratio")
RESIDENT = MetricSpec("host_process_resident_memory_bytes", "gauge", "Resident memory of a top process.", TOP, "bytes")
MEMORY_USAGE = MetricSpec("host_process_memory_usage_ratio", "gauge", "Resident memory of a top process as a share of total memory.", TOP, "ratio")


class Seen(NamedTuple):
    """One process as read in this run, before ranking."""

    pid: int
    uid: Optional[int]
    cpu_ratio: Optional[float]  # None when first seen: no measurement yet
    rss: int


@dataclass(frozen=True)
class ProcessInfo:
    """An exported process: the figures behind its three series."""

    pid: int
    name: str
    username: str
    cpu_ratio: float
    rss: int
    memory_ratio: float


@dataclass(frozen=True)
class ProcessesSample:
    """Counts per state, total threads and the exported processes."""

    states: Tuple[Tuple[str, int], ...]
    threads: int
    top: Tuple[ProcessInfo, ...]


def count_states(statuses: Iterable[str]) -> Tuple[Tuple[str, int], ...]:
    """Processes per state: the common states always, others when seen, sorted."""
    counts = Counter({state: 0 for state in COMMON_STATES})
    counts.update(statuses)
    return tuple(sorted(counts.items()))


def cpu_ratio(prev: Optional[float], cur: float, elapsed: float) -> Optional[float]:
    """CPU seconds used per wall second between two readings; None without both."""
    if prev is None or elapsed <= 0:
        return None
    return max(cur - prev, 0.0) / elapsed


def select_top(seen: Iterable[Seen], n: int) -> List[Seen]:
    """The union of the n highest by CPU and the n highest by RSS, ordered by pid.

    Ties break on the lower pid so the selection is stable between runs."""
    rows = list(seen)
    by_cpu = heapq.nsmallest(n, (r for r in rows if r.cpu_ratio), key=lambda r: (-(r.cpu_ratio or 0.0), r.pid))
    by_rss = heapq.nsmallest(n, (r for r in rows if r.rss > 0), key=lambda r: (-r.rss, r.pid))
    chosen = {r.pid: r for r in by_cpu + by_rss}
    return [chosen[pid] for pid in sorted(chosen)]


def parse_passwd(text: str) -> Dict[int, str]:
    """uid -> user name from the text of an /etc/passwd file (first entry wins)."""
    names: Dict[int, str] = {}
    for line in text.splitlines():
        fields = line.split(":")
        if len(fields) >= 3 and fields[2].isdigit():
            names.setdefault(int(fields[2]), fields[0])
    return names


class UserNames:
    """Resolves uids to names, cached: through NSS when the agent runs on the
    host itself, from <rootfs>/etc/passwd when it watches a host from a container."""

    _LIMIT = 4096  # forget everything past this many uids; they are re-resolved

    def __init__(self, rootfs: str = "/"):
        self._passwd = None if os.path.abspath(rootfs) == "/" else os.path.join(rootfs, "etc", "passwd")
        self._cache: Dict[int, str] = {}
        self._passwd_mtime: Optional[float] = None

    def _refresh_passwd(self) -> None:
        assert self._passwd is not None
        try:
            mtime = os.stat(self._passwd).st_mtime
        except OSError:
            mtime = None
        if mtime != self._passwd_mtime:
            self._passwd_mtime = mtime
            try:
                with open(self._passwd) as f:
                    self._cache = parse_passwd(f.read())
            except OSError:
                self._cache = {}

    def begin_run(self) -> None:
        """Called once per run: pick up a changed passwd file, bound the cache."""
        if self._passwd is not None:
            self._refresh_passwd()
        elif len(self._cache) > self._LIMIT:
            self._cache.clear()

    def __call__(self, uid: Optional[int]) -> str:
        """The user name of ``uid``, its number when it has no name, "" if unknown."""
        if uid is None:
            return ""
        name = self._cache.get(uid)
        if name is None:
            name = str(uid)
            if self._passwd is None:
                try:
                    name = pwd.getpwuid(uid).pw_name
                except KeyError:
                    pass
            self._cache[uid] = name
        return name


@register
class ProcessesCollector(BaseCollector):
    """Process counts, threads and the top processes by CPU and memory."""

    name = "processes"
    # Walking every process is the agent's dearest read; a top list does not
    # need fresher figures than every 30 s.
    default_interval = 30.0
    help = "Process counts by state, total threads, and the top processes by CPU and by resident memory"
    options = {
        "top_n": Option.integer(20, "How many processes to export by CPU and by memory (the union is exported).", 1, 100),
    }
    metrics = (STATES, THREADS, CPU_USAGE, RESIDENT, MEMORY_USAGE)

    def __init__(self, options: Optional[Mapping[str, Any]] = None, paths: Optional[Paths] = None) -> None:
        super().__init__(options, paths)
        self._prev_cpu: Dict[Identity, float] = {}
        self._prev_time: Optional[float] = None
        self._usernames = UserNames(self.paths.rootfs)

    def sample(self) -> ProcessesSample:
        """Walk the process table once and rank what it found."""
        mem_total = psutil.virtual_memory().total
        now = monotonic()
        elapsed = now - self._prev_time if self._prev_time is not None else 0.0
        statuses: List[str] = []
        threads = 0
        seen: List[Seen] = []
        cpu_now: Dict[Identity, float] = {}
        # process_iter skips processes that vanish mid-read; fields it may not
        # read (AccessDenied, zombies) come back as None and are handled here.
        for proc in psutil.process_iter(attrs=_ATTRS, ad_value=None):
            info = proc.info
            if info["status"]:
                statuses.append(info["status"])
            threads += info["num_threads"] or 0
            ratio = None
            times = info["cpu_times"]
            if times is not None and info["create_time"] is not None:
                identity = (info["pid"], info["create_time"])
                cpu_now[identity] = times.user + times.system
                ratio = cpu_ratio(self._prev_cpu.get(identity), cpu_now[identity], elapsed)
            rss = info["memory_info"].rss if info["memory_info"] is not None else 0
            uid = info["uids"].real if info["uids"] is not None else None
            seen.append(Seen(info["pid"], uid, ratio, rss))
        # Only processes alive now are remembered: no state for the dead.
        self._prev_cpu = cpu_now
        self._prev_time = now
        self._usernames.begin_run()
        top = []
        for r in select_top(seen, self.config["top_n"]):
            name = self._command_name(r.pid)
            if name is not None:
                top.append(ProcessInfo(r.pid, name, self._usernames(r.uid), r.cpu_ratio or 0.0, r.rss, fraction(r.rss, mem_total)))
        return ProcessesSample(count_states(statuses), threads, tuple(top))

    def _command_name(self, pid: int) -> Optional[str]:
        """The kernel's name of a process; None if it has exited, "" if unreadable."""
        try:
            with open(self.paths.proc(str(pid), "comm"), "rb") as f:
                return f.read().rstrip(b"\n").decode("utf-8", "replace")
        except (FileNotFoundError, ProcessLookupError):
            return None
        except OSError:
            return ""

    def families(self, sample: ProcessesSample) -> Iterator[Metric]:
        """Metric families of one sample, in declaration order."""
        fam = STATES.family()
        for state, count in sample.states:
            fam.add_metric([state], count)
        yield fam
        yield THREADS.single(sample.threads)
        fams = (CPU_USAGE.family(), RESIDENT.family(), MEMORY_USAGE.family())
        for p in sample.top:
            labels = [str(p.pid), p.name, p.username]
            fams[0].add_metric(labels, p.cpu_ratio)
            fams[1].add_metric(labels, p.rss)
            fams[2].add_metric(labels, p.memory_ratio)
        yield from fams
