"""The tools against an agent behind TLS and basic auth, and the agent's own weight."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import bcrypt
import pytest
from support import REPO, Server, agent_server, fast_agent_config, free_port, require_tool
from tools_support import one_line_error, tool

PASSWORD = "s3cret-for-top"


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory):
    """(agent https URL, CA file, password file, wrong password file, agent config using the web config)."""
    openssl = require_tool("openssl")
    tmp = tmp_path_factory.mktemp("secured")
    key, cert = tmp / "server.key", tmp / "server.crt"
    made = subprocess.run(
        [openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    hashed = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=4)).decode()
    web = tmp / "web.yml"
    web.write_text(f"tls_server_config:\n  cert_file: {cert}\n  key_file: {key}\nbasic_auth_users:\n  ops: '{hashed}'\n")
    good, bad = tmp / "pw", tmp / "wrong"
    good.write_text(PASSWORD + "\n")
    bad.write_text("nope\n")
    port = free_port()
    server = agent_server(tmp, fast_agent_config(), port=port, extra_args=[f"--web.config.file={web}"])
    server.ready_check = lambda: _answers(f"https://127.0.0.1:{port}/-/healthy", cert)
    config = tmp / "local.yaml"
    config.write_text(f"web:\n  listen_address: '127.0.0.1:{port}'\n  config_file: {web}\n")
    with server.start():
        yield f"https://127.0.0.1:{port}", cert, good, bad, config


def _answers(url: str, ca: Path) -> bool:
    import requests

    try:
        return requests.get(url, verify=str(ca), timeout=2).status_code in (200, 401)
    except requests.RequestException:
        return False


def test_tls_and_basic_auth(secured) -> None:
    url, ca, good, bad, _ = secured
    done = tool("top", "--url", url, "--ca-file", str(ca), "--username", "ops", "--password-file", str(good), "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["memory"]["total"] > 0
    # The password may also come from the environment.
    done = tool("top", "--url", url, "--ca-file", str(ca), "--username", "ops", "--once", env={"HOSTAGENT_PASSWORD": PASSWORD})
    assert done.returncode == 0, done.stderr
    cases = [
        (["--url", url, "--ca-file", str(ca), "--once"], "401 Unauthorized: it wants basic auth"),
        (["--url", url, "--ca-file", str(ca), "--username", "ops", "--password-file", str(bad), "--once"], "wrong user name or password"),
        (["--url", url, "--username", "ops", "--password-file", str(good), "--once"], "certificate verify failed"),
        (["--url", url.replace("https", "http"), "--username", "ops", "--password-file", str(good), "--once"], "an HTTP request to an HTTPS server"),
        (["--url", url, "--ca-file", str(ca), "--password-file", str(good), "--once"], "no --username"),
    ]
    for argv, words in cases:
        line = one_line_error(tool("top", *argv))
        assert words in line, (argv, line)


def test_local_agent_over_tls_as_the_health_check_reaches_it(secured) -> None:
    url, _, good, _, config = secured
    done = tool("top", "--config", str(config), "--username", "ops", "--password-file", str(good), "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["source"] == url


def test_the_agent_never_imports_the_tools_or_their_libraries(tmp_path: Path) -> None:
    """Serving /metrics loads none of rich, textual, matplotlib, numpy or hostagent.tools."""
    port = free_port()
    cfg = tmp_path / "agent.yaml"
    cfg.write_text(fast_agent_config())
    argv = [sys.executable, "-X", "importtime", str(REPO / "run_agent.py"), "--config", str(cfg), f"--web.listen-address=127.0.0.1:{port}"]
    server = Server(argv, f"http://127.0.0.1:{port}", "/-/ready", tmp_path / "agent.log")
    with server.start():
        import requests

        assert requests.get(server.base_url + "/metrics", timeout=10).status_code == 200
    log = server.log()
    imported = {line.split("|")[-1].strip() for line in log.splitlines() if line.startswith("import time:")}
    assert len(imported) > 50, "no -X importtime output"
    heavy = sorted(m for m in imported if m.split(".")[0] in ("rich", "textual", "matplotlib", "numpy", "PIL") or m.startswith("hostagent.tools"))
    assert heavy == []
