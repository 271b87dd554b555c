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
from .proctable import CLOCK_TICKS, Identity, Proc

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
    """What is remembered of a process from its last sighting."""

    pid: int
    ppid: int
    group: str
    utime: int  # clock ticks
    stime: int
    cutime: int
    cstime: int
    read_bytes: Optional[int]
    write_bytes: Optional[int]
    rate: Optional[float]  # CPU ticks per second over its last interval or its life; None when seen in its first second only


class Accountant:
    """Turns successive process tables into what each group used in between."""

    def __init__(self, clock_ticks: int = CLOCK_TICKS):
        self.ticks = clock_ticks
        self._last: Dict[Identity, Last] = {}
        self._seen = False

    def account(self, procs: Sequence[Proc], groups: Sequence[str], elapsed: float, uptime: float) -> Tuple[Dict[str, List[float]], Dict[Identity, float]]:
        """Per group [user s, system s, read bytes, written bytes] since the
        previous call (on the first call: since each process started; its
        reaped children not counted), and each process's CPU in cores over
        that time (over its life when new)."""
        first = not self._seen
        self._seen = True
        last = self._last
        ticks = self.ticks
        deltas: Dict[str, List[float]] = defaultdict(lambda: [0, 0, 0, 0])
        rates: Dict[Identity, float] = {}
        now: Dict[Identity, Last] = {}
        rising: List[Identity] = []  # processes whose reaped children's time rose
        for proc, group in zip(procs, groups):
            s = proc.stat
            ident = (proc.pid, s.start)
            prev = last.get(ident)
            d = deltas[group]
            if prev is None:
                du, ds = s.utime, s.stime
                dcu, dcs = (0, 0) if first else (s.cutime, s.cstime)
                dr = proc.read_bytes or 0
                dw = proc.write_bytes or 0
                age = uptime - s.start / ticks
                rate = (s.utime + s.stime) / age if age >= 1.0 else None
            else:
                du, ds = max(s.utime - prev.utime, 0), max(s.stime - prev.stime, 0)
                dcu, dcs = max(s.cutime - prev.cutime, 0), max(s.cstime - prev.cstime, 0)
                dr = _rise(prev.read_bytes, proc.read_bytes)
                dw = _rise(prev.write_bytes, proc.write_bytes)
                rate = (du + ds) / elapsed if elapsed > 0 else prev.rate
            if rate is None and prev is None and age > 0:
                rates[ident] = (s.utime + s.stime) / age / ticks  # a noisy first figure for the list
            else:
                rates[ident] = (rate or 0.0) / ticks
            d[USER] += du
            d[SYSTEM] += ds
            d[READ] += dr
            d[WRITTEN] += dw
            if prev is None and (dcu or dcs):
                # A process new since the last run: every child it reaped ran since then.
                d[USER] += dcu
                d[SYSTEM] += dcs
            elif dcu or dcs:
                rising.append(ident)
            now[ident] = Last(proc.pid, s.ppid, group, s.utime, s.stime, s.cutime, s.cstime, proc.read_bytes, proc.write_bytes, rate)
        if not first:
            self._reaped(last, now, rising, deltas, elapsed)
        self._last = now
        out = {g: [d[USER] / ticks, d[SYSTEM] / ticks, float(d[READ]), float(d[WRITTEN])] for g, d in deltas.items()}
        return out, rates

    @staticmethod
    def _reaped(last: Mapping[Identity, Last], now: Mapping[Identity, Last], rising: Iterable[Identity], deltas: Dict[str, List[float]], elapsed: float) -> None:
        """Credit the rise of processes' reaped-children time that the
        vanished processes' last sightings do not already explain."""
        live = {ident[0]: ident for ident in now if ident in last}  # alive at both runs
        gone = [l for ident, l in last.items() if ident not in now]
        gone_pids = {l.pid: l for l in gone}
        # Each vanished process is charged to its nearest ancestor alive at
        # both runs (as last seen): a shell and the pipeline it reaped may all
        # vanish in one interval, and the shell's total then holds the
        # pipeline's. Without one, to init.
        charged: Dict[int, List[Last]] = defaultdict(list)
        for l in gone:
            ancestor, hops = l.ppid, 0
            while ancestor not in live and ancestor in gone_pids and hops < 64:
                ancestor, hops = gone_pids[ancestor].ppid, hops + 1
            if ancestor not in live:
                ancestor = 1
                if ancestor not in live:
                    continue
            charged[ancestor].append(l)
        depth_of: Dict[int, int] = {}

        def depth(pid: int) -> int:
            chain = []
            while pid in live and pid not in depth_of and len(chain) < 64:
                chain.append(pid)
                pid = now[live[pid]].ppid
            d = depth_of.get(pid, 0)
            for p in reversed(chain):
                d += 1
                depth_of[p] = d
            return depth_of[chain[0]] if chain else d

        # Deepest first: a vanished process its charged ancestor did not reap
        # (it was orphaned first) went to a reaper further up (a subreaper, a
        # container's init, init), whose rise it explains instead.
        heap = [(-depth(pid), pid) for pid in set(charged) | {ident[0] for ident in rising if ident[0] in live}]
        heapq.heapify(heap)
        done = set()
        while heap:
            _, pid = heapq.heappop(heap)
            if pid in done:
                continue
            done.add(pid)
            cur, prev = now[live[pid]], last[live[pid]]
            ru = max(cur.cutime - prev.cutime, 0)
            rs = max(cur.cstime - prev.cstime, 0)
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
            if passed and cur.ppid in live and cur.ppid not in done:
                charged[cur.ppid].extend(passed)
                heapq.heappush(heap, (-depth(cur.ppid), cur.ppid))
            ru, rs = max(ru, 0), max(rs, 0)
            if ru or rs:
                _share(deltas, cur.group, reaped, ru, rs, elapsed)


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
        s = p.stat
        out.append(rule(s.comm, s.kernel, exe_of(p) if needs_exe else "", user_of(p.uid) if needs_user else ""))
    return out
