"""The threaded agent: each collector on its own thread and interval.

A run's result replaces the collector's snapshot in one assignment, so a
scrape sees either the old or the new snapshot, never a mix. A snapshot older
than ``STALE_INTERVALS`` intervals is not served: missing beats frozen.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from dataclasses import dataclass, replace
from typing import Callable, Iterable, List, Optional, Sequence, Tuple

from .promclient import Metric

from .collectors.base import BaseCollector

log = logging.getLogger("hostagent.agent")

STALE_INTERVALS = 3
FAILURES_UNTIL_DOWN = 3


@dataclass(frozen=True)
class Snapshot:
    """The families of one successful run, and when it started."""

    families: Tuple[Metric, ...]
    taken_at: float  # monotonic clock


@dataclass(frozen=True)
class Status:
    """A collector's bookkeeping, replaced whole after every run."""

    runs_total: int = 0
    errors_total: int = 0
    consecutive_failures: int = 0
    skipped_total: int = 0
    last_duration: float = 0.0
    last_success_wall: float = 0.0  # 0 until the first success
    last_error: str = ""
    enabled: bool = True


class Runner:
    """Runs one collector on a monotonic schedule on its own thread."""

    def __init__(
        self,
        name: str,
        collector: BaseCollector,
        interval: float,
        on_change: Callable[[], None] = lambda: None,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ):
        self.name = name
        self.collector = collector
        self.interval = float(interval)
        self.snapshot: Optional[Snapshot] = None
        self.status = Status()
        self._on_change = on_change
        self._clock = clock
        self._wall = wall
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self._running_since: Optional[float] = None
        self._reported_down = False

    # -- one run ------------------------------------------------------------

    def run_once(self) -> bool:
        """Collect once, swap in the snapshot or count the failure."""
        started = self._clock()
        self._running_since = started
        try:
            families = self.collector.collect()
        except Exception as exc:  # any collector failure is counted, never raised
            duration = self._clock() - started
            status = self.status
            self.status = replace(
                status,
                runs_total=status.runs_total + 1,
                errors_total=status.errors_total + 1,
                consecutive_failures=status.consecutive_failures + 1,
                last_duration=duration,
                last_error=f"{type(exc).__name__}: {exc}",
            )
            if status.consecutive_failures == 0:
                log.warning("collector %s failed: %s: %s", self.name, type(exc).__name__, exc)
            if self.status.consecutive_failures == FAILURES_UNTIL_DOWN:
                log.error("collector %s is down after %d consecutive failures", self.name, FAILURES_UNTIL_DOWN)
            ok = False
        else:
            duration = self._clock() - started
            if self.status.consecutive_failures:
                log.info("collector %s recovered after %d failed runs", self.name, self.status.consecutive_failures)
            self.snapshot = Snapshot(families, started)
            self.status = replace(
                self.status,
                runs_total=self.status.runs_total + 1,
                consecutive_failures=0,
                last_duration=duration,
                last_success_wall=self._wall(),
                last_error="",
            )
            ok = True
        finally:
            self._running_since = None
        self._on_change()
        return ok

    # -- schedule -----------------------------------------------------------

    def _loop(self) -> None:
        next_run = self._clock()
        while not self._stop.is_set():
            self.run_once()
            next_run += self.interval
            now = self._clock()
            if now >= next_run:
                # Overran: skip the ticks that passed rather than catching up.
                missed = math.floor((now - next_run) / self.interval) + 1
                next_run += missed * self.interval
                self.status = replace(self.status, skipped_total=self.status.skipped_total + missed)
            self._stop.wait(max(0.0, next_run - now))

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name=f"collector-{self.name}", daemon=True)
        self._thread.start()

    def request_stop(self) -> None:
        self._stop.set()

    def join(self, timeout: float) -> bool:
        """Wait for the thread; False if it is still stuck in a run."""
        if self._thread is None:
            return True
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def disable(self) -> None:
        """Stop scheduling this collector and drop its snapshot."""
        self.request_stop()
        self.status = replace(self.status, enabled=False)
        self.snapshot = None
        self._on_change()

    # -- views --------------------------------------------------------------

    def fresh_snapshot(self, now: float) -> Optional[Snapshot]:
        """The snapshot if it is younger than STALE_INTERVALS intervals."""
        snap = self.snapshot
        if snap is None or now - snap.taken_at > STALE_INTERVALS * self.interval:
            return None
        return snap

    def is_up(self, now: float) -> bool:
        return self.status.consecutive_failures < FAILURES_UNTIL_DOWN and self.fresh_snapshot(now) is not None

    def stale_deadline(self) -> float:
        """Monotonic time after which the current snapshot stops being served."""
        snap = self.snapshot
        return math.inf if snap is None else snap.taken_at + STALE_INTERVALS * self.interval

    def running_for(self, now: float) -> float:
        since = self._running_since
        return 0.0 if since is None else now - since

    def stale_reason(self, now: float) -> str:
        """Why the snapshot went stale, in words for the log."""
        status = self.status
        busy = self.running_for(now)
        if busy:
            reason = f"a run has been going for {busy:.1f}s"
        elif status.consecutive_failures:
            reason = f"the last {status.consecutive_failures} runs failed ({status.last_error})"
        else:
            reason = "no successful run lately"
        if status.last_duration > self.interval:
            reason += f"; the last run took {status.last_duration:.2f}s, longer than the {self.interval:g}s interval"
        return reason

    def cost(self) -> float:
        """Share of one core this collector uses: last duration per interval."""
        return self.status.last_duration / self.interval


class Agent:
    """All runners, their change counter, and health bookkeeping."""

    def __init__(self, runners: Sequence[Runner], clock: Callable[[], float] = time.monotonic):
        self.runners: List[Runner] = list(runners)
        self.clock = clock
        self.version = 0
        self.listeners: List[Callable[[], None]] = []  # told after every change
        self._lock = threading.Lock()
        for runner in self.runners:
            runner._on_change = self._changed
        self._health_logged: dict = {}

    @classmethod
    def from_collectors(cls, items: Iterable[Tuple[str, BaseCollector, float]], clock: Callable[[], float] = time.monotonic) -> "Agent":
        return cls([Runner(name, col, interval, clock=clock) for name, col, interval in items], clock=clock)

    def _changed(self) -> None:
        with self._lock:
            self.version += 1
        for listener in self.listeners:
            listener()

    def start(self) -> None:
        for runner in self.runners:
            runner.start()
        log.info("started collectors: %s", ", ".join(f"{r.name} (every {r.interval:g}s)" for r in self.runners) or "none")

    def run_once(self) -> List[str]:
        """Run every collector once in this thread; names of those that failed."""
        return [r.name for r in self.runners if not r.run_once()]

    def stop(self, timeout: float = 5.0) -> List[str]:
        """Stop scheduling and join threads within ``timeout``; names still stuck."""
        for runner in self.runners:
            runner.request_stop()
        deadline = self.clock() + timeout
        stuck = []
        for runner in self.runners:
            if not runner.join(max(0.0, deadline - self.clock())):
                stuck.append(runner.name)
        for runner in self.runners:
            if runner.name not in stuck:
                try:
                    runner.collector.close()
                except Exception as exc:  # closing must not stop the shutdown
                    log.warning("collector %s did not close cleanly: %s", runner.name, exc)
        if stuck:
            log.warning("collectors still inside a run at exit, left behind: %s", ", ".join(stuck))
        return stuck

    def ready(self) -> bool:
        """True once every enabled collector has produced a snapshot."""
        return not self.not_ready_reason()

    def not_ready_reason(self) -> str:
        """Which collectors hold readiness back: those whose runs failed so
        far (with the last error), and those still on their first run; empty
        when ready (one reading, so the answer cannot contradict itself)."""
        failing = [f"{r.name} ({r.status.last_error})" for r in self.active() if r.snapshot is None and r.status.errors_total]
        waiting = [r.name for r in self.active() if r.snapshot is None and not r.status.errors_total]
        parts = []
        if failing:
            parts.append("failing: " + "; ".join(failing))
        if waiting:
            parts.append("waiting for first run of " + ", ".join(waiting))
        return "; ".join(parts)

    def active(self) -> List[Runner]:
        return [r for r in self.runners if r.status.enabled]

    def disable(self, name: str) -> None:
        for runner in self.runners:
            if runner.name == name:
                runner.disable()

    def check_health(self) -> None:
        """Log, once per change, collectors whose data went stale (hung)."""
        now = self.clock()
        for runner in self.active():
            stale = runner.snapshot is not None and runner.fresh_snapshot(now) is None
            if stale != self._health_logged.get(runner.name, False):
                self._health_logged[runner.name] = stale
                if stale:
                    log.error("collector %s is stale: %s; its metrics are not served", runner.name, runner.stale_reason(now))
                else:
                    log.info("collector %s is serving fresh data again", runner.name)
