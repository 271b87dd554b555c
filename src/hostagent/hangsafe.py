"""A bounded pool of daemon threads for calls that may block for ever.

statvfs on a dead NFS server or a FUSE mount whose daemon stopped answering
blocks in the kernel, and no thread can be taken back from such a call. The
pool makes that cost bounded and keeps it from spreading:

- A call that has not answered by its run's deadline is reported as an error
  and keeps its thread until it returns; while it has not, its argument is
  not submitted again (each run reports it at once), so one hung mount holds
  one thread, never one per run.
- A call blocked longer than ``handoff`` seconds hands its worker's place to
  a new thread, so arguments queued behind calls that are hanging for the
  first time still get a worker in the same run.
- Calls other than ``trusted`` ones may occupy at most ``hung_max`` threads
  at once; when that many have not returned, only trusted arguments (those
  the caller expects to answer promptly, like local disks) are asked until
  one does. Trusted arguments are also queued first.

So the pool never holds more than ``workers + hung_max`` threads. Threads are
daemons, so a hung call never blocks interpreter exit (concurrent.futures
joins its workers at exit); surplus threads exit when their call returns.
"""

from __future__ import annotations

import threading
import time
from typing import Any, Callable, Collection, Dict, List, NamedTuple, Optional, Sequence, Set

# A call blocked this long no longer counts as a worker: a fresh thread takes
# the queue. Short on purpose: a healthy statvfs answers in microseconds, and a
# false alarm costs one thread start, which exits again when it is surplus.
HANDOFF = 0.1


class Outcome(NamedTuple):
    """Result of one call: its value, or an error message."""

    value: Any = None
    error: str = ""


class _Call:
    """One submitted call and its result; guarded by the pool's lock."""

    __slots__ = ("arg", "trusted", "batch", "started", "overdue", "outcome")

    def __init__(self, arg: str, trusted: bool, batch: "_Batch"):
        self.arg = arg
        self.trusted = trusted
        self.batch = batch
        self.started: Optional[float] = None  # monotonic time a worker took it
        self.overdue = False  # its run's deadline passed before it returned
        self.outcome: Optional[Outcome] = None


class _Batch:
    """The calls of one ``run``; ``left`` counts those without an outcome."""

    __slots__ = ("left",)

    def __init__(self) -> None:
        self.left = 0


class HangSafePool:
    """Runs ``func(arg)`` on at most ``workers + hung_max`` daemon threads,
    each run with a deadline (see the module docstring)."""

    def __init__(
        self,
        func: Callable[[str], Any],
        workers: int,
        hung_max: int = 16,
        name: str = "hostagent-pool",
        handoff: float = HANDOFF,
    ):
        if workers < 1 or hung_max < 1:
            raise ValueError("workers and hung_max must be at least 1")
        self._func = func
        self._workers = workers
        self._hung_max = hung_max
        self._name = name
        self._handoff = handoff
        self._clock = time.monotonic
        self._cond = threading.Condition(threading.Lock())
        self._queue: List[_Call] = []  # trusted calls first, then the others
        self._pending: Dict[str, _Call] = {}  # arg -> call queued or running
        self._running: Set[_Call] = set()
        self._untrusted_running = 0
        self._threads: Set[threading.Thread] = set()
        self._idle = 0  # threads waiting for work, or started and not yet waiting
        self._serial = 0
        self._closed = False

    # -- what tests and callers may look at ---------------------------------

    @property
    def threads(self) -> int:
        """Live worker threads, hung ones included."""
        with self._cond:
            return len(self._threads)

    @property
    def pending(self) -> int:
        """Calls submitted that have not returned (or been dropped) yet."""
        with self._cond:
            return len(self._pending)

    def stuck(self) -> Dict[str, float]:
        """Arguments whose call overran its deadline and has not returned,
        with the seconds since it started."""
        now = self._clock()
        with self._cond:
            return {c.arg: now - c.started for c in self._running if c.overdue and c.started is not None}

    @property
    def budget_spent(self) -> bool:
        """Whether ``hung_max`` untrusted calls have overrun and not returned,
        so that only trusted arguments are asked."""
        with self._cond:
            return self._hung_untrusted() >= self._hung_max

    # -- running calls -------------------------------------------------------

    def run(self, args: Sequence[str], timeout: float, trusted: Collection[str] = ()) -> Dict[str, Outcome]:
        """Call func on every arg; whatever has not answered by the deadline
        is an error outcome. Never waits longer than ``timeout``."""
        deadline = self._clock() + timeout
        out: Dict[str, Outcome] = {}
        batch = _Batch()
        calls: List[_Call] = []
        with self._cond:
            if self._closed:
                raise RuntimeError("pool is closed")
            hung = self._hung_untrusted()
            for arg in sorted(args, key=lambda a: a not in trusted):  # stable: trusted first
                previous = self._pending.get(arg)
                if previous is not None:
                    out[arg] = Outcome(error=self._busy_reason(previous))
                elif arg not in trusted and hung >= self._hung_max:
                    out[arg] = Outcome(error=self._budget_reason())
                else:
                    call = _Call(arg, arg in trusted, batch)
                    self._pending[arg] = call
                    self._queue.append(call)
                    calls.append(call)
            self._queue.sort(key=lambda c: not c.trusted)
            batch.left = len(calls)
            while batch.left:
                self._dispatch()
                now = self._clock()
                if now >= deadline:
                    break
                self._cond.wait(min(deadline, self._next_handoff(now)) - now)
            for call in calls:
                out[call.arg] = self._settle(call, timeout)
        return out

    def close(self) -> None:
        """Stop the workers: idle ones exit now, busy ones when their call returns."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    # -- internals (the lock is held) -------------------------------------------

    def _hung_untrusted(self) -> int:
        return sum(1 for c in self._running if c.overdue and not c.trusted)

    def _busy_reason(self, call: _Call) -> str:
        if call.overdue and call.started is not None:
            return f"the call made {self._clock() - call.started:.0f}s ago has not returned; not asked again until it does"
        return "a call for it is already in flight"

    def _budget_reason(self) -> str:
        return f"not asked: {self._hung_max} calls that may hang are already in flight, the most allowed"

    def _settle(self, call: _Call, timeout: float) -> Outcome:
        if call.outcome is not None:
            return call.outcome
        if call.started is None:  # never taken: dropped, so the next run submits it afresh
            self._queue.remove(call)
            del self._pending[call.arg]
            if not call.trusted and self._untrusted_running >= self._hung_max:
                return Outcome(error=self._budget_reason())
            return Outcome(error=f"not asked within {timeout:g}s: every worker was busy")
        call.overdue = True
        return Outcome(error=f"no answer within {timeout:g}s")

    def _startable(self, call: _Call) -> bool:
        return call.trusted or self._untrusted_running < self._hung_max

    def _blocked(self, now: float) -> int:
        return sum(1 for c in self._running if c.started is not None and now - c.started >= self._handoff)

    def _dispatch(self) -> None:
        """Wake idle workers for queued calls, and start threads while fewer
        than ``workers`` are free of blocked calls, up to the cap."""
        waiting = sum(1 for c in self._queue if self._startable(c))
        if not waiting:
            return
        self._cond.notify_all()
        need = waiting - self._idle
        active = len(self._threads) - self._blocked(self._clock())
        while need > 0 and active < self._workers and len(self._threads) < self._workers + self._hung_max:
            self._serial += 1
            thread = threading.Thread(target=self._work, name=f"{self._name}-{self._serial}", daemon=True)
            self._threads.add(thread)
            self._idle += 1
            try:
                thread.start()
            except RuntimeError:  # the system refused a thread: make do with those running
                self._threads.discard(thread)
                self._idle -= 1
                return
            need -= 1
            active += 1

    def _next_handoff(self, now: float) -> float:
        """When the next running call will count as blocked, if a queued call waits for a worker."""
        if not any(self._startable(c) for c in self._queue):
            return float("inf")
        times = [c.started + self._handoff for c in self._running if c.started is not None and c.started + self._handoff > now]
        return min(times, default=float("inf"))

    def _take(self) -> Optional[_Call]:
        for i, call in enumerate(self._queue):
            if self._startable(call):
                del self._queue[i]
                return call
        return None

    def _surplus(self) -> bool:
        """Whether an idle thread is one more than the workers wanted."""
        return len(self._threads) - self._blocked(self._clock()) > self._workers

    def _work(self) -> None:
        with self._cond:
            try:
                self._serve()
            finally:
                self._threads.discard(threading.current_thread())

    def _serve(self) -> None:
        while True:
            call = self._take()
            if call is None:
                if self._closed or self._surplus():
                    self._idle -= 1
                    return
                self._cond.wait()
                continue
            self._idle -= 1
            call.started = self._clock()
            self._running.add(call)
            if not call.trusted:
                self._untrusted_running += 1
            if self._queue:  # a run waiting for a worker times its hand-off from now
                self._cond.notify_all()
            self._cond.release()
            outcome = Outcome(error="worker stopped")
            try:
                outcome = Outcome(value=self._func(call.arg))
            except Exception as exc:  # one argument's failure is that argument's error
                outcome = Outcome(error=f"{type(exc).__name__}: {exc}")
            finally:
                self._cond.acquire()
                self._finish(call, outcome)
            self._idle += 1

    def _finish(self, call: _Call, outcome: Outcome) -> None:
        self._running.discard(call)
        if not call.trusted:
            self._untrusted_running -= 1
        if self._pending.get(call.arg) is call:
            del self._pending[call.arg]
        if not call.overdue:
            call.outcome = outcome
            call.batch.left -= 1
        self._cond.notify_all()
