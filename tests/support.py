"""Shared test helpers: real tools, free loopback ports, real servers.

Under CI=true a missing external tool fails the test; elsewhere it skips.
"""

from __future__ import annotations

import math
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

import pytest
import requests

REPO = Path(__file__).resolve().parent.parent
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")

# Debian names of the programs the tests drive.
TOOLS = {
    "promtool": "promtool",
    "prometheus": "prometheus",
    "amtool": "amtool",
    "alertmanager": "prometheus-alertmanager",
    "node_exporter": "prometheus-node-exporter",
    "docker-compose": "docker-compose",
    "process_exporter": "prometheus-process-exporter",
    "victoria-metrics": "victoria-metrics",
    "vmagent": "vmagent",
    "vmalert": "vmalert",
    "tmux": "tmux",
    "chromium": "chromium",
}


class FakeClock:
    """A clock for Runner, Agent and Exposition that moves only when told."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def collector_names(default_only: bool = False) -> List[str]:
    """Every registered collector (or only those on by default), by name:
    the tests' list of collectors, so a new collector needs no test edit.
    On by default means switched on and with something to do under default
    options (the textfile collector is off until a directory is set)."""
    from hostagent.collectors import load_all

    def on_by_default(cls: type) -> bool:
        return cls.default_enabled and not cls.nothing_to_do({key: opt.default for key, opt in cls.options.items()})

    return [name for name, cls in load_all().items() if not default_only or on_by_default(cls)]


def fast_agent_config(top_n: int = 5) -> str:
    """Agent YAML with every collector running each second (those off by
    default stay off), for live tests."""
    lines = ["collectors:"]
    for name in collector_names():
        extra = f", top_n: {top_n}" if name == "processes" else ""
        lines.append(f"  {name}: {{interval: 1{extra}}}")
    return "\n".join(lines) + "\n"


def require_tool(name: str) -> str:
    """Path of an external program; a failure under CI, a skip elsewhere."""
    exe = TOOLS.get(name, name)
    path = shutil.which(exe)
    if path is None:
        message = f"{exe} not found (install its Debian package; ./scripts/test does it as root)"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    return path


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_http(url: str, timeout: float = 15.0, status: int = 200, proc: Optional[subprocess.Popen] = None) -> requests.Response:
    """Poll ``url`` until it answers ``status``; fail with context otherwise."""
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"process exited with {proc.returncode} before {url} answered")
        try:
            resp = requests.get(url, timeout=2)
            if resp.status_code == status:
                return resp
            last = resp.status_code
        except requests.RequestException as exc:
            last = exc
        time.sleep(0.1)
    raise AssertionError(f"{url} did not answer {status} within {timeout}s (last: {last})")


def wait_until(check: Callable[[], object], timeout: float, what: str, every: float = 0.05) -> object:
    """Call ``check`` until it returns something truthy; fail naming ``what``."""
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")


def samples_of(families: Iterable) -> Dict[Tuple[str, Tuple[Tuple[str, str], ...]], float]:
    """Flatten metric families into {(sample name, sorted label pairs): value}."""
    out: Dict[Tuple[str, Tuple[Tuple[str, str], ...]], float] = {}
    for fam in families:
        for s in fam.samples:
            if s.name.endswith("_created"):
                continue
            key = (s.name, tuple(sorted(s.labels.items())))
            assert key not in out, f"duplicate sample {key}"
            out[key] = s.value
    return out


def assert_well_formed(collector_cls: type, got: Mapping[Tuple[str, Tuple[Tuple[str, str], ...]], float], non_negative: bool = True) -> None:
    """Every sample is declared by the collector, with its labels, and finite."""
    specs = {spec.name: spec for spec in collector_cls.metrics}
    assert got, f"{collector_cls.__name__} produced no samples"
    for (name, labels), value in got.items():
        assert name in specs, f"{name} is not declared in {collector_cls.__name__}.metrics"
        assert {k for k, _ in labels} == set(specs[name].labels), (name, labels)
        assert math.isfinite(value), (name, labels, value)
        if non_negative:
            assert value >= 0, (name, labels, value)


class Server:
    """A real server subprocess on loopback, stopped on exit."""

    def __init__(self, argv: Sequence[str], base_url: str, ready_path: str, log: Path, env: Optional[Mapping[str, str]] = None):
        self.argv = list(argv)
        self.base_url = base_url
        self.ready_path = ready_path
        self.log_path = log
        self.env = env
        self.ready_status = 200  # 401 for a server behind basic auth
        # Waited on instead of ready_path when set (e.g. a TLS server that wants a client certificate).
        self.ready_check: Optional[Callable[[], object]] = None
        self.proc: Optional[subprocess.Popen] = None

    def start(self, timeout: float = 30.0) -> "Server":
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(self.argv, stdout=self._log, stderr=subprocess.STDOUT, env=self.env)
        try:
            if self.ready_check is not None:
                wait_until(self.ready_check, timeout, f"{self.argv[0]} to be ready", every=0.1)
            else:
                wait_http(self.base_url + self.ready_path, timeout=timeout, status=self.ready_status, proc=self.proc)
        except AssertionError as exc:
            self.stop()
            raise AssertionError(f"{exc}\n--- log ---\n{self.log()}") from None
        return self

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self, timeout: float = 10.0) -> Optional[int]:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
        return self.proc.returncode

    def __enter__(self) -> "Server":
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def agent_server(tmp: Path, config_text: str = "", port: Optional[int] = None, extra_args: Sequence[str] = (), env: Optional[Mapping[str, str]] = None) -> Server:
    """The real agent (``run_agent.py``) as a subprocess on 127.0.0.1:port."""
    port = port or free_port()
    cfg = tmp / "agent.yaml"
    cfg.write_text(config_text or "{}\n")
    argv = [sys.executable, str(REPO / "run_agent.py"), "--config", str(cfg), f"--web.listen-address=127.0.0.1:{port}", *extra_args]
    full_env = dict(os.environ)
    full_env.update(env or {})
    return Server(argv, f"http://127.0.0.1:{port}", "/-/ready", tmp / f"agent-{port}.log", full_env)


def prometheus_server(tmp: Path, config_text: str, port: Optional[int] = None, extra_args: Sequence[str] = ()) -> Server:
    """A real Prometheus on 127.0.0.1:port with its config at tmp/prometheus.yml."""
    exe = require_tool("prometheus")
    port = port or free_port()
    cfg = tmp / "prometheus.yml"
    cfg.write_text(config_text)
    data = tmp / f"prom-data-{port}"
    argv = [
        exe,
        f"--config.file={cfg}",
        f"--storage.tsdb.path={data}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--web.enable-lifecycle",
        *extra_args,
    ]
    return Server(argv, f"http://127.0.0.1:{port}", "/-/ready", tmp / f"prometheus-{port}.log")


def alertmanager_server(tmp: Path, config_text: str, port: Optional[int] = None, extra_args: Sequence[str] = ()) -> Server:
    """A real Alertmanager on 127.0.0.1:port, clustering off."""
    exe = require_tool("alertmanager")
    port = port or free_port()
    cfg = tmp / "alertmanager.yml"
    cfg.write_text(config_text)
    argv = [
        exe,
        f"--config.file={cfg}",
        f"--storage.path={tmp / f'am-data-{port}'}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--cluster.listen-address=",
        *extra_args,
    ]
    return Server(argv, f"http://127.0.0.1:{port}", "/-/ready", tmp / f"alertmanager-{port}.log")


def prom_query(base_url: str, expr: str, time_: Optional[float] = None) -> List[dict]:
    """Run an instant query through Prometheus's HTTP API; raise on any error."""
    params = {"query": expr}
    if time_ is not None:
        params["time"] = str(time_)
    resp = requests.get(base_url + "/api/v1/query", params=params, timeout=10)
    body = resp.json()
    if resp.status_code != 200 or body.get("status") != "success":
        raise AssertionError(f"query failed: {expr!r}: {body.get('error', resp.text)}")
    return body["data"]["result"]
