"""Tests of the hang-safe pool."""

from __future__ import annotations

import threading

import pytest

from hostagent.hangsafe import HangSafePool


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
