"""Tests of the processes collector: /proc parsing on fixture files, groups
and counts, the opt-in top processes, the process list, and real processes."""

from __future__ import annotations

import json
import os
import pwd
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from support import assert_well_formed, samples_of, wait_until

from hostagent.collectors.base import OptionError, Paths
from hostagent.collectors.processes import (
    API_MAX_LIMIT,
    GroupFigures,
    ProcessesCollector,
    ProcessesSample,
    ProcessInfo,
    Seen,
    UserNames,
    count_states,
    parse_passwd,
    select_top,
)
from hostagent.collectors.proctable import CLOCK_TICKS, PAGE_SIZE, ProcTable, parse_io, parse_stat, parse_status_uid

FIXTURES = Path(__file__).parent / "fixtures" / "processes"
MIB = 1 << 20


# --------------------------------------------------------------------------
# Parsers


def test_parse_stat_of_a_name_with_spaces_and_parentheses():
    s = parse_stat((FIXTURES / "proc" / "900" / "stat").read_bytes())
    assert (s.pid, s.comm, s.state, s.ppid, s.kernel) == (900, "tricky) (name", "S", 1, False)
    assert (s.utime, s.stime, s.cutime, s.cstime, s.threads, s.start) == (10, 10, 0, 0, 1, 5000)
    assert s.rss == 100 * PAGE_SIZE


def test_parse_stat_of_this_process_matches_what_the_kernel_says_elsewhere():
    s = parse_stat(Path("/proc/self/stat").read_bytes())
    status = Path("/proc/self/status").read_text()
    assert s.comm == Path("/proc/self/comm").read_text().rstrip("\n")
    assert s.ppid == os.getppid() and not s.kernel
    assert f"Threads:\t{s.threads}\n" in status
    kernel = parse_stat(Path("/proc/2/stat").read_bytes())  # kthreadd
    assert kernel.kernel and kernel.comm == "kthreadd"


def test_parse_io_and_status():
    assert parse_io((FIXTURES / "proc" / "812" / "io").read_bytes()) == (4096, 8192)
    # Fields in another order still parse.
    assert parse_io(b"write_bytes: 5\nread_bytes: 7\n") == (7, 5)
    assert parse_status_uid((FIXTURES / "proc" / "812" / "status").read_bytes()) == 110


def test_proc_table_of_the_fixture_tree():
    table = ProcTable(str(FIXTURES / "proc"))
    procs = {p.pid: p for p in table.read()}
    assert sorted(procs) == [1, 2, 12, 13, 14, 45, 812, 813, 900, 901]
    assert (procs[812].uid, procs[812].read_bytes, procs[812].write_bytes, procs[812].fds) == (110, 4096, 8192, 7)
    assert (procs[12].uid, procs[12].read_bytes, procs[12].fds) == (0, None, None)  # a kernel thread: nothing else read
    assert (procs[901].state, procs[901].read_bytes, procs[901].fds) == ("Z", None, None)  # a zombie without io or fd
    assert table.boot_time() == 1_700_000_000
    assert table.uptime() == 1000.0
    assert table.mem_total() == 8_000_000 * 1024
    assert table.cmdline(812) == "postgres -D /var/lib/postgresql/16/main"
    assert table.cmdline(999) is None and table.exe(812) == ""


def test_open_descriptors_counted_the_fast_way_agree_with_listing():
    table = ProcTable("/proc")
    mine = next(p for p in table.read() if p.pid == os.getpid())
    assert mine.fds is not None
    assert abs(mine.fds - len(os.listdir("/proc/self/fd"))) <= 1


# --------------------------------------------------------------------------
# The collector on the fixture tree


def fixture_collector(**options):
    return ProcessesCollector(options, Paths(procfs=str(FIXTURES / "proc"), rootfs=str(FIXTURES / "rootfs")))


def test_groups_of_the_fixture_tree():
    c = fixture_collector()
    s = c.sample()
    assert dict(s.states) == {"disk-sleep": 0, "idle": 2, "running": 1, "sleeping": 6, "stopped": 0, "zombie": 1}
    assert s.threads == 12
    groups = {g.name: g for g in s.groups}
    assert list(groups) == ["defunct", "ksoftirqd", "kswapd", "kthreadd", "kworker", "postgres", "systemd", "tricky_name", "other"]
    boot = 1_700_000_000
    assert groups["postgres"] == GroupFigures(
        "postgres", 14.0, 6.0, 4096.0, 12288.0, processes=2, threads=4, rss=30000 * PAGE_SIZE, fds=9, oldest_start=boot + 2000 / CLOCK_TICKS
    )
    assert groups["kworker"].processes == 2 and groups["kworker"].cpu_system == 70 / CLOCK_TICKS and groups["kworker"].fds is None
    assert groups["other"] == GroupFigures("other", 0.0, 0.0, 0.0, 0.0)
    assert s.groups_in_other == 0 and s.top == ()


def test_max_groups_sums_the_rest_into_other():
    s = fixture_collector(max_groups=2).sample()
    named = [g.name for g in s.groups]
    # The first run ranks by memory and by CPU over each process's life.
    assert named == ["postgres", "systemd", "other"]
    other = s.groups[-1]
    assert other.processes == 10 - 3 and s.groups_in_other == 6
    assert other.oldest_start == pytest.approx(1_700_000_000 + 5 / CLOCK_TICKS)


def test_families_of_the_fixture_tree_are_declared_and_bounded():
    c = fixture_collector(max_groups=3)
    got = samples_of(c.collect())
    assert_well_formed(ProcessesCollector, got)
    groups = {dict(labels)["group"] for name, labels in got if name.startswith("host_process_group_")}
    assert groups == {"postgres", "systemd", "kworker", "other"} or len(groups) == 4
    assert not [k for k in got if "pid" in dict(k[1])]  # no per-process series by default


def test_matchers_and_pinned_groups_on_the_fixture_tree(tmp_path):
    passwd = tmp_path / "etc" / "passwd"
    passwd.parent.mkdir()
    passwd.write_text("root:x:0:0::/root:/bin/sh\npostgres:x:110:110::/var/lib/postgresql:/bin/sh\n")
    c = ProcessesCollector(
        {"groups": [{"name": "db", "user": "^postgres$"}], "pinned_groups": ["sshd"]},
        Paths(procfs=str(FIXTURES / "proc"), rootfs=str(tmp_path)),
    )
    groups = {g.name: g for g in c.sample().groups}
    assert groups["db"].processes == 3  # both postgres processes and the zombie they own
    assert "postgres" not in groups and "defunct" not in groups
    assert groups["sshd"] == GroupFigures("sshd", 0.0, 0.0, 0.0, 0.0)


def test_options():
    opts = ProcessesCollector.options
    assert opts["top_n"].default == 0 and opts["max_groups"].default == 50 and opts["cmdline"].default is False
    for bad in (-1, 101, "5", 2.5):
        with pytest.raises(OptionError):
            opts["top_n"].check(bad)
    assert opts["groups"].check([{"name": "web", "exe": "^nginx$"}]) == [{"name": "web", "exe": "^nginx$"}]
    with pytest.raises(OptionError, match="entry 1: needs a name"):
        opts["groups"].check([{"exe": "^nginx$"}])


def test_families_exact_output():
    sample = ProcessesSample(
        states=(("running", 2), ("sleeping", 5)),
        threads=12,
        groups=(
            GroupFigures("postgres", 5.5, 1.25, 4096.0, 8192.0, processes=3, threads=9, rss=4 * MIB, fds=40, oldest_start=1.7e9),
            GroupFigures("kworker", 0.0, 3.0, 0.0, 0.0, processes=30, threads=30),
            GroupFigures("other", 1.0, 2.0, 3.0, 4.0),
        ),
        groups_in_other=0,
        top=(ProcessInfo(42, "postgres", "postgres", 0.35, 4096, 0.25),),
    )
    pg = (("name", "postgres"), ("pid", "42"), ("username", "postgres"))
    assert samples_of(ProcessesCollector().families(sample)) == {
        ("host_processes", (("state", "running"),)): 2,
        ("host_processes", (("state", "sleeping"),)): 5,
        ("host_processes_threads", ()): 12,
        ("host_process_group_cpu_seconds_total", (("group", "postgres"), ("mode", "user"))): 5.5,
        ("host_process_group_cpu_seconds_total", (("group", "postgres"), ("mode", "system"))): 1.25,
        ("host_process_group_cpu_seconds_total", (("group", "kworker"), ("mode", "user"))): 0.0,
        ("host_process_group_cpu_seconds_total", (("group", "kworker"), ("mode", "system"))): 3.0,
        ("host_process_group_cpu_seconds_total", (("group", "other"), ("mode", "user"))): 1.0,
        ("host_process_group_cpu_seconds_total", (("group", "other"), ("mode", "system"))): 2.0,
        ("host_process_group_processes", (("group", "postgres"),)): 3,
        ("host_process_group_processes", (("group", "kworker"),)): 30,
        ("host_process_group_processes", (("group", "other"),)): 0,
        ("host_process_group_threads", (("group", "postgres"),)): 9,
        ("host_process_group_threads", (("group", "kworker"),)): 30,
        ("host_process_group_threads", (("group", "other"),)): 0,
        ("host_process_group_resident_memory_bytes", (("group", "postgres"),)): 4 * MIB,
        ("host_process_group_resident_memory_bytes", (("group", "kworker"),)): 0,
        ("host_process_group_resident_memory_bytes", (("group", "other"),)): 0,
        ("host_process_group_open_fds", (("group", "postgres"),)): 40,
        ("host_process_group_read_bytes_total", (("group", "postgres"),)): 4096.0,
        ("host_process_group_read_bytes_total", (("group", "kworker"),)): 0.0,
        ("host_process_group_read_bytes_total", (("group", "other"),)): 3.0,
        ("host_process_group_written_bytes_total", (("group", "postgres"),)): 8192.0,
        ("host_process_group_written_bytes_total", (("group", "kworker"),)): 0.0,
        ("host_process_group_written_bytes_total", (("group", "other"),)): 4.0,
        ("host_process_group_oldest_start_time_seconds", (("group", "postgres"),)): 1.7e9,
        ("host_process_groups_other", ()): 0,
        ("host_process_cpu_usage_cores", pg): 0.35,
        ("host_process_resident_memory_bytes", pg): 4096,
        ("host_process_memory_usage_ratio", pg): 0.25,
    }


def test_count_states_always_has_common_states():
    assert count_states(["sleeping", "sleeping", "running", "tracing-stop"]) == (
        ("disk-sleep", 0), ("idle", 0), ("running", 1), ("sleeping", 2), ("stopped", 0), ("tracing-stop", 1), ("zombie", 0),
    )


def seen(pid, cpu=0.0, rss=0):
    return Seen(pid, 0, cpu, rss)


def test_select_top_is_the_union_of_cpu_and_rss_rankings():
    rows = [seen(1, 0.9, 10), seen(2, 0.1, 500), seen(3, 0.5, 400), seen(4, 0.0, 900), seen(5, 0.0, 0), seen(6, 0.05, 100)]
    assert [r.pid for r in select_top(rows, 2)] == [1, 2, 3, 4]
    assert [r.pid for r in select_top(rows, 1)] == [1, 4]
    assert select_top([seen(1), seen(2)], 5) == []  # idle, empty processes are not ranked
    assert [r.pid for r in select_top([seen(p, 0.5, 100) for p in (30, 10, 20)], 2)] == [10, 20]


def test_top_n_is_opt_in_on_the_fixture_tree():
    got = samples_of(fixture_collector(top_n=1).collect())
    per_pid = {(name, dict(labels)["pid"]) for name, labels in got if "pid" in dict(labels)}
    # By memory: postgres 812; by CPU over each life: systemd 1 (5 s in 1000 s) against 812 (15 s in 980 s).
    assert {pid for _, pid in per_pid} <= {"1", "812"} and ("host_process_resident_memory_bytes", "812") in per_pid
    assert {name for name, _ in per_pid} == {"host_process_cpu_usage_cores", "host_process_resident_memory_bytes", "host_process_memory_usage_ratio"}


def test_parse_passwd():
    text = "root:x:0:0:root:/root:/bin/bash\n# comment\nbroken line\nwww-data:x:33:33::/var/www:/usr/sbin/nologin\ntoor:x:0:0::/:/bin/sh\n"
    assert parse_passwd(text) == {0: "root", 33: "www-data"}


def test_usernames_on_the_host_use_nss():
    names = UserNames("/")
    names.begin_run()
    assert names(os.getuid()) == pwd.getpwuid(os.getuid()).pw_name
    assert names(2_000_000_001) == "2000000001" and names(None) == ""


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


# --------------------------------------------------------------------------
# The process list


def test_process_list_sorted_bounded_and_without_command_lines_by_default():
    c = fixture_collector()
    c.sample()
    plist = c.process_list
    assert plist is not None and plist.total == 10
    doc = json.loads(plist.json("memory", 2))
    assert [p["pid"] for p in doc["processes"]] == [812, 813]
    assert doc["processes"][0] == {
        "pid": 812, "ppid": 1, "name": "postgres", "user": "110", "group": "postgres", "state": "sleeping",
        "cpu_cores": round(15 / 980, 4), "resident_memory_bytes": 25000 * PAGE_SIZE, "threads": 1,
        "start_time_seconds": round(1_700_000_000 + 2000 / CLOCK_TICKS, 2),
    }
    assert (doc["sort"], doc["limit"], doc["total_processes"], doc["memory_total_bytes"]) == ("memory", 2, 10, 8_000_000 * 1024)
    by_cpu = json.loads(plist.json("cpu", API_MAX_LIMIT))["processes"]
    assert len(by_cpu) == 10 and by_cpu[0]["pid"] == 812
    assert all("cmdline" not in p for p in by_cpu)
    assert plist.json("cpu", 3) is plist.json("cpu", 3)  # rendered once per list and query


def test_process_list_with_command_lines_when_asked():
    c = fixture_collector(cmdline=True)
    c.sample()
    rows = json.loads(c.process_list.json("memory", 1))["processes"]
    assert rows[0]["cmdline"] == "postgres -D /var/lib/postgresql/16/main"


# --------------------------------------------------------------------------
# Real processes


BURN = """
import os, sys, time
open("/proc/self/comm", "w").write(sys.argv[1])
print("ready", flush=True)
for line in sys.stdin:
    seconds = float(line)
    if seconds < 0:
        os.execv("/bin/true", ["true"])
    pid = os.fork()
    if pid == 0:
        open("/proc/self/comm", "w").write(sys.argv[2])
        end = time.process_time() + seconds
        while time.process_time() < end:
            pass
        os._exit(0)
    os.waitpid(pid, 0)
    print("done", flush=True)
"""


# Names of this test run's own: another run on the host must not look like ours.
PARENT, CHILD = f"hagp{os.getpid()}", f"hagc{os.getpid()}"


@pytest.fixture
def burner():
    """A process named PARENT that, per line of input, forks a child named
    CHILD burning that many CPU seconds, reaps it and answers."""
    proc = subprocess.Popen([sys.executable, "-c", BURN, PARENT, CHILD], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline() == "ready\n"

    def burn(seconds: float, wait: bool = True) -> None:
        proc.stdin.write(f"{seconds}\n")
        proc.stdin.flush()
        if wait:
            assert proc.stdout.readline() == "done\n"

    burn.proc = proc  # type: ignore[attr-defined]
    yield burn
    proc.kill()
    proc.wait()


def group_cpu(collector):
    return {g.name: g.cpu_user + g.cpu_system for g in collector.sample().groups}


def test_real_child_that_lived_between_two_runs_is_counted_to_its_parent(burner):
    c = ProcessesCollector()
    before = group_cpu(c).get(PARENT, 0.0)
    burner(0.4)
    after = group_cpu(c)
    # Never seen: all of it goes to the group of the parent that reaped it.
    assert after[PARENT] - before >= 0.35
    assert CHILD not in after


def test_real_child_seen_then_exited_is_counted_to_its_own_group(burner):
    c = ProcessesCollector()
    c.sample()
    burner(1.2, wait=False)
    wait_until(lambda: any(g.name == CHILD and g.processes for g in c.sample().groups), 10, "the child to be seen")
    assert burner.proc.stdout.readline() == "done\n"
    c.sample()  # the exit is accounted here; the child's group was newly named, so its first run shows now
    cpu = group_cpu(c)
    assert cpu[CHILD] + cpu.get(PARENT, 0.0) >= 1.1
    assert cpu[CHILD] >= 0.6


def test_real_renamed_process_never_makes_a_new_group(tmp_path):
    # A user process renaming itself the way kernel workers are renamed.
    script = "import sys, time\nfor name in sys.stdin:\n    open('/proc/self/comm', 'w').write(name.strip())\n    print('ok', flush=True)\n"
    proc = subprocess.Popen([sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        c = ProcessesCollector()
        names = set()
        for task in ("events_unbound", "writeback", "flush-8:0", "events_power_efficient"):
            proc.stdin.write(f"kworker/u8:2-{task}\n")
            proc.stdin.flush()
            assert proc.stdout.readline() == "ok\n"
            s = c.sample()
            names |= {g.name for g in s.groups}
            assert Path(f"/proc/{proc.pid}/comm").read_text().startswith("kworker/u8:2-")
        assert not [n for n in names if n.startswith("kworker") and n != "kworker"]
        assert "kworker" in names
    finally:
        proc.kill()
        proc.wait()


BUSY = "import sys, time; block = b'x' * (96 << 20); sys.stdout.write('ready\\n'); sys.stdout.flush()\nwhile True: pass"


def test_real_machine_busy_large_process_with_top_n(tmp_path):
    # A name longer than the kernel's 15 characters: the command name is cut, the command line never read.
    exe = tmp_path / "hostagent-long-busy-child"
    exe.symlink_to(sys.executable)
    child = subprocess.Popen([str(exe), "-c", BUSY], stdout=subprocess.PIPE)
    try:
        assert child.stdout is not None and child.stdout.readline() == b"ready\n"
        collector = ProcessesCollector({"top_n": 3})
        collector.sample()
        time.sleep(0.5)
        got = samples_of(collector.collect())
        assert collector.process_list is not None
        listed = json.loads(collector.process_list.json("cpu", 50))["processes"]
    finally:
        child.kill()
        child.wait()
    assert_well_formed(ProcessesCollector, got)
    user = pwd.getpwuid(os.getuid()).pw_name
    mine = (("name", "hostagent-long-"), ("pid", str(child.pid)), ("username", user))
    assert got[("host_process_resident_memory_bytes", mine)] >= 96 << 20
    assert got[("host_process_cpu_usage_cores", mine)] > 0.05
    assert len({dict(k[1])["pid"] for k in got if "pid" in dict(k[1])}) <= 6
    assert got[("host_process_group_resident_memory_bytes", (("group", "hostagent-long-"),))] >= 96 << 20
    row = next(p for p in listed if p["pid"] == child.pid)
    assert row["name"] == "hostagent-long-" and row["user"] == user and "cmdline" not in row
    assert got[("host_processes", (("state", "running"),))] >= 1


def test_real_machine_every_group_name_is_label_safe():
    got = samples_of(ProcessesCollector().collect())
    assert_well_formed(ProcessesCollector, got)
    groups = {dict(labels)["group"] for name, labels in got if "group" in dict(labels)}
    assert "kworker" in groups and "other" in groups
    for g in groups:
        assert 0 < len(g) <= 32 and all(ch.isascii() and (ch.isalnum() or ch in "_.:@+-") for ch in g), g
    assert not [g for g in groups if g.startswith("kworker") and g != "kworker"]


@pytest.mark.skipif(shutil.which("true") is None, reason="needs /bin/true")
def test_real_process_list_counts_match_the_process_table():
    c = ProcessesCollector()
    c.sample()
    doc = json.loads(c.process_list.json("memory", API_MAX_LIMIT))
    assert doc["total_processes"] >= len(doc["processes"]) > 10
    assert doc["processes"] == sorted(doc["processes"], key=lambda p: -p["resident_memory_bytes"])
