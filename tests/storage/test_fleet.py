"""A fleet of real agents, each its own host on its own loopback address,
discovered through file_sd from ``hostagent targets`` and scraped with the
shipped job: one host hanging costs the others nothing, and two forwarders
splitting the fleet with hashmod scrape every host exactly once.

The hundred-host run, with the figures, is ``bench/fleet``."""

from __future__ import annotations

import re
from types import ModuleType
from typing import Any, Dict, Iterator, List

import pytest
import requests
import yaml
from benchscripts import bench_module, fleetlib as load_fleetlib
from support import REPO

HOSTS = 8
INTERVAL = 1.0


@pytest.fixture(scope="module")
def fleet_bench() -> ModuleType:
    return bench_module("fleet")


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory, engines: None) -> Iterator[Dict[str, Any]]:
    """HOSTS agents, their targets file, and a central Prometheus on the shipped job and rules."""
    lib = load_fleetlib()
    workdir = tmp_path_factory.mktemp("fleet")
    prefix, port = lib.free_block(HOSTS)
    agents = lib.start_fleet(workdir, HOSTS, prefix, port)
    central = None
    try:
        targets = lib.targets_from_inventory(workdir, agents, port)
        central = lib.prometheus(workdir, "central", lib.central_config(targets.parent, interval=INTERVAL)).start()
        lib.wait_for(lambda: len(lib.query(central.url, 'up{job="hostagent"} == 1')) == HOSTS, 120, "every host scraped")
        yield {"lib": lib, "workdir": workdir, "agents": agents, "targets": targets, "central": central, "prefix": prefix, "port": port}
    finally:
        lib.stop_all([central, *agents])


def test_every_host_is_discovered_under_its_own_name(fleet: Dict[str, Any]) -> None:
    lib, central = fleet["lib"], fleet["central"]
    active = lib.active_targets(central)
    got = {t["labels"]["instance"]: t["scrapeUrl"] for t in active}
    assert got == {f"host-{i:03d}": f"http://{fleet['prefix']}.{i}:{fleet['port']}/metrics" for i in range(1, HOSTS + 1)}
    assert all(t["health"] == "up" and t["labels"]["job"] == "hostagent" for t in active)
    # The file Prometheus read is the one hostagent targets wrote from the inventory.
    entries = yaml.safe_load(fleet["targets"].read_text())
    assert [e["labels"]["instance"] for e in entries] == sorted(got)


def test_the_shipped_limits_are_in_force_with_room_to_spare(fleet: Dict[str, Any]) -> None:
    lib, central = fleet["lib"], fleet["central"]
    shipped = yaml.safe_load((REPO / "prometheus" / "prometheus.yml").read_text())
    job = next(j for j in shipped["scrape_configs"] if j["job_name"] == "hostagent")
    running = yaml.safe_load(requests.get(central.url + "/api/v1/status/config", timeout=10).json()["data"]["yaml"])
    (live,) = [j for j in running["scrape_configs"] if j["job_name"] == "hostagent"]
    assert live["sample_limit"] == job["sample_limit"]
    # A real host uses a small part of the limit: a flood trips it, growth does not.
    per_host = [float(r["value"][1]) for r in lib.query(central.url, 'scrape_samples_scraped{job="hostagent"}')]
    assert len(per_host) == HOSTS and max(per_host) * 10 < job["sample_limit"] < 50_000, per_host
    # The timeout leaves a hung host's scrape room to fail well inside the interval.
    timeout = lib.parse_seconds(shipped["global"]["scrape_timeout"])
    interval = lib.parse_seconds(shipped["global"]["scrape_interval"])
    assert 1 <= timeout <= interval / 2


def test_a_hung_host_delays_and_drops_nothing_of_the_others(fleet: Dict[str, Any], fleet_bench: ModuleType) -> None:
    iso = fleet_bench.isolation(fleet["central"], fleet["agents"], INTERVAL, 8.0, lambda m: None)
    detail = repr(iso)
    assert iso.hung_host == "host-001"
    assert iso.hung_scrapes_failed >= 4, detail  # up == 0 while it hung...
    assert iso.hung_scrape_seconds_max >= 0.9 * INTERVAL, detail  # ...each scrape given up at the timeout
    assert iso.others_scrapes_expected >= (HOSTS - 1) * 5, detail
    assert iso.others_scrapes_missing == 0, detail  # every other host's scrapes all there
    assert iso.recovered, detail


def test_two_forwarders_split_the_fleet_by_hashmod(fleet: Dict[str, Any], fleet_bench: ModuleType) -> None:
    sh = fleet_bench.sharding(fleet["workdir"], fleet["agents"], fleet["targets"].parent, INTERVAL, 2, lambda m: None)
    detail = repr(sh)
    assert sum(sh.hosts_per_shard) == HOSTS and all(n > 0 for n in sh.hosts_per_shard), detail
    assert sh.scraped_twice == [] and sh.missed == [], detail
    assert sh.stored_twice == [] and sh.stored_missing == [], detail


def test_dashboard_queries_answer_for_the_whole_fleet(fleet: Dict[str, Any], fleet_bench: ModuleType) -> None:
    timed: List[Any] = fleet_bench.dashboard_timings(fleet["central"], fleet["agents"], INTERVAL, 60.0, lambda m: None)
    boards = {t.dashboard for t in timed}
    assert {"overview", "cpu", "memory", "disk", "network"} <= boards
    picker = [t for t in timed if t.dashboard == "overview" and t.panel == "variable instance"]
    assert picker and picker[0].series == HOSTS  # the host picker lists every host
    hosts_up = [t for t in timed if t.dashboard == "overview" and t.panel.startswith("Hosts up")]
    assert hosts_up and hosts_up[0].series == 1


def test_the_documented_hashmod_rules_are_the_ones_run_here(fleetlib: ModuleType) -> None:
    blocks = re.findall(r"```yaml\n(.*?)```", (REPO / "docs" / "deployment.md").read_text(), re.S)
    (block,) = [b for b in blocks if "hashmod" in b]
    assert yaml.safe_load(block) == {"relabel_configs": fleetlib.shard_relabel(2, 0)}
