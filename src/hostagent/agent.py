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
from typing import Callable, Dict, List, Mapping, NamedTuple, Optional, Sequence, Tuple, Union

from .promclient import Metric

from .collectors.base import BaseCollector, NotAvailable, describe_error
from .wording import counted

log = logging.getLogger("hostagent.agent")

STALE_INTERVALS = 3
FAILURES_UNTIL_DOWN = 3


@dataclass(frozen=True)
class Snapshot:
    """The families of one successful run, and when that run started."""

    families: Tuple[Metric, ...]
    taken_at: float  # monotonic clock
    taken_wall: float = 0.0  # wall clock (Unix time): the time of the data served


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
    not_available: str = ""  # why, while the last run found no source on this host


class State(NamedTuple):
    """A collector's state in words, for the landing page and /-/ready."""

    kind: str  # running, starting, failing, stale, not-available, disabled
    text: str  # e.g. "not available on this host: no /proc/pressure"


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

    # -- one run ------------------------------------------------------------

    def run_once(self) -> bool:
        """Collect once, swap in the snapshot or count the failure; False
        only for a failure (a source absent from this host is not one)."""
        started = self._clock()
        started_wall = self._wall()
        self._running_since = started
        changed = True
        try:
            families = self.collector.collect()
        except NotAvailable as exc:
            changed = self._not_available(str(exc) or type(exc).__name__, self._clock() - started)
            ok = True
        except Exception as exc:  # any collector failure is counted, never raised
            self._failed(exc, self._clock() - started)
            ok = False
        else:
            self._succeeded(families, started, started_wall, self._clock() - started)
            ok = True
        finally:
            self._running_since = None
        if changed:
            self._on_change()
        return ok

    def _succeeded(self, families: Tuple[Metric, ...], started: float, started_wall: float, duration: float) -> None:
        status = self.status
        if status.consecutive_failures:
            log.info("collector %s recovered after %s", self.name, counted(status.consecutive_failures, "failed run"))
        if status.not_available:
            log.info("collector %s is available on this host now", self.name)
        self.snapshot = Snapshot(families, started, started_wall)
        if log.isEnabledFor(logging.DEBUG):
            series = sum(len(f.samples) for f in families)
            log.debug("collector %s ran in %.1f ms: %s, %d series", self.name, duration * 1000, counted(len(families), "family"), series)
        self.status = replace(
            status,
            runs_total=status.runs_total + 1,
            consecutive_failures=0,
            last_duration=duration,
            last_success_wall=self._wall(),
            last_error="",
            not_available="",
        )

    def _failed(self, exc: Exception, duration: float) -> None:
        status = self.status
        self.status = replace(
            status,
            runs_total=status.runs_total + 1,
            errors_total=status.errors_total + 1,
            consecutive_failures=status.consecutive_failures + 1,
            last_duration=duration,
            last_error=describe_error(exc),
            not_available="",
        )
        if status.consecutive_failures == 0:
            log.warning("collector %s failed: %s", self.name, self.status.last_error)
        if self.status.consecutive_failures == FAILURES_UNTIL_DOWN:
            log.error("collector %s is down after %d consecutive failures", self.name, FAILURES_UNTIL_DOWN)

    def _not_available(self, reason: str, duration: float) -> bool:
        """Record a run that found no source on this host: no snapshot, no
        error. True when that is news (the first such run in a row)."""
        status = self.status
        news = not status.not_available
        if news:
            log.info("collector %s is not available on this host: %s; checking again every %gs", self.name, reason, self.interval)
        self.snapshot = None
        self.status = replace(
            status,
            runs_total=status.runs_total + 1,
            consecutive_failures=0,
            last_duration=duration,
            last_error="",
            not_available=reason,
        )
        # A repeat changes nothing served but the run count and duration,
        # which the next refresh picks up: no render of its own for it.
        return news

    # -- schedule -----------------------------------------------------------

    def _loop(self, anchor: Optional[float]) -> None:
        next_run = self._clock() if anchor is None else anchor
        while not self._stop.is_set():
            self.run_once()
            next_run += self.interval
            now = self._clock()
            if now >= next_run:
                # Overran: skip the ticks that passed rather than catching up.
                missed = math.floor((now - next_run) / self.interval) + 1
                next_run += missed * self.interval
                self.status = replace(self.status, skipped_total=self.status.skipped_total + missed)
            next_run = self._wait_until(next_run)

    def _wait_until(self, next_run: float) -> float:
        """Sleep until the clock reaches ``next_run`` (or stop); return the
        tick to run at. The clock is read again after every wait of at most
        one interval, so a clock that steps back is noticed within one
        interval and the schedule starts again from its new reading, instead
        of sleeping for the size of the step."""
        while not self._stop.is_set():
            now = self._clock()
            if now >= next_run:
                return next_run
            if next_run - now > self.interval:
                log.warning("collector %s: the monotonic clock stepped back %.3gs; running now and rescheduling from there", self.name, next_run - now - self.interval)
                return now
            self._stop.wait(next_run - now)
        return next_run

    def start(self, anchor: Optional[float] = None) -> None:
        """Run on this thread's schedule: at ``anchor`` (default: now) and
        every interval after it."""
        self._thread = threading.Thread(target=self._loop, args=(anchor,), name=f"collector-{self.name}", daemon=True)
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
        """The snapshot if it is younger than STALE_INTERVALS intervals.

        A snapshot taken "after" ``now`` comes from before the clock stepped
        back: its age is unknown, so it is not served (missing beats frozen)
        until the run that follows the step replaces it."""
        snap = self.snapshot
        if snap is None or not 0.0 <= now - snap.taken_at <= STALE_INTERVALS * self.interval:
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
        snap = self.snapshot
        if snap is not None and now < snap.taken_at:
            reason = "the monotonic clock stepped back since it was taken"
        elif busy:
            reason = f"a run has been going for {busy:.1f}s"
        elif status.consecutive_failures:
            runs = "run" if status.consecutive_failures == 1 else f"{status.consecutive_failures} runs"
            reason = f"the last {runs} failed ({status.last_error})"
        else:
            reason = "no successful run lately"
        if status.last_duration > self.interval:
            reason += f"; the last run took {status.last_duration:.2f}s, longer than the {self.interval:g}s interval"
        return reason

    def state(self, now: float) -> State:
        """The collector's state in words; the same reading as
        ``hostagent_collector_up``: "running" exactly when up is 1."""
        status = self.status
        if not status.enabled:
            return State("disabled", "disabled by self-monitoring")
        if status.not_available:
            return State("not-available", f"not available on this host: {status.not_available}")
        if self.is_up(now):
            return State("running", "running")
        if self.snapshot is None:
            if status.last_error:
                return State("failing", f"failing: {status.last_error}")
            return State("starting", "waiting for its first run")
        if status.consecutive_failures >= FAILURES_UNTIL_DOWN:
            return State("failing", f"failing: {status.last_error}")
        return State("stale", f"stale: {self.stale_reason(now)}")

    def cost(self) -> float:
        """Share of one core this collector uses: last duration per interval."""
        return self.status.last_duration / self.interval


class Agent:
    """All runners, their change counter, and health bookkeeping."""

    def __init__(self, runners: Sequence[Runner], clock: Callable[[], float] = time.monotonic, disabled: Union[Sequence[str], Mapping[str, str]] = ()):
        self.runners: List[Runner] = list(runners)
        self.clock = clock
        # Collectors the configuration leaves off, each with how the landing page shows it.
        self.disabled: Dict[str, str] = dict(disabled) if isinstance(disabled, Mapping) else dict.fromkeys(disabled, "disabled by config")
        self.version = 0
        self.listeners: List[Callable[[], None]] = []  # told after every change
        self._lock = threading.Lock()
        for runner in self.runners:
            runner._on_change = self._changed
        self._health_logged: dict = {}

    def _changed(self) -> None:
        with self._lock:
            self.version += 1
        for listener in self.listeners:
            listener()

    def start(self) -> None:
        # One anchor for all: collectors whose intervals divide one another
        # run at the same moments, so one render serves all of that tick.
        anchor = self.clock()
        for runner in self.runners:
            runner.start(anchor)
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

    def not_ready_reason(self) -> str:
        """Which collectors hold readiness back, empty when ready: every
        enabled collector whose ``hostagent_collector_up`` would read 0, i.e.
        those failing (with the last error), stale (with why) and still on
        their first run. A collector not available on this host holds
        nothing back. One reading, so the answer cannot contradict itself."""
        now = self.clock()
        failing, stale, waiting = [], [], []
        for runner in self.active():
            kind = runner.state(now).kind
            if kind == "failing":
                failing.append(f"{runner.name} ({runner.status.last_error})")
            elif kind == "stale":
                stale.append(f"{runner.name} ({runner.stale_reason(now)})")
            elif kind == "starting":
                waiting.append(runner.name)
        parts = []
        if failing:
            parts.append("failing: " + "; ".join(failing))
        if stale:
            parts.append("stale: " + "; ".join(stale))
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
