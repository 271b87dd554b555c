"""Tests of the cpu collector: /proc/stat parsing, usage ratios, families."""

from __future__ import annotations

from pathlib import Path

import pytest
from support import assert_well_formed, samples_of

from hostagent.collectors.base import Paths
from hostagent.collectors.cpu import MODES, CpuCollector, CpuSample, ProcStat, busy_ratio, parse_loadavg, parse_proc_stat

STAT = """\
cpu  300 10 100 1500 50 0 40 0 20 0
cpu0 100 10 50 800 30 0 10 0 20 0
cpu2 200 0 50 700 20 0 30 0 0 0
intr 177976 0 0 13 0
ctxt 357645
btime 1795375066
processes 6822
procs_running 2
procs_blocked 0
softirq 122330 0 14785 4
"""


def write_procfs(root: Path, stat: str, loadavg: str = "0.50 0.25 0.10 1/89 6822\n") -> Paths:
    root.mkdir(exist_ok=True)
    (root / "stat").write_text(stat)
    (root / "loadavg").write_text(loadavg)
    return Paths(procfs=str(root))


def test_parse_proc_stat_converts_ticks_and_keeps_kernel_cpu_numbers():
    stat = parse_proc_stat(STAT, hz=100)
    assert stat.total == (3.0, 0.1, 1.0, 15.0, 0.5, 0.0, 0.4, 0.0)
    # cpu1 is offline: the labels are the kernel's numbers, not positions.
    assert [cpu for cpu, _ in stat.per_cpu] == ["0", "2"]
    assert stat.per_cpu[1][1] == (2.0, 0.0, 0.5, 7.0, 0.2, 0.0, 0.3, 0.0)
    assert stat.context_switches == 357645
    assert stat.interrupts == 177976
    assert (stat.forks, stat.procs_running, stat.procs_blocked) == (6822, 2, 0)


def test_parse_proc_stat_old_kernel_without_steal_column():
    stat = parse_proc_stat("cpu  1 2 3 4 5 6 7\ncpu0 1 2 3 4 5 6 7\nintr 9\nctxt 8\n", hz=1)
    assert stat.total == (1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 0.0)
    # No processes/procs_* lines: unknown, and their families are left out.
    assert (stat.forks, stat.procs_running, stat.procs_blocked) == (None, None, None)
    sample = CpuSample(stat=stat, usage=0.0, core_usage=(), load=(0.0, 0.0, 0.0))
    names = {f.name for f in CpuCollector().families(sample)}
    assert not names & {"host_forks", "host_procs_running", "host_procs_blocked"}


def test_parse_proc_stat_rejects_other_text():
    with pytest.raises(ValueError, match="missing the cpu, ctxt or intr line"):
        parse_proc_stat("MemTotal: 1024 kB\n")


def test_parse_loadavg():
    assert parse_loadavg("0.07 0.13 0.09 1/89 6822\n") == (0.07, 0.13, 0.09)
    with pytest.raises(ValueError, match="loadavg"):
        parse_loadavg("")


def times(user=0.0, system=0.0, idle=0.0, iowait=0.0, steal=0.0):
    return (user, 0.0, system, idle, iowait, 0.0, 0.0, steal)


def test_busy_ratio_first_run_uses_counters_since_boot():
    # busy = user + system = 25 of 100; idle, iowait and steal are not busy.
    assert busy_ratio(None, times(user=20, system=5, idle=60, iowait=10, steal=5)) == pytest.approx(0.25)


def test_busy_ratio_between_two_readings():
    prev = times(user=20, idle=80)
    cur = times(user=50, system=10, idle=120, iowait=20)
    # deltas: user 30, system 10, idle 40, iowait 20 -> busy 40 of 100
    assert busy_ratio(prev, cur) == pytest.approx(0.4)


def test_busy_ratio_iowait_going_backwards_is_clamped():
    prev = times(user=10, idle=10, iowait=50)
    cur = times(user=20, idle=20, iowait=40)
    # iowait delta -10 is taken as 0: busy 10 of 20.
    assert busy_ratio(prev, cur) == pytest.approx(0.5)


def test_busy_ratio_without_elapsed_ticks_falls_back_to_since_boot():
    same = times(user=25, idle=75)
    assert busy_ratio(same, same) == pytest.approx(0.25)
    assert busy_ratio(None, times()) == 0.0


def test_sample_on_fixture_tree_first_then_delta(tmp_path):
    collector = CpuCollector(paths=write_procfs(tmp_path, STAT))
    first = collector.sample()
    assert first.load == (0.5, 0.25, 0.1)
    # Since boot: busy = 3 + 0.1 + 1 + 0.4 = 4.5 of 20.0
    assert first.usage == pytest.approx(4.5 / 20.0)
    assert dict(first.core_usage)["0"] == pytest.approx((1.0 + 0.1 + 0.5 + 0.1) / (1.0 + 0.1 + 0.5 + 8.0 + 0.3 + 0.1))

    # One second later: cpu0 fully busy in user, cpu2 idle.
    later = STAT.replace("cpu  300 10 100 1500", "cpu  400 10 100 1600").replace("cpu0 100 10 50 800", "cpu0 200 10 50 800")
    later = later.replace("cpu2 200 0 50 700", "cpu2 200 0 50 800")
    write_procfs(tmp_path, later)
    second = collector.sample()
    assert second.usage == pytest.approx(0.5)
    assert dict(second.core_usage) == {"0": pytest.approx(1.0), "2": pytest.approx(0.0)}


def test_sample_core_coming_online_uses_its_counters_since_boot(tmp_path):
    collector = CpuCollector(paths=write_procfs(tmp_path, STAT))
    collector.sample()
    write_procfs(tmp_path, STAT.replace("cpu2 ", "cpu1 50 0 0 50 0 0 0 0 0 0\ncpu2 "))
    cores = dict(collector.sample().core_usage)
    assert cores["1"] == pytest.approx(0.5)


def test_sample_missing_procfs_raises(tmp_path):
    with pytest.raises(FileNotFoundError):
        CpuCollector(paths=Paths(procfs=str(tmp_path / "nothing"))).sample()


def test_families_exact_output():
    stat = ProcStat(
        total=(3.0, 0.0, 1.0, 15.0, 0.5, 0.0, 0.0, 0.0),
        per_cpu=(("0", (1.0, 0.0, 0.5, 8.0, 0.3, 0.0, 0.0, 0.0)), ("1", (2.0, 0.0, 0.5, 7.0, 0.2, 0.0, 0.0, 0.25))),
        context_switches=1234,
        interrupts=567,
        forks=890,
        procs_running=3,
        procs_blocked=1,
    )
    sample = CpuSample(stat=stat, usage=0.25, core_usage=(("0", 0.2), ("1", 0.3)), load=(1.5, 1.0, 0.5))
    got = samples_of(CpuCollector().families(sample))
    expected = {
        ("host_cpu_usage_ratio", ()): 0.25,
        ("host_cpu_core_usage_ratio", (("cpu", "0"),)): 0.2,
        ("host_cpu_core_usage_ratio", (("cpu", "1"),)): 0.3,
        ("host_cpu_cores", ()): 2,
        ("host_load1", ()): 1.5,
        ("host_load5", ()): 1.0,
        ("host_load15", ()): 0.5,
        ("host_context_switches_total", ()): 1234,
        ("host_interrupts_total", ()): 567,
        ("host_forks_total", ()): 890,
        ("host_procs_running", ()): 3,
        ("host_procs_blocked", ()): 1,
    }
    for cpu, values in stat.per_cpu:
        for mode, value in zip(MODES, values):
            expected[("host_cpu_seconds_total", (("cpu", cpu), ("mode", mode)))] = value
    assert got == expected
    modes = {dict(labels)["mode"] for name, labels in got if name == "host_cpu_seconds_total"}
    assert modes == {"user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal"}


def test_real_machine_output_is_well_formed():
    collector = CpuCollector()
    collector.sample()
    got = samples_of(collector.collect())
    assert {name for name, _ in got} == {spec.name for spec in CpuCollector.metrics}
    assert_well_formed(CpuCollector, got)
    for (name, labels), value in got.items():
        if name.endswith("_ratio"):
            assert value <= 1, (name, labels, value)
    count = got[("host_cpu_cores", ())]
    assert count >= 1
    assert len([k for k in got if k[0] == "host_cpu_seconds_total"]) == count * len(MODES)
    assert len([k for k in got if k[0] == "host_cpu_core_usage_ratio"]) == count
