"""Self-monitoring: limits, actions and their metrics."""

from __future__ import annotations

import inspect
import logging
import os

import psutil
import pytest

from support import samples_of

from hostagent.agent import Agent, Runner
from hostagent.collectors.base import BaseCollector
from hostagent.selfmon import EXIT_LIMIT, SelfMonitor, Usage, process_usage

LIMITS = {"max_cpu_percent": 5.0, "max_rss_bytes": 100 * 2**20, "action": "log"}


class Cheap(BaseCollector):
    name = "cheap"

    def sample(self):
        return ()

    def families(self, sample):
        return ()


def agent_with_costs(costs):
    runners = []
    for name, duration in costs.items():
        r = Runner(name, Cheap(), 10.0)
        r.run_once()
        r.status = r.status.__class__(**{**r.status.__dict__, "last_duration": duration})
        runners.append(r)
    return Agent(runners)


def monitor(action, usage, agent=None):
    stops = []
    mon = SelfMonitor({**LIMITS, "action": action}, agent or agent_with_costs({"a": 0.01}), lambda: usage, stops.append)
    return mon, stops


def test_under_limits_does_nothing():
    mon, stops = monitor("stop", Usage(0.01, 20 * 2**20))
    assert mon.check() == []
    assert stops == [] and mon.actions["stop"] == 0


def test_log_action_logs_once_per_change(caplog):
    caplog.set_level(logging.INFO, logger="hostagent.selfmon")
    usage = [Usage(0.2, 10)]
    mon = SelfMonitor(LIMITS, agent_with_costs({"a": 0.01}), lambda: usage[0], lambda code: None)
    assert mon.check() == ["cpu"]
    assert mon.check() == ["cpu"]
    usage[0] = Usage(0.01, 10)
    assert mon.check() == []
    msgs = [r.getMessage() for r in caplog.records]
    assert msgs == [
        "self-monitoring: CPU 20.0% of a core is over the limit 5%",
        "self-monitoring: cpu back under its limit",
    ]
    assert mon.actions["log"] == 2


def test_disable_collectors_switches_off_most_expensive_first(caplog):
    agent = agent_with_costs({"cpu": 0.002, "processes": 0.3, "filesystem": 0.05})
    mon, _ = monitor("disable_collectors", Usage(0.5, 10), agent)
    mon.check()
    assert [r.name for r in agent.active()] == ["cpu", "filesystem"]
    mon.check()
    assert [r.name for r in agent.active()] == ["cpu"]
    mon.check()  # never the last one
    mon.check()
    assert [r.name for r in agent.active()] == ["cpu"]
    assert any("disabling collector processes, the most expensive" in r.getMessage() for r in caplog.records)
    # Keeping the last one is said once, and is not an action taken.
    kept = [r.getMessage() for r in caplog.records if "left running" in r.getMessage()]
    assert kept == ["self-monitoring: only cpu left running; not disabling it"]
    assert mon.actions["disable_collectors"] == 2


def test_stop_action_requests_exit_status_3():
    mon, stops = monitor("stop", Usage(0.01, 200 * 2**20))
    assert mon.check() == ["memory"]
    assert stops == [EXIT_LIMIT] == [3]


def test_metrics_report_usage_limits_and_actions():
    mon, _ = monitor("log", Usage(1.5, 150 * 2**20))  # one and a half cores busy
    mon.check()
    got = samples_of(mon.families())
    assert got[("hostagent_self_cpu_usage_cores", ())] == 1.5
    assert got[("hostagent_self_resident_memory_bytes", ())] == 150 * 2**20
    assert got[("hostagent_limit_cpu_cores", ())] == 0.05
    assert got[("hostagent_limit_resident_memory_bytes", ())] == 100 * 2**20
    # One unit per family: no family mixes cores and bytes under a label.
    assert not any(name == "hostagent_limit" for name, _ in got)
    assert got[("hostagent_limit_exceeded", (("resource", "cpu"),))] == 1.0
    assert got[("hostagent_limit_exceeded", (("resource", "memory"),))] == 1.0
    assert got[("hostagent_limit_actions_total", (("action", "log"),))] == 1.0


def test_process_usage_reads_this_process():
    read = process_usage()
    sum(range(200000))
    usage = read()
    assert usage.cpu_cores >= 0
    assert usage.rss_bytes == pytest.approx(psutil.Process().memory_info().rss, rel=0.2)


def test_process_usage_is_cpu_seconds_per_elapsed_second():
    ticks = {"wall": 100.0, "cpu": 5.0}
    read = process_usage(clock=lambda: ticks["wall"], cpu_seconds=lambda: ticks["cpu"])
    ticks["wall"] += 60
    ticks["cpu"] += 3  # 3 CPU seconds in a minute: 5 % of a core
    assert read().cpu_cores == pytest.approx(0.05)
    ticks["wall"] += 60
    assert read().cpu_cores == 0.0


def test_process_usage_reads_resident_pages_from_statm(tmp_path):
    # The agent's own /proc/self/statm, never the configured (host's) procfs.
    statm = tmp_path / "statm"
    statm.write_text("5000 1234 300 10 0 900 0\n")
    assert process_usage(statm=str(statm))().rss_bytes == 1234 * os.sysconf("SC_PAGE_SIZE")
    assert inspect.signature(process_usage).parameters["statm"].default == "/proc/self/statm"
