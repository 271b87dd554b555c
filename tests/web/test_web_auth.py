"""Basic auth with bcrypt hashes, web config validation, and the access log."""

from __future__ import annotations

import base64
import logging
import os
import re
import ssl
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import List

import bcrypt
import pytest
import requests
import yaml
from support import REPO, require_tool, wait_until
from web.webfiles import problems_of, tls_and_auth, write
from web.rawhttp import get, read_response, request

from hostagent import webconfig
from hostagent.config import ConfigError
from hostagent.web import Limits
from hostagent.webconfig import BasicAuth, load_web_config


PASSWORD = "s3cret-Passw0rd"
HASH = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=4)).decode()



def auth_server(serve, tmp_path: Path, **kwargs):
    ctx, auth = tls_and_auth(write(tmp_path, f"basic_auth_users:\n  alice: {HASH}\n"))
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
    # An unknown user is checked against a configured hash: the same cost,
    # so it takes as long as a wrong password.
    assert spy.hashes == [HASH.encode()] * 3
    assert auth.check("alice", PASSWORD.encode()) is True
    assert len(spy.hashes) == 4
    # Right and wrong results alike are remembered by digest, not by password.
    assert auth.check("alice", PASSWORD.encode()) is True
    assert auth.check("alice", b"wrong") is False
    assert len(spy.hashes) == 4
    remembered = [key for table in auth.checker._results.values() for key in table]
    assert len(remembered) == 4 and all(PASSWORD.encode() not in key and b"wrong" not in key for key in remembered)
    # A remembered entry never lets another user or password through.
    assert auth.check("alice", PASSWORD.encode() + b"x") is False
    assert auth.check("mallory", PASSWORD.encode()) is False
    assert len(spy.hashes) == 5


def test_nothing_is_hashed_at_load(tmp_path, monkeypatch):
    # Start-up used to compute a stand-in hash at the users' highest cost.
    def refuse(*args):
        raise AssertionError("bcrypt work at load")

    monkeypatch.setattr(webconfig.bcrypt, "hashpw", refuse)
    monkeypatch.setattr(webconfig.bcrypt, "checkpw", refuse)
    cost16 = "$2b$16$" + HASH[7:]
    assert tls_and_auth(write(tmp_path, f"basic_auth_users:\n  alice: '{cost16}'\n  bob: '{HASH}'\n"))[1] is not None


@pytest.mark.parametrize("cost", [17, 31])
def test_a_bcrypt_cost_too_slow_to_check_is_refused_by_name_at_once(tmp_path, cost):
    started = time.monotonic()
    message = problems_of(tmp_path, f"basic_auth_users:\n  alice: '$2b${cost}${HASH[7:]}'\n")
    assert time.monotonic() - started < 5
    assert f"basic_auth_users.alice: bcrypt cost {cost} is too slow to check" in message
    assert "use a cost from 4 to 16" in message and HASH[7:] not in message


def test_2y_and_2a_hashes_are_accepted(tmp_path):
    for prefix in ("$2a$", "$2y$"):
        _, auth = tls_and_auth(write(tmp_path, f"basic_auth_users:\n  bob: '{prefix}{HASH[4:]}'\n"))
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
    assert (
        f"tls_server_config.key_file: {certs.client_key} does not match tls_server_config.cert_file {certs.server_cert} (the key is not the certificate's)"
        in problems_of(tmp_path, f"tls_server_config:\n  cert_file: {certs.server_cert}\n  key_file: {certs.client_key}\n")
    )


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
    ctx, _ = tls_and_auth(write(tmp_path, base + "  min_version: TLS12\n  max_version: TLS12\n"))
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
        real_open = webconfig._open_readonly

        def refusing_open(path):
            if str(path) == str(key):
                raise PermissionError(13, "Permission denied", str(path))
            return real_open(path)

        monkeypatch.setattr(webconfig, "_open_readonly", refusing_open)
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
    assert tls_and_auth(write(tmp_path, "{}\n")) == (None, None)


@pytest.mark.parametrize("text", ["tls_server_config:\n", "tls_server_config: ~\n"], ids=["empty", "null"])
def test_empty_tls_server_config_is_refused_not_taken_as_plain_http(tmp_path, text):
    message = problems_of(tmp_path, text)
    assert "tls_server_config: is empty; give cert_file and key_file, or remove the key to serve plain HTTP" in message
    # An empty mapping asks for its files by name.
    assert "tls_server_config.cert_file" in problems_of(tmp_path, "tls_server_config: {}\n")


def test_the_hash_hint_is_the_documented_command(tmp_path):
    documented = next(line for b in doc_blocks("sh") for line in b.splitlines() if line.startswith("hostagent hash-password"))
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
        ctx, _ = tls_and_auth(write(tmp_path, text))
    assert ctx is not None
    warned = [r.getMessage() for r in caplog.records]
    assert warned == ["web config: tls_server_config.cipher_suites is accepted for compatibility but not applied"]


def doc_blocks(lang: str) -> List[str]:
    text = (REPO / "docs" / "security.md").read_text()
    return [part.split("```", 1)[0] for part in text.split(f"```{lang}\n")[1:]]


def test_documented_web_config_loads(tmp_path, certs):
    block = next(b for b in doc_blocks("yaml") if "tls_server_config" in b)
    for doc_path, real in (("/etc/hostagent/tls.crt", certs.server_cert), ("/etc/hostagent/tls.key", certs.server_key),
                           ("/etc/hostagent/clients-ca.crt", certs.client_ca)):  # fmt: skip
        block = block.replace(doc_path, str(real))
    ctx, auth = tls_and_auth(write(tmp_path, block))
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


def test_wrong_password_flood_neither_delays_nor_refuses_a_verified_scraper(serve, tmp_path, monkeypatch):
    # 40 guesses waiting for bcrypt used to fill max_requests, and the
    # scraper whose credentials were verified long before got 503.
    running = auth_server(serve, tmp_path, limits=Limits(max_requests=4))
    with requests.Session() as scraper:
        scraper.auth = ("alice", PASSWORD)
        assert scraper.get(running.url + "/metrics", timeout=5).status_code == 200  # verified once
        gate = threading.Event()
        real = bcrypt.checkpw
        checked: List[bytes] = []

        def slow_checkpw(password: bytes, hashed: bytes) -> bool:
            checked.append(password)
            gate.wait(20)  # every bcrypt check from now on is stuck
            return real(password, hashed)

        monkeypatch.setattr(webconfig.bcrypt, "checkpw", slow_checkpw)
        flood = [running.connect(timeout=30) for _ in range(40)]
        try:
            for i, sock in enumerate(flood):
                sock.sendall(get("/metrics", f"Authorization: {basic('alice', f'guess-{i}')}\r\n"))
                if i == 0:
                    wait_until(lambda: checked, 5, "the first guess's check to start")
            # One check runs, BCRYPT_QUEUE wait; the rest are told to come back.
            throttled = 40 - 1 - 2 * webconfig.BCRYPT_QUEUE  # the host is a suspect after its first 429: 8 more wait apart
            wait_until(lambda: running.server.rejected("auth_throttled") == throttled, 10, f"{throttled} guesses throttled")
            for _ in range(10):
                started = time.monotonic()
                assert scraper.get(running.url + "/metrics", timeout=5).status_code == 200
                assert time.monotonic() - started < 2.0  # not behind the stuck checks (20 s)
            wait_until(lambda: running.server.in_flight == 0, 5, "the scrapes to be done")  # the guesses never counted
            assert running.server.rejected("busy") == 0
            assert len(checked) == 1  # bcrypt ran for one guess only, the rest wait their turn
            gate.set()
            statuses = sorted(read_response(sock)[0] for sock in flood)
            assert statuses == [401] * (1 + 2 * webconfig.BCRYPT_QUEUE) + [429] * throttled
        finally:
            gate.set()
            for sock in flood:
                sock.close()


def test_identical_wrong_credentials_are_checked_once(serve, tmp_path, monkeypatch):
    spy = CheckpwSpy()
    monkeypatch.setattr(webconfig.bcrypt, "checkpw", spy)
    running = auth_server(serve, tmp_path)
    with requests.Session() as stale:
        for _ in range(20):
            assert stale.get(running.url + "/metrics", auth=("alice", "old-password"), timeout=5).status_code == 401
    assert len(spy.hashes) == 1


def test_a_password_longer_than_bcrypt_reads_gets_401_not_a_traceback(serve, tmp_path, caplog):
    # bcrypt 5 raises ValueError beyond 72 bytes; the request died with no
    # answer and a traceback was logged each time.
    running = auth_server(serve, tmp_path)
    with caplog.at_level(logging.DEBUG):
        for length in (73, 100, 4000):
            resp = requests.get(running.url + "/metrics", auth=("alice", "x" * length), timeout=5)
            assert resp.status_code == 401, length
    assert not [r for r in caplog.records if r.levelno > logging.DEBUG], [r.getMessage() for r in caplog.records]
    # At most one debug line per request (the 401 and its reason), capped per minute by the log handler.
    assert len([r for r in caplog.records if r.name.startswith("hostagent")]) <= 3
    assert "Traceback" not in caplog.text


def test_only_the_first_72_bytes_of_a_password_count_as_in_go(tmp_path):
    # Go's bcrypt check (node_exporter's) reads the first 72 bytes, so a
    # hash made from those accepts the longer password; so does the agent.
    long = "p" * 72 + "-tail"
    hashed = bcrypt.hashpw(long[:72].encode(), bcrypt.gensalt(rounds=4)).decode()
    _, auth = tls_and_auth(write(tmp_path, f"basic_auth_users:\n  alice: '{hashed}'\n"))
    assert auth.check("alice", long.encode()) and auth.check("alice", long[:72].encode())
    assert not auth.check("alice", long[:71].encode())


def test_a_guessing_host_waits_behind_every_other_host(monkeypatch):
    # After a restart no scraper's credentials are remembered; a host that
    # guessed wrong (or was turned away) must not keep them from a check.
    gate = threading.Event()
    order: List[bytes] = []
    real = bcrypt.checkpw

    def recorded(password: bytes, hashed: bytes) -> bool:
        order.append(password)
        gate.wait(10)
        return real(password, hashed)

    monkeypatch.setattr(webconfig.bcrypt, "checkpw", recorded)
    checker = webconfig.BcryptChecker(cpu_share=1.0)
    try:
        checker.suspect("10.0.0.66")

        def submit(password: bytes, host: str):
            return checker.submit(checker.key(HASH.encode(), "alice", password), password, HASH.encode(), host)

        first = submit(b"guess-0", "10.0.0.66")
        wait_until(lambda: order, 5, "the first guess to be checked")
        guesses = [submit(b"guess-%d" % i, "10.0.0.66") for i in range(1, 5)]
        scraper = submit(PASSWORD.encode(), "10.0.0.9")
        gate.set()
        assert scraper.result(10) is True and not any(f.result(10) for f in [first, *guesses])
        assert order == [b"guess-0", PASSWORD.encode(), b"guess-1", b"guess-2", b"guess-3", b"guess-4"]
    finally:
        gate.set()
        checker.close()


def test_swapped_or_wrong_tls_files_are_named_with_what_is_wrong_by_the_real_agent(tmp_path, certs):
    agent = [sys.executable, str(REPO / "run_agent.py"), "--config", write(tmp_path, "{}\n", "agent.yaml")]
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOSTAGENT_")}
    cases = {
        # cert and key swapped
        (certs.server_key, certs.server_cert): f"tls_server_config.cert_file: {certs.server_key} does not hold a certificate (it holds a private key); are cert_file and key_file swapped?",
        # a certificate given as the key
        (certs.server_cert, certs.ca): f"tls_server_config.key_file: {certs.ca} does not hold a private key (no -----BEGIN ... PRIVATE KEY----- block)",
        # another certificate's key
        (certs.server_cert, certs.client_key): f"tls_server_config.key_file: {certs.client_key} does not match tls_server_config.cert_file {certs.server_cert} (the key is not the certificate's)",
    }
    for (cert, key), line in cases.items():
        web = write(tmp_path, f"tls_server_config:\n  cert_file: {cert}\n  key_file: {key}\n", "web.yml")
        for extra in (["--check-config"], ["--web.listen-address=127.0.0.1:1"]):
            out = subprocess.run([*agent, f"--web.config.file={web}", *extra], capture_output=True, text=True, timeout=60, env=env)
            assert out.returncode == 2 and out.stderr.splitlines()[1:] == [f"  - {line}"], out.stderr
            assert "PEM lib" not in out.stderr and "SSL" not in out.stderr
