"""A /sys for a live agent with services and containers this machine lacks.

This machine's /sys, entry by entry, except ``fs``: its ``fs/cgroup`` is a
writable copy of the v2 fixture tree (a systemd host with nginx, sshd,
docker with two containers, a user slice with a rootless podman container).
``CounterFeed`` moves that tree's counters while a test runs: CPU, block
I/O and pressure rise, and the container ``docker/web-1`` has its memory
swing and a process OOM-killed every few seconds.
"""

from __future__ import annotations

import os
import re
import shutil
import threading
import time
from pathlib import Path
from typing import Dict, NamedTuple, Optional

from support import REPO

FIXTURE = REPO / "tests" / "collectors" / "fixtures" / "cgroups" / "v2"
WEB = "system.slice/docker-3f2a1b4c5d6e0000000000000000000000000000000000000000000000000000.scope"  # docker/web-1
# cgroup path -> cores its tasks burn; every other cgroup burns IDLE.
BUSY: Dict[str, float] = {"system.slice/nginx.service": 0.5, WEB: 0.25}
IDLE = 0.02
OOM_EVERY = 4.0  # seconds between OOM kills in docker/web-1: any window of a rate or a range sees one
MEMORY = (150_000_000, 200_000_000)  # docker/web-1's memory swings between these (its limit: 512 MiB)


class FedSysfs(NamedTuple):
    sysfs: Path  # for paths.sysfs
    cgroup: Path  # the cgroup tree inside it
    docker_root: Path  # for collectors.cgroups.docker_root: container names


def fed_sysfs(tmp: Path) -> FedSysfs:
    """Make ``tmp/sys`` (this machine's /sys with the fixture cgroup tree) and
    ``tmp/rootfs`` (docker's container files)."""
    sysfs = tmp / "sys"
    sysfs.mkdir()
    for entry in Path("/sys").iterdir():
        if entry.name != "fs":
            (sysfs / entry.name).symlink_to(entry)
    (sysfs / "fs").mkdir()
    cgroup = sysfs / "fs" / "cgroup"
    shutil.copytree(FIXTURE / "sys" / "fs" / "cgroup", cgroup)
    shutil.copytree(FIXTURE / "rootfs", tmp / "rootfs")
    return FedSysfs(sysfs, cgroup, tmp / "rootfs" / "var" / "lib" / "docker")


def _rewrite(path: Path, change) -> None:
    """Replace ``path`` with ``change(text)`` in one step, so a reader sees
    the old file or the new one, never half of either."""
    text = change(path.read_text())
    tmp = path.with_name(path.name + ".new")
    tmp.write_text(text)
    os.replace(tmp, path)


def _add(text: str, pattern: str, amount: int) -> str:
    """``text`` with the number of every ``pattern`` (a regex whose group 2 is
    the number) raised by ``amount``."""
    return re.sub(pattern, lambda m: f"{m.group(1)}{int(m.group(2)) + amount}", text)


class CounterFeed(threading.Thread):
    """Moves the counters of a fixture cgroup tree every ``every`` seconds
    until stopped (a context manager), by the time that really passed: a
    busy machine that runs it late gets the same rates."""

    def __init__(self, root: Path, every: float = 0.25) -> None:
        super().__init__(daemon=True)
        self.root = root
        self.every = every
        self.elapsed = 0.0
        self.oom_kills = 0
        self._done = threading.Event()
        self.error: Optional[BaseException] = None

    def __enter__(self) -> "CounterFeed":
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        self.join(10)
        if self.error is not None:
            raise self.error

    def run(self) -> None:
        try:
            last = time.monotonic()
            while not self._done.wait(self.every):
                now = time.monotonic()
                self.step(now - last)
                last = now
        except BaseException as exc:  # reported by __exit__
            self.error = exc

    def step(self, seconds: float) -> None:
        self.elapsed += seconds
        for stat in self.root.rglob("cpu.stat"):
            cgroup = str(stat.parent.relative_to(self.root))
            usec = int(BUSY.get(cgroup, IDLE) * seconds * 1e6)
            user = usec * 3 // 4

            def cpu(text: str, usec: int = usec, user: int = user) -> str:
                text = _add(text, r"(usage_usec )(\d+)", usec)
                text = _add(text, r"(user_usec )(\d+)", user)
                return _add(text, r"(system_usec )(\d+)", usec - user)

            _rewrite(stat, cpu)
            io = stat.with_name("io.stat")
            if io.exists():
                _rewrite(io, lambda text, n=usec: _add(_add(text, r"(rbytes=)(\d+)", 40 * n), r"(wbytes=)(\d+)", 10 * n))
            for name in ("cpu.pressure", "memory.pressure", "io.pressure"):
                psi = stat.with_name(name)
                if psi.exists():
                    _rewrite(psi, lambda text, n=usec: _add(text, r"(total=)(\d+)", n // 10))
        web = self.root / WEB
        low, high = MEMORY
        memory = low + int((high - low) * (self.elapsed % 4) / 4)  # a saw tooth with a 4 s period
        _rewrite(web / "memory.current", lambda _text: f"{memory}\n")
        if self.elapsed >= (self.oom_kills + 1) * OOM_EVERY:
            _rewrite(web / "memory.events", lambda text: _add(_add(text, r"(oom_kill )(\d+)", 1), r"(oom )(\d+)", 1))
            self.oom_kills += 1
