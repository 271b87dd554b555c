"""The agent image: Dockerfile rules, and the agent run the way the container runs it.

There is no container engine here, so the image is not built; instead the
real agent runs with docker-compose.yml's environment against a stand-in for
the /host mount, and the image's HEALTHCHECK command is run against it.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Dict, List

import pytest
import requests
import yaml
from support import REPO, agent_server, free_port, require_tool

DOCKERFILE = (REPO / "Dockerfile").read_text()


def instructions() -> List[tuple]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined."""
    text = re.sub(r"\\\n\s*", " ", DOCKERFILE)
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.strip().startswith("#")]
    return [tuple(ln.split(None, 1)) for ln in lines]


def args_of(name: str) -> List[str]:
    return [a for n, a in instructions() if n == name]


def healthcheck_argv() -> List[str]:
    (check,) = args_of("HEALTHCHECK")
    options, _, command = check.partition(" CMD ")
    assert re.search(r"--interval=\d+s", options) and re.search(r"--timeout=\d+s", options)
    return json.loads(command)


def test_image_rules() -> None:
    (user,) = args_of("USER")
    assert not re.match(r"(0|root)\b", user), "the agent must not run as root"
    assert args_of("EXPOSE") == ["9100"]
    (entry,) = args_of("ENTRYPOINT")
    assert json.loads(entry) == ["hostagent"]
    pyproject = (REPO / "pyproject.toml").read_text()
    assert re.search(r'^hostagent = "hostagent\.cli:main"$', pyproject, re.M), "ENTRYPOINT needs the hostagent script"
    assert healthcheck_argv() == ["hostagent", "healthcheck"]
    env = " ".join(args_of("ENV"))
    assert "HOSTAGENT_CONFIG=/etc/hostagent/agent.yaml" in env


def healthcheck(env: Dict[str, str]) -> subprocess.CompletedProcess:
    """The image's HEALTHCHECK command, run with the container's environment."""
    argv = [sys.executable, str(REPO / "run_agent.py"), *healthcheck_argv()[1:]]
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("HOSTAGENT_")}
    full_env.update(env)
    return subprocess.run(argv, env=full_env, capture_output=True, text=True, timeout=30)


def test_build_context_has_what_the_dockerfile_copies() -> None:
    allowed = [ln[1:].rstrip("/") for ln in (REPO / ".dockerignore").read_text().splitlines() if ln.startswith("!")]
    lines = (REPO / ".dockerignore").read_text().splitlines()
    assert "*" in lines, ".dockerignore should list what goes in, not what stays out"
    for copy in args_of("COPY"):
        *sources, _ = copy.split()
        for src in sources:
            assert src.rstrip("/") in allowed, f"COPY {src} is excluded by .dockerignore"
            assert (REPO / src).exists(), f"COPY {src}: no such file"


@pytest.fixture()
def host_root(tmp_path: Path) -> Path:
    """A stand-in for the container's /host: the real root, entry by entry."""
    root = tmp_path / "host"
    root.mkdir()
    for entry in os.listdir("/"):
        (root / entry).symlink_to(Path("/") / entry)
    return root


def compose_agent_env(host_root: Path) -> Dict[str, str]:
    """docker-compose.yml's agent environment with /host moved to ``host_root``."""
    env = yaml.safe_load((REPO / "docker-compose.yml").read_text())["services"]["agent"]["environment"]
    assert all(v == "/host" or v.startswith("/host/") for v in env.values())
    return {k: str(host_root) + v[len("/host") :] for k, v in env.items()}


def test_agent_runs_with_the_container_settings(tmp_path: Path, host_root: Path) -> None:
    env = compose_agent_env(host_root)
    # top_n: user names come from the host's passwd, read through the configured root.
    with agent_server(tmp_path, "collectors: {processes: {top_n: 5}}\n", env=env).start() as agent:
        body = requests.get(agent.base_url + "/metrics", timeout=10).text
        # Collectors read the host through the configured paths and all succeed.
        ups = re.findall(r'^hostagent_collector_up\{collector="(\w+)"\} (\S+)$', body, re.M)
        assert len(ups) >= 8 and all(v == "1.0" for _, v in ups), ups
        assert re.search(r'^host_filesystem_size_bytes\{[^}]*mountpoint="/"[^}]*\} [1-9]', body, re.M)
        assert re.search(r'^host_process_resident_memory_bytes\{[^}]*username="root"', body, re.M)
        assert re.search(r'^host_process_group_processes\{group="[^"]+"\} [1-9]', body, re.M)
        assert re.search(r"^host_cpu_seconds_total\{", body, re.M)

        port = agent.base_url.rsplit(":", 1)[1]
        # The listen address as a deployer sets it in the container: every
        # interface; the check asks on loopback.
        probe = {**env, "HOSTAGENT_CONFIG": str(tmp_path / "agent.yaml"), "HOSTAGENT_WEB_LISTEN_ADDRESS": f":{port}"}
        assert healthcheck(probe).returncode == 0
    gone = healthcheck(probe)
    assert gone.returncode == 1 and f"no answer from :{port}" in gone.stderr, gone.stderr
    bad = healthcheck({**probe, "HOSTAGENT_WEB_LISTEN_ADDRESS": "nope"})
    assert bad.returncode == 1 and "web.listen_address (from environment variable" in bad.stderr, bad.stderr


def test_healthcheck_counts_an_agent_behind_basic_auth_as_alive(tmp_path: Path) -> None:
    import bcrypt

    web = tmp_path / "web.yml"
    web.write_text("basic_auth_users:\n  prometheus: " + bcrypt.hashpw(b"s3cret", bcrypt.gensalt(rounds=4)).decode() + "\n")
    server = agent_server(tmp_path, "", extra_args=[f"--web.config.file={web}", "--no-collector.processes"])
    server.ready_status = 401
    with server.start() as agent:
        assert requests.get(agent.base_url + "/-/healthy", timeout=5).status_code == 401
        port = agent.base_url.rsplit(":", 1)[1]
        probe = {"HOSTAGENT_CONFIG": str(tmp_path / "agent.yaml"), "HOSTAGENT_WEB_LISTEN_ADDRESS": f"127.0.0.1:{port}", "HOSTAGENT_WEB_CONFIG_FILE": str(web)}
        assert healthcheck(probe).returncode == 0


def test_healthcheck_follows_tls(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    made = subprocess.run(
        [require_tool("openssl"), "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=agent.example",
         "-addext", "subjectAltName=IP:127.0.0.1",
         "-keyout", str(tmp_path / "tls.key"), "-out", str(tmp_path / "tls.crt")],
        capture_output=True, text=True, timeout=60,
    )
    assert made.returncode == 0, made.stderr
    web = tmp_path / "web.yml"
    web.write_text(f"tls_server_config:\n  cert_file: {tmp_path / 'tls.crt'}\n  key_file: {tmp_path / 'tls.key'}\n")
    port = free_port()
    server = agent_server(tmp_path, "", port=port, extra_args=[f"--web.config.file={web}", "--no-collector.processes"])
    server.base_url = f"https://127.0.0.1:{port}"
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(tmp_path / "tls.crt"))  # for the readiness wait
    with server.start():
        probe = {"HOSTAGENT_CONFIG": str(tmp_path / "agent.yaml"), "HOSTAGENT_WEB_LISTEN_ADDRESS": f"127.0.0.1:{port}", "HOSTAGENT_WEB_CONFIG_FILE": str(web)}
        assert healthcheck(probe).returncode == 0
        # Without the web config the probe speaks plain HTTP to a TLS port: not an answer.
        plain = healthcheck({k: v for k, v in probe.items() if k != "HOSTAGENT_WEB_CONFIG_FILE"})
        assert plain.returncode == 1, plain.stderr

    # Client certificates required: the probe has none, and the agent refusing
    # its handshake is the agent answering.
    mtls = tmp_path / "web-mtls.yml"
    mtls.write_text(web.read_text() + f"  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: {tmp_path / 'tls.crt'}\n")
    port = free_port()
    server = agent_server(tmp_path, "", port=port, extra_args=[f"--web.config.file={mtls}", "--no-collector.processes"])
    client = (str(tmp_path / "tls.crt"), str(tmp_path / "tls.key"))

    def serves_with_a_client_cert() -> bool:
        try:
            return requests.get(f"https://127.0.0.1:{port}/-/healthy", cert=client, timeout=2).status_code == 200
        except requests.RequestException:
            return False

    server.ready_check = serves_with_a_client_cert
    with server.start():
        with pytest.raises(requests.exceptions.ConnectionError):  # an SSLError, or (TLS 1.3) the connection ended
            requests.get(f"https://127.0.0.1:{port}/-/healthy", timeout=5)  # no certificate: refused
        probe["HOSTAGENT_WEB_LISTEN_ADDRESS"], probe["HOSTAGENT_WEB_CONFIG_FILE"] = f"127.0.0.1:{port}", str(mtls)
        alive = healthcheck(probe)
        assert alive.returncode == 0, alive.stderr
    gone = healthcheck(probe)
    assert gone.returncode == 1 and "no answer" in gone.stderr, gone.stderr
