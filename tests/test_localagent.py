"""Where the agent configured on this host answers (``hostagent.localagent``)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from support import require_tool

from hostagent import config as cfgmod
from hostagent import localagent


def found(tmp_path: Path, yaml: str, **env: str) -> localagent.LocalAgent:
    path = tmp_path / "agent.yaml"
    path.write_text(yaml)
    return localagent.find(str(path), env)


@pytest.mark.parametrize(
    "listen, url",
    [
        (":9100", "http://127.0.0.1:9100"),
        ("0.0.0.0:9200", "http://127.0.0.1:9200"),
        ("[::]:9300", "http://[::1]:9300"),
        ("[::1]:9400", "http://[::1]:9400"),
        ("10.1.2.3:9500", "http://10.1.2.3:9500"),
    ],
)
def test_an_agent_on_every_interface_is_asked_on_loopback(tmp_path: Path, listen: str, url: str) -> None:
    agent = found(tmp_path, f"web:\n  listen_address: '{listen}'\n")
    assert (agent.url, agent.listen_address, agent.tls) == (url, listen, None)


def test_the_environment_wins_over_the_file(tmp_path: Path) -> None:
    agent = found(tmp_path, "web:\n  listen_address: ':9100'\n", HOSTAGENT_WEB_LISTEN_ADDRESS="127.0.0.2:9999")
    assert agent.url == "http://127.0.0.2:9999"


def test_tls_in_the_web_config_means_https(tmp_path: Path) -> None:
    made = subprocess.run(
        [require_tool("openssl"), "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=agent.example",
         "-keyout", str(tmp_path / "tls.key"), "-out", str(tmp_path / "tls.crt")],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    web = tmp_path / "web.yml"
    web.write_text("tls_server_config:\n  cert_file: tls.crt\n  key_file: tls.key\n")  # relative to the web config, as the agent reads them
    agent = found(tmp_path, f"web:\n  listen_address: ':9443'\n  config_file: '{web}'\n")
    assert agent.url == "https://127.0.0.1:9443" and agent.tls is not None


def test_a_configuration_the_agent_would_refuse_is_refused(tmp_path: Path) -> None:
    with pytest.raises(cfgmod.ConfigError, match="listen_address"):
        found(tmp_path, "web:\n  listen_address: 'nonsense'\n")
    with pytest.raises(cfgmod.ConfigError, match="missing.yml"):
        found(tmp_path, f"web:\n  config_file: '{tmp_path / 'missing.yml'}'\n")
