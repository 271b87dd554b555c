"""The remote_write snippet in docs/deployment.md: valid, and it really sends."""

from __future__ import annotations

import base64
import re
import shutil
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Dict, Iterator, List

import pytest
import yaml
from support import REPO, free_port, prometheus_server, require_tool

DOC = REPO / "docs" / "deployment.md"


def snippet() -> Dict[str, Any]:
    """The YAML block of docs/deployment.md that holds remote_write."""
    blocks = re.findall(r"```yaml\n(.*?)```", DOC.read_text(), re.S)
    (block,) = [b for b in blocks if "remote_write:" in b]
    return yaml.safe_load(block)


def test_snippet_passes_promtool_in_the_repository_config(tmp_path: Path) -> None:
    promtool = require_tool("promtool")
    conf_dir = tmp_path / "prometheus"
    shutil.copytree(REPO / "prometheus", conf_dir)
    config = yaml.safe_load((conf_dir / "prometheus.yml").read_text())
    extra = snippet()
    config["global"].update(extra["global"])
    config["remote_write"] = extra["remote_write"]
    (conf_dir / "prometheus.yml").write_text(yaml.safe_dump(config, sort_keys=False))
    done = subprocess.run([promtool, "check", "config", str(conf_dir / "prometheus.yml")], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    # promtool does reject a broken remote_write, so the check above means something.
    config["remote_write"][0]["basic_auth"]["password"] = "inline too"
    (conf_dir / "prometheus.yml").write_text(yaml.safe_dump(config, sort_keys=False))
    done = subprocess.run([promtool, "check", "config", str(conf_dir / "prometheus.yml")], capture_output=True, text=True, timeout=60)
    assert done.returncode != 0


class _Receiver(BaseHTTPRequestHandler):
    requests: List[Dict[str, Any]] = []

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        type(self).requests.append({"path": self.path, "headers": dict(self.headers), "size": len(body)})
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture()
def receiver() -> Iterator[str]:
    """A remote-write endpoint on loopback that records what it is sent."""
    _Receiver.requests = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def _debian_build() -> bool:
    out = subprocess.run([require_tool("prometheus"), "--version"], capture_output=True, text=True, timeout=30)
    return "+ds" in (out.stdout + out.stderr).splitlines()[0]


def test_snippet_sends_samples_with_its_credentials(tmp_path: Path, receiver: str) -> None:
    extra = snippet()
    (rw,) = extra["remote_write"]
    password = tmp_path / "remote_write_password"
    password.write_text("s3cret")
    rw = dict(rw, url=f"{receiver}/api/v1/push", basic_auth=dict(rw["basic_auth"], password_file=str(password)))
    rw["queue_config"] = dict(rw["queue_config"], batch_send_deadline="1s")  # faster than the default 5s
    port = free_port()
    config = {
        "global": dict(extra["global"], scrape_interval="1s"),
        "remote_write": [rw],
        "scrape_configs": [{"job_name": "prometheus", "static_configs": [{"targets": [f"127.0.0.1:{port}"]}]}],
    }
    with prometheus_server(tmp_path, yaml.safe_dump(config), port=port).start() as prom:
        deadline = time.time() + 30
        while not _Receiver.requests:
            assert time.time() < deadline, f"nothing was sent\n{prom.log()}"
            time.sleep(0.2)
    sent = _Receiver.requests[0]
    assert sent["path"] == "/api/v1/push" and sent["size"] > 0
    headers = {k.lower(): v for k, v in sent["headers"].items()}
    assert headers["authorization"] == "Basic " + base64.b64encode(b"hostagent:s3cret").decode()
    if _debian_build():
        # Debian's +ds builds drop remote_write `headers` (prometheus/prometheus
        # issue 13030); upstream builds, as in docker-compose.yml, send them.
        assert "x-scope-orgid" not in headers, "the Debian build sends headers now: drop this branch"
    else:
        assert headers.get("x-scope-orgid") == "ops", " ".join(sorted(headers))
    assert headers["content-encoding"] == "snappy"
    assert headers["content-type"] == "application/x-protobuf"
