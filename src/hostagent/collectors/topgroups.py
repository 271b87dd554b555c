"""The top groups get series of their own, the rest is summed into ``other``.

Shared by the process groups and the cgroups. Every run the caller hands
over, per key (a group or a cgroup name), what its counters rose by since the
previous run and its current memory; ``TopGroups`` decides which keys are
*named* (exported under their own label) and keeps every exported counter
monotonic:

- Ranking: a key's score is the larger of its share of all CPU (an average
  that forgets with a half-life of ``HALF_LIFE`` seconds) and its share of all
  memory. Keys stay named until a challenger scores ``FACTOR`` times more
  and they have been named for ``DWELL`` seconds, so names do not flap in and
  out of the top.
- Budget: after the first run, at most ``per_hour`` keys a hour become named
  (a token bucket holding ``BURST``), whatever the churn: each naming starts
  new series, and that is the cost being bounded.
- Absence: a named key with nothing present stays named (a process group
  whose processes all exited shows 0 processes) unless ``keep_absent`` says
  otherwise (a removed cgroup is gone at the next run).
- Counters: a named key's counters rise by what it used only while it stays
  named; what a key uses while unnamed, or in the run it is named or dropped,
  goes to ``other``. So every series only rises, a key named again resumes
  where it stopped, and the rises of all series add up to the whole. The
  first run of a newly named key is added at its second run, because
  Prometheus cannot see an increase in a series' first sample.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

OTHER = "other"
HALF_LIFE = 300.0  # seconds for a key's CPU average to forget half its past
FACTOR = 2.0  # a challenger must score this many times the weakest named key
DWELL = 600.0  # seconds a key stays named before it may be displaced
BURST = 5  # keys that may be named at once after the first run
MIN_SCORE = 0.001  # below a 0.1 % share of CPU and of memory a key is not worth a series
FORGET = 3600.0  # seconds after which an unnamed key not seen is forgotten


@dataclass
class _Key:
    counters: List[float]
    pending: List[float]
    cpu: float = 0.0  # CPU seconds per second, averaged
    memory: float = 0.0
    seen: float = 0.0
    named_since: Optional[float] = None


@dataclass(frozen=True)
class Ranking:
    """One run's outcome: the named keys in order, their counter values, the
    ``other`` counters and which keys ``other`` holds."""

    named: Tuple[str, ...]
    counters: Mapping[str, Tuple[float, ...]]
    other: Tuple[float, ...]
    in_other: Tuple[str, ...]


@dataclass
class TopGroups:
    """Chooses and accounts the named keys; see the module docstring."""

    max_named: int
    per_hour: float
    width: int  # counters per key
    cpu_fields: Tuple[int, ...] = (0, 1)  # which counters are CPU seconds, for the score
    pinned: Sequence[str] = ()
    keep_absent: float = math.inf  # seconds a named key stays named once it has nothing present
    _keys: Dict[str, _Key] = field(default_factory=dict)
    _other: List[float] = field(default_factory=list)
    _last: Optional[float] = None
    _tokens: float = float(BURST)

    def __post_init__(self) -> None:
        self._other = [0.0] * self.width
        self.pinned = tuple(self.pinned)

    def update(self, deltas: Mapping[str, Sequence[float]], memory: Mapping[str, float], now: float, cpu_rates: Optional[Mapping[str, float]] = None) -> Ranking:
        """Take one run. ``deltas``: counter rises per key since the last run
        (since start on the first); ``memory``: bytes per key present now;
        ``cpu_rates``: CPU cores per key, to score the first run by."""
        first = self._last is None
        elapsed = 0.0 if first else max(now - self._last, 0.0)  # type: ignore[operator]
        self._last = now
        self._score(deltas, memory, now, elapsed, cpu_rates or {})
        before = {k for k, st in self._keys.items() if st.named_since is not None}
        if first:
            self._name_first(now)
        else:
            self._tokens = min(float(BURST), self._tokens + elapsed * self.per_hour / 3600.0)
            self._rename(now)
        named = sorted(k for k, st in self._keys.items() if st.named_since is not None)
        named_set = set(named)
        self._credit(deltas, named_set, before, first)
        self._forget(now)
        in_other = tuple(sorted(k for k in set(memory) | set(deltas) if k not in named_set))
        return Ranking(tuple(named), {k: tuple(self._keys[k].counters) for k in named}, tuple(self._other), in_other)

    # -- scores ---------------------------------------------------------

    def _score(self, deltas: Mapping[str, Sequence[float]], memory: Mapping[str, float], now: float, elapsed: float, cpu_rates: Mapping[str, float]) -> None:
        keep = math.exp(-elapsed * math.log(2) / HALF_LIFE)
        for key in set(deltas) | set(memory) | set(self.pinned):
            if key not in self._keys:
                self._keys[key] = _Key([0.0] * self.width, [0.0] * self.width)
        for key, st in self._keys.items():
            d = deltas.get(key)
            if elapsed > 0:
                rate = sum(d[i] for i in self.cpu_fields) / elapsed if d is not None else 0.0
                st.cpu = st.cpu * keep + rate * (1 - keep)
            elif key in cpu_rates:
                st.cpu = cpu_rates[key]
            st.memory = memory.get(key, 0.0)
            if key in memory or d is not None and any(d):
                st.seen = now
        self._cpu_total = sum(st.cpu for st in self._keys.values())
        self._mem_total = sum(st.memory for st in self._keys.values())

    def score(self, key: str) -> float:
        st = self._keys[key]
        cpu = st.cpu / self._cpu_total if self._cpu_total > 0 else 0.0
        mem = st.memory / self._mem_total if self._mem_total > 0 else 0.0
        return max(cpu, mem)

    # -- naming ---------------------------------------------------------

    def _name_first(self, now: float) -> None:
        pinned = [k for k in self.pinned]
        rest = sorted((k for k in self._keys if k not in self.pinned), key=lambda k: (-self.score(k), k))
        for key in pinned + rest[: max(self.max_named - len(pinned), 0)]:
            self._keys[key].named_since = now

    def _rename(self, now: float) -> None:
        for key, st in self._keys.items():
            if st.named_since is not None and key not in self.pinned and now - st.seen > self.keep_absent and not any(st.pending):
                st.named_since = None  # gone: its series end (after one more run when its first run is still held back)
        for key in self.pinned:
            if self._keys[key].named_since is None:
                self._keys[key].named_since = now
        named = [k for k, st in self._keys.items() if st.named_since is not None]
        challengers = sorted(
            (k for k, st in self._keys.items() if st.named_since is None and st.seen == now and self.score(k) >= MIN_SCORE),
            key=lambda k: (-self.score(k), k),
        )
        for key in challengers:
            if self._tokens < 1:
                break
            if len(named) < self.max_named:
                named.append(key)
            else:
                movable = [k for k in named if k not in self.pinned and now - self._since(k) >= DWELL]
                if not movable:
                    break
                weakest = min(movable, key=lambda k: (self.score(k), k))
                if self.score(key) <= FACTOR * self.score(weakest):
                    break  # challengers come strongest first: none further wins
                self._keys[weakest].named_since = None
                named.remove(weakest)
                named.append(key)
            self._keys[key].named_since = now
            self._tokens -= 1

    def _since(self, key: str) -> float:
        since = self._keys[key].named_since
        assert since is not None
        return since

    # -- counters -------------------------------------------------------

    def _credit(self, deltas: Mapping[str, Sequence[float]], named: set, before: set, first: bool) -> None:
        other = self._other
        for key, st in self._keys.items():
            d = deltas.get(key)
            if key in named and (key in before or first):
                # Named since the last run: its own series rises, by this
                # run's use and by the first run's, held back until now.
                for i in range(self.width):
                    st.counters[i] += st.pending[i] + (d[i] if d is not None else 0.0)
                    st.pending[i] = 0.0
            elif key in named:
                # Named this run: its series starts now, at the value it
                # stopped at if it was named before; this run's use shows at
                # the next one.
                if d is not None:
                    for i in range(self.width):
                        st.pending[i] += d[i]
            else:
                for i in range(self.width):
                    other[i] += st.pending[i] + (d[i] if d is not None else 0.0)
                    st.pending[i] = 0.0

    def _forget(self, now: float) -> None:
        """Drop unnamed keys not seen for FORGET seconds, and the stalest
        beyond ten times max_named, so the state stays bounded."""
        unnamed = [(st.seen, k) for k, st in self._keys.items() if st.named_since is None]
        limit = 10 * self.max_named
        unnamed.sort()
        excess = len(unnamed) - limit
        for i, (seen, key) in enumerate(unnamed):
            if i < excess or now - seen > FORGET:
                del self._keys[key]
