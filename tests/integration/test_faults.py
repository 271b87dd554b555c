"""Faults: a collector that raises, one that hangs, a dead mount, processes
that deny access or vanish, and counters that go backwards."""

from __future__ import annotations

import os
import signal
import statistics
import subprocess
import threading
import time
from pathlib import Path

import psutil
import requests
from faultagent import fault_server, scrape
from prometheus_client.parser import text_string_to_metric_families
from support import samples_of, wait_until

from hostagent.agent import Agent, Runner
from hostagent.cli import SHUTDOWN_TIMEOUT
from hostagent.collectors.base import Paths
from hostagent.collectors.diskio import DiskioCollector
from hostagent.collectors.filesystem import FilesystemCollector
from hostagent.collectors.network import NetworkCollector
from hostagent.collectors.processes import ProcessesCollector
from hostagent.exposition import Exposition, build_registry

QUIET = """
collectors:
  connections: {enabled: false}
  diskio: {enabled: false}
  filesystem: {enabled: false}
  network: {enabled: false}
  processes: {enabled: false}
  system: {enabled: false}
"""


def up(samples, name: str) -> float:
    return samples[("hostagent_collector_up", (("collector", name),))]


def counter(samples, metric: str, name: str) -> float:
    return samples[(metric, (("collector", name),))]


def scrape_until(base_url: str, predicate, what: str, timeout: float = 10.0):
    """Scrape until ``predicate(samples)`` holds; return those samples."""

    def check():
        samples = scrape(base_url)
        return samples if predicate(samples) else None

    return wait_until(check, timeout, what)


def test_raising_collector_goes_down_and_recovers_alone(tmp_path):
    control = tmp_path / "control"
    config = QUIET + f"  flaky: {{enabled: true, interval: 0.2, control: '{control}'}}\n"
    with fault_server(tmp_path, config) as server:
        server.start()
        first = scrape(server.base_url)
        assert up(first, "flaky") == 1 and counter(first, "hostagent_collector_errors_total", "flaky") == 0

        control.write_text("raise")

        def down(s) -> bool:
            # The rest of the agent is untouched meanwhile.
            assert up(s, "cpu") == 1 and up(s, "memory") == 1
            assert any(k[0].startswith("host_memory_") for k in s)
            # Down once three runs in a row failed. The last good snapshot
            # goes stale (3 intervals) at about the same moment, so up may
            # read 0 a hair before the third error is counted: wait for both.
            return up(s, "flaky") == 0 and counter(s, "hostagent_collector_errors_total", "flaky") >= 3

        scrape_until(server.base_url, down, "flaky up=0 after 3 errors")
        # Keep failing a while: the log must not grow with every failure.
        s = scrape_until(server.base_url, lambda s: counter(s, "hostagent_collector_errors_total", "flaky") >= 8, "8 errors")
        assert up(s, "flaky") == 0
        errors = counter(s, "hostagent_collector_errors_total", "flaky")

        control.write_text("ok")
        s = scrape_until(server.base_url, lambda s: up(s, "flaky") == 1, "flaky up=1")
        assert counter(s, "hostagent_collector_errors_total", "flaky") >= errors  # a counter never goes back
        assert ("host_faulttest_flaky_runs", ()) in s
        assert requests.get(server.base_url + "/-/ready", timeout=5).status_code == 200
    log = server.log()
    assert log.count("collector flaky failed: told to fail") == 1, log
    assert log.count("collector flaky is down after 3 consecutive failures") == 1, log
    assert log.count("collector flaky recovered after") == 1, log
    assert "Traceback" not in log


def test_hung_collector_leaves_the_rest_serving_and_shutdown_works(tmp_path):
    fifo = tmp_path / "stuck.fifo"
    config = QUIET + (
        "  flaky: {enabled: true, interval: 0.2}\n"
        f"  stuck: {{enabled: true, interval: 0.4, fifo: '{fifo}'}}\n"
    )
    server = fault_server(tmp_path, config)
    try:
        server.start()
        assert ("host_faulttest_stuck_runs", ()) in scrape(server.base_url)
        os.mkfifo(fifo)  # the next run of stuck blocks in open(2)
        scrape_until(server.base_url, lambda s: up(s, "stuck") == 0, "stuck up=0")

        before = scrape(server.base_url)
        started = time.monotonic()
        latencies = []
        with requests.Session() as session:
            while time.monotonic() - started < 2.0:
                t0 = time.perf_counter()
                resp = session.get(server.base_url + "/metrics", timeout=5)
                latencies.append(time.perf_counter() - t0)
                assert resp.status_code == 200
                time.sleep(0.02)
        elapsed = time.monotonic() - started
        after = scrape(server.base_url)

        # /metrics answers in milliseconds while a collector is stuck.
        assert statistics.median(latencies) < 0.1, latencies
        assert max(latencies) < 2.0, latencies  # waiting on the stuck one would be forever
        # The others keep their rhythm: flaky runs every 0.2 s.
        runs = counter(after, "hostagent_collector_runs_total", "flaky") - counter(before, "hostagent_collector_runs_total", "flaky")
        assert runs >= 0.6 * elapsed / 0.2, runs
        assert up(after, "flaky") == 1 and up(after, "cpu") == 1
        # The hung collector's own series are gone once stale; its up is 0.
        assert ("host_faulttest_stuck_runs", ()) not in after
        assert up(after, "stuck") == 0
        assert ("host_faulttest_flaky_runs", ()) in after

        t0 = time.monotonic()
        server.proc.send_signal(signal.SIGTERM)
        code = server.proc.wait(SHUTDOWN_TIMEOUT + 5)
        took = time.monotonic() - t0
    finally:
        server.stop()
    assert code == 0
    assert took < SHUTDOWN_TIMEOUT + 3, f"shutdown took {took:.1f}s"
    log = server.log()
    assert log.count("collector stuck is stale") == 1, log
    assert "left behind: stuck" in log, log


# --------------------------------------------------------------------------
# In-process faults


def test_dead_mount_is_reported_without_leaking_threads(tmp_path):
    proc = tmp_path / "proc"
    (proc / "self").mkdir(parents=True)
    (proc / "self" / "mounts").write_text(
        "/dev/vda1 / ext4 rw,relatime 0 0\n"
        "srv:/export /mnt/nfs nfs4 rw,relatime 0 0\n"
        "/dev/vdb1 /data ext4 ro,relatime 0 0\n"
    )
    dead = threading.Event()
    calls = []
    real = os.statvfs("/")

    def statvfs(path: str):
        calls.append(path)
        if path == "/mnt/nfs":
            dead.wait(60)  # a dead NFS server: never answers
        return real

    collector = FilesystemCollector({"statvfs_timeout": 0.3, "statvfs_workers": 2}, Paths(procfs=str(proc)), statvfs=statvfs)
    runner = Runner("filesystem", collector, 1.0)
    threads_before = threading.active_count()
    try:
        for _ in range(6):
            t0 = time.monotonic()
            assert runner.run_once()
            assert time.monotonic() - t0 < 0.3 + 1.5  # the timeout, not the dead mount's 60 s
        samples = samples_of(runner.snapshot.families)
        err = {dict(k[1])["mountpoint"]: v for k, v in samples.items() if k[0] == "host_filesystem_device_error"}
        assert err == {"/": 0, "/mnt/nfs": 1, "/data": 0}
        assert not any(k[0] == "host_filesystem_size_bytes" and ("mountpoint", "/mnt/nfs") in k[1] for k in samples)
        # The dead mount was asked once, not once per run, and holds one
        # thread beside the two workers.
        assert calls.count("/mnt/nfs") == 1
        assert collector._pool.threads <= 2 + 1
        assert threading.active_count() - threads_before <= 2 + 1
        assert runner.status.errors_total == 0
    finally:
        dead.set()
        collector.close()


def test_access_denied_and_vanished_processes_are_not_failures(monkeypatch):
    # Errors injected where the collector reads /proc: a process whose io and
    # fd the agent may not read (another user's, for an agent not running as
    # root), and one that exits between the listing of /proc and its stat.
    from hostagent.collectors import proctable

    me = os.getpid()
    children = [subprocess.Popen(["sleep", "30"]) for _ in range(2)]
    denied, vanished = children[0].pid, children[1].pid
    raised = {"denied": 0, "vanished": 0}
    real_read, real_stat = proctable.read_bytes, os.stat

    def read_bytes(path, size=8192):
        if path.endswith(f"/{denied}/io"):
            raised["denied"] += 1
            raise PermissionError(13, "Permission denied", path)
        if path.endswith(f"/{vanished}/stat"):
            raised["vanished"] += 1
            raise FileNotFoundError(2, "No such file or directory", path)
        return real_read(path, size)

    def stat(path, *args, **kwargs):
        if str(path).endswith(f"/{denied}/fd"):
            raise PermissionError(13, "Permission denied", path)
        return real_stat(path, *args, **kwargs)

    pids = psutil.pids()
    monkeypatch.setattr(proctable, "read_bytes", read_bytes)
    monkeypatch.setattr(proctable.os, "stat", stat)
    collector = ProcessesCollector({"top_n": 100})
    runner = Runner("processes", collector, 15.0)
    try:
        assert runner.run_once(), runner.status.last_error
        assert runner.run_once(), runner.status.last_error
        # Alive before and after the last run, so alive during it (other work
        # on the machine starts and ends processes meanwhile).
        throughout = set(pids) & set(psutil.pids())
    finally:
        for child in children:
            child.kill()
            child.wait()
    assert raised["denied"] >= 2 and raised["vanished"] >= 2, raised
    assert runner.status.errors_total == 0
    samples = samples_of(runner.snapshot.families)
    exported = {dict(k[1])["pid"] for k in samples if k[0] == "host_process_resident_memory_bytes"}
    assert str(me) in exported and str(vanished) not in exported
    listed = {p.pid: p for p in collector.process_list.by_memory}
    assert denied in listed and vanished not in listed  # counted without its io and fds; the vanished one not at all
    # Every process alive throughout but the one made to vanish is counted.
    assert sum(v for k, v in samples.items() if k[0] == "host_processes") >= len(throughout) - 1


def write_net_dev(procfs: Path, rx: int, tx: int) -> None:
    (procfs / "net").mkdir(parents=True, exist_ok=True)
    (procfs / "net" / "dev").write_text(
        "Inter-|   Receive                                                |  Transmit\n"
        " face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed\n"
        f"  eth7: {rx} 10 0 0 0 0 0 0 {tx} 20 0 0 0 0 0 0\n"
    )


def write_diskstats(procfs: Path, sectors_read: int) -> None:
    (procfs / "diskstats").write_text(f" 253       0 vdz 100 0 {sectors_read} 40 50 0 800 60 0 70 100 0 0 0 0 0 0\n")


def test_counters_that_go_backwards_pass_through_raw(tmp_path, monkeypatch):
    procfs = tmp_path / "proc"
    procfs.mkdir()
    monkeypatch.setattr(psutil, "PROCFS_PATH", str(procfs))
    monkeypatch.setattr(psutil, "net_if_stats", lambda: {})  # the made-up interface has no link state
    paths = Paths(procfs=str(procfs), sysfs=str(tmp_path / "sys"))  # the agent gives psutil the same procfs
    network = NetworkCollector({"device_exclude": None}, paths)
    diskio = DiskioCollector({"device_exclude": None}, paths)
    runners = [Runner("network", network, 15.0), Runner("diskio", diskio, 15.0)]
    agent = Agent(runners)
    exposition = Exposition(agent, build_registry(agent))

    def values():
        assert agent.run_once() == []
        text = exposition.body()[0].decode()
        s = samples_of(text_string_to_metric_families(text))
        return (
            s[("host_network_receive_bytes_total", (("device", "eth7"),))],
            s[("host_network_transmit_bytes_total", (("device", "eth7"),))],
            s[("host_disk_read_bytes_total", (("device", "vdz"),))],
        )

    write_net_dev(procfs, 2**40, 5_000_000)
    write_diskstats(procfs, 1_000_000)
    assert values() == (2**40, 5_000_000, 1_000_000 * 512)
    # Interface removed and re-added, disk reset: counters restart near zero.
    write_net_dev(procfs, 1234, 0)
    write_diskstats(procfs, 8)
    assert values() == (1234, 0, 8 * 512)  # raw: Prometheus sees a reset, not a negative delta
    write_net_dev(procfs, 5000, 10)
    write_diskstats(procfs, 16)
    assert values() == (5000, 10, 16 * 512)
    assert all(r.status.errors_total == 0 for r in runners)
