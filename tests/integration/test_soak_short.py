"""A shortened soak: the real agent, 1 s collector intervals, scraped 5 times a
second for ~25 s; RSS, threads and open fds must not grow beyond small bounds.

The full run is ``bench/soak --duration 30m``; this one catches leaks large
enough to show in seconds (a thread or a socket per scrape, megabytes a minute).
"""

from __future__ import annotations

import importlib.util
import sys
from importlib.machinery import SourceFileLoader
from pathlib import Path
from types import ModuleType

import pytest

from hostagent.collectors import load_all
from support import REPO, agent_server

DURATION = 24.0
RATE = 5.0
EVERY = 1.0


def load_soak() -> ModuleType:
    """bench/soak as a module (it is a script without a .py suffix)."""
    path = REPO / "bench" / "soak"
    loader = SourceFileLoader("bench_soak", str(path))
    spec = importlib.util.spec_from_loader("bench_soak", loader)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up here
    loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def soak() -> ModuleType:
    return load_soak()


def fast_config() -> str:
    """Every collector at its defaults but running every second: more churn per minute."""
    lines = ["web:", "  access_log: false", "collectors:"]
    for name in load_all():
        lines += [f"  {name}:", "    interval: 1"]
    return "\n".join(lines) + "\n"


def test_growth_flags_a_leak_and_passes_a_flat_run(soak: ModuleType) -> None:
    """The verdict compares quarters: flat passes, steady growth fails."""
    mib = soak.MiB
    flat = [soak.Sample(float(i), 30 * mib, 12, 9, i * 0.01, i, 0) for i in range(20)]
    assert all(c.ok for c in soak.growth(flat))
    leaking = [soak.Sample(float(i), 30 * mib + i * mib, 12 + i, 9 + i, 0.0, i, 0) for i in range(20)]
    checks = {c.measure: c for c in soak.growth(leaking)}
    assert not checks["rss"].ok and checks["rss"].growth == 15 * mib
    assert not checks["threads"].ok and not checks["fds"].ok
    with pytest.raises(ValueError, match="at least 4 samples"):
        soak.growth(flat[:3])


def test_short_soak_shows_no_growth(soak: ModuleType, tmp_path: Path) -> None:
    with agent_server(tmp_path, fast_config()).start() as server:
        assert server.proc is not None
        port = int(server.base_url.rsplit(":", 1)[1])
        result = soak.observe(server.proc.pid, port, DURATION, RATE, EVERY)
        log = server.log()
    table = "\n".join(soak.sample_row(None, s) for s in result.samples)
    assert not result.agent_died, f"the agent exited during the soak:\n{log}"
    assert len(result.samples) >= DURATION / EVERY - 2, table
    # Nearly every scheduled scrape happened and every one succeeded.
    assert result.scrape_errors == 0, f"{result.scrape_errors} scrapes failed, last: {result.last_error}"
    assert result.scrapes_ok >= 0.8 * DURATION * RATE, table
    # Generous bounds for a shared, noisy machine; a per-scrape leak of one
    # thread or socket would add over a hundred here.
    checks = soak.growth(result.samples, soak.Bounds(rss=3 * soak.MiB, threads=1, fds=2))
    failed = [c for c in checks if not c.ok]
    assert not failed, f"growth beyond bounds: {failed}\n{table}"
    # Every collector ran about once a second without piling up threads.
    assert max(s.threads for s in result.samples) <= min(s.threads for s in result.samples) + 3, table


def test_heapwatch_reports_rss_beside_traced_memory() -> None:
    """bench/heapwatch end to end, shortened: the agent in-process under tracemalloc."""
    import subprocess

    out = subprocess.run(
        [sys.executable, str(REPO / "bench" / "heapwatch"), "--duration", "6s", "--every", "2s", "--warmup", "2s", "--interval", "0.5", "--top", "3"],
        capture_output=True, text=True, timeout=60,
    )
    assert out.returncode == 0, out.stderr
    rows = [line.split("|") for line in out.stdout.splitlines() if line.startswith("|") and line[2:3] != "-" and "elapsed" not in line]
    assert len(rows) >= 3, out.stdout
    rss, traced, ok, failed = (float(rows[-1][i]) for i in (2, 3, 4, 5))
    assert rss > traced > 0 and ok > 0 and failed == 0, out.stdout
    assert "top growth of traced memory" in out.stdout
    assert "Traceback" not in out.stderr
