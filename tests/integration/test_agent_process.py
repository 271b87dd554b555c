"""The real agent process: start, scrape, lint, endpoints, SIGTERM."""

from __future__ import annotations

import gzip
import signal
import subprocess
import time

import requests

from support import agent_server, fast_agent_config, require_tool

FAST = fast_agent_config(top_n=5)


def test_serves_lints_and_stops_cleanly_on_sigterm(tmp_path):
    promtool = require_tool("promtool")
    agent = agent_server(tmp_path, FAST).start()
    try:
        base = agent.base_url
        resp = requests.get(base + "/metrics", timeout=5)
        assert resp.status_code == 200
        assert resp.headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
        body = resp.text
        lint = subprocess.run([promtool, "check", "metrics"], input=body, capture_output=True, text=True, timeout=30)
        assert (lint.returncode, lint.stdout, lint.stderr) == (0, "", "")
        for name in ("host_cpu_usage_ratio", "host_memory_total_bytes", "host_filesystem_size_bytes", "host_network_receive_bytes_total",
                     "host_network_connections", "host_processes", "host_boot_time_seconds", "hostagent_collector_up"):
            assert f"\n{name}" in body, name
        # Each collector's own line in the health metrics says up.
        for col in ("cpu", "memory", "filesystem", "diskio", "network", "connections", "processes", "system"):
            assert f'hostagent_collector_up{{collector="{col}"}} 1.0' in body

        zipped = requests.get(base + "/metrics", headers={"Accept-Encoding": "gzip"}, timeout=5, stream=True)
        raw = zipped.raw.read(decode_content=False)
        assert zipped.headers["Content-Encoding"] == "gzip" and gzip.decompress(raw).startswith(b"# HELP")
        om = requests.get(base + "/metrics", headers={"Accept": "application/openmetrics-text; version=1.0.0"}, timeout=5)
        assert om.headers["Content-Type"].startswith("application/openmetrics-text") and om.text.endswith("# EOF\n")

        assert requests.get(base + "/-/healthy", timeout=5).status_code == 200
        assert requests.get(base + "/-/ready", timeout=5).status_code == 200
        landing = requests.get(base + "/", timeout=5)
        assert landing.status_code == 200 and "href='/metrics'" in landing.text and "processes" in landing.text
        assert requests.get(base + "/nope", timeout=5).status_code == 404
        post = requests.post(base + "/metrics", timeout=5)
        assert post.status_code == 405 and post.headers["Allow"] == "GET, HEAD"
        head = requests.head(base + "/metrics", timeout=5)
        assert head.status_code == 200 and int(head.headers["Content-Length"]) > 1000 and head.content == b""

        # Values move: a second scrape after a collector interval has new CPU counters.
        time.sleep(1.5)
        assert requests.get(base + "/metrics", timeout=5).text != body

        started = time.monotonic()
        agent.proc.send_signal(signal.SIGTERM)
        code = agent.proc.wait(10)
        assert code == 0
        assert time.monotonic() - started < 6
    finally:
        agent.stop()
    log = agent.log()
    assert "listening on 127.0.0.1:" in log and "with collectors: cgroups, connections, cpu, diskio" in log
    assert "shutting down" in log and "Traceback" not in log


def test_sigint_also_stops_and_port_in_use_is_a_clear_error(tmp_path):
    agent = agent_server(tmp_path, FAST).start()
    try:
        port = agent.base_url.rsplit(":", 1)[1]
        second = subprocess.run(
            [*agent.argv[:3], str(tmp_path / "agent.yaml"), f"--web.listen-address=127.0.0.1:{port}"],
            capture_output=True, text=True, timeout=30,
        )
        assert second.returncode == 1
        assert f"cannot listen on 127.0.0.1:{port}: Address already in use" in second.stderr
        assert "Traceback" not in second.stderr
        agent.proc.send_signal(signal.SIGINT)
        assert agent.proc.wait(10) == 0
    finally:
        agent.stop()
