"""The real agent beside real FUSE mounts that stop answering.

Each test runs ``tests/hungmounts.py`` as init of a private mount and pid
namespace (``unshare``): the mounts, the FUSE daemons and the agent live and
die there, and nothing else on the machine ever sees a hung mount. The
agent's ``/proc/1/mounts`` is the namespace's table, as it is for an agent
in a container. Needs root and /dev/fuse.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import psutil
import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families
from support import IN_CI, REPO, free_port, require_tool, samples_of, wait_http, wait_until

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import hungmounts  # noqa: E402

from hostagent.collectors import load_all  # noqa: E402

WORKERS = 2


def require_fuse() -> None:
    require_tool("unshare")
    problem = ""
    if os.geteuid() != 0:
        problem = "mounting FUSE in a private namespace needs root"
    elif not os.path.exists("/dev/fuse"):
        problem = "no /dev/fuse"
    if problem:
        if IN_CI:
            pytest.fail(problem)
        pytest.skip(problem)


class HungNamespace:
    """The namespace script with the real agent as its command."""

    def __init__(self, tmp: Path, config: str, **mounts: int):
        self.tmp = tmp
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.ready_file = tmp / "mounts.json"
        self.agent_log = tmp / "agent.log"
        (tmp / "agent.yaml").write_text(config.replace("@DIR@", str(tmp / "mnt")))
        agent = [sys.executable, str(REPO / "run_agent.py"), "--config", str(tmp / "agent.yaml"), f"--web.listen-address=127.0.0.1:{self.port}"]
        spec = {
            "dir": str(tmp / "mnt"),
            "ready_file": str(self.ready_file),
            "commands": [agent],
            "logs": [str(self.agent_log)],
            "lifetime": 300,  # the namespace ends by itself even if this test process dies
            **mounts,
        }
        (tmp / "spec.json").write_text(json.dumps(spec))
        self.proc: Optional[subprocess.Popen] = None
        self.init: Optional[psutil.Process] = None
        self.points: Dict[str, List[str]] = {}

    def start(self) -> "HungNamespace":
        with open(self.tmp / "ns.log", "wb") as out:
            self.proc = subprocess.Popen(hungmounts.namespace_argv(str(self.tmp / "spec.json")), stdout=out, stderr=subprocess.STDOUT)
        wait_until(lambda: self.ready_file.exists() or self.proc.poll() is not None, 60, "the namespace's mounts")
        assert self.proc.poll() is None, (self.tmp / "ns.log").read_text()
        self.points = json.loads(self.ready_file.read_text())
        self.init = psutil.Process(self.proc.pid).children()[0]
        wait_http(self.url + "/-/ready", timeout=60, proc=self.proc)
        return self

    @property
    def agent(self) -> psutil.Process:
        return self.init.children()[0]

    def threads(self) -> int:
        return self.agent.num_threads()

    def signal(self, sig: int) -> None:
        self.init.send_signal(sig)

    def stop(self) -> int:
        """SIGTERM to the namespace's init, which stops the agent; its exit status."""
        self.signal(signal.SIGTERM)
        return self.proc.wait(60)

    def kill(self) -> None:
        """End the namespace whatever state it is in: its init dies, the kernel
        kills the rest, the FUSE devices close and the mounts go with it."""
        if self.init is not None and self.init.is_running():
            self.init.kill()
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
        if self.proc is not None:
            self.proc.wait(60)
        if self.init is not None:
            psutil.wait_procs([self.init], timeout=60)
            assert not self.init.is_running(), "the namespace's init outlived the test"

    def log(self) -> str:
        return self.agent_log.read_text(errors="replace") if self.agent_log.exists() else ""


Samples = Dict[Tuple[str, Tuple[Tuple[str, str], ...]], float]


def scrape(url: str) -> Samples:
    resp = requests.get(url + "/metrics", timeout=10)
    resp.raise_for_status()
    return samples_of(text_string_to_metric_families(resp.text))


def runs_of(samples: Samples) -> float:
    return samples[("hostagent_collector_runs_total", (("collector", "filesystem"),))]


def mount_state(samples: Samples) -> Dict[str, Tuple[float, bool]]:
    """{mount point: (device_error, has a size series)}."""
    errors = {dict(labels)["mountpoint"]: v for (name, labels), v in samples.items() if name == "host_filesystem_device_error"}
    sized = {dict(labels)["mountpoint"] for (name, labels) in samples if name == "host_filesystem_size_bytes"}
    return {point: (err, point in sized) for point, err in errors.items()}


def next_runs(ns: HungNamespace, count: int, timeout: float = 60) -> List[Tuple[Samples, int]]:
    """Scrapes of the next ``count`` collector runs, each with the agent's thread count."""
    seen = runs_of(scrape(ns.url))
    out: List[Tuple[Samples, int]] = []
    deadline = time.monotonic() + timeout
    while len(out) < count:
        assert time.monotonic() < deadline, f"only {len(out)} of {count} runs within {timeout}s\n{ns.log()}"
        samples = scrape(ns.url)
        if runs_of(samples) > seen:
            seen = runs_of(samples)
            out.append((samples, ns.threads()))
        else:
            time.sleep(0.05)
    return out


def agent_config(extra: str = "") -> str:
    """The filesystem collector alone, every 2 s. A run that meets newly hung
    mounts lasts the whole 2 s timeout, which leaves the hand-off to fresh
    workers a wide margin on a busy machine, and the runs after it are quick,
    so the snapshot never goes stale (3 intervals)."""
    others = "".join(f"  {name}: {{enabled: false}}\n" for name in load_all() if name != "filesystem")
    return (
        "logging: {level: info}\n"
        "collectors:\n"
        f"  filesystem: {{interval: 2, statvfs_timeout: 2, statvfs_workers: {WORKERS}, mount_points_include: '^(/|@DIR@/.+)$'{extra}}}\n"
        + others
    )


def assert_reporting(state: Dict[str, Tuple[float, bool]], points: List[str], why: str) -> None:
    for point in points:
        assert state.get(point) == (0, True), f"{point} should report ({why}): {state.get(point)}"


def assert_hung(state: Dict[str, Tuple[float, bool]], points: List[str]) -> None:
    for point in points:
        assert state.get(point) == (1, False), f"{point} should read device_error 1 without size: {state.get(point)}"


@pytest.fixture
def namespace(tmp_path):
    require_fuse()
    started: List[HungNamespace] = []

    def start(config: str, **mounts: int) -> HungNamespace:
        ns = HungNamespace(tmp_path, config, **mounts)
        started.append(ns)
        return ns.start()

    yield start
    for ns in started:
        ns.kill()
        # The mounts lived only in the namespace: this process never saw one.
        with open("/proc/self/mounts") as table:
            assert str(tmp_path) not in table.read()


def test_healthy_mounts_keep_reporting_while_more_mounts_hang_than_workers(namespace):
    # Two mounts dead from the start, four that stop answering later: six hung
    # mounts for two workers, under the default budget for hung calls.
    ns = namespace(agent_config(), dead=2, flaky=4, ok=2, tmpfs=2)
    healthy = ["/"] + ns.points["ok"] + ns.points["tmpfs"]
    for samples, _ in next_runs(ns, 2):
        state = mount_state(samples)
        assert_reporting(state, healthy + ns.points["flaky"], "before the flaky mounts stop")
        assert_hung(state, ns.points["dead"])
    before = ns.threads()

    ns.signal(signal.SIGUSR1)  # the flaky mounts stop answering
    runs = next_runs(ns, 5)
    for samples, threads in runs:
        state = mount_state(samples)
        assert_reporting(state, healthy, "four more mounts hung")
        assert_hung(state, ns.points["dead"])
        # One more thread per newly hung mount, beside at most the workers.
        assert threads <= before + len(ns.points["flaky"]) + WORKERS, (threads, before)
    for samples, _ in runs[2:]:  # the run in which they hung has passed
        assert_hung(mount_state(samples), ns.points["flaky"])
    assert "has not answered" in ns.log()

    ns.signal(signal.SIGUSR2)  # they answer again, the held calls first
    wait_until(lambda: all(mount_state(scrape(ns.url)).get(p) == (0, True) for p in ns.points["flaky"]), 60, "the flaky mounts to report again")
    wait_until(lambda: ns.threads() <= before, 60, f"threads back to {before}")
    state = mount_state(next_runs(ns, 1)[0][0])
    assert_reporting(state, healthy + ns.points["flaky"], "after the flaky mounts recovered")
    assert_hung(state, ns.points["dead"])
    assert "answered again" in ns.log()

    assert ns.stop() == 0, ns.log()  # a clean stop, hung threads and all


def test_beyond_the_budget_for_hung_calls_local_mounts_keep_reporting(namespace):
    budget = 3
    ns = namespace(agent_config(f", statvfs_hung_max: {budget}"), dead=2, flaky=6, ok=1, tmpfs=2)
    local = ["/"] + ns.points["tmpfs"]
    for samples, _ in next_runs(ns, 2):
        assert_reporting(mount_state(samples), local + ns.points["ok"] + ns.points["flaky"], "two hung, budget three")
    before = ns.threads()

    ns.signal(signal.SIGUSR1)
    runs = next_runs(ns, 5)
    for samples, threads in runs:
        state = mount_state(samples)
        assert_reporting(state, local, "eight mounts hung, budget three")
        assert_hung(state, ns.points["dead"])
        # Two of the budget were spent before: one more hung call, and the
        # workers (the pool's cap is statvfs_workers + statvfs_hung_max).
        assert threads <= before + (budget - 2) + WORKERS, (threads, before)
    for samples, _ in runs[2:]:
        # With the budget spent, FUSE and network mounts are not asked: even
        # the healthy one reads device_error 1 until a hung call returns.
        assert_hung(mount_state(samples), ns.points["flaky"] + ns.points["ok"])
    assert "only local mounts are asked" in ns.log()

    ns.signal(signal.SIGUSR2)
    wait_until(lambda: all(mount_state(scrape(ns.url)).get(p) == (0, True) for p in ns.points["flaky"] + ns.points["ok"]), 60, "the FUSE mounts to report again")
    assert "asked again" in ns.log()
    assert ns.stop() == 0, ns.log()
