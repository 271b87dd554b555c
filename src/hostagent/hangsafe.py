"""A bounded pool of daemon threads for calls that may block for ever
(statvfs on a dead mount), each run with a deadline."""

from __future__ import annotations

import queue
import threading
import time
from typing import Any, Callable, Dict, List, NamedTuple, Optional, Sequence


class Outcome(NamedTuple):
    """Result of one call: its value, or an error message."""

    value: Any = None
    error: str = ""


class _Call:
    """One submitted call and its result; guarded by the pool's lock."""

    __slots__ = ("arg", "done", "started", "cancelled", "outcome")

    def __init__(self, arg: str):
        self.arg = arg
        self.done = threading.Event()
        self.started = False
        self.cancelled = False
        self.outcome = Outcome(error="no result")


class HangSafePool:
    """Runs ``func(arg)`` on at most ``workers`` daemon threads with a deadline.

    A call that overruns keeps its thread until it returns; while it does, the
    same argument is not submitted again, so a hung mount holds one thread at
    most. Threads are daemons so a hung call never blocks interpreter exit
    (concurrent.futures joins its workers at exit)."""

    def __init__(self, func: Callable[[str], Any], workers: int, name: str = "hostagent-pool"):
        self._func = func
        self._workers = workers
        self._name = name
        self._queue: "queue.SimpleQueue[Optional[_Call]]" = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._threads: List[threading.Thread] = []
        self._pending: Dict[str, _Call] = {}  # arg -> call queued or running
        self._running = 0
        self._closed = False

    @property
    def threads(self) -> int:
        """Worker threads started so far (for tests and self-checks)."""
        return len(self._threads)

    @property
    def pending(self) -> int:
        """Calls submitted that have not returned (or been dropped) yet."""
        with self._lock:
            return len(self._pending)

    def run(self, args: Sequence[str], timeout: float) -> Dict[str, Outcome]:
        """Call func on every arg; whatever has not answered by the deadline
        is an error outcome. Never waits longer than ``timeout``."""
        deadline = time.monotonic() + timeout
        out: Dict[str, Outcome] = {}
        calls: List[_Call] = []
        with self._lock:
            if self._closed:
                raise RuntimeError("pool is closed")
            all_stuck = self._running >= self._workers
            for arg in args:
                if arg in self._pending:
                    out[arg] = Outcome(error="previous call has not returned yet")
                elif all_stuck:
                    out[arg] = Outcome(error="every worker is busy with a call that has not returned")
                else:
                    call = _Call(arg)
                    self._pending[arg] = call
                    calls.append(call)
                    self._queue.put(call)
            self._grow(len(calls))
        for call in calls:
            if call.done.wait(max(deadline - time.monotonic(), 0.0)):
                out[call.arg] = call.outcome
                continue
            with self._lock:
                if not call.started:
                    # Never started: drop it so the next run submits it afresh.
                    call.cancelled = True
                    del self._pending[call.arg]
            out[call.arg] = Outcome(error=f"no answer within {timeout:g}s")
        return out

    def close(self) -> None:
        """Stop the workers: idle ones exit now, busy ones when their call returns."""
        with self._lock:
            self._closed = True
            for _ in self._threads:
                self._queue.put(None)

    def _grow(self, wanted: int) -> None:
        # Start threads as needed, up to the bound; called with the lock held.
        idle = len(self._threads) - self._running
        while idle < wanted and len(self._threads) < self._workers:
            thread = threading.Thread(target=self._work, name=f"{self._name}-{len(self._threads)}", daemon=True)
            thread.start()
            self._threads.append(thread)
            idle += 1

    def _work(self) -> None:
        while True:
            call = self._queue.get()
            if call is None:
                return
            with self._lock:
                if call.cancelled:
                    continue
                call.started = True
                self._running += 1
            try:
                call.outcome = Outcome(value=self._func(call.arg))
            except Exception as exc:  # one mount's failure is that mount's error
                call.outcome = Outcome(error=f"{type(exc).__name__}: {exc}")
            finally:
                with self._lock:
                    self._running -= 1
                    if self._pending.get(call.arg) is call:
                        del self._pending[call.arg]
                call.done.set()
