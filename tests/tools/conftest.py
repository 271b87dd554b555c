"""Fixtures for the operator tools: a Prometheus holding thirty days of
made-up history (backfilled with promtool), shared by the report and export
tests."""

from __future__ import annotations

import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import pytest

# The helpers beside this file (history, tools_support), for the test modules here.
sys.path.insert(0, str(Path(__file__).resolve().parent))

from history import History, YoungHistory  # noqa: E402
from support import free_port, prometheus_server, require_tool  # noqa: E402


@dataclass
class Backfilled:
    url: str
    history: Any  # History or YoungHistory


@pytest.fixture(scope="session")
def backfilled(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Backfilled]:
    promtool = require_tool("promtool")
    tmp = tmp_path_factory.mktemp("backfill")
    # Whole hours, so the made-up daily cycle falls on UTC hours.
    end = (int(time.time()) // 3600) * 3600 - 3600
    history = History(end)
    port = free_port()
    data = tmp / f"prom-data-{port}"  # where prometheus_server keeps its data

    def backfill(day: int, lo: float, hi: float) -> str:
        source = tmp / f"day-{day}.om"
        with open(source, "w") as fh:
            for line in history.openmetrics(lo, hi):
                fh.write(line + "\n")
        done = subprocess.run([promtool, "tsdb", "create-blocks-from", "openmetrics", "--quiet", str(source), str(data)], capture_output=True, text=True, timeout=120)
        source.unlink()
        return done.stderr if done.returncode else ""

    with ThreadPoolExecutor(max_workers=2) as pool:
        errors = [e for e in pool.map(lambda args: backfill(*args), [(k, lo, hi) for k, (lo, hi) in enumerate(history.days())]) if e]
    assert not errors, errors[0]
    server = prometheus_server(tmp, "global: {}\n", port=port, extra_args=["--storage.tsdb.retention.time=3650d"])
    with server.start(timeout=120):
        yield Backfilled(server.base_url, history)


@pytest.fixture(scope="module")
def young(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Backfilled]:
    """A Prometheus holding one host's last hour, ending a minute ago."""
    tmp_path = tmp_path_factory.mktemp("young")
    promtool = require_tool("promtool")
    history = YoungHistory((int(time.time()) // 60) * 60 - 60)
    port = free_port()
    source = tmp_path / "young.om"
    source.write_text("\n".join(history.openmetrics()) + "\n")
    done = subprocess.run([promtool, "tsdb", "create-blocks-from", "openmetrics", "--quiet", str(source), str(tmp_path / f"prom-data-{port}")], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    server = prometheus_server(tmp_path, "global: {}\n", port=port, extra_args=["--storage.tsdb.retention.time=3650d"])
    with server.start(timeout=120):
        yield Backfilled(server.base_url, history)
