"""Process groups: which group a process belongs to, and the CPU and I/O it
adds to its group between two runs, exited processes included.

Naming. By default a process's group is its kernel command name, folded so
that names carrying an instance or a task never make a new group: the part
before the first "/" (``kworker/u8:2-events_unbound`` and
``kworker/u8:2-writeback`` are both ``kworker``; ``irq/24-ACPI:Ged`` is
``irq``), and for kernel threads also without a trailing number
(``kswapd0`` is ``kswapd``). Matchers on command name, executable basename
and user name, tried in order, give a group its name instead. Every name is
made label-safe: letters, digits and ``_.:@+-``, at most ``MAX_NAME`` long.

Accounting. A group's CPU counter is the CPU its members used while the
agent watched, and the CPU of members that exited between two runs as far as
/proc shows it: when a parent reaps a child, the kernel adds the child's whole
CPU time (its own reaped children's included) to the parent's ``cutime`` and
``cstime``. The part of that rise the agent did not already count (the
children's CPU at their last sighting) is the CPU they used after it, or in
their whole life when they lived between two runs; it goes to the vanished
children's groups, by their last rate, and what is left to the parent's group.
A vanished process is matched to the nearest ancestor whose rise holds it, so
a pipeline reaped by a shell reaped in turn, or an orphan reaped by init or a
subreaper, counts once. What /proc cannot show: children reaped by nobody
that waits (a parent that ignores SIGCHLD), and I/O of any process after its
last sighting (the kernel keeps no children's I/O totals).
"""

from __future__ import annotations

import heapq
import re
from collections import defaultdict
from typing import Any, Callable, Dict, Iterable, List, Mapping, NamedTuple, Optional, Sequence, Tuple

from .base import OptionError
from .proctable import CLOCK_TICKS, Proc

MAX_NAME = 32
OTHER = "other"
_UNSAFE = re.compile(r"[^A-Za-z0-9_.:@+-]+")
_TRAILING_NUMBER = re.compile(r"[0-9._:-]+$")


def label_safe(name: str, limit: int = MAX_NAME, extra: str = "") -> str:
    """``name`` with anything but letters, digits and ``_.:@+-`` (plus
    ``extra``) turned into "_", cut to ``limit`` characters; "unknown" when
    nothing is left."""
    pattern = _UNSAFE if not extra else re.compile(r"[^A-Za-z0-9_.:@+" + re.escape(extra) + r"-]+")
    safe = pattern.sub("_", name).strip("_")[:limit].rstrip("_")
    return safe or "unknown"


def base_name(comm: str, kernel: bool) -> str:
    """The default group of a command name: the part before the first "/",
    and for kernel threads without a trailing number."""
    name = comm.split("/", 1)[0] if "/" in comm else comm
    if kernel and "/" not in comm:
        name = _TRAILING_NUMBER.sub("", name) or name
    return name or comm


def group_name(raw: str) -> str:
    """A label-safe group name that cannot be taken for the rest-group."""
    name = label_safe(raw)
    return name + "_" if name == OTHER else name


# --------------------------------------------------------------------------
# Matchers (the ``groups`` option)

MATCHER_KEYS = ("name", "comm", "exe", "user")
_PLACEHOLDER = re.compile(r"\{([a-z]*)\}")


class Matcher(NamedTuple):
    """One entry of the ``groups`` option: every given regex must match
    (searched); ``name`` may hold {comm}, {exe} and {user}."""

    name: str
    comm: Optional["re.Pattern[str]"]
    exe: Optional["re.Pattern[str]"]
    user: Optional["re.Pattern[str]"]

    def matches(self, comm: str, exe: str, user: str) -> bool:
        return (
            (self.comm is None or self.comm.search(comm) is not None)
            and (self.exe is None or self.exe.search(exe) is not None)
            and (self.user is None or self.user.search(user) is not None)
        )

    def render(self, comm: str, exe: str, user: str) -> str:
        values = {"comm": comm, "exe": exe, "user": user}
        return _PLACEHOLDER.sub(lambda m: values[m.group(1)], self.name)


def parse_matchers(value: Any) -> Tuple[Matcher, ...]:
    """The ``groups`` option as matchers; OptionError naming the entry at fault."""
    if value is None:
        return ()
    if not isinstance(value, list):
        raise OptionError(f"must be a list of matchers such as [{{name: web, exe: '^nginx$'}}], got {value!r}")
    out = []
    for i, entry in enumerate(value):
        where = f"entry {i + 1}"
        if not isinstance(entry, dict):
            raise OptionError(f"{where}: must be a mapping with name and comm, exe or user, got {entry!r}")
        unknown = sorted(str(k) for k in entry if k not in MATCHER_KEYS)
        if unknown:
            raise OptionError(f"{where}: unknown key {unknown[0]!r} (known: {', '.join(MATCHER_KEYS)})")
        name = entry.get("name")
        if not isinstance(name, str) or not name.strip():
            raise OptionError(f"{where}: needs a name (a string), got {name!r}")
        for placeholder in _PLACEHOLDER.findall(name):
            if placeholder not in ("comm", "exe", "user"):
                raise OptionError(f"{where}: name {name!r} uses {{{placeholder}}}; only {{comm}}, {{exe}} and {{user}} exist")
        if "{" not in name and group_name(name) != name:
            raise OptionError(f"{where}: name {name!r} is not label-safe (letters, digits and _.:@+- only, at most {MAX_NAME}, not {OTHER!r})")
        patterns = {}
        for key in ("comm", "exe", "user"):
            regex = entry.get(key)
            if regex is None:
                continue
            if not isinstance(regex, str) or not regex:
                raise OptionError(f"{where}: {key} must be a regular expression string, got {regex!r}")
            try:
                patterns[key] = re.compile(regex)
            except re.error as exc:
                raise OptionError(f"{where}: {key} is not a valid regular expression ({exc}): {regex!r}") from None
        if not patterns:
            raise OptionError(f"{where}: needs at least one of comm, exe or user to match on")
        out.append(Matcher(name, patterns.get("comm"), patterns.get("exe"), patterns.get("user")))
    return tuple(out)


def check_matchers(value: Any) -> Any:
    parse_matchers(value)
    return value


def check_group_names(value: Any) -> Any:
    """A list of label-safe group names (the ``pinned_groups`` option); null for none."""
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise OptionError(f"must be a list of group names, got {value!r}")
    for name in value:
        if group_name(name) != name:
            raise OptionError(f"{name!r} is not a label-safe group name (letters, digits and _.:@+- only, at most {MAX_NAME}, not {OTHER!r})")
    return value


class GroupRule:
    """Names the group of a process: the first matching matcher, else the
    ``group_by`` rule (comm, exe or user). Results are remembered per input."""

    _MEMO_LIMIT = 8192

    def __init__(self, group_by: str = "comm", matchers: Sequence[Matcher] = ()):
        self.group_by = group_by
        self.matchers = tuple(matchers)
        # The executable is read only when a rule looks at it.
        self.needs_exe = group_by == "exe" or any(m.exe is not None or "{exe}" in m.name for m in self.matchers)
        self.needs_user = group_by == "user" or any(m.user is not None or "{user}" in m.name for m in self.matchers)
        self._memo: Dict[Tuple[str, bool, str, str], str] = {}

    def __call__(self, comm: str, kernel: bool, exe: str = "", user: str = "") -> str:
        key = (comm, kernel, exe, user)
        name = self._memo.get(key)
        if name is None:
            if len(self._memo) >= self._MEMO_LIMIT:
                self._memo.clear()
            name = self._memo[key] = self._name(comm, kernel, exe, user)
        return name

    def _name(self, comm: str, kernel: bool, exe: str, user: str) -> str:
        short = base_name(comm, kernel)
        for m in self.matchers:
            if m.matches(comm, exe, user):
                return group_name(m.render(short, exe, user))
        if self.group_by == "exe" and exe and not kernel:
            return group_name(exe)
        if self.group_by == "user":
            return group_name(user)
        return group_name(short)


# --------------------------------------------------------------------------
# Accounting between runs

# Index of each figure in a group's delta list.
USER, SYSTEM, READ, WRITTEN = range(4)


class Last(NamedTuple):
    """What is remembered of a process from its last sighting (times in clock ticks)."""

    pid: int
    start: int
    ppid: int
    group: str
    utime: int
    stime: int
    cutime: int
    cstime: int
    read_bytes: Optional[int]
    write_bytes: Optional[int]
    rate: Optional[float]  # CPU ticks per second over its last interval or its life; None when seen in its first second only
    run: int  # the run it was last seen in
    new: bool  # first seen in that run


class Accountant:
    """Turns successive process tables into what each group used in between.

    One run is ``begin()``, ``add()`` for every process, ``finish()``; only
    one small record per living process is kept between runs."""

    def __init__(self, clock_ticks: int = CLOCK_TICKS):
        self.ticks = clock_ticks
        self.last: Dict[int, Last] = {}  # by pid
        self._run = 0
        self._elapsed = 0.0
        self._uptime = 0.0
        self._deltas: Dict[str, List[float]] = {}
        self._gone: List[Last] = []
        self._rising: List[Tuple[int, int, int]] = []  # (pid, cutime, cstime before)

    def begin(self, elapsed: float, uptime: float) -> None:
        self._run += 1
        self._elapsed, self._uptime = elapsed, uptime
        self._deltas = defaultdict(lambda: [0, 0, 0, 0])
        self._gone, self._rising = [], []

    def add(self, p: Proc, group: str) -> float:
        """Account one process; its CPU in cores over the last interval
        (over its life when new)."""
        first = self._run == 1
        last = self.last
        prev = last.get(p.pid)
        if prev is not None and prev.start != p.start:
            self._gone.append(prev)  # the pid was used again: that process is gone
            prev = None
        d = self._deltas[group]
        if prev is None:
            du, ds = p.utime, p.stime
            # A process new since the last run: every child it reaped ran since then.
            dcu, dcs = (0, 0) if first else (p.cutime, p.cstime)
            d[READ] += p.read_bytes or 0
            d[WRITTEN] += p.write_bytes or 0
            age = self._uptime - p.start / self.ticks
            lifetime = (p.utime + p.stime) / age if age > 0 else 0.0
            rate = lifetime if age >= 1.0 else None
            cores = lifetime / self.ticks
        else:
            du, ds = max(p.utime - prev.utime, 0), max(p.stime - prev.stime, 0)
            dcu = dcs = 0
            if p.cutime != prev.cutime or p.cstime != prev.cstime:
                self._rising.append((p.pid, prev.cutime, prev.cstime))
            d[READ] += _rise(prev.read_bytes, p.read_bytes)
            d[WRITTEN] += _rise(prev.write_bytes, p.write_bytes)
            rate = (du + ds) / self._elapsed if self._elapsed > 0 else prev.rate
            cores = (rate or 0.0) / self.ticks
        d[USER] += du + dcu
        d[SYSTEM] += ds + dcs
        last[p.pid] = Last(p.pid, p.start, p.ppid, group, p.utime, p.stime, p.cutime, p.cstime, p.read_bytes, p.write_bytes, rate, self._run, prev is None)
        return cores

    def finish(self) -> Dict[str, List[float]]:
        """Per group [user s, system s, read bytes, written bytes] since the
        previous run (on the first: since each process started, its reaped
        children not counted)."""
        run = self._run
        gone = self._gone
        for pid in [pid for pid, l in self.last.items() if l.run != run]:
            gone.append(self.last.pop(pid))
        if run > 1:
            self._reaped(gone)
        ticks = self.ticks
        out = {g: [d[USER] / ticks, d[SYSTEM] / ticks, float(d[READ]), float(d[WRITTEN])] for g, d in self._deltas.items()}
        self._deltas, self._gone, self._rising = {}, [], []
        return out

    def account(self, procs: Iterable[Proc], groups: Iterable[str], elapsed: float, uptime: float) -> Tuple[Dict[str, List[float]], Dict[int, float]]:
        """One whole run: the deltas per group and each process's cores by pid."""
        self.begin(elapsed, uptime)
        cores = {p.pid: self.add(p, g) for p, g in zip(procs, groups)}
        return self.finish(), cores

    def _alive(self, pid: int) -> Optional[Last]:
        """The process at ``pid`` if it was seen in this run and the one before."""
        l = self.last.get(pid)
        return l if l is not None and l.run == self._run and not l.new else None

    def _reaped(self, gone: List[Last]) -> None:
        """Credit the rise of processes' reaped-children time that the
        vanished processes' last sightings do not already explain."""
        gone_by_pid = {l.pid: l for l in gone}
        # Each vanished process is charged to its nearest ancestor alive at
        # both runs (as last seen): a shell and the pipeline it reaped may all
        # vanish in one interval, and the shell's total then holds the
        # pipeline's. Without one, to init.
        charged: Dict[int, List[Last]] = defaultdict(list)
        for l in gone:
            ancestor, hops = l.ppid, 0
            while self._alive(ancestor) is None and ancestor in gone_by_pid and hops < 64:
                ancestor, hops = gone_by_pid[ancestor].ppid, hops + 1
            if self._alive(ancestor) is None:
                ancestor = 1
                if self._alive(ancestor) is None:
                    continue
            charged[ancestor].append(l)
        before = {pid: (cu, cs) for pid, cu, cs in self._rising}
        depth_of: Dict[int, int] = {}

        def depth(pid: int) -> int:
            chain = []
            while self._alive(pid) is not None and pid not in depth_of and len(chain) < 64:
                chain.append(pid)
                pid = self.last[pid].ppid
            d = depth_of.get(pid, 0)
            for p in reversed(chain):
                d += 1
                depth_of[p] = d
            return depth_of[chain[0]] if chain else d

        # Deepest first: a vanished process its charged ancestor did not reap
        # (it was orphaned first) went to a reaper further up (a subreaper, a
        # container's init, init), whose rise it explains instead.
        heap = [(-depth(pid), pid) for pid in set(charged) | set(before)]
        heapq.heapify(heap)
        done = set()
        while heap:
            _, pid = heapq.heappop(heap)
            if pid in done:
                continue
            done.add(pid)
            cur = self.last[pid]
            cu, cs = before.get(pid, (cur.cutime, cur.cstime))
            ru, rs = max(cur.cutime - cu, 0), max(cur.cstime - cs, 0)
            reaped, passed = [], []
            # Its own children first, then those of its vanished descendants.
            for child in sorted(charged.pop(pid, ()), key=lambda c: c.ppid != pid):
                used_u, used_s = child.utime + child.cutime, child.stime + child.cstime
                if used_u + used_s <= ru + rs + 2:  # the kernel's user/system split may move by a tick
                    reaped.append(child)
                    ru, rs = ru - used_u, rs - used_s
                    if ru < 0:
                        ru, rs = 0, rs + ru
                    elif rs < 0:
                        ru, rs = ru + rs, 0
                else:
                    passed.append(child)
            if passed and self._alive(cur.ppid) is not None and cur.ppid not in done:
                charged[cur.ppid].extend(passed)
                heapq.heappush(heap, (-depth(cur.ppid), cur.ppid))
            ru, rs = max(ru, 0), max(rs, 0)
            if ru or rs:
                _share(self._deltas, cur.group, reaped, ru, rs, self._elapsed)


def _share(deltas: Dict[str, List[float]], group: str, children: Iterable[Last], ru: int, rs: int, elapsed: float) -> None:
    """The vanished children ran on at their last pace until they exited, at
    the latest now: each gets that much of the remainder, the busiest first.
    Children seen only in their first second have no pace yet: they share
    what is left. Without them, what is left (children never seen) goes to
    the parent's group."""
    left = ru + rs
    unknown = [c for c in children if c.rate is None]
    for child in sorted((c for c in children if c.rate is not None), key=lambda c: -(c.rate or 0.0)):
        if left <= 0:
            break
        share = min(left, (child.rate or 0.0) * elapsed)
        if share > 0:
            _credit(deltas[child.group], share, ru, rs)
            left -= share
    if left > 0 and unknown:
        for child in unknown:
            _credit(deltas[child.group], left / len(unknown), ru, rs)
    elif left > 0:
        _credit(deltas[group], left, ru, rs)


def _rise(before: Optional[int], after: Optional[int]) -> int:
    if before is None or after is None:
        return 0
    return max(after - before, 0)


def _credit(d: List[float], amount: float, user: float, system: float) -> None:
    """Add ``amount`` ticks to a group, split between user and system as the
    whole remainder splits."""
    total = user + system
    d[USER] += amount * user / total
    d[SYSTEM] += amount * system / total


def assign(procs: Iterable[Proc], rule: GroupRule, user_of: Callable[[Optional[int]], str], exe_of: Callable[[Proc], str]) -> List[str]:
    """The group of every process, in order."""
    needs_exe, needs_user = rule.needs_exe, rule.needs_user
    out = []
    for p in procs:
        out.append(rule(p.comm, p.kernel, exe_of(p) if needs_exe else "", user_of(p.uid) if needs_user else ""))
    return out
