"""Security promises about the real agent process: TLS and basic auth from
--web.config.file, secrets kept out of logs and metrics, binding only where
configured, bad web config refused before anything starts."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from typing import List

import bcrypt
import psutil
import pytest
import requests
from faultagent import listening, run_refused
from support import REPO, agent_server, free_port, require_tool, wait_until
from web.rawhttp import get, read_response

PASSWORD = "agent-Passw0rd-7f3a"
WRONG = "wrong-Guess-91bd"
SECRET_ARG = "--api-token=TOPSECRET-5be2c0"

# Few, quick collectors keep start-up fast; processes is the one that could leak command lines.
CONFIG = """
web:
  access_log: true
collectors:
  processes:
    top_n: 100
  filesystem:
    enabled: false
  connections:
    enabled: false
"""


def test_tls_and_basic_auth_agent_keeps_secrets_out_of_logs_and_metrics(tmp_path, certs, monkeypatch):
    hashed = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=4)).decode()
    web = tmp_path / "web.yml"
    web.write_text(
        "tls_server_config:\n"
        f"  cert_file: {certs.server_cert}\n  key_file: {certs.server_key}\n"
        f"basic_auth_users:\n  prometheus: '{hashed}'\n"
    )
    # A process with a secret on its command line, big enough to be a top process.
    holder = subprocess.Popen([sys.executable, "-c", "import time; x = b'x' * (200 << 20); time.sleep(60)", SECRET_ARG])
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(certs.ca))
    port = free_port()
    server = agent_server(tmp_path, CONFIG, port=port, extra_args=["--log.level=debug", f"--web.config.file={web}"])
    server.base_url = f"https://prometheus:{PASSWORD}@127.0.0.1:{port}"
    try:
        time.sleep(0.5)  # let the holder fill its memory before the first run
        with server:
            server.start()
            base = f"https://127.0.0.1:{port}"
            with requests.Session() as s:
                s.auth = ("prometheus", PASSWORD)
                metrics = s.get(base + "/metrics", timeout=10)
                landing = s.get(base + "/", timeout=10)
            assert metrics.status_code == 200 and landing.status_code == 200
            assert f'pid="{holder.pid}"' in metrics.text, "the test process should be a top process"
            assert requests.get(base + "/metrics", timeout=10).status_code == 401
            assert requests.get(base + "/metrics", auth=("prometheus", WRONG), timeout=10).status_code == 401
            assert requests.get(base + "/metrics", auth=("nobody", PASSWORD), timeout=10).status_code == 401
            try:
                requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5)
            except requests.exceptions.ConnectionError:
                pass
            openmetrics = requests.get(base + "/metrics", auth=("prometheus", PASSWORD), headers={"Accept": "application/openmetrics-text"}, timeout=10)
            with requests.Session() as held:  # a keep-alive TLS connection open at the stop
                assert held.get(base + "/-/ready", auth=("prometheus", PASSWORD), timeout=10).status_code == 200
                server.stop()
        log = server.log()
    finally:
        holder.kill()
        holder.wait()
    assert server.proc.returncode == 0, log
    assert "ERROR" not in log and "Traceback" not in log, log
    assert "listening on 127.0.0.1:%d (https, basic auth)" % port in log
    assert "GET /metrics 200" in log and "GET /metrics 401" in log, log
    for text in (log, metrics.text, landing.text, openmetrics.text):
        for secret in (PASSWORD, WRONG, hashed, hashed[7:], "TOPSECRET"):
            assert secret not in text


def test_agent_listens_where_configured_and_nowhere_else(tmp_path):
    port = free_port()
    with agent_server(tmp_path, CONFIG, port=port) as server, requests.Session() as held:
        server.start()
        assert listening(server.proc.pid) == [("127.0.0.1", port)]
        # Known paths refuse other methods; unknown paths are 404.
        assert held.post(server.base_url + "/metrics", timeout=5).status_code == 405
        assert held.get(server.base_url + "/secret", timeout=5).status_code == 404
        assert held.get(server.base_url + "/metrics", timeout=5).status_code == 200
        # Stopped with that keep-alive connection still open.
        assert server.stop() == 0
    log = server.log()
    assert "ERROR" not in log and "Traceback" not in log, log


def test_bad_web_config_stops_the_agent_before_it_binds(tmp_path):
    web = tmp_path / "web.yml"
    web.write_text("basic_auth_users:\n  prometheus: hunter2-not-a-hash\n")
    port = free_port()
    code, out, err = run_refused([sys.executable, str(REPO / "run_agent.py"), "--config", "/dev/null", f"--web.listen-address=127.0.0.1:{port}", f"--web.config.file={web}"])
    assert code == 2, err
    assert "basic_auth_users.prometheus: not a bcrypt hash" in err
    assert "Traceback" not in err and "hunter2" not in err + out


# Few collectors, so the agent's own descriptors and memory stay steady.
QUIET = "collectors:\n" + "".join(f"  {name}: {{enabled: false}}\n" for name in ("processes", "filesystem", "connections", "diskio", "network"))


def test_agent_exports_its_http_server_metrics(tmp_path):
    with agent_server(tmp_path, QUIET) as server:
        server.start()
        assert requests.get(server.base_url + "/nope", timeout=5).status_code == 404
        body = requests.get(server.base_url + "/metrics", timeout=5).text
    assert 'hostagent_http_requests_total{code="404"} 1.0' in body
    assert 'hostagent_http_rejected_total{reason="busy"} 0.0' in body
    assert 'hostagent_http_connections{state="active"} 1.0' in body  # this scrape
    assert "hostagent_http_requests_in_flight 1.0" in body


def test_out_of_file_descriptors_is_one_warning_not_a_traceback_flood(tmp_path):
    # With `ulimit -n 64` and 200 clients the plain listener logged 10,297
    # tracebacks in 10 s. Now the connection limit fits the file limit, the
    # clients beyond it displace one another, and scrapes keep answering.
    prlimit = require_tool("prlimit")
    server = agent_server(tmp_path, QUIET)
    server.argv = [prlimit, "--nofile=64:64", *server.argv]
    clients: List[socket.socket] = []
    with server:
        server.start()
        port = int(server.base_url.rsplit(":", 1)[1])
        for _ in range(200):  # from another host than the scrapes'
            clients.append(socket.create_connection(("127.0.0.1", port), timeout=5, source_address=("127.0.0.2", 0)))
            if len(clients) % 20 == 0:
                assert requests.get(server.base_url + "/metrics", timeout=5).status_code == 200
        for _ in range(10):
            assert requests.get(server.base_url + "/metrics", timeout=5).status_code == 200
        for sock in clients:
            sock.close()
        server.stop()
    log = server.log()
    assert "Traceback" not in log and "ERROR" not in log, log[-3000:]
    assert log.count("serving at most 32 connections, not web.max_connections 512: the open files limit is 64") == 1, log[-3000:]
    assert log.count("cannot accept connections") <= 1, log[-3000:]


EMFILE_SERVER = """
import resource, sys, time
sys.path.insert(0, sys.argv[1])
from hostagent import web
web.connection_budget = lambda n: n  # let connections run into the file limit itself
resource.setrlimit(resource.RLIMIT_NOFILE, (48, 48))
import logging
logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
server = web.HTTPServer("127.0.0.1", 0, lambda r: web.Response(200, b"ok\\n"), web.Limits(max_connections=1000, read_timeout=30))
print(server.bind()[0][1], flush=True)
server.start()
time.sleep(60)
"""


def test_running_out_of_descriptors_backs_off_and_makes_room(tmp_path):
    proc = subprocess.Popen([sys.executable, "-c", EMFILE_SERVER, str(REPO / "src")], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    clients: List[socket.socket] = []
    try:
        port = int(proc.stdout.readline())
        for _ in range(100):  # twice what the process may open
            clients.append(socket.create_connection(("127.0.0.1", port), timeout=5))
        for _ in range(5):
            with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
                sock.sendall(get("/"))
                assert read_response(sock)[0] == 200
    finally:
        for sock in clients:
            sock.close()
        proc.kill()
        _, err = proc.communicate(timeout=10)
    assert "Traceback" not in err, err[-3000:]
    assert err.count("cannot accept connections: Too many open files") == 1, err[-3000:]


def junk_storm(port: int, count: int) -> None:
    """``count`` connections at once, each announcing a 16 KiB TLS record and
    sending half of it in junk; closed together after a moment."""
    socks = []
    try:
        for _ in range(count):
            sock = socket.create_connection(("127.0.0.1", port), timeout=5)
            sock.sendall(b"\x16\x03\x01\x40\x00" + os.urandom(8192))
            socks.append(sock)
        time.sleep(1.0)
    finally:
        for sock in socks:
            sock.close()


def rss_mib(pid: int) -> float:
    return psutil.Process(pid).memory_info().rss / 2**20


def test_junk_tls_storms_leave_memory_where_it_was(tmp_path, certs, monkeypatch):
    # 1,000 junk ClientHellos took the agent from 31 to 175 MB, for good.
    web = tmp_path / "web.yml"
    web.write_text(f"tls_server_config:\n  cert_file: {certs.server_cert}\n  key_file: {certs.server_key}\n")
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(certs.ca))
    server = agent_server(tmp_path, QUIET, extra_args=[f"--web.config.file={web}"])
    server.base_url = server.base_url.replace("http://", "https://")
    with server:
        server.start()
        port = int(server.base_url.rsplit(":", 1)[1])
        fds = len(os.listdir(f"/proc/{server.proc.pid}/fd"))
        junk_storm(port, 100)  # the allocator's first growth, before the baseline
        wait_until(lambda: len(os.listdir(f"/proc/{server.proc.pid}/fd")) <= fds, 15, "the warm-up connections closed")
        before = rss_mib(server.proc.pid)
        for _ in range(3):
            junk_storm(port, 400)
        wait_until(lambda: len(os.listdir(f"/proc/{server.proc.pid}/fd")) <= fds, 15, "the junk connections closed")
        assert requests.get(server.base_url + "/-/healthy", timeout=5).status_code == 200
        grown = []
        assert wait_until(lambda: grown.append(rss_mib(server.proc.pid) - before) or grown[-1] < 5.0, 30, "memory back within 5 MiB"), grown


@pytest.mark.parametrize("kind", ["fifo-certificate", "cost-31-hash"])
def test_web_configs_that_used_to_hang_the_start_are_refused_at_once(tmp_path, certs, kind):
    # A FIFO as cert_file blocked the start for good; a cost-31 bcrypt hash
    # made the start compute a stand-in hash for days.
    web = tmp_path / "web.yml"
    if kind == "fifo-certificate":
        fifo = tmp_path / "tls.crt"
        os.mkfifo(fifo)
        web.write_text(f"tls_server_config:\n  cert_file: {fifo}\n  key_file: {certs.server_key}\n")
        expected = f"tls_server_config.cert_file: is not a regular file (a FIFO, socket or device): {fifo}"
    else:
        web.write_text("basic_auth_users:\n  prometheus: '$2b$31$" + "a" * 53 + "'\n")
        expected = "basic_auth_users.prometheus: bcrypt cost 31 is too slow to check"
    started = time.monotonic()
    code, out, err = run_refused([sys.executable, str(REPO / "run_agent.py"), "--config", "/dev/null", f"--web.config.file={web}"])
    assert code == 2, err
    assert expected in err and "Traceback" not in err
    assert time.monotonic() - started < 15
