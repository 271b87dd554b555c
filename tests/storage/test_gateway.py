"""Sites reach the centre through the gateway of docs/deployment.md: a vmagent
with TLS and basic auth in front of the central Prometheus, which listens on
loopback only. The forwarder runs with the compose file's credential flags;
the gateway with the flags of the documented ``docker run``."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
from pathlib import Path
from types import ModuleType
from typing import Dict, List

import pytest
import requests
import yaml
from support import REPO, agent_server, fast_agent_config, require_tool

DOC = REPO / "docs" / "deployment.md"


def documented_gateway() -> List[str]:
    """The gateway's vmagent flags, from the docker run in docs/deployment.md."""
    blocks = re.findall(r"```sh\n(.*?)```", DOC.read_text(), re.S)
    (block,) = [b for b in blocks if "docker run" in b and "--name hostagent-gateway" in b]
    words = shlex.split(block.replace("\\\n", " "), comments=True)
    image = next(i for i, w in enumerate(words) if w.startswith("victoriametrics/vmagent:"))
    return words[image + 1:]


def tls_pair(directory: Path) -> Dict[str, Path]:
    openssl = require_tool("openssl")
    cert, key = directory / "cert.pem", directory / "key.pem"
    done = subprocess.run([openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "1",
                           "-subj", "/CN=central", "-addext", "subjectAltName=IP:127.0.0.1"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return {"cert": cert, "key": key}


def test_forwarder_writes_through_the_authenticated_gateway(tmp_path: Path, fleetlib: ModuleType, engines: None) -> None:
    lib = fleetlib
    tls = tls_pair(tmp_path)
    flags = documented_gateway()
    # The documented paths, pointed into this test's directory.
    rewritten = []
    for flag in flags:
        name, _, value = flag.partition("=")
        if name == "-tlsCertFile":
            flag = f"{name}={tls['cert']}"
        elif name == "-tlsKeyFile":
            flag = f"{name}={tls['key']}"
        elif name in ("-remoteWrite.url", "-remoteWrite.tmpDataPath", "-httpListenAddr"):
            continue  # places: set below
        rewritten.append(flag)
    assert {"-envflag.enable", "-tls"} <= set(rewritten), flags

    with agent_server(tmp_path, fast_agent_config(top_n=3)).start() as agent:
        started = []
        try:
            central = lib.prometheus(tmp_path, "central", lib.receiver_config(), receiver=True).start()
            started.append(central)
            gateway = lib.vmagent(tmp_path, "gateway", {"scrape_configs": []}, [lib.remote_write_url(central)], extra_args=rewritten)
            gateway.env = {**os.environ, "httpAuth_username": "site", "httpAuth_password": "s3cret"}
            gateway.ready_path = "/health"
            gateway_url = f"https://127.0.0.1:{gateway.port}"
            gateway.launch()
            started.append(gateway)
            lib.wait_for(lambda: requests.get(gateway_url + "/health", verify=str(tls["cert"]), timeout=2).status_code == 200, 60, "the gateway")

            # Without credentials, or with wrong ones, nothing is taken; plain HTTP is not spoken.
            assert requests.post(gateway_url + "/api/v1/write", data=b"", verify=str(tls["cert"]), timeout=5).status_code == 401
            assert requests.post(gateway_url + "/api/v1/write", data=b"", auth=("site", "guess"), verify=str(tls["cert"]), timeout=5).status_code == 401
            with pytest.raises(requests.RequestException):
                requests.post(f"http://127.0.0.1:{gateway.port}/api/v1/write", data=b"", timeout=5)

            # The forwarder, as compose runs it with the credential variables set.
            secrets = tmp_path / "secrets"
            secrets.mkdir()
            (secrets / "central_password").write_text("s3cret\n")
            env = {"CENTRAL_WRITE_USER": "site", "CENTRAL_WRITE_PASSWORD_FILE": str(secrets / "central_password"), "CENTRAL_WRITE_CA_FILE": str(tls["cert"])}
            targets = tmp_path / "targets"
            targets.mkdir()
            (targets / "hosts.yml").write_text(yaml.safe_dump([{"targets": [agent.base_url.split("//")[1]], "labels": {"instance": "site-host"}}]))
            forwarder = lib.vmagent(tmp_path, "forwarder", lib.forwarder_config(targets, 1.0), [gateway_url + "/api/v1/write"],
                                    extra_args=lib.shipped_forwarder_flags(env)).start()
            started.append(forwarder)
            lib.wait_for(lambda: lib.query(central.url, 'up{job="hostagent",instance="site-host"} == 1'), 90, "the site's samples at the centre")
            assert len(lib.query(central.url, '{instance="site-host",__name__=~"host_.+"}')) > 100
        finally:
            lib.stop_all(reversed(started))
