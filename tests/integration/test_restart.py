"""Kill -9 and restart: the agent serves again within a second of its start on
the same port, and readiness stays 503 until every collector has reported."""

from __future__ import annotations

import os
import time
from pathlib import Path

import requests
from faultagent import fault_server, release
from support import free_port, wait_until

# The stuck collector's first run blocks on a FIFO until the test releases it.
CONFIG = """
collectors:
  connections: {{enabled: false}}
  diskio: {{enabled: false}}
  filesystem: {{enabled: false}}
  network: {{enabled: false}}
  processes: {{enabled: false}}
  system: {{enabled: false}}
  stuck: {{enabled: true, interval: 60, fifo: '{fifo}'}}
"""

SERVING_WITHIN = 1.0
POLL = 0.1  # support.wait_http's polling step


def start_serving(tmp: Path, fifo: Path, port: int):
    """Start the agent; return it and the seconds until it answered /-/healthy."""
    tmp.mkdir(exist_ok=True)
    server = fault_server(tmp, CONFIG.format(fifo=fifo), port=port)
    server.ready_path = "/-/healthy"  # serving, not yet ready
    t0 = time.monotonic()
    server.start()
    return server, time.monotonic() - t0


def check_not_ready_until_released(base_url: str, fifo: Path) -> None:
    ready = requests.get(base_url + "/-/ready", timeout=5)
    assert ready.status_code == 503
    assert "waiting for first run of stuck" in ready.text
    metrics = requests.get(base_url + "/metrics", timeout=5)
    assert metrics.status_code == 200 and "host_cpu" in metrics.text
    assert 'hostagent_collector_up{collector="stuck"} 0.0' in metrics.text
    wait_until(lambda: release(fifo), 10, "the stuck collector to open its FIFO")
    wait_until(lambda: requests.get(base_url + "/-/ready", timeout=5).status_code == 200, 10, "ready once the last collector reported")


def test_kill_9_and_restart(tmp_path, capsys):
    fifo = tmp_path / "first-run.fifo"
    os.mkfifo(fifo)
    port = free_port()
    first, took_first = start_serving(tmp_path / "first", fifo, port)
    with first:
        check_not_ready_until_released(first.base_url, fifo)
        with requests.Session() as held:  # a keep-alive connection open at the kill
            assert held.get(first.base_url + "/metrics", timeout=5).status_code == 200
            first.proc.kill()
            first.proc.wait(5)
    assert first.proc.returncode == -9

    second, took_second = start_serving(tmp_path / "second", fifo, port)
    with second:
        check_not_ready_until_released(second.base_url, fifo)
    with capsys.disabled():
        print(f"\nrestart: serving {took_first:.2f}s after the first start, {took_second:.2f}s after the restart")
    # wait_http polls every POLL seconds, so the true figure can be POLL less.
    assert took_first < SERVING_WITHIN + POLL, f"first start served after {took_first:.2f}s"
    assert took_second < SERVING_WITHIN + POLL, f"restart served after {took_second:.2f}s"
    assert "Traceback" not in second.log()
