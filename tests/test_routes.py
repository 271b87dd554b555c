"""The agent's endpoints: the landing page lists every collector with its
state, and /-/ready agrees with what /metrics serves."""

from __future__ import annotations

import html

from prometheus_client.parser import text_string_to_metric_families
from support import FakeClock

from hostagent.agent import Agent, Runner
from hostagent.collectors.base import BaseCollector, MetricSpec, NotAvailable
from hostagent.exposition import Exposition, build_registry
from hostagent.routes import Routes
from hostagent.web import Request

VALUE = MetricSpec("host_test_value", "gauge", "A test value.")


class Told(BaseCollector):
    """Succeeds, fails or is absent, as told."""

    name = "told"

    def __init__(self, outcome: str = "ok") -> None:
        super().__init__()
        self.outcome = outcome

    def sample(self):
        if self.outcome == "absent":
            raise NotAvailable("no /proc/mdstat (no software RAID)")
        if self.outcome == "fail":
            raise PermissionError(13, "Permission denied", "/proc/net/nf_conntrack")
        return 1.0

    def families(self, sample):
        yield VALUE.single(sample)


def get(routes: Routes, path: str):
    return routes(Request("GET", path, "HTTP/1.1", {}))


def setup():
    clock = FakeClock(100.0)
    cols = {name: Told(outcome) for name, outcome in (("ok", "ok"), ("absent", "absent"), ("broken", "fail"), ("greedy", "ok"), ("late", "ok"))}
    runners = [Runner(name, col, 15, clock=clock, wall=lambda: 1700000000.0) for name, col in cols.items()]
    agent = Agent(runners, clock=clock, disabled=["textfile"])
    routes = Routes(agent, Exposition(agent, build_registry(agent)))
    return clock, cols, agent, routes


def up_values(routes: Routes):
    body = get(routes, "/metrics").body.decode()
    return {s.labels["collector"]: s.value for f in text_string_to_metric_families(body) for s in f.samples if s.name == "hostagent_collector_up"}


def test_landing_page_lists_every_collector_with_its_state():
    clock, cols, agent, routes = setup()
    for runner in agent.runners:
        if runner.name != "late":
            runner.run_once()
    agent.disable("greedy")
    page = get(routes, "/").body.decode()
    rows = {}
    for row in page.split("<tr>")[2:]:
        cells = [html.unescape(c.split("</td>")[0].split(">", 1)[1]) for c in row.split("<td")[1:]]
        rows[cells[0]] = cells[1]
    assert rows == {
        "ok": "running",
        "absent": "not available on this host: no /proc/mdstat (no software RAID)",
        "broken": "failing: Permission denied: /proc/net/nf_conntrack",
        "greedy": "disabled by self-monitoring",
        "late": "waiting for its first run",
        "textfile": "disabled by config",
    }
    assert "<td class='not-available'>" in page and "<td class='running'>running</td>" in page


def test_ready_agrees_with_collector_up():
    clock, cols, agent, routes = setup()
    agent.disable("greedy")
    agent.disable("late")
    ready = get(routes, "/-/ready")
    assert ready.status == 503 and ready.body.decode() == "not ready: waiting for first run of ok, absent, broken\n"
    agent.run_once()
    # absent holds nothing back and has no up; broken is not up: not ready.
    ups = up_values(routes)
    assert "absent" not in ups and ups["broken"] == 0 and ups["ok"] == 1
    ready = get(routes, "/-/ready")
    assert ready.status == 503 and "failing: broken (Permission denied: /proc/net/nf_conntrack)" in ready.body.decode()
    cols["broken"].outcome = "ok"
    agent.run_once()
    # (a collector switched off by self-monitoring reads up 0, enabled 0)
    assert up_values(routes) == {"ok": 1.0, "broken": 1.0, "greedy": 0.0, "late": 0.0}
    assert get(routes, "/-/ready").status == 200
    # Every snapshot goes stale (no run for 3 intervals): up 0, and not ready.
    clock.now += 46
    assert up_values(routes) == {"ok": 0.0, "broken": 0.0, "greedy": 0.0, "late": 0.0}
    ready = get(routes, "/-/ready")
    assert ready.status == 503 and ready.body.decode().startswith("not ready: stale: ok (no successful run lately); broken (")
