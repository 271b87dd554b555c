"""The long-term tier: the central Prometheus, on the shipped remote_write,
sends VictoriaMetrics the aggregates of the 5m and 1h tiers and nothing
else, and VictoriaMetrics keeps them across a restart."""

from __future__ import annotations

import time
from pathlib import Path
from types import ModuleType
from typing import Dict, Set, Tuple

import yaml
from support import agent_server, fast_agent_config

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
    shipped_rules = [str(p) for p in sorted((lib.REPO / "prometheus" / "rules").glob("*.rules.yml"))]
    with agent_server(tmp_path, fast_agent_config(top_n=3)).start() as agent:
        targets = tmp_path / "targets"
        targets.mkdir()
        host = agent.base_url.split("//")[1]
        (targets / "hosts.yml").write_text(yaml.safe_dump([{"targets": [host], "labels": {"instance": "host-a"}}]))
        longterm = lib.victoria_metrics(tmp_path, "longterm", extra_args=["-search.latencyOffset=1s"]).start()
        central = None
        try:
            config = lib.central_config(targets, longterm_url=lib.remote_write_url(longterm), interval=INTERVAL, rule_files=[*shipped_rules, str(rules)])
            central = lib.prometheus(tmp_path, "central", config).start()
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
        finally:
            lib.stop_all([central, longterm])
