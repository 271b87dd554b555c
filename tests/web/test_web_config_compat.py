"""Everything exporter-toolkit's web config format accepts is applied or
refused by name with the reason, and the file (with the certificates it
names) takes effect again when it changes, without a restart."""

from __future__ import annotations

import base64
import logging
import os
import shutil
import socket
import ssl
import threading
import time
from pathlib import Path

import bcrypt
import pytest
import requests
from support import wait_until
from web.webfiles import problems_of, tls_and_auth, write
from web.rawhttp import get, read_response, request

from hostagent.config import ConfigError
from hostagent.web import Limits
from hostagent.webconfig import MAX_PEM_BYTES, WebConfigWatcher, load_web_config, parse_duration

PASSWORD = "compat-Passw0rd"
HASH = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=4)).decode()




def tls_base(certs) -> str:
    return f"tls_server_config:\n  cert_file: {certs.server_cert}\n  key_file: {certs.server_key}\n"


def client_context(certs, cert: str = "") -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(certs.ca))
    if cert:
        ctx.load_cert_chain(str(getattr(certs, f"{cert}_cert")), str(getattr(certs, f"{cert}_key")))
    return ctx


def tls_get(port: int, ctx: ssl.SSLContext, extra: str = "") -> int:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as sock:
            sock.sendall(get("/", extra))
            return read_response(sock)[0]


def served_certificate(port: int, certs) -> bytes:
    """The DER certificate the server presents."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        with client_context(certs).wrap_socket(raw, server_hostname="127.0.0.1") as sock:
            return sock.getpeercert(binary_form=True)


def der(path: Path) -> bytes:
    return ssl.PEM_cert_to_DER_cert(path.read_text())


# --------------------------------------------------------------------------
# tls_server_config


def test_client_allowed_sans_lets_in_only_matching_certificates(serve, tmp_path, certs):
    common = tls_base(certs) + f"  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: {certs.client_ca}\n"
    for allowed in ("scraper.example", "10.0.0.9", "ops@example.com"):
        security = load_web_config(write(tmp_path, common + f"  client_allowed_sans: [other.example, {allowed}]\n")).security
        running = serve(security=security)
        assert tls_get(running.port, client_context(certs, "san")) == 200, allowed
        # Signed by the trusted CA, but without a listed name: cut after the handshake.
        with pytest.raises((ssl.SSLError, ConnectionError)):
            tls_get(running.port, client_context(certs, "client"))
        assert running.server.tls_errors >= 1


@pytest.mark.parametrize(
    "extra, expected",
    [
        ("  client_allowed_sans: [a.example]\n", "client_allowed_sans: needs client_auth_type RequireAndVerifyClientCert"),
        ("  client_auth_type: VerifyClientCertIfGiven\n  client_ca_file: {ca}\n  client_allowed_sans: [a.example]\n", "needs client_auth_type RequireAndVerifyClientCert"),
        ("  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: {ca}\n  client_allowed_sans: a.example\n", "client_allowed_sans: must be a list of names"),
    ],
    ids=["no-client-auth", "optional-certificate", "not-a-list"],
)
def test_client_allowed_sans_without_required_certificates_is_refused(tmp_path, certs, extra, expected):
    assert expected in problems_of(tmp_path, tls_base(certs) + extra.format(ca=certs.client_ca))


def indented(path: Path) -> str:
    return "".join("    " + line + "\n" for line in path.read_text().splitlines())


def test_inline_cert_key_and_client_ca(serve, tmp_path, certs):
    text = (
        "tls_server_config:\n"
        f"  cert: |\n{indented(certs.server_cert)}"
        f"  key: |\n{indented(certs.server_key)}"
        "  client_auth_type: RequireAndVerifyClientCert\n"
        f"  client_ca: |\n{indented(certs.client_ca)}"
    )
    path = write(tmp_path, text)
    running = serve(security=load_web_config(path).security)
    assert tls_get(running.port, client_context(certs, "client")) == 200
    with pytest.raises((ssl.SSLError, ConnectionError)):
        tls_get(running.port, client_context(certs, "stranger"))
    # The inline key does not reach the disk: no file was written beside the config.
    assert os.listdir(tmp_path) == ["web.yml"]


def test_inline_and_file_forms_of_one_setting_are_refused_together(tmp_path, certs):
    message = problems_of(tmp_path, tls_base(certs) + f"  cert: |\n{indented(certs.server_cert)}")
    assert "tls_server_config.cert and tls_server_config.cert_file: give one of them, not both" in message
    # A key that does not match, inline: named, never echoed.
    message = problems_of(tmp_path, f"tls_server_config:\n  cert_file: {certs.server_cert}\n  key: |\n{indented(certs.client_key)}")
    assert "tls_server_config.key_file: tls_server_config.key (inline) does not match tls_server_config.cert_file" in message
    assert certs.client_key.read_text().splitlines()[1] not in message


def test_an_encrypted_key_is_refused_not_prompted_for(tmp_path, certs):
    import subprocess

    locked = tmp_path / "locked.key"
    subprocess.run(["openssl", "pkey", "-in", str(certs.server_key), "-aes256", "-passout", "pass:secret", "-out", str(locked)], check=True, capture_output=True)
    message = problems_of(tmp_path, f"tls_server_config:\n  cert_file: {certs.server_cert}\n  key_file: {locked}\n")
    assert "the key is encrypted with a passphrase; give an unencrypted key" in message


def test_a_fifo_or_device_as_a_tls_file_is_refused_without_hanging(tmp_path, certs):
    # A FIFO named as cert_file used to hang the start for good.
    fifo = tmp_path / "cert.fifo"
    os.mkfifo(fifo)
    started = time.monotonic()
    message = problems_of(tmp_path, f"tls_server_config:\n  cert_file: {fifo}\n  key_file: /dev/zero\n")
    assert time.monotonic() - started < 5
    assert f"tls_server_config.cert_file: is not a regular file (a FIFO, socket or device): {fifo}" in message
    assert "tls_server_config.key_file: is not a regular file (a FIFO, socket or device): /dev/zero" in message
    big = tmp_path / "big.crt"
    big.write_bytes(b"x" * (MAX_PEM_BYTES + 1))
    message = problems_of(tmp_path, tls_base(certs).replace(str(certs.server_cert), str(big)))
    assert f"tls_server_config.cert_file: is {MAX_PEM_BYTES + 1} bytes, more than the 1024 KiB a certificate or key file may have: {big}" in message


def test_tls_speaks_http11_by_alpn(serve, tmp_path, certs):
    running = serve(security=load_web_config(write(tmp_path, tls_base(certs))).security)
    ctx = client_context(certs)
    ctx.set_alpn_protocols(["h2", "http/1.1"])
    with socket.create_connection(("127.0.0.1", running.port), timeout=5) as raw:
        with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as sock:
            assert sock.selected_alpn_protocol() == "http/1.1"


# --------------------------------------------------------------------------
# http_server_config and rate_limit


def test_response_headers_from_the_web_config(serve, tmp_path):
    text = (
        "http_server_config:\n  http2: false\n  headers:\n"
        "    X-Frame-Options: deny\n    X-Content-Type-Options: nosniff\n"
        "    Content-Security-Policy: default-src 'self'\n    Strict-Transport-Security: ''\n"
    )
    running = serve(security=load_web_config(write(tmp_path, text)).security)
    resp = requests.get(running.url + "/metrics", timeout=5)
    assert resp.headers["X-Frame-Options"] == "deny" and resp.headers["X-Content-Type-Options"] == "nosniff"
    assert resp.headers["Content-Security-Policy"] == "default-src 'self'"
    assert "Strict-Transport-Security" not in resp.headers  # blank: unset


@pytest.mark.parametrize(
    "text, expected",
    [
        ("http_server_config:\n  headers:\n    Content-Type: text/html\n", "http_server_config.headers.Content-Type: not a header the web config may set"),
        ("http_server_config:\n  headers:\n    X-Frame-Options: allow\n", "http_server_config.headers.X-Frame-Options: must be deny or sameorigin, got 'allow'"),
        ("http_server_config:\n  headers:\n    X-Content-Type-Options: sniff\n", "X-Content-Type-Options: must be nosniff"),
        ("http_server_config:\n  http2: maybe\n", "http_server_config.http2: must be true or false"),
        ("http_server_config:\n  htp2: true\n", "http_server_config.htp2: unknown key (did you mean 'http2'?)"),
        ("rate_limit:\n  interval: fast\n  burst: 3\n", "rate_limit.interval: must be a duration such as 1s or 100ms"),
        ("rate_limit:\n  interval: 1s\n", "rate_limit.burst: must be a whole number of at least 1"),
        ("rate_limit:\n  interval: 1s\n  burst: 0\n", "rate_limit.burst: must be a whole number of at least 1"),
        ("rate_limit:\n  interval: 1s\n  brust: 2\n", "rate_limit.brust: unknown key (did you mean 'burst'?)"),
        ("rate_limit: 5\n", "rate_limit: must be a mapping with interval and burst"),
    ],
)
def test_bad_http_settings_and_rate_limits_are_refused_by_name(tmp_path, text, expected):
    assert expected in problems_of(tmp_path, text)


def test_http2_true_is_accepted(tmp_path, caplog):
    with caplog.at_level(logging.INFO, logger="hostagent.web"):
        assert load_web_config(write(tmp_path, "http_server_config:\n  http2: true\n")).ssl_context is None
    assert any("HTTP/1.1 only" in r.getMessage() for r in caplog.records)


def test_rate_limit_answers_429_beyond_the_burst(serve, tmp_path):
    running = serve(security=load_web_config(write(tmp_path, "rate_limit:\n  interval: 1h\n  burst: 2\n")).security)
    with requests.Session() as session:
        assert [session.get(running.url + "/", timeout=5).status_code for _ in range(2)] == [200, 200]
        refused = session.get(running.url + "/", timeout=5)
    assert refused.status_code == 429 and refused.headers["Retry-After"] == "1"
    assert running.server.rejected("rate_limited") == 1
    # Interval 0 turns the limit off, as exporter-toolkit documents.
    assert load_web_config(write(tmp_path, "rate_limit:\n  interval: 0\n  burst: 0\n")).security.rate_limit is None


@pytest.mark.parametrize("text, seconds", [("1s", 1.0), ("100ms", 0.1), ("1m30s", 90.0), ("1.5h", 5400.0), ("0", 0.0), ("250us", 0.00025)])
def test_go_durations(text, seconds):
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "1", "1 s", "s", "1d", "-1s", True])
def test_not_go_durations(text):
    assert parse_duration(text) is None


# --------------------------------------------------------------------------
# Changes on disk


@pytest.fixture
def rotating(serve, tmp_path, certs):
    """A TLS server on a web config whose certificate and key are copies in
    tmp_path, with a watcher looking every 0.05 s; stopped after the test."""
    shutil.copy(certs.server_cert, tmp_path / "tls.crt")
    shutil.copy(certs.server_key, tmp_path / "tls.key")
    path = write(tmp_path, "tls_server_config:\n  cert_file: tls.crt\n  key_file: tls.key\n")
    config = load_web_config(path)
    running = serve(security=config.security, limits=Limits())
    watcher = WebConfigWatcher(config, running.server, interval=0.05)
    watcher.start()
    yield running, watcher
    watcher.stop()


def test_a_rotated_certificate_is_served_without_a_restart(rotating, tmp_path, certs, caplog):
    running, watcher = rotating
    assert served_certificate(running.port, certs) == der(certs.server_cert)
    with requests.Session() as held:  # a connection opened before the rotation
        assert held.get(f"https://127.0.0.1:{running.port}/", verify=str(certs.ca), timeout=5).status_code == 200
        shutil.copy(certs.server2_cert, tmp_path / "tls.crt")
        shutil.copy(certs.server2_key, tmp_path / "tls.key")
        wait_until(lambda: served_certificate(running.port, certs) == der(certs.server2_cert), 10, "the new certificate to be served")
        assert held.get(f"https://127.0.0.1:{running.port}/", verify=str(certs.ca), timeout=5).status_code == 200  # kept its session
    # A broken change (a key that does not match) keeps the last good one serving.
    with caplog.at_level(logging.ERROR, logger="hostagent.web"):
        shutil.copy(certs.client_key, tmp_path / "tls.key")
        wait_until(lambda: any("still serving the previous one" in r.getMessage() for r in caplog.records), 10, "the refusal to be logged")
    message = next(r.getMessage() for r in caplog.records if "still serving" in r.getMessage())
    assert "does not match tls_server_config.cert_file" in message and certs.client_key.read_text().splitlines()[1] not in message
    assert served_certificate(running.port, certs) == der(certs.server2_cert)
    reloads = watcher.reloads
    # Mended: applied again.
    shutil.copy(certs.server_key, tmp_path / "tls.key")
    shutil.copy(certs.server_cert, tmp_path / "tls.crt")
    wait_until(lambda: served_certificate(running.port, certs) == der(certs.server_cert), 10, "the mended certificate to be served")
    assert watcher.reloads == reloads + 1


def test_credentials_added_and_changed_on_disk_take_effect(rotating, tmp_path, certs):
    running, watcher = rotating
    ctx = client_context(certs)
    assert tls_get(running.port, ctx) == 200
    base = (tmp_path / "web.yml").read_text()
    (tmp_path / "web.yml").write_text(base + f"basic_auth_users:\n  alice: '{HASH}'\n")
    wait_until(lambda: tls_get(running.port, ctx) == 401, 10, "basic auth to be required")
    right = "Authorization: Basic " + base64.b64encode(f"alice:{PASSWORD}".encode()).decode() + "\r\n"
    assert tls_get(running.port, ctx, right) == 200
    new_hash = bcrypt.hashpw(b"rotated-Passw0rd", bcrypt.gensalt(rounds=4)).decode()
    (tmp_path / "web.yml").write_text(base + f"basic_auth_users:\n  alice: '{new_hash}'\n")
    wait_until(lambda: tls_get(running.port, ctx, right) == 401, 10, "the old password to be refused")
    rotated = "Authorization: Basic " + base64.b64encode(b"alice:rotated-Passw0rd").decode() + "\r\n"
    assert tls_get(running.port, ctx, rotated) == 200


def test_switching_between_http_and_https_is_refused_until_a_restart(rotating, tmp_path, certs, caplog):
    running, watcher = rotating
    with caplog.at_level(logging.ERROR, logger="hostagent.web"):
        (tmp_path / "web.yml").write_text("{}\n")
        wait_until(lambda: any("needs a restart" in r.getMessage() for r in caplog.records), 10, "the refusal to be logged")
    assert tls_get(running.port, client_context(certs)) == 200


def test_a_plain_server_follows_its_web_config_too(serve, tmp_path):
    path = write(tmp_path, "{}\n")
    config = load_web_config(path)
    running = serve(security=config.security)
    watcher = WebConfigWatcher(config, running.server, interval=0.05)
    stop = threading.Event()
    try:
        watcher.start()
        assert request(running.port, get("/"))[0] == 200
        Path(path).write_text("http_server_config:\n  headers:\n    X-Frame-Options: sameorigin\n")
        wait_until(lambda: request(running.port, get("/"))[1].get("x-frame-options") == "sameorigin", 10, "the header to be sent")
    finally:
        stop.set()
        watcher.stop()
