"""Shared pieces of the bench scripts: processes, /proc readings, a scraper.

Standard library only, so ``bench/compare`` and ``bench/soak`` run with any
Python 3.9+; the agent itself runs with the checkout's virtualenv.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Optional, Sequence, Tuple

REPO = Path(__file__).resolve().parent.parent
AGENT_SCRIPT = REPO / "run_agent.py"
DEFAULT_CONFIG = REPO / "config" / "agent.yaml"
VENV_PYTHON = REPO / ".venv" / "bin" / "python"

# The headers Prometheus 2.x sends on every scrape: the bench asks what it asks.
PROMETHEUS_HEADERS: Dict[str, str] = {
    "Accept": "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,"
    "text/plain;version=0.0.4;q=0.5,*/*;q=0.1",
    "Accept-Encoding": "gzip",
    "User-Agent": "Prometheus/2.42.0",
}

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
MiB = 1024 * 1024


class BenchError(Exception):
    """A set-up problem (missing tool, server that does not start); the message says which."""


def exit_on_sigterm() -> None:
    """Turn SIGTERM into SystemExit, so started servers are stopped on the way out."""
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))


def agent_python() -> str:
    """The checkout's virtualenv Python if there is one, else this one."""
    return str(VENV_PYTHON) if VENV_PYTHON.exists() else sys.executable


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def parse_duration(text: str) -> float:
    """Seconds from ``90``, ``90s``, ``30m`` or ``1h``; ValueError naming the problem."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smh]?)\s*", str(text))
    if not match:
        raise ValueError(f"not a duration: {text!r} (use e.g. 45s, 30m, 1h)")
    value = float(match.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600}[match.group(2)]
    if value <= 0:
        raise ValueError(f"duration must be greater than 0: {text!r}")
    return value


def duration_arg(text: str) -> float:
    """parse_duration for argparse, which then shows the reason on bad input."""
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100) by nearest rank; nan for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * q // 100))  # ceiling without floats
    return ordered[int(rank) - 1]


# --------------------------------------------------------------------------
# /proc readings


@dataclass(frozen=True)
class ProcReading:
    """One look at a process: memory in bytes, CPU seconds, threads, fds."""

    rss: int
    hwm: int  # peak RSS so far
    pss: int
    uss: int
    threads: int
    fds: int
    cpu_seconds: float


def _status_fields(pid: int) -> Dict[str, str]:
    out = {}
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            key, _, value = line.partition(":")
            out[key] = value.strip()
    return out


def _kib(text: str) -> int:
    return int(text.split()[0]) * 1024


def cpu_seconds(pid: int) -> float:
    """User plus system CPU seconds the process has used."""
    with open(f"/proc/{pid}/stat") as fh:
        stat = fh.read()
    # Fields after the command name, which may itself hold spaces and parentheses.
    fields = stat[stat.rindex(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def read_process(pid: int) -> ProcReading:
    """RSS, peak RSS, PSS, USS, threads, open fds and CPU seconds of ``pid``."""
    status = _status_fields(pid)
    pss = uss = 0
    try:
        with open(f"/proc/{pid}/smaps_rollup") as fh:
            for line in fh:
                key, _, value = line.partition(":")
                if key == "Pss":
                    pss = _kib(value)
                elif key in ("Private_Clean", "Private_Dirty"):
                    uss += _kib(value)
    except OSError:  # older kernels: PSS/USS stay 0 and the table says n/a
        pass
    return ProcReading(
        rss=_kib(status["VmRSS"]),
        hwm=_kib(status["VmHWM"]),
        pss=pss,
        uss=uss,
        threads=int(status["Threads"]),
        fds=len(os.listdir(f"/proc/{pid}/fd")),
        cpu_seconds=cpu_seconds(pid),
    )


def load_average() -> Tuple[float, float, float]:
    """The 1, 5 and 15 minute load averages."""
    one, five, fifteen = os.getloadavg()
    return one, five, fifteen


def machine_summary() -> str:
    """CPU model, cores, memory and kernel, in one line."""
    model = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
        with open("/proc/meminfo") as fh:
            mem = _kib(fh.readline().split(":", 1)[1])
    except OSError:
        mem = 0
    return f"{model}, {os.cpu_count()} cores, {mem / (1024 * MiB):.1f} GiB RAM, Linux {os.uname().release}"


def checkout_revision() -> str:
    """The checkout's commit, marked when tracked files in src/ differ from it."""
    try:
        rev = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(REPO), "diff", "--quiet", "HEAD", "--", "src"], capture_output=True, timeout=10).returncode != 0
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    if not rev:
        return "unknown (not a git checkout)"
    return rev + (" with local changes in src/" if dirty else "")


# --------------------------------------------------------------------------
# Servers under test


class Service:
    """A server subprocess on loopback, started and stopped by the bench."""

    def __init__(self, name: str, argv: Sequence[str], port: int, ready_path: str, log_path: Path, host: str = "127.0.0.1"):
        self.name = name
        self.argv = list(argv)
        self.host = host
        self.port = port
        self.ready_path = ready_path
        self.log_path = log_path
        self.env: Optional[Dict[str, str]] = None  # the whole environment, when not this process's
        self.proc: Optional[subprocess.Popen] = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def pid(self) -> int:
        assert self.proc is not None, "not started"
        return self.proc.pid

    def start(self, timeout: float = 60.0) -> "Service":
        return self.launch().wait_ready(timeout)

    def launch(self) -> "Service":
        """Start the process without waiting for it (many at once, then wait_ready each)."""
        with open(self.log_path, "ab") as log:  # appended: a restarted service keeps its earlier log
            self.proc = subprocess.Popen(self.argv, stdout=log, stderr=subprocess.STDOUT, env=self.env)
        return self

    def wait_ready(self, timeout: float = 60.0) -> "Service":
        """Poll ready_path until it answers 200; stop the process and raise otherwise."""
        assert self.proc is not None, "not launched"
        deadline = time.monotonic() + timeout
        last = "no answer"
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise BenchError(f"{self.name} exited with {self.proc.returncode} while starting:\n{self.log_tail()}")
            try:
                with Scraper(self.host, self.port, self.ready_path, headers={}) as probe:
                    status, _ = probe.get()
                if status == 200:
                    return self
                last = f"HTTP {status}"
            except OSError as exc:
                last = str(exc)
            time.sleep(0.1)
        self.stop()
        raise BenchError(f"{self.name} not ready at {self.url}{self.ready_path} within {timeout:g}s ({last}):\n{self.log_tail()}")

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def stop(self, timeout: float = 10.0) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def __enter__(self) -> "Service":
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def agent_service(workdir: Path, config: Path = DEFAULT_CONFIG, extra_args: Sequence[str] = (), port: Optional[int] = None) -> Service:
    """The agent from this checkout (``run_agent.py``) on a free loopback port."""
    port = port or free_port()
    argv = [agent_python(), str(AGENT_SCRIPT), "--config", str(config), f"--web.listen-address=127.0.0.1:{port}", *extra_args]
    return Service("hostagent", argv, port, "/-/ready", workdir / f"hostagent-{port}.log")


# --------------------------------------------------------------------------
# A light HTTP/1.1 client: raw socket, keep-alive, Content-Length or chunked.


class Scraper:
    """GETs one path over a kept-alive connection, reconnecting when closed.

    Plain sockets keep the client's own cost far below a library's, so
    latencies measure the server, not the client."""

    def __init__(self, host: str, port: int, path: str = "/metrics", headers: Optional[Dict[str, str]] = None, timeout: float = 10.0, keep_alive: bool = True):
        head = {"Host": f"{host}:{port}", **(PROMETHEUS_HEADERS if headers is None else headers)}
        if not keep_alive:
            head["Connection"] = "close"
        self.request = (f"GET {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in head.items()) + "\r\n").encode("latin-1")
        self.address = (host, port)
        self.timeout = timeout
        self._sock: Optional[socket.socket] = None
        self._file = None

    def _connect(self) -> None:
        self._sock = socket.create_connection(self.address, self.timeout)
        self._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._file = self._sock.makefile("rb")

    def get(self) -> Tuple[int, int]:
        """One request: (status, body bytes). Raises OSError on failure."""
        if self._sock is None:
            self._connect()
        try:
            self._sock.sendall(self.request)  # type: ignore[union-attr]
            return self._read_response()
        except Exception:
            self.close()
            raise

    def _read_response(self) -> Tuple[int, int]:
        fh = self._file
        status_line = fh.readline()  # type: ignore[union-attr]
        if not status_line:
            raise ConnectionError("server closed the connection without answering")
        parts = status_line.split(None, 2)
        if len(parts) < 2 or not parts[0].startswith(b"HTTP/"):
            raise ConnectionError(f"malformed status line: {status_line[:80]!r}")
        headers: Dict[str, str] = {}
        while True:
            line = fh.readline()  # type: ignore[union-attr]
            if line in (b"\r\n", b"\n", b""):
                break
            key, _, value = line.decode("latin-1").partition(":")
            headers[key.strip().lower()] = value.strip()
        if headers.get("transfer-encoding", "").lower() == "chunked":
            size = self._read_chunked()
        else:
            size = int(headers.get("content-length", "0"))
            if len(fh.read(size)) != size:  # type: ignore[union-attr]
                raise ConnectionError("response body cut short")
        if headers.get("connection", "").lower() == "close":
            self.close()
        return int(parts[1]), size

    def _read_chunked(self) -> int:
        fh = self._file
        total = 0
        while True:
            size = int(fh.readline().split(b";")[0], 16)  # type: ignore[union-attr]
            if size == 0:
                while fh.readline() not in (b"\r\n", b"\n", b""):  # type: ignore[union-attr]
                    pass  # trailers
                return total
            if len(fh.read(size + 2)) != size + 2:  # type: ignore[union-attr]
                raise ConnectionError("chunked body cut short")
            total += size

    def close(self) -> None:
        for thing in (self._file, self._sock):
            if thing is not None:
                try:
                    thing.close()
                except OSError:
                    pass
        self._file = self._sock = None

    def __enter__(self) -> "Scraper":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

