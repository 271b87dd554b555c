"""TLS from a web config file: server certificate, versions, client certificates."""

from __future__ import annotations

import asyncio.sslproto
import logging
import shutil
import socket
import ssl
import time
from pathlib import Path
from typing import List, Optional

import pytest
import requests
from support import wait_until
from web.webfiles import problems_of, tls_and_auth, write
from web.rawhttp import closed_within, get, read_response

from hostagent.config import ConfigError
from hostagent import web
from hostagent.web import HANDSHAKE, READING, Limits
from hostagent.webconfig import load_web_config



def tls_config(tmp_path: Path, certs, extra: str = "") -> Path:
    path = tmp_path / "web.yml"
    path.write_text(
        "tls_server_config:\n"
        f"  cert_file: {certs.server_cert}\n"
        f"  key_file: {certs.server_key}\n" + extra
    )
    return path


def start_tls(serve, tmp_path: Path, certs, extra: str = ""):
    ctx, auth = tls_and_auth(str(tls_config(tmp_path, certs, extra)))
    assert ctx is not None and auth is None
    return serve(ssl_context=ctx)


def client_context(certs, cert: Optional[str] = None, min_v=None, max_v=None) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(certs.ca))
    if cert:
        ctx.load_cert_chain(str(getattr(certs, f"{cert}_cert")), str(getattr(certs, f"{cert}_key")))
    if min_v:
        ctx.minimum_version = min_v
    if max_v:
        ctx.maximum_version = max_v
    return ctx


def tls_get(port: int, ctx: ssl.SSLContext) -> int:
    """Status of GET / over TLS; raises ssl.SSLError/OSError when refused."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as sock:
            sock.sendall(get("/"))
            return read_response(sock)[0]


def test_https_scrape_with_the_right_ca(serve, tmp_path, certs):
    running = start_tls(serve, tmp_path, certs)
    resp = requests.get(f"https://127.0.0.1:{running.port}/metrics", verify=str(certs.ca), timeout=5)
    assert resp.status_code == 200
    with pytest.raises(requests.exceptions.SSLError):
        requests.get(f"https://127.0.0.1:{running.port}/metrics", verify=str(certs.client_ca), timeout=5)


def test_plain_http_to_the_tls_port_is_told_so(serve, tmp_path, certs, caplog):
    # As Go's servers (and so node_exporter) answer, rather than a reset
    # the operator has to guess the cause of.
    running = start_tls(serve, tmp_path, certs)
    with caplog.at_level(logging.DEBUG, logger="hostagent.web"):
        resp = requests.get(f"http://127.0.0.1:{running.port}/metrics", timeout=5)
        assert resp.status_code == 400
        assert resp.text == "client sent an HTTP request to an HTTPS server\n"
        assert resp.headers["Connection"] == "close"
        # A request head sent in pieces, and a HEAD, get the same.
        with running.connect() as sock:
            sock.sendall(b"HE")
            time.sleep(0.1)
            sock.sendall(b"AD / HTTP/1.1\r\nHost: x\r\n\r\n")
            status, _, body = read_response(sock)
            assert (status, body) == (400, b"client sent an HTTP request to an HTTPS server\n")
            assert closed_within(sock, 3.0) is not None
    assert any(r.getMessage().startswith("plain HTTP from 127.0.0.1:") and r.levelno == logging.DEBUG for r in caplog.records)
    # And the server carries on over TLS.
    assert tls_get(running.port, client_context(certs)) == 200


def handshake_failures(caplog) -> List[str]:
    return [r.getMessage() for r in caplog.records if r.name == "hostagent.web" and "TLS handshake with" in r.getMessage()]


def test_failed_handshakes_are_logged_at_debug_with_the_reason(serve, tmp_path, certs, caplog):
    running = start_tls(serve, tmp_path, certs, f"  min_version: TLS13\n  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: {certs.client_ca}\n")
    with caplog.at_level(logging.DEBUG, logger="hostagent.web"):
        with socket.create_connection(("127.0.0.1", running.port), timeout=5) as raw:
            client_port = raw.getsockname()[1]
            with pytest.raises((ssl.SSLError, ConnectionError)):
                client_context(certs, max_v=ssl.TLSVersion.TLSv1_2).wrap_socket(raw, server_hostname="127.0.0.1")
        with pytest.raises((ssl.SSLError, ConnectionError)):
            tls_get(running.port, client_context(certs, cert="stranger"))
        with running.connect() as sock:  # neither TLS nor HTTP
            sock.sendall(b"\x00\x01\x02\x03" * 64)
            assert closed_within(sock, 3.0) is not None
        assert tls_get(running.port, client_context(certs, cert="client")) == 200
        running.server.stop()
    failures = handshake_failures(caplog)
    assert len(failures) == 3, failures
    assert failures[0].startswith(f"TLS handshake with 127.0.0.1:{client_port} failed: ") and "PROTOCOL" in failures[0], failures
    assert "CERTIFICATE_VERIFY_FAILED" in failures[1], failures
    # Only at debug: a port scan or a broken client is not worth a warning.
    assert not [r for r in caplog.records if r.levelno > logging.DEBUG and r.name.startswith("hostagent")]
    everything = "\n".join(r.getMessage() for r in caplog.records)
    assert certs.server_key.read_text().splitlines()[1] not in everything


def test_a_silent_connection_is_cut_and_logged(serve, tmp_path, certs, caplog):
    ctx, _ = tls_and_auth(str(tls_config(tmp_path, certs)))
    running = serve(ssl_context=ctx, limits=Limits(read_timeout=0.5))
    with caplog.at_level(logging.DEBUG, logger="hostagent.web"), running.connect() as sock:
        took = closed_within(sock, 5.0)
        assert took is not None and took < 0.5 + 1.0, took
    assert handshake_failures(caplog) and "nothing received within 0.5s" in handshake_failures(caplog)[0]


def test_stop_with_connections_before_and_in_the_handshake(serve, tmp_path, certs):
    running = start_tls(serve, tmp_path, certs)
    silent = running.connect()
    started = running.connect()
    started.sendall(b"\x16\x03\x01")
    try:
        time.sleep(0.1)
        begun = time.monotonic()
        running.server.stop()
        assert time.monotonic() - begun < 2.0
        assert closed_within(silent, 2.0) is not None and closed_within(started, 2.0) is not None
        with pytest.raises(ConnectionRefusedError):
            running.connect()
    finally:
        silent.close()
        started.close()


def test_default_minimum_is_tls12(serve, tmp_path, certs):
    running = start_tls(serve, tmp_path, certs)
    assert running.server.security.ssl_context.minimum_version == ssl.TLSVersion.TLSv1_2
    assert tls_get(running.port, client_context(certs, max_v=ssl.TLSVersion.TLSv1_2)) == 200


def test_min_version_is_honoured(serve, tmp_path, certs):
    running = start_tls(serve, tmp_path, certs, "  min_version: TLS13\n")
    with pytest.raises((ssl.SSLError, ConnectionError)):
        tls_get(running.port, client_context(certs, max_v=ssl.TLSVersion.TLSv1_2))
    assert tls_get(running.port, client_context(certs, min_v=ssl.TLSVersion.TLSv1_3)) == 200


def test_max_version_is_honoured(serve, tmp_path, certs):
    running = start_tls(serve, tmp_path, certs, "  max_version: TLS12\n")
    with pytest.raises((ssl.SSLError, ConnectionError)):
        tls_get(running.port, client_context(certs, min_v=ssl.TLSVersion.TLSv1_3))
    assert tls_get(running.port, client_context(certs)) == 200


def test_require_and_verify_client_cert(serve, tmp_path, certs):
    running = start_tls(serve, tmp_path, certs, f"  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: {certs.client_ca}\n")
    # TLS 1.3 may report the refusal only on the first read, hence both errors.
    with pytest.raises((ssl.SSLError, ConnectionError)):
        tls_get(running.port, client_context(certs))
    with pytest.raises((ssl.SSLError, ConnectionError)):
        tls_get(running.port, client_context(certs, cert="stranger"))
    assert tls_get(running.port, client_context(certs, cert="client")) == 200
    resp = requests.get(
        f"https://127.0.0.1:{running.port}/metrics",
        verify=str(certs.ca),
        cert=(str(certs.client_cert), str(certs.client_key)),
        timeout=5,
    )
    assert resp.status_code == 200


def test_verify_client_cert_if_given(serve, tmp_path, certs):
    running = start_tls(serve, tmp_path, certs, f"  client_auth_type: VerifyClientCertIfGiven\n  client_ca_file: {certs.client_ca}\n")
    assert tls_get(running.port, client_context(certs)) == 200
    assert tls_get(running.port, client_context(certs, cert="client")) == 200
    with pytest.raises((ssl.SSLError, ConnectionError)):
        tls_get(running.port, client_context(certs, cert="stranger"))


def test_stalled_tls_handshake_is_cut(serve, tmp_path, certs):
    ctx, _ = tls_and_auth(str(tls_config(tmp_path, certs)))
    running = serve(ssl_context=ctx, limits=Limits(read_timeout=1.0))
    with running.connect() as sock:
        sock.sendall(b"\x16\x03\x01")  # the start of a ClientHello, then nothing
        took = closed_within(sock, 5.0)
        assert took is not None and took < 1.0 + 1.5, took
    assert tls_get(running.port, client_context(certs)) == 200


def test_relative_paths_are_resolved_from_the_web_config_file_directory(serve, tmp_path, certs, monkeypatch):
    # As exporter-toolkit does: a web config and its files move together.
    conf = tmp_path / "conf"
    (conf / "tls").mkdir(parents=True)
    for src, name in ((certs.server_cert, "server.crt"), (certs.server_key, "server.key"), (certs.client_ca, "clients.crt")):
        shutil.copy(src, conf / "tls" / name)
    web = conf / "web.yml"
    web.write_text(
        "tls_server_config:\n  cert_file: tls/server.crt\n  key_file: ./tls/server.key\n"
        "  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: tls/clients.crt\n"
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    ctx, _ = tls_and_auth(str(web))
    running = serve(ssl_context=ctx)
    assert tls_get(running.port, client_context(certs, cert="client")) == 200
    # Relative to the file, not the working directory: a relative config path too.
    monkeypatch.chdir(tmp_path)
    assert load_web_config("conf/web.yml").ssl_context is not None
    # The same file elsewhere looks for its files next to itself.
    shutil.copy(web, elsewhere / "web.yml")
    with pytest.raises(ConfigError, match=f"tls_server_config.cert_file: file not found: {elsewhere}/tls/server.crt"):
        load_web_config(str(elsewhere / "web.yml"))


def client_hello() -> bytes:
    """The first flight of a real TLS client."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(incoming, outgoing, server_hostname="localhost")
    with pytest.raises(ssl.SSLWantReadError):
        obj.do_handshake()
    return outgoing.read()


def half_open(running, count: int, data: bytes) -> List[socket.socket]:
    socks = []
    for _ in range(count):
        sock = running.connect()
        sock.sendall(data)
        socks.append(sock)
    return socks


def served(running, certs) -> bool:
    try:
        return tls_get(running.port, client_context(certs)) == 200
    except OSError:
        return False


def test_connections_before_and_in_the_handshake_make_room_for_scrapers(serve, tmp_path, certs):
    # 600 half-finished handshakes used to keep scrapers out for 10 s a wave.
    ctx, _ = tls_and_auth(str(tls_config(tmp_path, certs)))
    running = serve(ssl_context=ctx, limits=Limits(max_connections=6, read_timeout=30.0))
    silent = half_open(running, 3, b"")  # accepted, never start the handshake
    hellos = half_open(running, 3, client_hello())  # a ClientHello, then nothing
    try:
        wait_until(lambda: running.server.count(HANDSHAKE) == 3 and running.server.connections == 6, 5, "six connections held")
        for _ in range(3):
            assert tls_get(running.port, client_context(certs)) == 200
        assert running.server.rejected("shed_unfinished") >= 1
        assert closed_within(silent[0], 2.0) is not None  # the oldest went first
        assert running.server.connections <= 6
    finally:
        for sock in silent + hellos:
            sock.close()


def from_address(running, address: str, data: bytes) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", running.port), timeout=5, source_address=(address, 0))
    sock.sendall(data)
    return sock


def test_tls_handshakes_in_progress_are_capped(serve, tmp_path, certs, monkeypatch):
    # Each handshake holds OpenSSL's and asyncio's buffers: 1,000 junk
    # ClientHellos took the agent from 31 to 175 MB.
    monkeypatch.setattr(web, "MAX_HANDSHAKES", 4)
    monkeypatch.setattr(web, "FAIR_SHARE", 2)
    monkeypatch.setattr(web, "PATIENCE", 1.0)
    ctx, _ = tls_and_auth(str(tls_config(tmp_path, certs)))
    running = serve(ssl_context=ctx, limits=Limits(read_timeout=30.0))
    peak = [0]

    def refused(count: int) -> bool:
        peak[0] = max(peak[0], running.server.count(HANDSHAKE))
        return running.server.rejected("handshake_limit") >= count

    # A crowding host's hellos beyond the limit are turned away while the
    # handshakes in progress are young: no churn of costly handshakes.
    hellos = [from_address(running, "127.0.0.2", client_hello()) for _ in range(6)]
    try:
        wait_until(lambda: refused(2), 5, "two hellos beyond the limit refused")
        assert peak[0] <= 4 and running.server.count(HANDSHAKE) == 4
        # A scraper from another host takes a crowding host's place at once.
        started = time.monotonic()
        assert tls_get(running.port, client_context(certs)) == 200
        assert time.monotonic() - started < 1.0 and running.server.rejected("shed_unfinished") == 1
        # Once a handshake has waited on its client for PATIENCE,
        # anyone's newcomer may take its place.
        time.sleep(1.0)
        hellos += [from_address(running, "127.0.0.2", client_hello()) for _ in range(2)]  # a free slot, then one more
        wait_until(lambda: running.server.rejected("shed_unfinished") == 2, 5, "an old handshake displaced")
        assert peak[0] <= 4 and running.server.count(HANDSHAKE) <= 4
        # asyncio's per-connection TLS read buffer is 16 KiB, not 256 KiB.
        assert asyncio.sslproto.SSLProtocol.max_size == web.TLS_READ_SIZE
    finally:
        for sock in hellos:
            sock.close()
    wait_until(lambda: running.server.connections == 0, 10, "every half-open connection closed")


@pytest.mark.parametrize(
    "data",
    [b"\x16\x03\x01\x40\x00" + b"\x00" * 4096, b"\x16\x03", b"\x16\x03\x01\xff\xff" + b"\x00" * 100],
    ids=["record-never-finished", "header-never-finished", "record-too-long"],
)
def test_junk_never_reaches_openssl(serve, tmp_path, certs, caplog, data):
    # Until the whole first record is in, a connection costs a socket only.
    ctx, _ = tls_and_auth(str(tls_config(tmp_path, certs)))
    running = serve(ssl_context=ctx, limits=Limits(read_timeout=1.0))
    with caplog.at_level(logging.DEBUG, logger="hostagent.web"):
        junk = half_open(running, 10, data)
        try:
            wait_until(lambda: running.server.tls_errors == 10 or running.server.count(READING) == 10, 5, "the junk to be seen")
            assert running.server.count(HANDSHAKE) == 0
            assert tls_get(running.port, client_context(certs)) == 200
            wait_until(lambda: running.server.tls_errors >= 10, 5, "the junk connections cut")
        finally:
            for sock in junk:
                sock.close()
    assert len(handshake_failures(caplog)) == 10
