"""Scheduler: intervals, overrun, staleness, failure counting, shutdown."""

from __future__ import annotations

import logging
import threading
import time
from typing import List


from support import FakeClock

from hostagent.agent import Agent, Runner
from hostagent.collectors.base import BaseCollector, MetricSpec, NotAvailable

VALUE = MetricSpec("host_test_value", "gauge", "A test value.", ("device",))


class Scripted(BaseCollector):
    """Returns the devices it is told to, or raises when told to."""

    name = "scripted"

    def __init__(self) -> None:
        super().__init__()
        self.devices: List[str] = ["a"]
        self.fail = False
        self.absent = ""  # a reason: the source is not on this host
        self.calls = 0

    def sample(self):
        self.calls += 1
        if self.absent:
            raise NotAvailable(self.absent)
        if self.fail:
            raise OSError("device gone")
        return tuple(self.devices)

    def families(self, sample):
        fam = VALUE.family()
        for dev in sample:
            fam.add_metric([dev], 1.0)
        yield fam


def test_success_swaps_snapshot_and_records_status():
    clock = FakeClock()
    col = Scripted()
    runner = Runner("scripted", col, 10, clock=clock, wall=lambda: 1234.5)
    assert runner.run_once() is True
    assert runner.snapshot is not None and runner.snapshot.taken_at == 1000.0
    assert [s.labels for s in runner.snapshot.families[0].samples] == [{"device": "a"}]
    assert runner.status.runs_total == 1 and runner.status.errors_total == 0
    assert runner.status.last_success_wall == 1234.5
    assert runner.is_up(clock())


def test_vanished_device_is_gone_after_next_run():
    clock = FakeClock()
    col = Scripted()
    col.devices = ["a", "b"]
    runner = Runner("scripted", col, 10, clock=clock)
    runner.run_once()
    col.devices = ["a"]
    runner.run_once()
    assert [s.labels["device"] for s in runner.snapshot.families[0].samples] == ["a"]


def test_failures_count_and_up_drops_after_three_then_recovers(caplog):
    caplog.set_level(logging.INFO, logger="hostagent.agent")
    clock = FakeClock()
    col = Scripted()
    runner = Runner("scripted", col, 10, clock=clock)
    runner.run_once()
    col.fail = True
    ups = []
    for _ in range(4):
        assert runner.run_once() is False
        ups.append(runner.is_up(clock()))
    assert ups == [True, True, False, False]
    assert runner.status.errors_total == 4 and runner.status.consecutive_failures == 4
    assert runner.status.last_error == "device gone"
    # The last good snapshot stays until it is stale, so other readers see data.
    assert runner.fresh_snapshot(clock()) is not None
    col.fail = False
    assert runner.run_once() is True
    assert runner.is_up(clock()) and runner.status.consecutive_failures == 0 and runner.status.errors_total == 4
    messages = [r.getMessage() for r in caplog.records]
    # Once per change of state: first failure, down, recovered; not per run.
    assert messages == [
        "collector scripted failed: device gone",
        "collector scripted is down after 3 consecutive failures",
        "collector scripted recovered after 4 failed runs",
    ]


def test_snapshot_older_than_three_intervals_is_not_served():
    clock = FakeClock()
    runner = Runner("scripted", Scripted(), 10, clock=clock)
    runner.run_once()
    clock.now += 30.0
    assert runner.fresh_snapshot(clock()) is not None and runner.is_up(clock())
    clock.now += 0.001
    assert runner.fresh_snapshot(clock()) is None
    assert not runner.is_up(clock())
    assert runner.stale_deadline() == 1030.0


def test_schedule_keeps_rhythm_without_drift():
    starts: List[float] = []

    class Timed(Scripted):
        def sample(self):
            starts.append(time.monotonic())
            time.sleep(0.01)  # work inside the run must not push later runs
            return ("a",)

    runner = Runner("timed", Timed(), 0.1)
    runner.start()
    time.sleep(1.05)
    runner.request_stop()
    assert runner.join(2)
    assert 9 <= len(starts) <= 12, starts
    # Run k starts at anchor + k * interval: offsets do not accumulate. A
    # drifting schedule would start every late run 10 ms later than the one
    # before (70+ ms by the eighth); a late wake-up on a busy machine delays
    # one run, not the ones after it. The anchor is the earliest-running
    # tick, so a first run that started late does not shift the rest.
    anchor = min(s - k * 0.1 for k, s in enumerate(starts))
    offsets = [s - (anchor + k * 0.1) for k, s in enumerate(starts)]
    assert min(offsets[-3:]) < 0.05, offsets
    assert runner.status.skipped_total == 0


def test_overrun_skips_ticks_instead_of_piling_up():
    running = []

    class Slow(Scripted):
        def sample(self):
            running.append(1)
            assert len(running) == 1, "runs overlap"
            time.sleep(0.25)
            running.pop()
            return ("a",)

    runner = Runner("slow", Slow(), 0.1)
    runner.start()
    time.sleep(1.0)
    runner.request_stop()
    assert runner.join(2)
    runs = runner.status.runs_total
    assert 3 <= runs <= 5, runs
    # Each 0.25 s run misses two 0.1 s ticks; they are counted, not queued.
    assert runner.status.skipped_total >= 2 * (runs - 1)


def test_stop_returns_stuck_collectors_within_timeout():
    release = threading.Event()

    class Hung(Scripted):
        def sample(self):
            release.wait(30)
            return ("a",)

    agent = Agent([Runner("hung", Hung(), 0.1), Runner("ok", Scripted(), 0.1)])
    agent.start()
    time.sleep(0.2)
    started = time.monotonic()
    stuck = agent.stop(timeout=0.5)
    took = time.monotonic() - started
    release.set()
    assert stuck == ["hung"]
    assert took < 1.5


def test_hung_collector_goes_stale_while_others_continue():
    release = threading.Event()

    class HangsSecondTime(Scripted):
        def sample(self):
            self.calls += 1
            if self.calls > 1:
                release.wait(30)
            return ("a",)

    hung, ok = HangsSecondTime(), Scripted()
    agent = Agent([Runner("hung", hung, 0.1), Runner("ok", ok, 0.1)])
    agent.start()
    try:
        time.sleep(0.6)
        now = agent.clock()
        by_name = {r.name: r for r in agent.runners}
        assert by_name["hung"].fresh_snapshot(now) is None and not by_name["hung"].is_up(now)
        assert by_name["hung"].running_for(now) > 0.3
        assert by_name["ok"].is_up(now) and ok.calls >= 5
    finally:
        release.set()
        agent.stop(1)


def test_ready_after_every_collector_reported_once():
    broken = Scripted()
    broken.fail = True
    agent = Agent([Runner("a", Scripted(), 10), Runner("b", broken, 10), Runner("c", Scripted(), 10)])
    assert agent.not_ready_reason() == "waiting for first run of a, b, c"
    agent.runners[0].run_once()
    agent.runners[1].run_once()
    # A collector that ran and failed is named as failing, with its error.
    assert agent.not_ready_reason() == "failing: b (device gone); waiting for first run of c"
    agent.runners[2].run_once()
    broken.fail = False
    agent.runners[1].run_once()
    assert agent.not_ready_reason() == ""


def test_version_changes_on_every_run_and_disable_drops_snapshot():
    agent = Agent([Runner("a", Scripted(), 10)])
    v0 = agent.version
    agent.run_once()
    assert agent.version == v0 + 1
    agent.disable("a")
    runner = agent.runners[0]
    assert runner.snapshot is None and not runner.status.enabled
    assert agent.active() == [] and agent.not_ready_reason() == ""
    assert agent.version == v0 + 2


def test_run_once_names_failures():
    bad = Scripted()
    bad.fail = True
    agent = Agent([Runner("good", Scripted(), 10), Runner("bad", bad, 10)])
    assert agent.run_once() == ["bad"]


def test_check_health_logs_staleness_once_per_change(caplog):
    caplog.set_level(logging.INFO, logger="hostagent.agent")
    clock = FakeClock()
    agent = Agent([Runner("a", Scripted(), 10, clock=clock)], clock=clock)
    agent.run_once()
    clock.now += 31
    agent.check_health()
    agent.check_health()
    agent.runners[0].run_once()
    agent.check_health()
    msgs = [r.getMessage() for r in caplog.records if "stale" in r.getMessage() or "fresh" in r.getMessage()]
    assert msgs == [
        "collector a is stale: no successful run lately; its metrics are not served",
        "collector a is serving fresh data again",
    ]


class Slow(Scripted):
    """Moves the fake clock forward by ``took`` seconds on every run."""

    def __init__(self, clock: FakeClock, took: float) -> None:
        super().__init__()
        self.clock = clock
        self.took = took

    def sample(self):
        self.clock.now += self.took
        return super().sample()


def test_stale_reason_names_failures_and_overruns():
    clock = FakeClock()
    failing = Scripted()
    runner = Runner("a", failing, 10, clock=clock)
    runner.run_once()
    failing.fail = True
    runner.run_once()
    runner.run_once()
    assert runner.stale_reason(clock.now) == "the last 2 runs failed (device gone)"

    slow_clock = FakeClock()
    slow = Runner("b", Slow(slow_clock, 0.5), 0.2, clock=slow_clock)
    slow.run_once()
    assert slow.stale_reason(slow_clock.now) == (
        "no successful run lately; the last run took 0.50s, longer than the 0.2s interval"
    )
    slow._running_since = slow_clock.now - 0.4
    assert slow.stale_reason(slow_clock.now).startswith("a run has been going for 0.4s; the last run took 0.50s")


# -- a source that is not on this host ----------------------------------------


def test_not_available_is_no_failure_and_is_said_once(caplog):
    caplog.set_level(logging.INFO, logger="hostagent.agent")
    clock = FakeClock()
    col = Scripted()
    col.absent = "no /proc/pressure (kernel without PSI)"
    runner = Runner("scripted", col, 10, clock=clock)
    agent = Agent([runner, Runner("other", Scripted(), 10, clock=clock)], clock=clock)
    versions = [agent.version]
    for _ in range(3):
        assert runner.run_once() is True  # not a failure: --once exits 0
        versions.append(agent.version)
    assert runner.snapshot is None
    st = runner.status
    assert (st.runs_total, st.errors_total, st.consecutive_failures, st.last_error) == (3, 0, 0, "")
    assert st.not_available == "no /proc/pressure (kernel without PSI)"
    assert runner.state(clock()) == ("not-available", "not available on this host: no /proc/pressure (kernel without PSI)")
    # Only the first run in a row is news worth a render.
    assert versions == [0, 1, 1, 1]
    # It holds no readiness back; the other collector still does until it runs.
    assert agent.not_ready_reason() == "waiting for first run of other"
    agent.runners[1].run_once()
    assert agent.not_ready_reason() == ""
    assert agent.run_once() == []
    assert [r.getMessage() for r in caplog.records] == [
        "collector scripted is not available on this host: no /proc/pressure (kernel without PSI); checking again every 10s"
    ]


def test_source_appearing_later_is_picked_up_and_going_away_is_handled(caplog):
    caplog.set_level(logging.INFO, logger="hostagent.agent")
    clock = FakeClock()
    col = Scripted()
    col.absent = "no conntrack module loaded"
    runner = Runner("scripted", col, 10, clock=clock)
    runner.run_once()
    col.absent = ""  # modprobe nf_conntrack
    assert runner.run_once() is True
    assert runner.is_up(clock()) and runner.status.not_available == "" and runner.snapshot is not None
    col.absent = "no conntrack module loaded"  # rmmod
    runner.run_once()
    assert runner.snapshot is None and runner.fresh_snapshot(clock()) is None
    assert runner.status.errors_total == 0
    assert [r.getMessage() for r in caplog.records] == [
        "collector scripted is not available on this host: no conntrack module loaded; checking again every 10s",
        "collector scripted is available on this host now",
        "collector scripted is not available on this host: no conntrack module loaded; checking again every 10s",
    ]


def test_a_source_that_exists_but_cannot_be_read_stays_a_failure():
    col = Scripted()
    col.fail = True
    runner = Runner("scripted", col, 10, clock=FakeClock())
    runner.run_once()
    col.fail, col.absent = False, "gone"
    runner.run_once()  # the failure streak ends: absent is not failing
    assert runner.status.consecutive_failures == 0 and runner.status.errors_total == 1
    col.absent = ""
    col.fail = True
    assert runner.run_once() is False and runner.status.not_available == ""


# -- states, readiness and what /metrics serves agree ---------------------------


def test_state_names_every_case_and_ready_agrees_with_up():
    clock = FakeClock()
    col = Scripted()
    runner = Runner("a", col, 10, clock=clock)
    agent = Agent([runner], clock=clock)
    assert runner.state(clock()) == ("starting", "waiting for its first run")
    runner.run_once()
    assert runner.state(clock()) == ("running", "running") and agent.not_ready_reason() == ""
    # Stale without failures (a hung run): not up, so not ready either.
    clock.now += 31
    assert not runner.is_up(clock())
    assert runner.state(clock()) == ("stale", "stale: no successful run lately")
    assert agent.not_ready_reason() == "stale: a (no successful run lately)"
    runner.run_once()
    col.fail = True
    for _ in range(3):
        runner.run_once()
    # Down after three failures while the old snapshot is still fresh.
    assert runner.fresh_snapshot(clock()) is not None and not runner.is_up(clock())
    assert runner.state(clock()) == ("failing", "failing: device gone")
    assert agent.not_ready_reason() == "failing: a (device gone)"
    agent.disable("a")
    assert runner.state(clock()) == ("disabled", "disabled by self-monitoring")
    assert agent.not_ready_reason() == ""


# -- the clock -------------------------------------------------------------------


def test_snapshot_from_before_a_backward_clock_step_is_not_served():
    clock = FakeClock()
    runner = Runner("a", Scripted(), 10, clock=clock)
    runner.run_once()
    clock.now -= 0.5
    assert runner.fresh_snapshot(clock()) is None and not runner.is_up(clock())
    assert runner.stale_reason(clock()) == "the monotonic clock stepped back since it was taken"
    runner.run_once()
    assert runner.is_up(clock())


def test_scheduler_recovers_when_the_clock_jumps_and_comes_back():
    """A monotonic clock that leaps forward an hour, then steps back: every
    collector runs again within an interval, and ready agrees with up."""
    clock = FakeClock()
    walls = []
    runners = [Runner(name, Scripted(), 0.1, clock=clock, wall=lambda: walls.append(1) or 1.0) for name in ("a", "b")]
    agent = Agent(runners, clock=clock)

    def advance() -> None:
        # The fake clock follows real time in small steps so schedules move.
        clock.now += 0.02

    agent.start()
    try:
        def all_up() -> bool:
            advance()
            return all(r.is_up(clock()) for r in runners) and agent.not_ready_reason() == ""

        wait_for(all_up, "every collector up")
        clock.now += 3600.0  # forward: every snapshot is stale at once
        wait_for(all_up, "every collector up after the jump forward")
        runs = [r.status.runs_total for r in runners]
        clock.now -= 3600.0  # and back
        wait_for(all_up, "every collector up after the clock came back")
        assert all(r.status.runs_total > n for r, n in zip(runners, runs))
        # and they keep running on their schedule afterwards
        runs = [r.status.runs_total for r in runners]
        wait_for(lambda: advance() or all(r.status.runs_total >= n + 3 for r, n in zip(runners, runs)), "three more runs each")
    finally:
        agent.stop(2)


def wait_for(check, what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.01)
    raise AssertionError(f"timed out waiting for {what}")


def test_runners_share_the_agent_anchor(monkeypatch):
    anchors = []
    monkeypatch.setattr(Runner, "start", lambda self, anchor=None: anchors.append(anchor))
    clock = FakeClock()
    agent = Agent([Runner(n, Scripted(), i, clock=clock) for n, i in (("a", 5), ("b", 15), ("c", 30))], clock=clock)
    agent.start()
    assert anchors == [1000.0] * 3


def test_first_run_is_at_the_anchor_and_later_ones_on_its_grid():
    clock = FakeClock()
    starts = []

    class Records(Scripted):
        def sample(self):
            starts.append(clock())
            clock.now += 0.3  # each run takes 0.3 s of the fake clock
            return super().sample()

    runner = Runner("a", Records(), 1.0, clock=clock)
    runner.start(anchor=999.0)
    try:
        def ticks() -> bool:
            clock.now += 0.01
            return len(starts) >= 3

        wait_for(ticks, "three runs")
    finally:
        runner.request_stop()
        runner.join(1)
    # The first run is due at once (the anchor has passed); the next ones are
    # on the anchor's grid (1000, 1001, ...), whatever the runs took.
    assert starts[0] == 1000.0
    assert [round(s - 999.0) for s in starts[1:3]] == [2, 3]
    assert all(abs(s - round(s)) < 0.05 for s in starts[1:3])


def test_default_intervals_keep_rate_data_within_a_third_of_the_shipped_scrape_interval():
    """With the shipped scrape interval, cpu, memory, network and diskio data
    is at most a third of it old, and read at a divisor of it so successive
    scrapes see data exactly one scrape interval apart."""
    import yaml
    from support import REPO

    from hostagent.collectors import load_all

    scrape = yaml.safe_load((REPO / "prometheus" / "prometheus.yml").read_text())["global"]["scrape_interval"]
    assert scrape.endswith("s")
    scrape_seconds = float(scrape[:-1])
    registry = load_all()
    for name in ("cpu", "memory", "network", "diskio"):
        interval = registry[name].default_interval
        assert interval <= scrape_seconds / 3, (name, interval, scrape)
        assert (scrape_seconds / interval).is_integer(), (name, interval, scrape)
    smallest = min(cls.default_interval for cls in registry.values())
    for name, cls in registry.items():
        # Every default interval is a multiple of the smallest: collectors due
        # at the same tick run together and are rendered together.
        assert (cls.default_interval / smallest).is_integer(), (name, cls.default_interval, smallest)
