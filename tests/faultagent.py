#!/usr/bin/env python3
"""The real agent plus two test-only collectors that fail on command.

    python tests/faultagent.py --config agent.yaml [agent flags...]

``flaky`` raises while its ``control`` file holds the word ``raise``.
``stuck`` opens its ``fifo`` path for reading when that FIFO exists: open(2)
on a FIFO blocks until a writer appears, a real blocked system call like a
statvfs on a dead mount. A writer that opens and closes it lets the run end.
Both are off unless the config enables them; they never leave the test tree.
"""

from __future__ import annotations

import os
import stat
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Dict, Iterator, Optional, Sequence, Tuple

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "src"))

from prometheus_client.core import Metric  # noqa: E402

from hostagent import cli  # noqa: E402
from hostagent.collectors.base import BaseCollector, MetricSpec, Option, OptionError, register  # noqa: E402

if TYPE_CHECKING:
    from support import Server

def path_option(doc: str) -> Option:
    """A file path option, empty for none."""

    def check(value: object) -> object:
        if not isinstance(value, str):
            raise OptionError(f"must be a path, got {value!r}")
        return value

    return Option("", doc, check)


FLAKY_RUNS = MetricSpec("host_faulttest_flaky_runs", "gauge", "Successful runs of the flaky test collector.")
STUCK_RUNS = MetricSpec("host_faulttest_stuck_runs", "gauge", "Successful runs of the stuck test collector.")


class _CountingCollector(BaseCollector):
    """Exports how many runs succeeded; subclasses decide how a run fails."""

    default_enabled = False

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.runs = 0

    def sample(self) -> int:
        self.fault()
        self.runs += 1
        return self.runs

    def fault(self) -> None:
        """Raise or block here, as the test commands."""

    def families(self, sample: int) -> Iterator[Metric]:
        yield self.metrics[0].single(sample)


class FlakyCollector(_CountingCollector):
    """Raises while the control file says ``raise``."""

    name = "flaky"
    help = "test only: fails on command"
    options = {"control": path_option("File whose content 'raise' makes the run fail.")}
    metrics = (FLAKY_RUNS,)

    def fault(self) -> None:
        path = self.config["control"]
        if path and os.path.exists(path):
            with open(path) as f:
                if f.read().strip() == "raise":
                    raise RuntimeError("told to fail by the control file")


class StuckCollector(_CountingCollector):
    """Blocks in open(2) on its FIFO while one exists."""

    name = "stuck"
    help = "test only: hangs on command"
    options = {"fifo": path_option("FIFO to read; the run blocks until a writer opens it.")}
    metrics = (STUCK_RUNS,)

    def fault(self) -> None:
        path = self.config["fifo"]
        if path and os.path.exists(path) and stat.S_ISFIFO(os.stat(path).st_mode):
            with open(path, "rb") as fifo:
                fifo.read()


def fault_server(tmp: Path, config_text: str, port: Optional[int] = None, extra_args: Sequence[str] = ()) -> Server:
    """This script as a real agent subprocess on 127.0.0.1:port (not started)."""
    from support import (
        agent_server,  # the test tree's helpers, not needed to run the agent
    )

    server = agent_server(tmp, config_text, port, extra_args)
    server.argv[1] = os.path.abspath(__file__)
    return server


def scrape(base_url: str, timeout: float = 5.0) -> Dict[Tuple[str, Tuple[Tuple[str, str], ...]], float]:
    """/metrics as {(sample name, sorted label pairs): value}."""
    import requests
    from prometheus_client.parser import text_string_to_metric_families
    from support import samples_of

    resp = requests.get(base_url + "/metrics", timeout=timeout)
    resp.raise_for_status()
    return samples_of(text_string_to_metric_families(resp.text))


def listening(pid: int) -> "list[Tuple[str, int]]":
    """(address, port) of the TCP sockets the process listens on."""
    import psutil

    conns = psutil.Process(pid).net_connections(kind="inet")
    return sorted((c.laddr.ip, c.laddr.port) for c in conns if c.status == psutil.CONN_LISTEN)


def run_refused(argv: Sequence[str], timeout: float = 20.0) -> Tuple[int, str, str]:
    """Run an agent that should refuse to start: (exit status, stdout, stderr),
    failing if it ever listened on a socket while it decided."""
    import subprocess

    import psutil

    proc = subprocess.Popen(list(argv), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        while proc.poll() is None:
            try:
                bound = listening(proc.pid)
            except psutil.NoSuchProcess:
                break
            assert not bound, f"listened on {bound} before its configuration was checked"
            time.sleep(0.01)
        out, err = proc.communicate(timeout=timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return proc.returncode, out, err


def release(fifo: str) -> bool:
    """Open the FIFO's write end once, ending a blocked run; False if none waits."""
    try:
        fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
    except OSError:  # ENXIO: no reader yet
        return False
    os.close(fd)
    return True


if __name__ == "__main__":
    register(FlakyCollector)
    register(StuckCollector)
    sys.exit(cli.main())
