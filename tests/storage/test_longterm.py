"""The long-term tier: the central Prometheus, on the shipped remote_write,
sends VictoriaMetrics the aggregates of the 5m and 1h tiers and nothing
else, and VictoriaMetrics keeps them across a restart."""

from __future__ import annotations

import re
import time
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import Any, Dict, Iterator, List, NamedTuple, Sequence, Set, Tuple

import pytest
import yaml
from benchscripts import fleetlib as load_fleetlib
from support import agent_server, fast_agent_config

from hostagent.alerting import thresholds
from hostagent.dashboards import boards
from hostagent.dashboards.grafana import LONGTERM_UID, PanelQuery, queries

INTERVAL = 1.0
# Rules in the shape of the tier contract (docs/deployment.md), and look-alikes that must stay home.
RULES = {
    "groups": [{
        "name": "tier-contract",
        "interval": "1s",
        "rules": [
            {"record": "instance:host_memory_utilisation:avg_5m", "expr": "avg by (job, instance) (avg_over_time(host_memory_usage_ratio[5m]))", "labels": {"tier": "5m"}},
            {"record": "instance:host_memory_utilisation:max_1h", "expr": "max by (job, instance) (max_over_time(host_memory_usage_ratio[1h]))", "labels": {"tier": "1h"}},
            {"record": "instance_mountpoint:host_filesystem_usage:max_5m", "expr": "max_over_time(host_filesystem_usage_ratio[5m])", "labels": {"tier": "5m"}},
            # A tier's name without the tier label (like the 5-minute helpers of the alerts).
            {"record": "instance:host_memory_utilisation:min_5m", "expr": "min_over_time(host_memory_usage_ratio[5m])"},
            # Label and name disagree.
            {"record": "instance:host_memory_utilisation:avg_1h", "expr": "avg_over_time(host_memory_usage_ratio[1h])", "labels": {"tier": "5m"}},
            # Not level:metric:operation.
            {"record": "host_memory_usage_ratio_5m", "expr": "host_memory_usage_ratio", "labels": {"tier": "5m"}},
            # Another tier value.
            {"record": "instance:host_memory_utilisation:avg_1d", "expr": "avg_over_time(host_memory_usage_ratio[1d])", "labels": {"tier": "1d"}},
        ],
    }],
}
GOING = {"instance:host_memory_utilisation:avg_5m", "instance:host_memory_utilisation:max_1h", "instance_mountpoint:host_filesystem_usage:max_5m"}


@contextmanager
def central_and_longterm(tmp_path: Path, lib: ModuleType, rule_files: Sequence[str]) -> Iterator[Tuple[Any, Any]]:
    """A real agent as host-a, a central Prometheus scraping it every INTERVAL
    with ``rule_files`` and the shipped `longterm` remote write, and the
    VictoriaMetrics it writes to: (central, longterm)."""
    with agent_server(tmp_path, fast_agent_config(top_n=3)).start() as agent:
        targets = tmp_path / "targets"
        targets.mkdir()
        host = agent.base_url.split("//")[1]
        (targets / "hosts.yml").write_text(yaml.safe_dump([{"targets": [host], "labels": {"instance": "host-a"}}]))
        longterm = lib.victoria_metrics(tmp_path, "longterm", extra_args=["-search.latencyOffset=1s"]).start()
        central = None
        try:
            config = lib.central_config(targets, longterm_url=lib.remote_write_url(longterm), interval=INTERVAL, rule_files=rule_files)
            central = lib.prometheus(tmp_path, "central", config).start()
            yield central, longterm
        finally:
            lib.stop_all([central, longterm])


def names(lib: ModuleType, base: str) -> Set[str]:
    return set(lib.get_json(base + "/api/v1/label/__name__/values")["data"])


def counts(lib: ModuleType, base: str, end: float) -> Dict[Tuple[Tuple[str, str], ...], int]:
    """Samples per series of the tiers over the minute before ``end``."""
    selector = "{__name__=~\"" + "|".join(sorted(GOING)) + "\"}"
    return {k: len(v) for k, v in lib.raw_samples(base, selector, end - 60, end).items()}


def test_only_the_tier_aggregates_reach_the_long_term_store(tmp_path: Path, fleetlib: ModuleType, engines: None) -> None:
    lib = fleetlib
    rules = tmp_path / "tier.rules.yml"
    rules.write_text(yaml.safe_dump(RULES, sort_keys=False))
    # The shipped rules but the tiers (whose own test follows): the contract alone decides what goes.
    shipped_rules = [str(p) for p in sorted((lib.REPO / "prometheus" / "rules").glob("*.rules.yml")) if p != lib.TIERS_FILE]
    with central_and_longterm(tmp_path, lib, [*shipped_rules, str(rules)]) as (central, longterm):
        lib.wait_for(lambda: names(lib, longterm.url) >= GOING, 90, "the tier aggregates in VictoriaMetrics")
        time.sleep(5 * INTERVAL)  # let any stray series arrive too
        # The tier series went, and nothing else: no raw series, no other recorded series.
        assert names(lib, longterm.url) == GOING
        assert len(lib.query(central.url, '{__name__=~"host_.+"}')) > 100  # while Prometheus has plenty
        # Every tier sample Prometheus recorded is there, with the series' labels intact.
        lib.wait_for(lambda: min(counts(lib, central.url, time.time()).values(), default=0) >= 20, 90, "20 evaluations of each tier rule")
        end = time.time() - 3
        want = counts(lib, central.url, end)
        assert {dict(k)["__name__"] for k in want} == GOING, want
        lib.wait_for(lambda: counts(lib, longterm.url, end) == want, 60, "VictoriaMetrics to hold every tier sample")
        series = {dict(k)["__name__"]: dict(k) for k in want}
        assert series["instance:host_memory_utilisation:avg_5m"] == {
            "__name__": "instance:host_memory_utilisation:avg_5m", "instance": "host-a", "job": "hostagent", "tier": "5m"}
        # A restart of the long-term store loses none of it.
        central.stop()
        longterm.restart()
        assert counts(lib, longterm.url, end) == want


# The tiers' groups at a test's pace: the 5-minute tier every 2 s, the hourly
# one every 6 s (bench/fleetlib.fast_tier_rules rewrites only the intervals).
FAST_TIERS = {"5m": 2.0, "1h": 6.0}
# What every host has, whatever its disks, swap and kernel: these must arrive.
CORE = ("instance:host_cpu_utilisation:avg", "instance:host_cpu_utilisation:max", "instance:host_memory_utilisation:avg",
        "instance_mountpoint:host_filesystem_usage:max", "instance_mountpoint:host_filesystem_avail_bytes:min",
        "instance:host_network_receive_bytes_excluding_lo:rate", "instance:host_up:avg")


class Tiered(NamedTuple):
    lib: ModuleType
    central: Any
    longterm: Any
    made: Set[str]  # the tier series Prometheus recorded for this host


def recorded_tiers(lib: ModuleType, base: str) -> Set[str]:
    return {r["metric"]["__name__"] for r in lib.query(base, 'group by (__name__) ({tier=~".+"})')}


@pytest.fixture(scope="module")
def tiered(tmp_path_factory: pytest.TempPathFactory, engines: None) -> Iterator[Tiered]:
    """A real agent, a central Prometheus running the shipped rules with the
    tiers at FAST_TIERS, and the long-term VictoriaMetrics, once every tier
    series this host can have has reached it."""
    lib = load_fleetlib()
    tmp = tmp_path_factory.mktemp("tiers")
    with central_and_longterm(tmp, lib, lib.fast_tier_rules(tmp, FAST_TIERS)) as (central, longterm):
        core = {f"{c}_{tier}" for c in CORE for tier in FAST_TIERS}
        lib.wait_for(lambda: recorded_tiers(lib, central.url) >= core, 180, "the core tier series in Prometheus")
        made = recorded_tiers(lib, central.url)
        lib.wait_for(lambda: names(lib, longterm.url) >= made, 60, "every tier series in VictoriaMetrics")
        yield Tiered(lib, central, longterm, made)


def test_the_shipped_tier_rules_reach_the_long_term_store_and_nothing_else(tiered: Tiered) -> None:
    lib, central, longterm, made = tiered
    shipped = lib.tier_names()
    assert set(shipped) == {"5m", "1h"} and len(shipped["5m"]) == len(shipped["1h"])
    # Every tier series Prometheus records is one of the shipped rules...
    assert made <= set(shipped["5m"]) | set(shipped["1h"]), made - set(shipped["5m"]) - set(shipped["1h"])
    # ...and each aggregate made in one tier is made in the other (the rules whose inputs this host has).
    assert {n[:-3] for n in made if n.endswith("_5m")} == {n[:-3] for n in made if n.endswith("_1h")}
    # VictoriaMetrics gets exactly those: no raw series, no alert helpers, nothing of the other rule files.
    time.sleep(3 * INTERVAL)  # let any stray series arrive too
    assert names(lib, longterm.url) == recorded_tiers(lib, central.url)
    # ...while Prometheus holds the raw series and the alerts' own recorded series.
    assert len(lib.query(central.url, '{__name__=~"host_.+"}')) > 100
    assert len(lib.query(central.url, '{__name__=~".+:.+", tier=""}')) > 20
    # Each group ran at its own (shortened) period: the hourly tier is three times sparser.
    def samples(tier: str, end: float) -> int:
        return sum(len(v) for v in lib.raw_samples(central.url, f"instance:host_cpu_utilisation:avg_{tier}", end - 30, end).values())

    lib.wait_for(lambda: samples("5m", time.time()) >= 14, 60, "30 s of the 5-minute tier")
    end = time.time() - 2
    fine, coarse = samples("5m", end), samples("1h", end)
    assert 13 <= fine <= 16 and 4 <= coarse <= 6, (fine, coarse)
    # Every sample of the tiers arrives (counted per series), labels intact.
    selector = '{tier=~".+"}'

    def per_series(base: str) -> Dict[Tuple[Tuple[str, str], ...], int]:
        return {k: len(v) for k, v in lib.raw_samples(base, selector, end - 30, end).items()}

    expected = per_series(central.url)
    assert len(expected) >= len(made)
    lib.wait_for(lambda: per_series(longterm.url) == expected, 60, "every tier sample")
    assert all({"job", "instance", "tier"} <= dict(k).keys() for k in expected)


def history_queries() -> List[PanelQuery]:
    return [q for board in boards.build_all(thresholds.load()).values() for q in queries(board) if q.datasource == LONGTERM_UID]


def test_every_long_term_panel_answers_from_victoria_metrics(tiered: Tiered) -> None:
    """Each query of the history dashboard, with each tier picked, run against
    the long-term store as Grafana would (host-a picked, the step no finer
    than the tier): it parses, and returns host-a's data wherever Prometheus
    recorded the tier series it reads; the CPU, memory, filesystem and network
    panels always."""
    lib, _, longterm, made = tiered
    checked = history_queries()
    assert len(checked) >= 10
    failures = []
    deadline = time.monotonic() + 60  # a tier sample just written is searchable a moment later

    def run(expr: str, instant: bool) -> List[Dict[str, Any]]:
        end = time.time()
        if instant:
            return lib.query(longterm.url, expr, at=end)
        body = lib.get_json(longterm.url + "/api/v1/query_range", {"query": expr, "start": f"{end - 60:.3f}", "end": f"{end:.3f}", "step": "5s"})
        return body["data"]["result"]

    for q in checked:
        for tier in ("5m", "1h"):
            # Grafana: $__interval is the range over the panel's points, at least the panel's minimum ($tier).
            expr = q.expr.replace('job=~"$job"', 'job=~"hostagent"').replace('instance=~"$instance"', 'instance=~"host-a"')
            expr = expr.replace("$tier", tier).replace("$__interval", tier)
            reads = set(re.findall(r"[a-z_]+:[a-z_]+:[a-z_]+_(?:5m|1h)", expr))
            must = any(n.rsplit("_", 1)[0] in CORE for n in reads) or reads <= made
            try:
                result = run(expr, q.instant)
                while must and not result and time.monotonic() < deadline:
                    time.sleep(1)
                    result = run(expr, q.instant)
            except Exception as exc:  # noqa: BLE001 - reported with the query
                failures.append(f"{q.panel}/{q.ref} ({tier}): {expr}: {exc}")
                continue
            answered = {s["metric"].get("instance") for s in result}
            if answered - {"host-a"}:
                failures.append(f"{q.panel}/{q.ref} ({tier}): series of another host: {result[:2]}")
            elif must and answered != {"host-a"}:
                failures.append(f"{q.panel}/{q.ref} ({tier}): no data for host-a from {expr}")
    assert not failures, "\n".join(failures)
