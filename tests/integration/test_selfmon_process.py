"""Self-monitoring in the real agent process: stop and disable_collectors."""

from __future__ import annotations

import time

import requests

from support import agent_server, collector_names

INTERVALS = "collectors: {cpu: {interval: 1}, memory: {interval: 1}, processes: {interval: 1, top_n: 3}, system: {interval: 1}}\n"
# Only the four collectors above run.
ONLY = [f"--no-collector.{name}" for name in collector_names() if name not in ("cpu", "memory", "processes", "system")]


def test_stop_action_exits_with_status_3_when_memory_is_over_the_limit(tmp_path):
    config = INTERVALS + "limits: {check_interval: 1, max_rss_bytes: 1048576, max_cpu_percent: 1000, action: stop}\n"
    agent = agent_server(tmp_path, config, extra_args=ONLY).start()
    try:
        code = agent.proc.wait(15)
    finally:
        agent.stop()
    assert code == 3
    log = agent.log()
    assert "self-monitoring: stopping the agent because resident memory" in log
    assert "over the limit 1.0 MiB" in log


def test_disable_collectors_switches_off_the_most_expensive_one_at_a_time(tmp_path):
    # Any CPU use at all is over this limit, so each check disables one collector.
    config = INTERVALS + "limits: {check_interval: 1, max_cpu_percent: 0.0001, action: disable_collectors}\n"
    agent = agent_server(tmp_path, config, extra_args=ONLY).start()
    try:
        deadline = time.monotonic() + 20
        enabled = {}
        while time.monotonic() < deadline:
            body = requests.get(agent.base_url + "/metrics", timeout=5).text
            enabled = {
                line.split('"')[1]: float(line.rsplit(" ", 1)[1])
                for line in body.splitlines() if line.startswith("hostagent_collector_enabled{")
            }
            if sum(enabled.values()) == 1:
                break
            time.sleep(0.5)
        assert sum(enabled.values()) == 1, enabled  # the last one is kept
        assert enabled["processes"] == 0  # the most expensive goes first
        assert 'hostagent_limit_exceeded{resource="cpu"} 1.0' in body
        assert "host_process_group_cpu_seconds_total{" not in body  # its series are gone
        assert agent.proc.poll() is None  # still serving
    finally:
        agent.stop()
    log = agent.log()
    first = [line for line in log.splitlines() if "disabling collector" in line][0]
    assert "disabling collector processes, the most expensive" in first
