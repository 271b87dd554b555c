"""Tests of the hang-safe pool: deadlines, hung calls not resubmitted,
hand-off to fresh workers, and the bound on threads however many calls hang."""

from __future__ import annotations

import threading
import time
from collections import Counter

import pytest
from support import wait_until

from hostagent.hangsafe import HangSafePool


class Hanging:
    """A call that blocks for the arguments in ``hang`` until ``release`` is set."""

    def __init__(self, *hang: str):
        self.hang = set(hang)
        self.release = threading.Event()
        self.calls: Counter = Counter()
        self.lock = threading.Lock()

    def __call__(self, arg: str) -> str:
        with self.lock:
            self.calls[arg] += 1
        if arg in self.hang:
            self.release.wait(60)  # bounded so a failing test cannot hang the suite
        if arg.startswith("bad"):
            raise ValueError(f"no such thing: {arg}")
        return arg.upper()


def values(outcomes):
    return {arg: o.value for arg, o in outcomes.items() if not o.error}


def test_close_stops_idle_workers():
    pool = HangSafePool(lambda p: p.upper(), workers=3)
    assert pool.run(["a", "b", "c"], timeout=2) == {"a": ("A", ""), "b": ("B", ""), "c": ("C", "")}
    workers = [t for t in threading.enumerate() if t.name.startswith("hostagent-pool")]
    assert workers and all(t.daemon for t in workers)
    pool.close()
    for thread in workers:
        thread.join(2)
        assert not thread.is_alive()
    with pytest.raises(RuntimeError, match="closed"):
        pool.run(["a"], timeout=1)


def test_a_failing_call_is_that_arguments_error():
    pool = HangSafePool(Hanging(), workers=2)
    try:
        out = pool.run(["a", "bad1"], timeout=5)
    finally:
        pool.close()
    assert out["a"] == ("A", "")
    assert out["bad1"].error == "ValueError: no such thing: bad1"


def test_a_hung_call_is_not_made_again_until_it_returns():
    func = Hanging("dead")
    pool = HangSafePool(func, workers=1, hung_max=4)
    try:
        first = pool.run(["dead", "a"], timeout=1)
        assert first["dead"].error == "no answer within 1s" and values(first) == {"a": "A"}
        assert set(pool.stuck()) == {"dead"}
        second = pool.run(["dead", "a"], timeout=1)
        assert "has not returned" in second["dead"].error and values(second) == {"a": "A"}
        assert func.calls == {"dead": 1, "a": 2}

        func.release.set()
        wait_until(lambda: pool.pending == 0, 30, "the hung call to return")
        assert pool.stuck() == {}
        assert values(pool.run(["dead", "a"], timeout=5)) == {"dead": "DEAD", "a": "A"}
        assert func.calls["dead"] == 2
    finally:
        func.release.set()
        pool.close()


def test_calls_queued_behind_hanging_ones_get_a_fresh_worker():
    # One worker, three calls that hang taken first: each hands its place on,
    # and the two healthy calls behind them answer in the same run.
    func = Hanging("h1", "h2", "h3")
    pool = HangSafePool(func, workers=1, hung_max=8, handoff=0.05)
    try:
        out = pool.run(["h1", "h2", "h3", "a", "b"], timeout=2)
        assert values(out) == {"a": "A", "b": "B"}
        assert pool.threads <= 1 + 3
    finally:
        func.release.set()
        pool.close()


def test_trusted_calls_are_queued_first():
    # No hand-off within the run: only the order lets the trusted call answer.
    func = Hanging("remote")
    pool = HangSafePool(func, workers=1, hung_max=4, handoff=60)
    try:
        out = pool.run(["remote", "local"], timeout=1, trusted={"local"})
        assert values(out) == {"local": "LOCAL"}
        assert out["remote"].error == "no answer within 1s"
    finally:
        func.release.set()
        pool.close()


def test_threads_stay_bounded_however_many_calls_hang():
    hung = [f"remote{i}" for i in range(50)]
    func = Hanging(*hung)
    pool = HangSafePool(func, workers=2, hung_max=3, handoff=0.05)
    try:
        first = pool.run(hung + ["local1", "local2"], timeout=2, trusted={"local1", "local2"})
        assert values(first) == {"local1": "LOCAL1", "local2": "LOCAL2"}
        assert pool.threads <= 2 + 3
        for _ in range(3):
            start = time.monotonic()
            out = pool.run(hung + ["local1", "local2"], timeout=30, trusted={"local1", "local2"})
            assert time.monotonic() - start < 30  # the budget is spent: nothing to wait for
            assert values(out) == {"local1": "LOCAL1", "local2": "LOCAL2"}
            assert pool.threads <= 2 + 3
        assert sum(func.calls[r] for r in hung) == 3  # only the budget's worth was ever asked
        assert len(pool.stuck()) == 3 and pool.budget_spent
        assert sum(out[r].error.startswith("not asked") for r in hung) == 47

        # They answer: the threads beyond the workers leave, and every call is made again.
        func.release.set()
        wait_until(lambda: pool.pending == 0 and pool.threads <= 2, 30, "surplus threads to exit")
        assert not pool.budget_spent
        assert len(values(pool.run(hung + ["local1"], timeout=30, trusted={"local1"}))) == 51
        assert pool.threads <= 2
    finally:
        func.release.set()
        pool.close()


def test_bad_bounds_are_refused():
    with pytest.raises(ValueError, match="at least 1"):
        HangSafePool(str, workers=0)
