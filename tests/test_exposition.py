"""Exposition: what is served, the render cache, formats."""

from __future__ import annotations

import gzip
import time

from prometheus_client.parser import text_string_to_metric_families
from support import FakeClock

from hostagent import __version__
from hostagent.agent import Agent, Runner
from hostagent.collectors.base import BaseCollector, MetricSpec, NotAvailable
from hostagent.exposition import Exposition, build_registry

VALUE = MetricSpec("host_test_value", "gauge", "A test value.", ("device",))
BYTES = MetricSpec("host_test_bytes_total", "counter", "Test bytes.", ("device",), "bytes")


class Devices(BaseCollector):
    name = "devices"

    def __init__(self, devices):
        super().__init__()
        self.devices = devices

    def sample(self):
        return tuple(self.devices)

    def families(self, sample):
        value, total = VALUE.family(), BYTES.family()
        for i, dev in enumerate(sample):
            value.add_metric([dev], float(i))
            total.add_metric([dev], 1024.0 * (i + 1))
        yield value
        yield total


def parse(body: bytes):
    return {(s.name, tuple(sorted(s.labels.items()))): s.value for fam in text_string_to_metric_families(body.decode()) for s in fam.samples}


def make(devices=("sda", "sdb"), interval=10.0):
    clock = FakeClock(500.0)
    col = Devices(list(devices))
    agent = Agent([Runner("devices", col, interval, clock=clock, wall=lambda: 1700000000.0)], clock=clock)
    return clock, col, agent, Exposition(agent, build_registry(agent))


def test_serves_snapshot_and_agent_metrics():
    clock, col, agent, expo = make()
    agent.run_once()
    body, ctype = expo.body()
    assert ctype.startswith("text/plain; version=0.0.4")
    got = parse(body)
    assert got[("host_test_value", (("device", "sda"),))] == 0.0
    assert got[("host_test_value", (("device", "sdb"),))] == 1.0
    assert got[("host_test_bytes_total", (("device", "sdb"),))] == 2048.0
    assert got[("hostagent_collector_up", (("collector", "devices"),))] == 1.0
    assert got[("hostagent_collector_errors_total", (("collector", "devices"),))] == 0.0
    assert got[("hostagent_collector_runs_total", (("collector", "devices"),))] == 1.0
    assert got[("hostagent_collector_last_success_timestamp_seconds", (("collector", "devices"),))] == 1700000000.0
    assert got[("hostagent_collector_interval_seconds", (("collector", "devices"),))] == 10.0
    assert ("hostagent_collector_duration_seconds", (("collector", "devices"),)) in got
    build = [k for k in got if k[0] == "hostagent_build_info"]
    assert len(build) == 1 and ("version", __version__) in build[0][1]
    assert any(k[0] == "process_resident_memory_bytes" for k in got)
    assert any(k[0] == "python_info" for k in got)
    assert b"# HELP host_test_value A test value." in body


def test_vanished_device_disappears_from_exposition():
    clock, col, agent, expo = make()
    agent.run_once()
    assert ("host_test_value", (("device", "sdb"),)) in parse(expo.body()[0])
    col.devices = ["sda"]
    agent.run_once()
    got = parse(expo.body()[0])
    assert ("host_test_value", (("device", "sdb"),)) not in got
    assert ("host_test_bytes_total", (("device", "sdb"),)) not in got


def test_stale_snapshot_is_not_served_and_up_is_zero():
    clock, col, agent, expo = make(interval=10.0)
    agent.run_once()
    clock.now += 30.5
    got = parse(expo.body()[0])
    assert not any(k[0] == "host_test_value" for k in got)
    assert got[("hostagent_collector_up", (("collector", "devices"),))] == 0.0


def test_render_is_cached_until_change_or_max_age():
    clock, col, agent, expo = make()
    agent.run_once()
    first = expo.body()[0]
    assert expo.body()[0] is first and expo.renders == 1
    expo.body(compressed=True)  # a variant nobody asked for yet: one refresh
    assert expo.renders == 2
    expo.body(compressed=True)
    expo.body()
    assert expo.renders == 2
    clock.now += expo.max_age - 0.1
    expo.body()
    assert expo.renders == 2
    agent.run_once()  # a new snapshot: render again
    expo.body()
    assert expo.renders == 3
    clock.now += expo.max_age  # the agent's own process metrics age out after max_age
    expo.body()
    assert expo.renders == 4


def test_a_snapshot_is_rendered_once_and_reused():
    clock, col, agent, expo = make()
    agent.run_once()
    expo.body()
    part = expo._parts[("devices", False)][1]
    clock.now += expo.max_age + 1  # a refresh for the dynamic part only
    body = expo.body()[0]
    assert expo._parts[("devices", False)][1] is part and part in body
    agent.run_once()
    expo.body()
    assert expo._parts[("devices", False)][1] is not part


def test_renderer_thread_refreshes_on_change_and_staleness_so_scrapes_never_render():
    col = Devices(["sda"])
    agent = Agent([Runner("devices", col, 0.3)])
    expo = Exposition(agent, build_registry(agent))
    agent.run_once()
    expo.start()
    try:
        expo.body()
        col.devices = ["sdb"]
        agent.run_once()  # notifies the renderer
        deadline = time.monotonic() + 2
        while b'device="sdb"' not in expo.body()[0] and time.monotonic() < deadline:
            time.sleep(0.01)
        renders = expo.renders
        for _ in range(50):
            body = expo.body()[0]
        assert b'device="sdb"' in body and b'device="sda"' not in body
        assert expo.renders == renders  # fifty scrapes, no render among them
        time.sleep(1.0)  # no more runs: the snapshot goes stale after 0.9 s
        assert b"host_test_value" not in expo.body()[0]
        assert b'hostagent_collector_up{collector="devices"} 0.0' in expo.body()[0]
    finally:
        expo.stop()


def test_stale_snapshot_does_not_make_every_refresh_expire_at_once():
    clock, col, agent, expo = make(interval=1.0)
    agent.run_once()
    clock.now += 10  # long stale: its past deadline must not count
    expo.body()
    assert expo._published.valid_until == clock.now + expo.max_age


def test_cache_expires_when_a_snapshot_goes_stale():
    clock, col, agent, expo = make(interval=0.1)
    agent.run_once()
    expo.body()
    clock.now += 0.31  # stale long before max_age passes
    assert not any(k[0] == "host_test_value" for k in parse(expo.body()[0]))


def test_gzip_and_openmetrics_variants():
    clock, col, agent, expo = make()
    agent.run_once()
    zipped, ctype = expo.body(compressed=True)
    plain = expo.body()[0]  # made in the same refresh as the gzip variant
    assert gzip.decompress(zipped) == plain and ctype.startswith("text/plain")
    zipped_om = expo.body(openmetrics=True, compressed=True)[0]
    om, om_type = expo.body(openmetrics=True)  # made in the same refresh
    assert om_type.startswith("application/openmetrics-text")
    assert om.endswith(b"# EOF\n") and om.count(b"# EOF") == 1
    assert b"host_test_bytes_total{device=\"sda\"} 1024.0" in om
    assert gzip.decompress(zipped_om) == om


def test_disabled_collector_is_reported_but_not_served():
    clock, col, agent, expo = make()
    agent.run_once()
    agent.disable("devices")
    got = parse(expo.body()[0])
    assert not any(k[0] == "host_test_value" for k in got)
    assert got[("hostagent_collector_enabled", (("collector", "devices"),))] == 0.0
    assert got[("hostagent_collector_up", (("collector", "devices"),))] == 0.0


def test_only_variants_someone_asked_for_are_rendered():
    clock, col, agent, expo = make()
    agent.run_once()
    expo.body(openmetrics=True, compressed=True)  # what Prometheus asks for
    agent.run_once()
    expo.body(openmetrics=True, compressed=True)
    assert set(expo._published.bodies) == {(True, False), (True, True)}  # no plain text made
    expo.body()  # a curl
    assert set(expo._published.bodies) == {(True, False), (True, True), (False, False)}


def test_a_family_that_cannot_be_rendered_leaves_the_rest_served(caplog):
    class Broken(Devices):
        name = "broken"

        def families(self, sample):
            bad = VALUE.family()
            bad.add_metric([None], 1.0)  # not a string label value
            yield bad

    clock = FakeClock(500.0)
    agent = Agent([Runner("devices", Devices(["sda"]), 10, clock=clock), Runner("broken", Broken([]), 10, clock=clock)], clock=clock)
    expo = Exposition(agent, build_registry(agent))
    agent.run_once()
    body = expo.body()[0]
    assert b'host_test_value{device="sda"}' in body and b"hostagent_collector_up" in body
    assert expo.body(openmetrics=True)[0].endswith(b"# EOF\n")
    assert "collector broken produced metrics that cannot be rendered" in caplog.text


def test_renderer_thread_survives_a_failed_refresh(monkeypatch):
    col = Devices(["sda"])
    agent = Agent([Runner("devices", col, 10)])
    expo = Exposition(agent, build_registry(agent))
    agent.run_once()
    expo.start()
    try:
        real = expo._assemble
        monkeypatch.setattr(expo, "_assemble", lambda *a: (_ for _ in ()).throw(RuntimeError("boom")))
        agent.run_once()
        time.sleep(0.2)
        assert expo._thread.is_alive()
        monkeypatch.setattr(expo, "_assemble", real)
        col.devices = ["sdz"]
        agent.run_once()
        deadline = time.monotonic() + 2
        while b"sdz" not in expo._published.bodies.get((True, True), b"") and time.monotonic() < deadline:
            time.sleep(0.02)
        assert b"sdz" in gzip.decompress(expo._published.bodies[(True, True)])
    finally:
        expo.stop()


class Absent(Devices):
    """Raises NotAvailable while ``reason`` is set."""

    name = "absent"

    def __init__(self, devices, reason=""):
        super().__init__(devices)
        self.reason = reason

    def sample(self):
        if self.reason:
            raise NotAvailable(self.reason)
        return super().sample()


def test_not_available_collector_serves_nothing_and_says_so_in_metrics():
    clock = FakeClock(500.0)
    absent = Absent(["md0"], reason="no /proc/mdstat")
    agent = Agent([Runner("absent", absent, 10, clock=clock, wall=lambda: 1700000000.0)], clock=clock)
    expo = Exposition(agent, build_registry(agent))
    agent.run_once()
    got = parse(expo.body()[0])
    me = (("collector", "absent"),)
    assert not any(k[0].startswith("host_") for k in got)
    assert got[("hostagent_collector_available", me)] == 0.0
    assert ("hostagent_collector_up", me) not in got
    assert ("hostagent_collector_last_success_timestamp_seconds", me) not in got
    assert ("hostagent_collector_snapshot_timestamp_seconds", me) not in got
    assert got[("hostagent_collector_errors_total", me)] == 0.0
    assert got[("hostagent_collector_runs_total", me)] == 1.0
    assert got[("hostagent_collector_enabled", me)] == 1.0
    # The source appears: served at the next run, up and available.
    absent.reason = ""
    agent.run_once()
    got = parse(expo.body()[0])
    assert got[("host_test_value", (("device", "md0"),))] == 0.0
    assert got[("hostagent_collector_available", me)] == 1.0 and got[("hostagent_collector_up", me)] == 1.0
    # ... and goes away again: its series go at once, not when stale.
    absent.reason = "no /proc/mdstat"
    agent.run_once()
    got = parse(expo.body()[0])
    assert not any(k[0].startswith("host_") for k in got)
    assert ("hostagent_collector_up", me) not in got and got[("hostagent_collector_errors_total", me)] == 0.0


def test_snapshot_timestamp_is_the_wall_time_of_the_data_served():
    clock = FakeClock(500.0)
    walls = iter([1700000000.0, 1700000000.25, 1700000005.0, 1700000005.25])
    agent = Agent([Runner("devices", Devices(["sda"]), 5, clock=clock, wall=lambda: next(walls))], clock=clock)
    expo = Exposition(agent, build_registry(agent))
    me = (("collector", "devices"),)
    agent.run_once()
    got = parse(expo.body()[0])
    # Read when the run started; last success is when it ended.
    assert got[("hostagent_collector_snapshot_timestamp_seconds", me)] == 1700000000.0
    assert got[("hostagent_collector_last_success_timestamp_seconds", me)] == 1700000000.25
    clock.now += 5
    agent.run_once()
    assert parse(expo.body()[0])[("hostagent_collector_snapshot_timestamp_seconds", me)] == 1700000005.0
    clock.now += 16  # stale: nothing served, so no time of it either
    assert ("hostagent_collector_snapshot_timestamp_seconds", me) not in parse(expo.body()[0])


def test_published_bytes_from_before_a_backward_clock_step_are_not_reused():
    clock, col, agent, expo = make()
    agent.run_once()
    first = expo.body()[0]
    clock.now -= 100
    assert expo.body()[0] is not first and expo.renders == 2
    # The snapshot taken "later" than now is not served until the next run.
    assert b"host_test_value{" not in expo.body()[0]
    agent.run_once()
    assert b'host_test_value{device="sda"}' in expo.body()[0]


def test_renderer_makes_one_refresh_for_the_collectors_of_one_tick():
    runners = [Runner(f"d{i}", Devices([f"sd{i}"]), 10) for i in range(4)]
    agent = Agent(runners)
    expo = Exposition(agent, build_registry(agent), settle=0.5)
    agent.run_once()
    expo.start()
    try:
        before = expo.renders
        for runner in runners:  # four collectors finishing within the settle time
            runner.run_once()
        deadline = time.monotonic() + 5
        while expo.renders == before and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.6)  # longer than the settle time: no second refresh follows
        assert expo.renders == before + 1
    finally:
        expo.stop()
