"""A cgroup of the test's own in this machine's v1 hierarchies, removed afterwards.

Each is made below the test process's own cgroup in its hierarchy, so nothing
moved into it leaves the resources the tests were given.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Dict, Iterator, Sequence

import pytest
from support import wait_until

ROOT = Path("/sys/fs/cgroup")


def own_cgroup(controller: str) -> str:
    """This process's cgroup path in the v1 hierarchy of ``controller``."""
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        if controller in controllers.split(","):
            return path.lstrip("/")
    raise LookupError(controller)


def _rmdir(path: Path) -> bool:
    try:
        path.rmdir()
        return True
    except FileNotFoundError:
        return True
    except OSError:
        return False  # a killed task leaves its cgroup a moment later


@contextlib.contextmanager
def v1_cgroup(name: str, hierarchies: Sequence[str] = ("cpuacct", "memory")) -> Iterator[Dict[str, Path]]:
    """Directories ``<hierarchy>/<own cgroup>/<name>``, made now and removed
    at the end (after the processes put in them have exited)."""
    for h in hierarchies:
        if not (ROOT / h / "cgroup.procs").is_file():
            pytest.skip(f"this test needs the v1 {h} hierarchy")
        if not os.access(ROOT / h, os.W_OK):
            pytest.skip("making a cgroup needs root")
    dirs = {h: ROOT / h / own_cgroup(h) / name for h in hierarchies}
    made = []
    try:
        for d in dirs.values():
            d.mkdir()
            made.append(d)
        yield dirs
    finally:
        for d in made:
            wait_until(lambda d=d: _rmdir(d), 15, f"{d} to be removed")


def move(pid: int, dirs: Dict[str, Path]) -> None:
    """Put process ``pid`` into every directory of ``dirs``."""
    for d in dirs.values():
        (d / "cgroup.procs").write_text(f"{pid}\n")
