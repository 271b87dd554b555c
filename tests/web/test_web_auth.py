"""Basic auth with bcrypt hashes, web config validation, and the access log."""

from __future__ import annotations

import base64
import logging
import os
import re
import ssl
import subprocess
import threading
import time
from pathlib import Path
from typing import List

import bcrypt
import pytest
import requests
import yaml
from support import REPO, require_tool
from web.rawhttp import get, read_response, request

from hostagent import webconfig
from hostagent.config import ConfigError
from hostagent.webconfig import BasicAuth, load_web_config

PASSWORD = "s3cret-Passw0rd"
HASH = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=4)).decode()


def write(tmp_path: Path, text: str, name: str = "web.yml") -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def auth_server(serve, tmp_path: Path, **kwargs):
    ctx, auth = load_web_config(write(tmp_path, f"basic_auth_users:\n  alice: {HASH}\n"))
    assert ctx is None and isinstance(auth, BasicAuth)
    return serve(authenticate=auth, **kwargs)


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


@pytest.mark.parametrize(
    "authorization",
    [None, basic("alice", "wrong"), basic("mallory", PASSWORD), basic("alice", ""), "Bearer abc", "Basic !!!notbase64", "Basic " + base64.b64encode(b"nocolon").decode()],
    ids=["missing", "wrong-password", "unknown-user", "empty-password", "other-scheme", "bad-base64", "no-colon"],
)
def test_refused_credentials_get_401_with_challenge(serve, tmp_path, authorization):
    running = auth_server(serve, tmp_path)
    headers = {"Authorization": authorization} if authorization else {}
    resp = requests.get(running.url + "/metrics", headers=headers, timeout=5)
    assert resp.status_code == 401
    assert resp.headers["WWW-Authenticate"].startswith('Basic realm="hostagent"')
    assert PASSWORD not in resp.text and HASH not in resp.text


def test_right_credentials_get_200(serve, tmp_path):
    running = auth_server(serve, tmp_path)
    with requests.Session() as session:
        session.auth = ("alice", PASSWORD)
        for _ in range(3):  # the second and later ones come from the verified cache
            assert session.get(running.url + "/metrics", timeout=5).status_code == 200


def test_every_path_needs_credentials(serve, tmp_path):
    running = auth_server(serve, tmp_path)
    for path in ("/", "/metrics", "/-/healthy", "/-/ready", "/nope"):
        assert request(running.port, get(path))[0] == 401, path


class CheckpwSpy:
    """Records the hashes bcrypt.checkpw was asked to compare against."""

    def __init__(self) -> None:
        self.hashes: List[bytes] = []
        self.real = bcrypt.checkpw

    def __call__(self, password: bytes, hashed: bytes) -> bool:
        self.hashes.append(hashed)
        return self.real(password, hashed)


def test_unknown_user_and_wrong_password_both_cost_a_bcrypt_check(monkeypatch):
    spy = CheckpwSpy()
    monkeypatch.setattr(webconfig.bcrypt, "checkpw", spy)
    auth = BasicAuth({"alice": HASH.encode()})
    assert auth.check("alice", b"wrong") is False
    assert auth.check("mallory", b"wrong") is False
    assert auth.check("mallory", PASSWORD.encode()) is False
    assert len(spy.hashes) == 3
    assert spy.hashes[0] == HASH.encode()
    # The stand-in hash has the same cost as the real one, so both take as long.
    assert spy.hashes[1] != HASH.encode() and spy.hashes[1][:7] == HASH.encode()[:7] == b"$2b$04$"
    assert auth.check("alice", PASSWORD.encode()) is True
    assert len(spy.hashes) == 4
    # Verified once, then answered from a cache keyed by digest, not by password.
    assert auth.check("alice", PASSWORD.encode()) is True
    assert len(spy.hashes) == 4
    assert all(PASSWORD.encode() not in key for key in auth._verified)
    # A cached entry never lets another user or password through.
    assert auth.check("alice", PASSWORD.encode() + b"x") is False
    assert len(spy.hashes) == 5


def test_2y_and_2a_hashes_are_accepted(tmp_path):
    for prefix in ("$2a$", "$2y$"):
        _, auth = load_web_config(write(tmp_path, f"basic_auth_users:\n  bob: '{prefix}{HASH[4:]}'\n"))
        assert auth is not None and auth.check("bob", PASSWORD.encode())


def test_access_log_has_request_facts_but_no_credentials(serve, tmp_path, caplog):
    running = auth_server(serve, tmp_path, log_requests=True)
    with caplog.at_level(logging.DEBUG):
        assert requests.get(running.url + "/metrics?x=1", auth=("alice", PASSWORD), timeout=5).status_code == 200
        assert requests.get(running.url + "/-/ready", auth=("alice", "wrong-guess"), timeout=5).status_code == 401
        running.server.stop()
    lines = [r.getMessage() for r in caplog.records if r.name == "hostagent.access"]
    assert len(lines) == 2, lines
    method, path, status, duration, remote = lines[0].split(" ")
    assert (method, path, status) == ("GET", "/metrics", "200")
    assert duration.endswith("ms") and float(duration[:-2]) >= 0
    assert remote.startswith("127.0.0.1:")
    assert lines[1].split(" ")[:3] == ["GET", "/-/ready", "401"]
    everything = "\n".join(r.getMessage() for r in caplog.records)
    for secret in (PASSWORD, "wrong-guess", HASH, basic("alice", PASSWORD)[6:]):
        assert secret not in everything


def test_access_log_is_off_by_default(serve, caplog):
    running = serve()
    with caplog.at_level(logging.DEBUG):
        assert requests.get(running.url + "/", timeout=5).status_code == 200
    assert not [r for r in caplog.records if r.name == "hostagent.access"]


# --------------------------------------------------------------------------
# Validation at start


def problems_of(tmp_path: Path, text: str) -> str:
    with pytest.raises(ConfigError) as info:
        load_web_config(write(tmp_path, text))
    return str(info.value)


@pytest.mark.parametrize(
    "text, expected",
    [
        ("basic_auth_users:\n  alice: plaintext-password\n", "basic_auth_users.alice: not a bcrypt hash"),
        ("basic_auth_users:\n  alice: '$2b$99$" + "a" * 53 + "'\n", "basic_auth_users.alice: not a bcrypt hash"),
        ("basic_auth_users: []\n", "basic_auth_users: must be a mapping"),
        ("basic_auth_users:\n  'a:b': '" + HASH + "'\n", "must be a non-empty string without ':'"),
        ("basic_auth_user:\n  alice: x\n", "basic_auth_user: unknown key (did you mean 'basic_auth_users'?)"),
        ("tls_server_config:\n  cert_file: /nonexistent.crt\n", "cert_file and tls_server_config.key_file: both are required"),
        ("tls_server_config:\n  cert_file: /nonexistent.crt\n  key_file: /nonexistent.key\n", "file not found"),
        ("tls_server_config: yes\n", "tls_server_config: must be a mapping"),
        ("tls_server_config:\n  cert_fil: a\n", "tls_server_config.cert_fil: unknown key (did you mean 'cert_file'?)"),
        ("basic_auth_users:\n  alice: [unclosed\n", "web.yml: not valid YAML at line"),
        ("- just\n- a list\n", "top level: must be a mapping"),
    ],
)
def test_bad_web_config_is_refused_with_the_key_path(tmp_path, text, expected):
    message = problems_of(tmp_path, text)
    assert expected in message
    assert "plaintext-password" not in message


def test_tls_settings_are_checked(tmp_path, certs):
    base = f"tls_server_config:\n  cert_file: {certs.server_cert}\n  key_file: {certs.server_key}\n"
    assert "tls_server_config.min_version: must be one of TLS10, TLS11, TLS12, TLS13, got 'TLS14'" in problems_of(tmp_path, base + "  min_version: TLS14\n")
    assert "tls_server_config.client_auth_type: must be one of" in problems_of(tmp_path, base + "  client_auth_type: Sometimes\n")
    assert "tls_server_config.client_ca_file: required when client_auth_type is RequireAndVerifyClientCert" in problems_of(tmp_path, base + "  client_auth_type: RequireAndVerifyClientCert\n")
    assert "RequireAnyClientCert (a certificate requested but not verified) is not supported" in problems_of(tmp_path, base + "  client_auth_type: RequireAnyClientCert\n")
    assert f"tls_server_config.client_ca_file: is a directory, not a file: {tmp_path}" in problems_of(tmp_path, base + f"  client_auth_type: VerifyClientCertIfGiven\n  client_ca_file: {tmp_path}\n")
    assert "tls_server_config.client_ca_file: cannot load" in problems_of(tmp_path, base + f"  client_auth_type: VerifyClientCertIfGiven\n  client_ca_file: {certs.server_key}\n")
    # A key that does not belong to the certificate.
    assert "cannot load certificate and key" in problems_of(tmp_path, f"tls_server_config:\n  cert_file: {certs.server_cert}\n  key_file: {certs.client_key}\n")


def test_every_problem_is_reported_at_once(tmp_path):
    message = problems_of(tmp_path, "basic_auth_users:\n  alice: nope\n  bob: nope\nextra: 1\n")
    assert "(3 problems)" in message
    assert "basic_auth_users.alice" in message and "basic_auth_users.bob" in message and "extra: unknown key" in message


def test_every_tls_problem_is_reported_at_once(tmp_path):
    message = problems_of(
        tmp_path,
        f"tls_server_config:\n  cert_file: {tmp_path}/none.crt\n  key_file: {tmp_path}/none.key\n"
        "  min_version: TLS99\n  client_auth_type: Sometimes\n",
    )
    assert "(4 problems)" in message, message
    assert "min_version: must be one of" in message and "client_auth_type: must be one of" in message
    assert f"tls_server_config.cert_file: file not found: {tmp_path}/none.crt" in message
    assert f"tls_server_config.key_file: file not found: {tmp_path}/none.key" in message


@pytest.mark.parametrize(
    "versions, expected",
    [
        ("  min_version: TLS13\n  max_version: TLS12\n", "tls_server_config.min_version: TLS13 is above tls_server_config.max_version TLS12"),
        ("  max_version: TLS11\n", "tls_server_config.max_version: TLS11 is below the default tls_server_config.min_version TLS12"),
    ],
    ids=["min-above-max", "max-below-default-min"],
)
@pytest.mark.filterwarnings("ignore:ssl.TLSVersion.TLSv1_1 is deprecated:DeprecationWarning")
def test_a_version_range_with_no_version_in_it_is_refused(tmp_path, certs, versions, expected):
    # OpenSSL would take the context and then fail every handshake.
    base = f"tls_server_config:\n  cert_file: {certs.server_cert}\n  key_file: {certs.server_key}\n"
    assert expected in problems_of(tmp_path, base + versions)
    ctx, _ = load_web_config(write(tmp_path, base + "  min_version: TLS12\n  max_version: TLS12\n"))
    assert ctx is not None and ctx.minimum_version == ctx.maximum_version == ssl.TLSVersion.TLSv1_2


def test_each_tls_file_is_checked_by_its_own_key(tmp_path, certs):
    # OpenSSL's own error for a missing key names neither the key nor its file.
    missing = tmp_path / "missing.key"
    message = problems_of(tmp_path, f"tls_server_config:\n  cert_file: {certs.server_cert}\n  key_file: {missing}\n")
    assert f"tls_server_config.key_file: file not found: {missing}" in message
    assert "cert_file" not in message
    message = problems_of(tmp_path, f"tls_server_config:\n  cert_file: {certs.server_cert}\n  key_file: {certs.server_key}\n"
                                    f"  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: {tmp_path}/ca.crt\n")  # fmt: skip
    assert f"tls_server_config.client_ca_file: file not found: {tmp_path}/ca.crt" in message
    assert "(1 problem)" in message
    assert "tls_server_config.cert_file: must be a file path, got int" in problems_of(tmp_path, f"tls_server_config:\n  cert_file: 12\n  key_file: {certs.server_key}\n")
    nul = problems_of(tmp_path, f"tls_server_config:\n  cert_file: \"a\\0b\"\n  key_file: {certs.server_key}\n")
    assert "tls_server_config.cert_file: must be a file path, got a string with a NUL byte" in nul


def test_an_unreadable_tls_file_is_named(tmp_path, certs, monkeypatch):
    key = tmp_path / "server.key"
    key.write_bytes(certs.server_key.read_bytes())
    key.chmod(0)
    if os.geteuid() == 0:  # root reads any file: refuse this one the way the kernel would
        real_open = open

        def refusing_open(path, *args, **kwargs):
            if str(path) == str(key):
                raise PermissionError(13, "Permission denied", str(path))
            return real_open(path, *args, **kwargs)

        monkeypatch.setattr(webconfig, "open", refusing_open, raising=False)
    message = problems_of(tmp_path, f"tls_server_config:\n  cert_file: {certs.server_cert}\n  key_file: {key}\n")
    assert f"tls_server_config.key_file: permission denied: {key}" in message


def test_non_string_tls_choices_are_refused_not_crashed_on(tmp_path, certs):
    message = problems_of(tmp_path, f"tls_server_config:\n  cert_file: {certs.server_cert}\n  key_file: {certs.server_key}\n"
                                    "  min_version: [TLS12]\n  client_auth_type: {a: 1}\n")  # fmt: skip
    assert "tls_server_config.min_version: must be one of" in message and "tls_server_config.client_auth_type: must be one of" in message


@pytest.mark.parametrize("text", ["basic_auth_users:\n", "basic_auth_users: {}\n", "basic_auth_users: ~\n"], ids=["empty", "empty-mapping", "null"])
def test_basic_auth_users_without_users_is_refused_not_taken_as_off(tmp_path, text):
    # Written out but empty: the users most likely went missing, and serving
    # without auth would be the wrong way to fail.
    message = problems_of(tmp_path, text)
    assert "basic_auth_users: has no users; remove the key to serve without basic auth" in message
    assert load_web_config(write(tmp_path, "{}\n")) == (None, None)


@pytest.mark.parametrize("text", ["tls_server_config:\n", "tls_server_config: ~\n"], ids=["empty", "null"])
def test_empty_tls_server_config_is_refused_not_taken_as_plain_http(tmp_path, text):
    message = problems_of(tmp_path, text)
    assert "tls_server_config: is empty; give cert_file and key_file, or remove the key to serve plain HTTP" in message
    # An empty mapping asks for its files by name.
    assert "tls_server_config.cert_file" in problems_of(tmp_path, "tls_server_config: {}\n")


def test_the_hash_hint_is_the_documented_command(tmp_path):
    documented = next(line for b in doc_blocks("sh") for line in b.splitlines() if line.startswith("htpasswd"))
    assert f"generate one with `{documented}`" in problems_of(tmp_path, "basic_auth_users:\n  alice: plaintext-password\n")


def test_secrets_in_the_wrong_place_are_not_echoed(tmp_path):
    assert HASH not in problems_of(tmp_path, f"basic_auth_users:\n  '{HASH}': alice\n")
    assert HASH not in problems_of(tmp_path, f"'{HASH}'\n")
    assert "a bcrypt hash is used as a user name" in problems_of(tmp_path, f"basic_auth_users:\n  '{HASH}':\n")


def test_compatible_but_unapplied_settings_are_warned_about(tmp_path, certs, caplog):
    text = (
        f"tls_server_config:\n  cert_file: {certs.server_cert}\n  key_file: {certs.server_key}\n"
        "  cipher_suites: [TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256]\n"
        "http_server_config:\n  headers:\n    X-Frame-Options: deny\n"
    )
    with caplog.at_level(logging.WARNING, logger="hostagent.web"):
        ctx, _ = load_web_config(write(tmp_path, text))
    assert ctx is not None
    warned = [r.getMessage() for r in caplog.records]
    assert "web config: tls_server_config.cipher_suites is accepted for compatibility but not applied" in warned
    assert "web config: http_server_config.headers is accepted for compatibility but not applied" in warned


def doc_blocks(lang: str) -> List[str]:
    text = (REPO / "docs" / "security.md").read_text()
    return [part.split("```", 1)[0] for part in text.split(f"```{lang}\n")[1:]]


def test_documented_web_config_loads(tmp_path, certs):
    block = next(b for b in doc_blocks("yaml") if "tls_server_config" in b)
    for doc_path, real in (("/etc/hostagent/tls.crt", certs.server_cert), ("/etc/hostagent/tls.key", certs.server_key),
                           ("/etc/hostagent/clients-ca.crt", certs.client_ca)):  # fmt: skip
        block = block.replace(doc_path, str(real))
    ctx, auth = load_web_config(write(tmp_path, block))
    assert ctx is not None and ctx.verify_mode == ssl.CERT_REQUIRED and ctx.minimum_version == ssl.TLSVersion.TLSv1_2
    assert auth is not None and list(auth.users) == ["prometheus"]


def test_documented_scrape_config_passes_promtool(tmp_path, certs):
    promtool = require_tool("promtool")
    block = next(b for b in doc_blocks("yaml") if "scrape_configs" in b)
    password = tmp_path / "password"
    password.write_text("x\n")
    block = block.replace("/etc/prometheus/hostagent-ca.crt", str(certs.ca)).replace("/etc/prometheus/hostagent.password", str(password))
    config = tmp_path / "prometheus.yml"
    config.write_text(block)
    proc = subprocess.run([promtool, "check", "config", str(config)], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_documented_scrape_job_is_the_one_the_alert_rules_select():
    block = next(b for b in doc_blocks("yaml") if "scrape_configs" in b)
    job = yaml.safe_load(block)["scrape_configs"][0]["job_name"]
    rules = (REPO / "prometheus" / "rules" / "hostagent-alerts.rules.yml").read_text()
    selected = set(re.findall(r'\bjob="([^"]*)"', rules))
    assert selected == {job}, (selected, job)


def test_wrong_password_flood_does_not_delay_a_known_scraper(serve, tmp_path, monkeypatch):
    running = auth_server(serve, tmp_path)
    with requests.Session() as scraper:
        scraper.auth = ("alice", PASSWORD)
        assert scraper.get(running.url + "/metrics", timeout=5).status_code == 200  # verified once
        gate = threading.Event()
        real = bcrypt.checkpw

        def slow_checkpw(password: bytes, hashed: bytes) -> bool:
            gate.wait(10)  # every bcrypt check from now on is stuck
            return real(password, hashed)

        monkeypatch.setattr(webconfig.bcrypt, "checkpw", slow_checkpw)
        flood = [running.connect(timeout=15) for _ in range(8)]
        try:
            for sock in flood:
                sock.sendall(get("/metrics", f"Authorization: {basic('alice', 'guess')}\r\n"))
            time.sleep(0.2)
            started = time.monotonic()
            assert scraper.get(running.url + "/metrics", timeout=5).status_code == 200
            assert time.monotonic() - started < 2.0  # not behind the stuck checks (10 s)
            # The bcrypt work is bounded: two threads, the rest wait their turn.
            assert running.server.authenticate._bcrypt.threads == webconfig.BCRYPT_THREADS
            gate.set()
            assert all(read_response(sock)[0] == 401 for sock in flood)
        finally:
            gate.set()
            for sock in flood:
                sock.close()
