"""Tests of the processes collector: ranking, CPU deltas, user names, families."""

from __future__ import annotations

import math
import os
import pwd
import subprocess
import sys
import time
from collections import namedtuple
from types import SimpleNamespace

import psutil
import pytest
from support import samples_of

from hostagent.collectors.base import OptionError, Paths
from hostagent.collectors.processes import (
    ProcessesCollector,
    ProcessesSample,
    ProcessInfo,
    Seen,
    UserNames,
    count_states,
    cpu_ratio,
    parse_passwd,
    select_top,
)

CpuTimes = namedtuple("CpuTimes", "user system children_user children_system iowait")
Mem = namedtuple("Mem", "rss vms")
Uids = namedtuple("Uids", "real effective saved")
VM = namedtuple("VM", "total available")
MIB = 1 << 20


def test_count_states_always_has_common_states():
    assert count_states(["sleeping", "sleeping", "running", "tracing-stop"]) == (
        ("disk-sleep", 0),
        ("idle", 0),
        ("running", 1),
        ("sleeping", 2),
        ("stopped", 0),
        ("tracing-stop", 1),
        ("zombie", 0),
    )


def test_cpu_ratio():
    assert cpu_ratio(None, 5.0, 10.0) is None
    assert cpu_ratio(1.0, 5.0, 0.0) is None
    assert cpu_ratio(1.0, 5.0, 2.0) == 2.0  # two full cores
    assert cpu_ratio(5.0, 4.0, 2.0) == 0.0  # never negative


def seen(pid, cpu=None, rss=0):
    return Seen(pid, 0, cpu, rss)


def test_select_top_is_union_of_cpu_and_rss_rankings():
    rows = [seen(1, 0.9, 10), seen(2, 0.1, 500), seen(3, 0.5, 400), seen(4, None, 900), seen(5, 0.0, 0), seen(6, 0.05, 100)]
    # CPU top 2: 1, 3. RSS top 2: 4, 2. Ordered by pid.
    assert [r.pid for r in select_top(rows, 2)] == [1, 2, 3, 4]
    # Overlap between the rankings is exported once.
    assert [r.pid for r in select_top(rows, 1)] == [1, 4]


def test_select_top_skips_unmeasured_idle_and_empty_processes():
    rows = [seen(1, None, 0), seen(2, 0.0, 0), seen(3, None, 0)]
    assert select_top(rows, 5) == []


def test_select_top_ties_break_on_lower_pid():
    rows = [seen(pid, 0.5, 100) for pid in (30, 10, 20)]
    assert [r.pid for r in select_top(rows, 2)] == [10, 20]


def test_select_top_is_bounded():
    rows = [seen(pid, pid / 1000, 1000 - pid) for pid in range(1, 500)]
    top = select_top(rows, 5)
    assert [r.pid for r in top] == [1, 2, 3, 4, 5, 495, 496, 497, 498, 499]


def test_parse_passwd():
    text = "root:x:0:0:root:/root:/bin/bash\n# comment\nbroken line\nwww-data:x:33:33::/var/www:/usr/sbin/nologin\ntoor:x:0:0::/:/bin/sh\n"
    assert parse_passwd(text) == {0: "root", 33: "www-data"}


def test_usernames_on_the_host_use_nss():
    names = UserNames("/")
    names.begin_run()
    assert names(os.getuid()) == pwd.getpwuid(os.getuid()).pw_name
    unknown = 2_000_000_001
    assert names(unknown) == str(unknown)
    assert names(None) == ""


def test_usernames_from_a_host_root_follow_its_passwd(tmp_path):
    passwd = tmp_path / "etc" / "passwd"
    passwd.parent.mkdir()
    passwd.write_text("root:x:0:0::/root:/bin/sh\napp:x:1001:1001::/srv:/bin/sh\n")
    names = UserNames(str(tmp_path))
    names.begin_run()
    assert (names(0), names(1001), names(1002)) == ("root", "app", "1002")
    passwd.write_text("root:x:0:0::/root:/bin/sh\nnew:x:1002:1002::/srv:/bin/sh\n")
    os.utime(passwd, (time.time() + 10, time.time() + 10))
    names.begin_run()
    assert (names(1001), names(1002)) == ("1001", "new")


def test_top_n_option_bounds():
    check = ProcessesCollector.options["top_n"].check
    assert ProcessesCollector.options["top_n"].default == 20
    assert check(1) == 1 and check(100) == 100
    for bad in (0, 101, "5", 2.5):
        with pytest.raises(OptionError):
            check(bad)


def proc(pid, cpu, rss, *, status="sleeping", create=1000.0, uid=0, threads=1):
    """A process as process_iter(attrs=...) yields it; None mimics an unreadable field."""
    info = {
        "pid": pid,
        "status": status,
        "num_threads": threads,
        "cpu_times": None if cpu is None else CpuTimes(cpu, 0.0, 0.0, 0.0, 0.0),
        "memory_info": None if rss is None else Mem(rss, rss * 2),
        "create_time": create,
        "uids": None if uid is None else Uids(uid, uid, uid),
    }
    return SimpleNamespace(info=info)


@pytest.fixture
def fake_host(mocker, tmp_path):
    """Feed the collector a process table, a procfs with comm files and a clock the test sets."""
    table = []
    clock = [100.0]

    def process_iter(**kwargs):
        for p in table:
            comm = tmp_path / str(p.info["pid"]) / "comm"
            comm.parent.mkdir(exist_ok=True)
            comm.write_text(f"p{p.info['pid']}\n")
        return iter(list(table))

    mocker.patch("psutil.virtual_memory", return_value=VM(1000 * MIB, 500 * MIB))
    mocker.patch("psutil.process_iter", side_effect=process_iter)
    mocker.patch("hostagent.collectors.processes.monotonic", side_effect=lambda: clock[0])
    return SimpleNamespace(table=table, clock=clock, paths=Paths(procfs=str(tmp_path)), procfs=tmp_path)


def test_sample_counts_states_threads_and_tolerates_unreadable_fields(fake_host):
    fake_host.table[:] = [
        proc(1, 1.0, 10 * MIB, threads=3),
        proc(2, 0.0, 0, status="idle", threads=1),
        proc(3, None, None, status="zombie", uid=None, threads=None),  # fields denied
        proc(4, 2.0, 20 * MIB, status="running"),
    ]
    s = ProcessesCollector({"top_n": 5}, fake_host.paths).sample()
    assert dict(s.states) == {"running": 1, "sleeping": 1, "idle": 1, "zombie": 1, "disk-sleep": 0, "stopped": 0}
    assert s.threads == 5
    # First run: no CPU measurement, so ranking is by memory only, CPU shows 0.
    assert s.top == (
        ProcessInfo(1, "p1", "root", 0.0, 10 * MIB, 0.01),
        ProcessInfo(4, "p4", "root", 0.0, 20 * MIB, 0.02),
    )


def test_sample_measures_cpu_between_runs_per_process_identity(fake_host):
    collector = ProcessesCollector({"top_n": 1}, fake_host.paths)
    fake_host.table[:] = [proc(1, 10.0, MIB), proc(2, 10.0, 50 * MIB), proc(3, 10.0, 2 * MIB, create=500.0)]
    collector.sample()
    fake_host.clock[0] += 2.0
    # pid 1 used 3 s of CPU in 2 s; pid 2 nothing; pid 3 was replaced by a new process with the same pid.
    fake_host.table[:] = [proc(1, 13.0, MIB), proc(2, 10.0, 50 * MIB), proc(3, 99.0, 2 * MIB, create=1500.0)]
    s = collector.sample()
    assert [(p.pid, p.cpu_ratio) for p in s.top] == [(1, 1.5), (2, 0.0)]
    got = samples_of(collector.families(s))
    assert got[("host_process_cpu_usage_ratio", (("name", "p1"), ("pid", "1"), ("username", "root")))] == 1.5


def test_sample_forgets_processes_that_are_gone(fake_host):
    collector = ProcessesCollector(paths=fake_host.paths)
    fake_host.table[:] = [proc(pid, 1.0, MIB) for pid in range(1, 50)]
    collector.sample()
    fake_host.table[:] = [proc(7, 2.0, MIB)]
    fake_host.clock[0] += 1.0
    s = collector.sample()
    assert [p.pid for p in s.top] == [7]
    assert list(collector._prev_cpu) == [(7, 1000.0)]


def test_sample_drops_a_top_process_that_exits_before_its_name_is_read(fake_host, mocker):
    fake_host.table[:] = [proc(1, 1.0, MIB), proc(2, 1.0, 2 * MIB)]
    real_iter = psutil.process_iter.side_effect

    def exiting(**kwargs):
        table = real_iter(**kwargs)
        (fake_host.procfs / "2" / "comm").unlink()
        return table

    mocker.patch("psutil.process_iter", side_effect=exiting)
    s = ProcessesCollector(paths=fake_host.paths).sample()
    assert [p.pid for p in s.top] == [1]


def test_families_exact_output():
    sample = ProcessesSample(
        states=(("running", 2), ("sleeping", 5)),
        threads=12,
        top=(ProcessInfo(42, "postgres", "postgres", 0.35, 4096, 0.25), ProcessInfo(7, "sshd", "root", 0.0, 1024, 0.0625)),
    )
    pg = (("name", "postgres"), ("pid", "42"), ("username", "postgres"))
    sshd = (("name", "sshd"), ("pid", "7"), ("username", "root"))
    assert samples_of(ProcessesCollector().families(sample)) == {
        ("host_processes", (("state", "running"),)): 2,
        ("host_processes", (("state", "sleeping"),)): 5,
        ("host_processes_threads", ()): 12,
        ("host_process_cpu_usage_ratio", pg): 0.35,
        ("host_process_cpu_usage_ratio", sshd): 0.0,
        ("host_process_resident_memory_bytes", pg): 4096,
        ("host_process_resident_memory_bytes", sshd): 1024,
        ("host_process_memory_usage_ratio", pg): 0.25,
        ("host_process_memory_usage_ratio", sshd): 0.0625,
    }


BUSY = "import sys, time; block = b'x' * (96 << 20); sys.stdout.write('ready\\n'); sys.stdout.flush()\nwhile True: pass"


def test_real_machine_finds_a_busy_large_process(tmp_path, mocker):
    # A name longer than the kernel's 15 characters: asking psutil for the
    # name would make it read the command line, which must never happen.
    exe = tmp_path / "hostagent-long-busy-child"
    exe.symlink_to(sys.executable)
    cmdline = mocker.patch.object(psutil.Process, "cmdline", side_effect=AssertionError("command line read"))
    child = subprocess.Popen([str(exe), "-c", BUSY], stdout=subprocess.PIPE)
    try:
        assert child.stdout is not None and child.stdout.readline() == b"ready\n"
        watched = psutil.Process(child.pid)
        collector = ProcessesCollector({"top_n": 3})
        cpu0, wall0 = sum(watched.cpu_times()[:2]), time.monotonic()
        collector.sample()
        time.sleep(0.5)
        got = samples_of(collector.collect())
        cpu1, wall1 = sum(watched.cpu_times()[:2]), time.monotonic()
    finally:
        child.kill()
        child.wait()
    cmdline.assert_not_called()
    specs = {spec.name: spec for spec in ProcessesCollector.metrics}
    assert {name for name, _ in got} == set(specs)
    for (name, labels), value in got.items():
        assert {k for k, _ in labels} == set(specs[name].labels), name
        assert math.isfinite(value) and value >= 0, (name, labels, value)
        if name.endswith("memory_usage_ratio"):
            assert value <= 1
    exported = {dict(labels)["pid"] for name, labels in got if name.startswith("host_process_")}
    assert len(exported) <= 6
    mine = (("name", "hostagent-long-"), ("pid", str(child.pid)), ("username", pwd.getpwuid(os.getuid()).pw_name))
    # A spinning process uses about one core on an idle machine, less on a
    # loaded one: compare with what it did use over (about) the same window.
    used = (cpu1 - cpu0) / (wall1 - wall0)
    assert used > 0.02, used
    assert got[("host_process_cpu_usage_ratio", mine)] == pytest.approx(used, rel=0.5, abs=0.05)
    assert got[("host_process_resident_memory_bytes", mine)] >= 96 << 20
    assert got[("host_processes", (("state", "running"),))] >= 1
    assert got[("host_processes_threads", ())] >= len([k for k in got if k[0] == "host_processes"])
