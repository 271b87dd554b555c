"""The cgroups collector: fixture trees for v2 (a systemd host with docker),
v1 and hybrid hosts, naming and bounds, counters across removal and
re-creation, and a live cgroup on this machine."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from cgrouptest import ROOT as LIVE_ROOT
from cgrouptest import move, v1_cgroup
from support import assert_well_formed, samples_of

from hostagent.collectors.base import NotAvailable, Paths
from hostagent.collectors.cgroups import (
    CgroupsCollector,
    Kind,
    classify,
    detect,
    parse_blkio,
    parse_io_stat,
    parse_limit,
    parse_pressure,
)

FIXTURES = Path(__file__).parent / "fixtures" / "cgroups"
WEB = "3f2a1b4c5d6e" + "0" * 52
JOB = "9abcdef01234" + "1" * 52
POD = "c0ffee000000" + "2" * 52


def collector(mode: str, root: Path = FIXTURES, **options) -> CgroupsCollector:
    return CgroupsCollector(options, Paths(sysfs=str(root / mode / "sys"), rootfs=str(root / mode / "rootfs")))


def by_label(got, family):
    return {dict(labels).get("cgroup"): value for (name, labels), value in got.items() if name == family and "mode" not in dict(labels)}


def cpu_of(got):
    out = {}
    for (name, labels), value in got.items():
        if name == "host_cgroup_cpu_seconds_total":
            d = dict(labels)
            out[(d["cgroup"], d["mode"])] = value
    return out


# --------------------------------------------------------------------------
# Parsers


def test_parsers():
    assert parse_io_stat("254:0 rbytes=10 wbytes=20 rios=1 wios=2 dbytes=0 dios=0\n7:0 rbytes=5 wbytes=0\n") == (15, 20)
    assert parse_blkio("8:0 Read 100\n8:0 Write 50\n8:0 Total 150\n8:16 Read 1\nTotal 151\n") == (101, 50)
    assert parse_pressure("some avg10=0.00 avg60=0.00 avg300=0.00 total=1500000\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=2\n") == {"some": 1.5, "full": 2e-6}
    assert parse_limit("max\n") is None and parse_limit("9223372036854771712\n") is None and parse_limit("536870912\n") == 536870912


@pytest.mark.parametrize(
    "path, kind",
    [
        ("system.slice/nginx.service", Kind("nginx.service", "service")),
        ("system.slice/system-getty.slice/getty@tty1.service", Kind("getty@tty1.service", "service")),
        (f"system.slice/docker-{WEB}.scope", Kind("", "container", "docker", WEB)),
        (f"docker/{WEB}", Kind("", "container", "docker", WEB)),
        (f"kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod1.slice/cri-containerd-{WEB}.scope", Kind("", "container", "containerd", WEB)),
        (f"kubepods/besteffort/pod1/{WEB}", Kind("", "container", "containerd", WEB)),
        (f"machine.slice/libpod-{POD}.scope", Kind("", "container", "podman", POD)),
        (f"system.slice/crio-{WEB}.scope", Kind("", "container", "crio", WEB)),
        ("lxc.payload.web", Kind("", "container", "lxc", "web")),
        ("lxc/db", Kind("", "container", "lxc", "db")),
        ("user.slice/user-1000.slice", Kind("user-1000.slice", "user")),
        ("user.slice/user-1000.slice/session-3.scope", None),
        ("user.slice/user-1000.slice/user@1000.service", None),
        (f"machine.slice/libpod-conmon-{POD}.scope", None),
        ("system.slice", None),
        ("init.scope", None),
    ],
)
def test_classify(path, kind):
    assert classify(path) == kind


def test_detect_layouts_and_absence(tmp_path):
    assert detect(str(FIXTURES / "v2" / "sys" / "fs" / "cgroup")).mode == "v2"
    v1 = detect(str(FIXTURES / "v1" / "sys" / "fs" / "cgroup"))
    assert (v1.mode, v1.unified, os.path.basename(v1.procs)) == ("v1", None, "pids")
    assert detect(str(FIXTURES / "hybrid" / "sys" / "fs" / "cgroup")).mode == "hybrid"
    with pytest.raises(NotAvailable, match="no cgroup filesystem at"):
        detect(str(tmp_path / "fs" / "cgroup"))
    (tmp_path / "fs" / "cgroup").mkdir(parents=True)
    with pytest.raises(NotAvailable, match="no cgroup hierarchy with cpuacct, memory or blkio"):
        detect(str(tmp_path / "fs" / "cgroup"))
    with pytest.raises(NotAvailable):
        CgroupsCollector(paths=Paths(sysfs=str(tmp_path / "none"))).sample()


# --------------------------------------------------------------------------
# Fixture trees


def test_v2_systemd_host_with_docker():
    c = collector("v2")
    got = samples_of(c.collect())
    assert_well_formed(CgroupsCollector, got)
    cpu = cpu_of(got)
    assert cpu[("nginx.service", "user")] == pytest.approx(812.4) and cpu[("nginx.service", "system")] == pytest.approx(100.0)
    labels = {label for label, _ in cpu}
    assert labels == {
        "nginx.service", "docker.service", "containerd.service", "sshd.service", "getty@tty1.service",
        "docker/web-1", "docker/9abcdef01234", "podman/c0ffee000000", "user-1000.slice",
    }
    assert by_label(got, "host_cgroup_memory_bytes")["docker/web-1"] == 150_000_000
    assert by_label(got, "host_cgroup_memory_limit_bytes") == {"docker/web-1": 536_870_912, "podman/c0ffee000000": 1_073_741_824}
    assert by_label(got, "host_cgroup_oom_kills_total")["docker/web-1"] == 1
    io_read = by_label(got, "host_cgroup_io_read_bytes_total")
    assert io_read["docker/web-1"] == 12345 + 1000 and "docker/9abcdef01234" not in io_read  # no io.stat: no series
    processes = by_label(got, "host_cgroup_processes")
    assert processes["nginx.service"] == 3 and processes["user-1000.slice"] == 8  # the slice sums what is below it
    assert by_label(got, "host_cgroup_pressure_memory_stalled_seconds_total")["nginx.service"] == pytest.approx(0.1)
    assert by_label(got, "host_cgroup_pressure_io_waiting_seconds_total")["docker/web-1"] == pytest.approx(4.0)
    info = {dict(labels)["cgroup"]: dict(labels) for name, labels in got if name == "host_cgroup_info"}
    assert info["docker/web-1"] == {"cgroup": "docker/web-1", "kind": "container", "runtime": "docker", "path": f"system.slice/docker-{WEB}.scope"}
    assert info["user-1000.slice"]["kind"] == "user" and info["nginx.service"]["kind"] == "service"
    assert "other" not in labels  # nothing beyond max_cgroups


@pytest.mark.parametrize("mode", ["v1", "hybrid"])
def test_v1_and_hybrid_hosts(mode):
    got = samples_of(collector(mode).collect())
    assert_well_formed(CgroupsCollector, got)
    cpu = cpu_of(got)
    assert {label for label, _ in cpu} == {"nginx.service", "docker.service", "docker/web-1", "user-1000.slice"}
    assert cpu[("docker/web-1", "user")] == pytest.approx(3.0) and cpu[("docker/web-1", "system")] == pytest.approx(1.0)
    assert by_label(got, "host_cgroup_memory_limit_bytes") == {"docker/web-1": 536_870_912}
    assert by_label(got, "host_cgroup_oom_kills_total")["docker/web-1"] == 1
    assert by_label(got, "host_cgroup_io_written_bytes_total")["docker/web-1"] == 67890
    assert by_label(got, "host_cgroup_processes") == {"nginx.service": 3, "docker.service": 1, "docker/web-1": 2, "user-1000.slice": 2}
    pressure = by_label(got, "host_cgroup_pressure_cpu_waiting_seconds_total")
    # Only a hybrid host has a unified hierarchy to read pressure from.
    assert pressure == ({} if mode == "v1" else {"nginx.service": 1.5, "docker.service": 1.5, "user-1000.slice": 1.5})


def test_v1_cpu_is_the_exact_total_split_as_the_sampled_figures_split(tmp_path):
    shutil.copytree(FIXTURES / "v1", tmp_path / "v1", symlinks=True)
    base = tmp_path / "v1" / "sys" / "fs" / "cgroup" / "cpu,cpuacct" / "system.slice" / "nginx.service"
    (base / "cpuacct.usage").write_text("1000000000000\n")  # 1000 s, more than the 912.4 s the ticks saw
    got = cpu_of(samples_of(collector("v1", tmp_path).collect()))
    assert got[("nginx.service", "user")] == pytest.approx(1000 * 812.4 / 912.4)
    assert got[("nginx.service", "system")] == pytest.approx(1000 * 100 / 912.4)
    # Without usage_user and usage_sys, cpuacct.stat's ticks give the split.
    (base / "cpuacct.usage_user").unlink()
    c = collector("v1", tmp_path)
    got = cpu_of(samples_of(c.collect()))
    assert got[("nginx.service", "user")] == pytest.approx(1000 * 81240 / 91240)
    # A split that moves while the total stands still adds nothing.
    (base / "cpuacct.stat").write_text("user 81000\nsystem 10240\n")
    again = cpu_of(samples_of(c.collect()))
    assert again[("nginx.service", "user")] == got[("nginx.service", "user")]
    assert again[("nginx.service", "system")] >= got[("nginx.service", "system")]


def test_extra_paths_exclude_and_bounds():
    got = samples_of(collector("v2", extra_paths=r"^init\.scope$", paths_exclude=r"docker-").collect())
    labels = set(by_label(got, "host_cgroup_processes"))
    assert "init.scope" in labels and not [x for x in labels if x.startswith("docker/")]
    got = samples_of(collector("v2", max_depth=1).collect())
    assert set(by_label(got, "host_cgroup_processes")) == set()  # services sit at depth 2
    got = samples_of(collector("v2", max_cgroups=3).collect())
    processes = by_label(got, "host_cgroup_processes")
    assert len(processes) == 4 and "other" in processes
    assert processes["other"] == 3 + 1 + 2 + 1 + 1 + 8 + 3 + 2 + 1 - sum(v for k, v in processes.items() if k != "other")
    assert "other" not in by_label(got, "host_cgroup_pressure_cpu_waiting_seconds_total")  # pressure does not add up


def write(path: Path, text: str) -> None:
    path.write_text(text)


def test_counters_rise_across_runs_and_survive_recreation(tmp_path):
    shutil.copytree(FIXTURES / "v2", tmp_path / "v2", symlinks=True)
    root = tmp_path / "v2" / "sys" / "fs" / "cgroup"
    nginx = root / "system.slice" / "nginx.service"
    c = collector("v2", tmp_path)
    first = cpu_of(samples_of(c.collect()))[("nginx.service", "user")]
    write(nginx / "cpu.stat", "usage_usec 914400000\nuser_usec 814400000\nsystem_usec 100000000\n")
    second = cpu_of(samples_of(c.collect()))[("nginx.service", "user")]
    assert second - first == pytest.approx(2.0)
    # A restart: systemd removes the cgroup and makes a new one, counting from 0.
    shutil.rmtree(nginx)
    nginx.mkdir()
    write(nginx / "cpu.stat", "usage_usec 3000000\nuser_usec 3000000\nsystem_usec 0\n")
    write(nginx / "memory.current", "1000\n")
    write(nginx / "cgroup.procs", "777\n")
    third = cpu_of(samples_of(c.collect()))[("nginx.service", "user")]
    assert third - second == pytest.approx(3.0)  # rises by the new cgroup's use, never back to 0


def test_a_removed_container_is_gone_and_a_new_one_shows_its_first_run_at_its_second(tmp_path):
    shutil.copytree(FIXTURES / "v2", tmp_path / "v2", symlinks=True)
    slice_ = tmp_path / "v2" / "sys" / "fs" / "cgroup" / "system.slice"
    c = collector("v2", tmp_path)
    c.collect()
    shutil.rmtree(slice_ / f"docker-{JOB}.scope")
    new = slice_ / f"docker-{'e' * 64}.scope"
    shutil.copytree(slice_ / f"docker-{WEB}.scope", new)
    got = cpu_of(samples_of(c.collect()))
    assert ("docker/9abcdef01234", "user") not in got
    assert got[("docker/eeeeeeeeeeee", "user")] == 0.0
    got = cpu_of(samples_of(c.collect()))
    assert got[("docker/eeeeeeeeeeee", "user")] == pytest.approx(3.0)


def test_container_name_follows_a_rename(tmp_path):
    shutil.copytree(FIXTURES / "v2", tmp_path / "v2", symlinks=True)
    config = tmp_path / "v2" / "rootfs" / "var" / "lib" / "docker" / "containers" / WEB / "config.v2.json"
    c = collector("v2", tmp_path)
    assert "docker/web-1" in by_label(samples_of(c.collect()), "host_cgroup_processes")
    config.write_text('{"Name": "/web 2 (blue)"}')
    os.utime(config, (time.time() + 5, time.time() + 5))
    assert "docker/web_2_blue" in by_label(samples_of(c.collect()), "host_cgroup_processes")


# --------------------------------------------------------------------------
# Live, on this machine


BURNER = "import sys, time\nsys.stdin.readline()\nblock = bytearray(16 << 20)\nend = time.process_time() + 0.6\nwhile time.process_time() < end: pass\nprint('done', flush=True)\nsys.stdin.readline()\n"


def test_live_v1_cgroup_with_a_process_in_it():
    name = f"hostagent-test-{os.getpid()}"
    with v1_cgroup(name) as dirs:
        # Memory is charged to a v1 cgroup as it is touched after the move: 16 MiB of it.
        child = subprocess.Popen([sys.executable, "-c", BURNER], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        try:
            move(child.pid, dirs)
            c = CgroupsCollector({"extra_paths": name})
            before = samples_of(c.collect())
            assert_well_formed(CgroupsCollector, before)
            paths = {dict(labels)["path"]: dict(labels)["cgroup"] for n, labels in before if n == "host_cgroup_info"}
            cpu_label = paths[str(dirs["cpuacct"].relative_to(LIVE_ROOT / "cpuacct"))]
            mem_label = paths[str(dirs["memory"].relative_to(LIVE_ROOT / "memory"))]
            child.stdin.write("go\n")
            child.stdin.flush()
            assert child.stdout.readline() == "done\n"
            after = samples_of(c.collect())
            used = sum(v for (label, _), v in cpu_of(after).items() if label == cpu_label) - sum(v for (label, _), v in cpu_of(before).items() if label == cpu_label)
            assert used >= 0.5, used
            assert by_label(after, "host_cgroup_processes")[mem_label] == 1
            assert by_label(after, "host_cgroup_memory_bytes")[mem_label] >= 16 << 20
        finally:
            child.kill()
            child.wait()


def test_live_default_collector_on_this_machine():
    c = CgroupsCollector()
    try:
        got = samples_of(c.collect())
    except NotAvailable:
        pytest.skip("no cgroup filesystem here")
    for (name, labels), value in got.items():
        assert value >= 0 and name.startswith("host_cgroup_")
