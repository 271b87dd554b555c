"""Security promises about the real agent process: TLS and basic auth from
--web.config.file, secrets kept out of logs and metrics, binding only where
configured, bad web config refused before anything starts."""

from __future__ import annotations

import subprocess
import sys
import time

import bcrypt
import requests
from faultagent import listening, run_refused
from support import REPO, agent_server, free_port

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
