"""/api/v1/processes: query parsing, answers from the collector's latest run,
and what happens without one."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hostagent.agent import Agent, Runner
from hostagent.collectors.base import Paths
from hostagent.collectors.cpu import CpuCollector
from hostagent.collectors.processes import API_MAX_LIMIT, ProcessesCollector
from hostagent.procapi import DEFAULT_LIMIT, PATH, QueryError, parse_query
from hostagent.routes import Routes
from hostagent.web import Request

FIXTURE_PROC = Path(__file__).parent / "collectors" / "fixtures" / "processes" / "proc"


@pytest.mark.parametrize(
    "target, want",
    [
        (PATH, ("cpu", DEFAULT_LIMIT)),
        (PATH + "?sort=memory", ("memory", DEFAULT_LIMIT)),
        (PATH + "?limit=1&sort=cpu", ("cpu", 1)),
        (PATH + f"?limit={API_MAX_LIMIT}", ("cpu", API_MAX_LIMIT)),
        (PATH + "?sort=memory&limit=007", ("memory", 7)),
    ],
)
def test_good_queries(target, want):
    assert parse_query(target) == want


@pytest.mark.parametrize(
    "query, message",
    [
        ("sort=rss", "sort must be cpu or memory, got 'rss'"),
        ("sort=", "sort must be cpu or memory, got ''"),
        ("limit=0", f"limit must be a whole number from 1 to {API_MAX_LIMIT}, got '0'"),
        (f"limit={API_MAX_LIMIT + 1}", "limit must be a whole number"),
        ("limit=-5", "limit must be a whole number"),
        ("limit=ten", "got 'ten'"),
        ("limit=1e3", "got '1e3'"),
        ("limit=1&limit=2", "query parameter 'limit' given twice"),
        ("pid=1", "unknown query parameter 'pid' (known: sort, limit)"),
        ("sort", "malformed query string"),
        ("&&", "malformed query string"),
    ],
)
def test_bad_queries_name_the_problem(query, message):
    with pytest.raises(QueryError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_query(PATH + "?" + query)


def request(target: str, method: str = "GET") -> Request:
    return Request(method, target, "HTTP/1.1", {})


def routes_with(*runners: Runner) -> Routes:
    return Routes(Agent(list(runners)), exposition=None)


def fixture_runner(**options) -> Runner:
    return Runner("processes", ProcessesCollector(options, Paths(procfs=str(FIXTURE_PROC))), 30.0)


def test_answers_from_the_latest_run():
    runner = fixture_runner()
    routes = routes_with(runner)
    assert routes(request(PATH)).status == 503  # no run yet
    assert runner.run_once()
    resp = routes(request(PATH + "?sort=memory&limit=3"))
    assert (resp.status, resp.content_type) == (200, "application/json")
    assert ("Cache-Control", "no-store") in resp.headers
    doc = json.loads(resp.body)
    assert [p["pid"] for p in doc["processes"]] == [812, 813, 1]
    assert doc["total_processes"] == 10 and doc["sort"] == "memory" and doc["limit"] == 3
    assert all("cmdline" not in p for p in doc["processes"])
    head = routes(request(PATH, "HEAD"))
    assert head.status == 200  # the server leaves the body out for HEAD


def test_bad_query_is_400_with_the_reason():
    runner = fixture_runner()
    runner.run_once()
    resp = routes_with(runner)(request(PATH + "?sort=name"))
    assert resp.status == 400 and resp.body == b"sort must be cpu or memory, got 'name'\n"


def test_stale_list_is_not_served():
    clock = [1000.0]
    runner = Runner("processes", ProcessesCollector({}, Paths(procfs=str(FIXTURE_PROC))), 30.0, clock=lambda: clock[0])
    agent = Agent([runner], clock=lambda: clock[0])
    runner.run_once()
    routes = Routes(agent, exposition=None)
    assert routes(request(PATH)).status == 200
    clock[0] += 4 * 30.0  # three intervals without a run: stale, as /metrics withdraws it
    assert routes(request(PATH)).status == 503


def test_without_the_processes_collector_it_is_404():
    routes = routes_with(Runner("cpu", CpuCollector(), 15.0))
    resp = routes(request(PATH))
    assert resp.status == 404 and b"processes collector is not enabled" in resp.body
    runner = fixture_runner()
    runner.disable()
    assert routes_with(runner)(request(PATH)).status == 404


def test_other_methods_are_405():
    resp = routes_with(fixture_runner())(request(PATH, "POST"))
    assert resp.status == 405 and ("Allow", "GET, HEAD") in resp.headers


def test_command_lines_only_when_configured():
    runner = fixture_runner(cmdline=True)
    runner.run_once()
    doc = json.loads(routes_with(runner)(request(PATH + "?sort=memory&limit=1")).body)
    assert doc["processes"][0]["cmdline"] == "postgres -D /var/lib/postgresql/16/main"
