"""Per-host isolation against a flood: one host's textfile directory
suddenly holds 50,000 series. The central Prometheus, on the shipped job
(its sample_limit) and the shipped alerts, refuses that host's scrapes,
keeps every scrape of the others, and says why with
HostScrapeSampleLimitExceeded naming the host and the count, while
HostagentDown stays quiet for it."""

from __future__ import annotations

import re
import time
from pathlib import Path
from types import ModuleType
from typing import Any, Dict, List

import yaml
from support import REPO

from hostagent.alerting import generate, thresholds

HOSTS = 4  # host-004 floods
INTERVAL = 1.0
FLOOD_SERIES = 50_000


def fast_rules(tmp_path: Path) -> Path:
    """The shipped rules, generated with a `for` of 2 s for the two alerts
    that matter here (the alert tests' pattern), into tmp_path/rules."""
    doc = yaml.safe_load(thresholds.DEFAULT_PATH.read_text())
    for key in ("scrape_sample_limit", "agent_down"):
        for level in doc["alerts"][key]["levels"]:
            level["for"] = "2s"
    config = tmp_path / "alerting.yaml"
    config.write_text(yaml.safe_dump(doc, sort_keys=False))
    rules = tmp_path / "rules"
    assert generate.main(["--config", str(config), "--output-dir", str(rules)]) == 0
    return rules


def flood(directory: Path) -> None:
    """50,000 series in one .prom file, appearing at once."""
    lines = ["# HELP flood_requests_total Requests by user, a label per user.", "# TYPE flood_requests_total counter"]
    lines += [f'flood_requests_total{{user="u{i}"}} {i}' for i in range(FLOOD_SERIES)]
    tmp = directory / "flood.prom.tmp"
    tmp.write_text("\n".join(lines) + "\n")
    tmp.rename(directory / "flood.prom")


def firing(lib: ModuleType, central: Any, alertname: str) -> List[Dict[str, Any]]:
    alerts = lib.get_json(central.url + "/api/v1/alerts")["data"]["alerts"]
    return [a for a in alerts if a["labels"]["alertname"] == alertname and a["state"] == "firing"]


def test_a_flooding_host_is_refused_alone_and_named_by_its_alert(tmp_path: Path, fleetlib: ModuleType, fleet_address: Any, engines: None) -> None:
    lib = fleetlib
    prefix, port = fleet_address
    textfiles = tmp_path / "textfile"
    textfiles.mkdir()
    # The agent's own cap (collectors.textfile.max_samples, 10,000 by
    # default) would refuse such a file before Prometheus sees it; this
    # host's operator raised it, so the limit left is Prometheus's.
    config = tmp_path / "flooder.yaml"
    config.write_text(yaml.safe_dump({"collectors": {"textfile": {
        "directory": str(textfiles), "interval": 1, "max_samples": 200_000, "max_file_bytes": 64 << 20}}}))
    agents = lib.start_fleet(tmp_path, HOSTS - 1, prefix, port)
    central = None
    try:
        flooder = lib.Agent(tmp_path, lib.host_name(HOSTS), f"{prefix}.{HOSTS}", port, config)
        agents.append(flooder)
        flooder.start()
        targets = lib.targets_from_inventory(tmp_path, agents, port)
        rules = sorted(str(p) for p in fast_rules(tmp_path).glob("*.rules.yml"))
        central = lib.prometheus(tmp_path, "central", lib.central_config(targets.parent, interval=INTERVAL, rule_files=rules)).start()
        lib.wait_for(lambda: len(lib.query(central.url, 'up{job="hostagent"} == 1')) == HOSTS, 120, "every host scraped")
        limit = yaml.safe_load((REPO / "prometheus" / "prometheus.yml").read_text())["scrape_configs"][0]["sample_limit"]
        assert lib.scalar(central.url, f'scrape_sample_limit{{instance="{flooder.hostname}"}}') == limit

        flood(textfiles)
        start = time.time()
        refused = f'scrape_samples_scraped{{instance="{flooder.hostname}"}} > {FLOOD_SERIES} and on (instance) up == 0'
        lib.wait_for(lambda: lib.query(central.url, refused), 60, "the flooding host's scrapes refused")
        # The alert fires for the flooding host alone, naming it and its count.
        alerts = lib.wait_for(lambda: [a for a in firing(lib, central, "HostScrapeSampleLimitExceeded") if a["labels"]["severity"] == "critical"],
                              60, "HostScrapeSampleLimitExceeded firing")
        assert [a["labels"]["instance"] for a in alerts] == [flooder.hostname]
        samples = lib.scalar(central.url, f'scrape_samples_scraped{{instance="{flooder.hostname}"}}')
        assert samples is not None and samples > FLOOD_SERIES
        summary = alerts[0]["annotations"]["summary"]
        named = re.fullmatch(rf"{flooder.hostname} exposes ([\d.]+)k samples, ([\d.]+)% of its scrape's sample limit", summary)
        assert named, summary
        assert abs(float(named.group(1)) * 1000 - samples) < 100 and abs(float(named.group(2)) - 100 * samples / limit) < 1, summary
        # HostagentDown, whose `for` has long passed, stays quiet for it: it
        # would mute the cause in Alertmanager. A really down host still fires it.
        time.sleep(3 * INTERVAL)
        assert lib.query(central.url, f'ALERTS{{alertname="HostagentDown",instance="{flooder.hostname}"}}') == []
        end = time.time()

        # The other hosts: every scrape of the flood's window arrived, each one up.
        lo = start + INTERVAL
        ups = lib.raw_samples(central.url, 'up{job="hostagent"}', lo, end)
        per_host = {dict(k)["instance"]: [v for _, v in s] for k, s in ups.items()}
        expected = int((end - lo) // INTERVAL)
        others = [a.hostname for a in agents[:-1]]
        assert expected >= 5, expected
        for name in others:
            assert len(per_host[name]) >= expected and set(per_host[name]) == {"1"}, (name, expected, per_host[name])
            assert lib.raw_samples(central.url, f'host_load1{{instance="{name}"}}', lo, end)  # and their data stored
        # The flooding host: from the first scrape that met the flood (the
        # agent's textfile collector reads the new file on its own interval,
        # slower under load), every scrape refused, none of its data (nor the
        # flood) stored.
        flooded = [(t, v) for k, s in ups.items() if dict(k)["instance"] == flooder.hostname for t, v in s]
        first = next(t for t, v in flooded if v == "0")
        assert first - start < 15, (first - start, flooded)
        after = [v for t, v in flooded if t >= first]
        assert len(after) >= 3 and set(after) == {"0"}, flooded
        assert lib.raw_samples(central.url, f'host_load1{{instance="{flooder.hostname}"}}', first, end) == {}
        assert lib.query(central.url, "count(flood_requests_total)") == []

        # The file goes: the host is taken again and the alert resolves.
        (textfiles / "flood.prom").unlink()
        lib.wait_for(lambda: lib.query(central.url, f'up{{instance="{flooder.hostname}"}} == 1'), 60, "the host scraped again")
        lib.wait_for(lambda: not firing(lib, central, "HostScrapeSampleLimitExceeded"), 60, "the alert resolved")
    finally:
        lib.stop_all([central, *agents])
