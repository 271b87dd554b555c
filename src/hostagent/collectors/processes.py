"""Process counts, process groups, and (opt-in) the top processes by CPU and memory.

Every run reads the whole process table from /proc (see ``proctable``) and
sums it per *group*: by default the kernel command name, kernel threads
folded by their prefix (see ``procgroups``). At most ``max_groups`` groups
get series of their own, ranked by recent CPU and memory with hysteresis and
a budget of ``new_groups_per_hour`` (see ``topgroups``); the rest is summed
into the group ``other``. Counters never go backwards: the CPU a process
used between its last sighting and its exit is counted from its reaping
parent's children-time as far as /proc shows it.

Per-process series labelled with a pid are off by default (``top_n: 0``):
every process entering the top makes three new series. The whole process
list is served as JSON at ``/api/v1/processes`` instead, from the same run.

    host_processes{state="sleeping"} 79.0
    host_processes_threads 143.0
    host_process_group_cpu_seconds_total{group="postgres",mode="user"} 5412.33
    host_process_group_cpu_seconds_total{group="postgres",mode="system"} 1022.1
    host_process_group_processes{group="postgres"} 12.0
    host_process_group_resident_memory_bytes{group="postgres"} 1.342177e+09
    host_process_group_read_bytes_total{group="postgres"} 8.12e+10
    host_process_group_oldest_start_time_seconds{group="postgres"} 1.7e+09
    host_process_groups_other 14.0
"""

from __future__ import annotations

import heapq
import json
import os
import pwd
import time
from collections import Counter
from dataclasses import dataclass, field
from time import monotonic
from typing import Any, Dict, Iterable, Iterator, List, Mapping, NamedTuple, Optional, Tuple

from ..promclient import Metric
from .base import BaseCollector, MetricSpec, Option, Paths, fraction, register
from .procgroups import OTHER, Accountant, GroupRule, check_group_names, check_matchers, parse_matchers
from .proctable import STATES, Proc, ProcTable
from .topgroups import TopGroups

# Always exported, with 0, so rules and dashboards never see them vanish.
COMMON_STATES = ("running", "sleeping", "disk-sleep", "stopped", "zombie", "idle")

API_MAX_LIMIT = 500  # most processes /api/v1/processes lists in one answer

PROCESSES = MetricSpec("host_processes", "gauge", "Number of processes in each state.", ("state",))
THREADS = MetricSpec("host_processes_threads", "gauge", "Number of threads of all processes.", ())
GROUP_CPU = MetricSpec("host_process_group_cpu_seconds_total", "counter", "CPU time the group's processes used, by mode (user, system); exited members' included as far as /proc shows it.", ("group", "mode"), "seconds")
GROUP_PROCESSES = MetricSpec("host_process_group_processes", "gauge", "Number of processes in the group.", ("group",))
GROUP_THREADS = MetricSpec("host_process_group_threads", "gauge", "Number of threads of the group's processes.", ("group",))
GROUP_RSS = MetricSpec("host_process_group_resident_memory_bytes", "gauge", "Resident memory of the group's processes (shared pages count once per process).", ("group",), "bytes")
GROUP_FDS = MetricSpec("host_process_group_open_fds", "gauge", "Open file descriptors of the group's processes whose descriptors the agent may read.", ("group",))
GROUP_READ = MetricSpec("host_process_group_read_bytes_total", "counter", "Bytes the group's processes caused to be read from storage (/proc/PID/io read_bytes, where readable).", ("group",), "bytes")
GROUP_WRITTEN = MetricSpec("host_process_group_written_bytes_total", "counter", "Bytes the group's processes caused to be written to storage (/proc/PID/io write_bytes, where readable).", ("group",), "bytes")
GROUP_OLDEST = MetricSpec("host_process_group_oldest_start_time_seconds", "gauge", "Unix time the group's oldest process started; absent while the group has no process.", ("group",), "seconds")
GROUPS_OTHER = MetricSpec("host_process_groups_other", "gauge", "Number of groups summed into the group other.", ())
TOP_CPU = MetricSpec("host_process_cpu_usage_cores", "gauge", "CPU a top process used since the previous collection, in cores (1.0 = one full core); only with top_n > 0.", ("pid", "name", "username"))
TOP_RSS = MetricSpec("host_process_resident_memory_bytes", "gauge", "Resident memory of a top process; only with top_n > 0.", ("pid", "name", "username"), "bytes")
TOP_MEMORY = MetricSpec("host_process_memory_usage_ratio", "gauge", "Resident memory of a top process as a share of total memory; only with top_n > 0.", ("pid", "name", "username"), "ratio")

GROUP_COUNTERS = ("user", "system", "read", "written")  # the order of TopGroups' counters


class Seen(NamedTuple):
    """One process as read in this run, before ranking."""

    pid: int
    uid: Optional[int]
    cpu_cores: float
    rss: int


@dataclass(frozen=True)
class ProcessInfo:
    """An exported top process: the figures behind its three series."""

    pid: int
    name: str
    username: str
    cpu_cores: float
    rss: int
    memory_ratio: float


@dataclass(frozen=True)
class GroupFigures:
    """One exported group: counters since the agent started, gauges now."""

    name: str
    cpu_user: float
    cpu_system: float
    read_bytes: float
    written_bytes: float
    processes: int = 0
    threads: int = 0
    rss: int = 0
    fds: Optional[int] = None
    oldest_start: Optional[float] = None


@dataclass(frozen=True)
class ProcessesSample:
    """Counts per state, total threads, the groups and the top processes."""

    states: Tuple[Tuple[str, int], ...]
    threads: int
    groups: Tuple[GroupFigures, ...] = ()
    groups_in_other: int = 0
    top: Tuple[ProcessInfo, ...] = ()


class Row(NamedTuple):
    """One process of the process list API."""

    pid: int
    ppid: int
    name: str
    user: str
    group: str
    state: str
    cpu_cores: float
    rss: int
    threads: int
    start_time: float
    cmdline: Optional[str]

    def as_dict(self, with_cmdline: bool) -> Dict[str, Any]:
        out = {
            "pid": self.pid, "ppid": self.ppid, "name": self.name, "user": self.user, "group": self.group,
            "state": self.state, "cpu_cores": round(self.cpu_cores, 4), "resident_memory_bytes": self.rss,
            "threads": self.threads, "start_time_seconds": round(self.start_time, 2),
        }
        if with_cmdline:
            out["cmdline"] = self.cmdline
        return out


@dataclass(frozen=True)
class ProcessList:
    """The process list of one run, ready for the API: the busiest
    ``API_MAX_LIMIT`` processes by CPU and by memory."""

    taken_at: float  # Unix time
    total: int
    memory_total: int
    by_cpu: Tuple[Row, ...]
    by_memory: Tuple[Row, ...]
    with_cmdline: bool
    _rendered: Dict[Tuple[str, int], bytes] = field(default_factory=dict, compare=False, repr=False)

    def json(self, sort: str, limit: int) -> bytes:
        """The API's answer for ``sort`` (cpu or memory) and ``limit``,
        rendered once per list and query."""
        key = (sort, limit)
        body = self._rendered.get(key)
        if body is None:
            rows = (self.by_cpu if sort == "cpu" else self.by_memory)[:limit]
            doc = {
                "timestamp": round(self.taken_at, 3), "sort": sort, "limit": limit,
                "total_processes": self.total, "memory_total_bytes": self.memory_total,
                "processes": [r.as_dict(self.with_cmdline) for r in rows],
            }
            body = (json.dumps(doc, separators=(",", ":")) + "\n").encode("utf-8")
            if len(self._rendered) >= 16:
                self._rendered.clear()
            self._rendered[key] = body
        return body


def _keep(heap: List[Any], item: Any) -> None:
    """Keep the API_MAX_LIMIT largest items in ``heap``."""
    if len(heap) < API_MAX_LIMIT:
        heapq.heappush(heap, item)
    elif item > heap[0]:
        heapq.heapreplace(heap, item)


def count_states(statuses: Iterable[str]) -> Tuple[Tuple[str, int], ...]:
    """Processes per state (a list of states, or counts per state): the
    common states always, others when seen, sorted."""
    counts = Counter({state: 0 for state in COMMON_STATES})
    counts.update(statuses)
    return tuple(sorted(counts.items()))


def select_top(seen: Iterable[Seen], n: int) -> List[Seen]:
    """The union of the n highest by CPU and the n highest by RSS, ordered by pid.

    Ties break on the lower pid so the selection is stable between runs."""
    rows = list(seen)
    by_cpu = heapq.nsmallest(n, (r for r in rows if r.cpu_cores > 0), key=lambda r: (-r.cpu_cores, r.pid))
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
    """Process counts, process groups, and the top processes when asked for."""

    name = "processes"
    # Walking every process is the agent's dearest read; groups summed over
    # minutes do not need fresher figures than every 30 s.
    default_interval = 30.0
    help = "Process counts by state; CPU, memory, I/O and descriptors per process group (9 series a group, at most max_groups + 1 groups); and (opt-in) the top processes"
    options = {
        "max_groups": Option.integer(50, "Most process groups exported under their own name; the rest are summed into the group 'other'.", 1, 1000),
        "group_by": Option.choice("comm", "What names a process's group when no matcher in 'groups' does: comm (the kernel's command name, kernel threads folded by prefix), exe (executable basename) or user.", ("comm", "exe", "user")),
        "groups": Option([], "Matchers tried in order before group_by, e.g. [{name: web, exe: '^(nginx|php-fpm.*)$'}, {name: '{user}-java', comm: '^java$'}]: comm, exe and user are regexes (searched; all given must match), name may use {comm}, {exe}, {user}.", check_matchers),
        "pinned_groups": Option([], "Groups always exported under their own name, with 0 processes when none runs (list those an alert expects to run, e.g. [sshd]).", check_group_names),
        "new_groups_per_hour": Option.integer(15, "Most groups newly given their own series per hour after the first run (9 series each); others wait in 'other'.", 0, 3600),
        "top_n": Option.integer(0, "Per-process series (pid, name, username) for this many processes by CPU and by memory, the union exported; 0 for none. Each process entering the top makes 3 new series: see docs/processes.md for the cost.", 0, 100),
        "cmdline": Option.boolean(False, "Include command lines in /api/v1/processes (they may hold secrets; read only for the listed processes)."),
    }
    metrics = (PROCESSES, THREADS, GROUP_CPU, GROUP_PROCESSES, GROUP_THREADS, GROUP_RSS, GROUP_FDS, GROUP_READ, GROUP_WRITTEN, GROUP_OLDEST, GROUPS_OTHER, TOP_CPU, TOP_RSS, TOP_MEMORY)

    def __init__(self, options: Optional[Mapping[str, Any]] = None, paths: Optional[Paths] = None) -> None:
        super().__init__(options, paths)
        self._table = ProcTable(self.paths.procfs)
        self._rule = GroupRule(self.config["group_by"], parse_matchers(self.config["groups"]))
        self._accountant = Accountant()
        self._top = TopGroups(self.config["max_groups"], self.config["new_groups_per_hour"], len(GROUP_COUNTERS), pinned=self.config["pinned_groups"] or ())
        self._usernames = UserNames(self.paths.rootfs)
        self._exes: Dict[int, Tuple[int, str]] = {}  # pid -> (start, executable basename)
        self._cmdlines: Dict[int, Tuple[int, Optional[str]]] = {}  # pid -> (start, command line)
        self._boot_time: Optional[float] = None
        self._prev_time: Optional[float] = None
        self.process_list: Optional[ProcessList] = None  # the latest run's, for /api/v1/processes

    def _exe(self, p: Proc) -> str:
        """Basename of a process's executable, read once per process."""
        if p.kernel:
            return ""
        known = self._exes.get(p.pid)
        if known is None or known[0] != p.start:
            known = self._exes[p.pid] = (p.start, self._table.exe(p.pid))
        return known[1]

    def sample(self) -> ProcessesSample:
        """Read the process table once, one process at a time: group,
        account and rank it; keep the busiest for the process list."""
        now = monotonic()
        elapsed = now - self._prev_time if self._prev_time is not None else 0.0
        self._prev_time = now
        table, rule, acct = self._table, self._rule, self._accountant
        if self._boot_time is None:
            self._boot_time = table.boot_time()
        uptime = table.uptime()
        mem_total = table.mem_total()
        self._usernames.begin_run()
        needs_exe, needs_user = rule.needs_exe, rule.needs_user
        acct.begin(elapsed, uptime)
        states: Counter = Counter()
        threads = 0
        # Per group: processes, threads, rss, fds (None until one is readable), oldest start ticks, cores.
        gauges: Dict[str, List[Any]] = {}
        # The busiest by CPU and by memory, for the process list and top_n.
        by_cpu: List[Tuple[float, int, int, Proc, str]] = []
        by_mem: List[Tuple[int, float, int, Proc, str]] = []
        for p in table.scan():
            g = rule(p.comm, p.kernel, self._exe(p) if needs_exe else "", self._usernames(p.uid) if needs_user else "")
            cores = acct.add(p, g)
            states[p.state] += 1
            threads += p.threads
            f = gauges.get(g)
            if f is None:
                f = gauges[g] = [0, 0, 0, None, p.start, 0.0]
            f[0] += 1
            f[1] += p.threads
            f[2] += p.rss
            if p.fds is not None:
                f[3] = (f[3] or 0) + p.fds
            if p.start < f[4]:
                f[4] = p.start
            f[5] += cores
            _keep(by_cpu, (cores, p.rss, p.pid, p, g))
            _keep(by_mem, (p.rss, cores, p.pid, p, g))
        deltas = acct.finish()
        if needs_exe and len(self._exes) > len(acct.last):
            self._exes = {pid: v for pid, v in self._exes.items() if pid in acct.last}

        ranking = self._top.update(deltas, {g: f[2] for g, f in gauges.items()}, now, {g: f[5] for g, f in gauges.items()})
        figures = [self._figures(name, ranking.counters[name], gauges.get(name)) for name in ranking.named]
        other: List[Any] = [0, 0, 0, None, None, 0.0]
        for name in ranking.in_other:
            f = gauges.get(name)
            if f is None:
                continue
            for i in (0, 1, 2):
                other[i] += f[i]
            if f[3] is not None:
                other[3] = (other[3] or 0) + f[3]
            other[4] = f[4] if other[4] is None else min(other[4], f[4])
        figures.append(self._figures(OTHER, ranking.other, other if other[0] else None))

        by_cpu.sort(reverse=True)
        by_mem.sort(reverse=True)
        top: List[ProcessInfo] = []
        if self.config["top_n"]:
            # Within the process list's API_MAX_LIMIT busiest by CPU and by memory (top_n is at most 100).
            procs = {pid: (p, cores) for cores, _, pid, p, _ in by_cpu}
            procs.update((pid, (p, cores)) for _, cores, pid, p, _ in by_mem)
            for r in select_top((Seen(pid, p.uid, cores, p.rss) for pid, (p, cores) in procs.items()), self.config["top_n"]):
                top.append(ProcessInfo(r.pid, procs[r.pid][0].comm, self._usernames(r.uid), r.cpu_cores, r.rss, fraction(r.rss, mem_total)))
        total = sum(states.values())
        self.process_list = self._process_list(by_cpu, [(cores, rss, pid, p, g) for rss, cores, pid, p, g in by_mem], total, mem_total)
        named_states: Counter = Counter()
        for letter, count in states.items():
            named_states[STATES.get(letter, letter)] += count  # X and x are both "dead"
        return ProcessesSample(count_states(named_states), threads, tuple(figures), len(ranking.in_other), tuple(top))

    def _figures(self, name: str, counters: Tuple[float, ...], f: Optional[List[Any]]) -> GroupFigures:
        if f is None:
            return GroupFigures(name, *counters)
        oldest = None if f[4] is None else round((self._boot_time or 0.0) + f[4] / self._accountant.ticks, 2)
        return GroupFigures(name, *counters, processes=f[0], threads=f[1], rss=f[2], fds=f[3], oldest_start=oldest)

    def _process_list(self, by_cpu: List[Tuple[float, int, int, Proc, str]], by_mem: List[Tuple[float, int, int, Proc, str]], total: int, mem_total: int) -> ProcessList:
        """The busiest processes by CPU and by memory, as API rows."""
        with_cmdline = bool(self.config["cmdline"])
        rows: Dict[int, Row] = {}
        cmdlines: Dict[int, Tuple[int, Optional[str]]] = {}
        boot, ticks = self._boot_time or 0.0, self._accountant.ticks

        def row(item: Tuple[float, int, int, Proc, str]) -> Row:
            cores, _, pid, p, g = item
            r = rows.get(pid)
            if r is None:
                cmd = None
                if with_cmdline:
                    known = self._cmdlines.get(pid)
                    cmd = known[1] if known is not None and known[0] == p.start else self._table.cmdline(pid)
                    cmdlines[pid] = (p.start, cmd)
                r = rows[pid] = Row(pid, p.ppid, p.comm, self._usernames(p.uid), g, STATES.get(p.state, p.state), cores, p.rss, p.threads, boot + p.start / ticks, cmd)
            return r

        cpu_rows, mem_rows = tuple(map(row, by_cpu)), tuple(map(row, by_mem))
        self._cmdlines = cmdlines
        return ProcessList(time.time(), total, mem_total, cpu_rows, mem_rows, with_cmdline)

    def families(self, sample: ProcessesSample) -> Iterator[Metric]:
        """Metric families of one sample, in declaration order."""
        fam = PROCESSES.family()
        for state, count in sample.states:
            fam.add_metric([state], count)
        yield fam
        yield THREADS.single(sample.threads)
        cpu = GROUP_CPU.family()
        fams = {spec: spec.family() for spec in (GROUP_PROCESSES, GROUP_THREADS, GROUP_RSS, GROUP_FDS, GROUP_READ, GROUP_WRITTEN, GROUP_OLDEST)}
        for g in sample.groups:
            cpu.add_metric([g.name, "user"], g.cpu_user)
            cpu.add_metric([g.name, "system"], g.cpu_system)
            fams[GROUP_PROCESSES].add_metric([g.name], g.processes)
            fams[GROUP_THREADS].add_metric([g.name], g.threads)
            fams[GROUP_RSS].add_metric([g.name], g.rss)
            if g.fds is not None:
                fams[GROUP_FDS].add_metric([g.name], g.fds)
            fams[GROUP_READ].add_metric([g.name], g.read_bytes)
            fams[GROUP_WRITTEN].add_metric([g.name], g.written_bytes)
            if g.oldest_start is not None:
                fams[GROUP_OLDEST].add_metric([g.name], g.oldest_start)
        yield cpu
        yield from fams.values()
        yield GROUPS_OTHER.single(sample.groups_in_other)
        top = (TOP_CPU.family(), TOP_RSS.family(), TOP_MEMORY.family())
        for p in sample.top:
            labels = [str(p.pid), p.name, p.username]
            top[0].add_metric(labels, p.cpu_cores)
            top[1].add_metric(labels, p.rss)
            top[2].add_metric(labels, p.memory_ratio)
        yield from top

