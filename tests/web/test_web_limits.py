"""The server stays bounded against busy, slow, idle, oversized and garbage clients."""

from __future__ import annotations

import os
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import List

import psutil
import pytest
import requests
from support import wait_until
from web.rawhttp import closed_within, get, read_response, request

from hostagent.web import MAX_HEADERS, MAX_REQUEST_LINE, Limits, Request, Response

# Generous bound for "at once" on a shared 2-core machine.
PROMPT = 0.5


def stall(running, count: int) -> List[socket.socket]:
    """``count`` requests whose clients never read their (16 MiB) responses:
    each stays in flight until write_timeout."""
    socks: List[socket.socket] = []
    for _ in range(count):
        sock = running.connect(timeout=20)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.sendall(get("/big"))
        socks.append(sock)
    wait_until(lambda: running.server.in_flight == count, 5, f"{count} responses stuck in flight")
    return socks


BIG = Response(200, b"x" * (16 * 1024 * 1024))


def big_or_small(request: Request) -> Response:
    return BIG if request.path == "/big" else Response(200, b"ok\n")


def test_request_beyond_max_in_flight_gets_503_at_once(serve):
    # The agent's routes run on the event loop; a request stays in flight
    # until its response is written, so readers that stall count.
    running = serve(big_or_small, Limits(max_requests=2, write_timeout=20))
    socks = stall(running, 2)
    try:
        started = time.monotonic()
        status, headers, _ = request(running.port, get("/metrics"))
        assert status == 503 and headers.get("retry-after") == "1"
        assert time.monotonic() - started < PROMPT
        assert running.server.rejected("busy") == 1
    finally:
        for sock in socks:
            sock.close()
    wait_until(lambda: running.server.in_flight == 0, 10, "the stalled responses to end")
    assert request(running.port, get("/metrics"))[0] == 200


def test_headers_sent_a_byte_at_a_time_are_cut_after_read_timeout(serve):
    running = serve(limits=Limits(read_timeout=1.0))
    head = get("/metrics", "X-Padding: " + "a" * 200 + "\r\n")
    with running.connect() as sock:
        started = time.monotonic()
        cut_after = None
        for byte in head:
            try:
                sock.send(bytes([byte]))
            except OSError:
                break
            time.sleep(0.02)
            if time.monotonic() - started > 4:
                break
        # The whole head would take > 4 s at this pace; the server answers 408 and closes.
        sock.settimeout(3)
        try:
            status, _, _ = read_response(sock)
        except (ConnectionError, socket.timeout):
            status = None
        cut_after = time.monotonic() - started
        assert status in (408, None)
        assert closed_within(sock, 2.0) is not None
    assert cut_after < 1.0 + 1.5, f"slow client held the connection {cut_after:.1f}s"


def test_idle_connections_are_closed(serve):
    running = serve(limits=Limits(read_timeout=0.5, idle_timeout=1.0))
    # Opened and never used: cut after read_timeout.
    with running.connect() as sock:
        took = closed_within(sock, 5.0)
        assert took is not None and took < 0.5 + 1.0, took
    # Used once, then idle on keep-alive: cut after idle_timeout.
    with running.connect() as sock:
        sock.sendall(get("/"))
        status, headers, _ = read_response(sock)
        assert status == 200 and headers["connection"] == "keep-alive"
        took = closed_within(sock, 5.0)
        assert took is not None and 1.0 - 0.2 < took < 1.0 + 1.0, took
    wait_until(lambda: running.server.connections == 0, 5, "every connection closed")


def test_scrapes_succeed_while_slow_clients_hold_connections(serve):
    running = serve(limits=Limits(read_timeout=2.0, max_connections=64))
    slow = [running.connect() for _ in range(30)]
    try:
        for sock in slow:
            sock.sendall(b"GET /metr")  # and nothing more
        wait_until(lambda: running.server.connections == 30, 5, "30 slow connections open")
        with requests.Session() as session:
            for _ in range(20):
                started = time.monotonic()
                resp = session.get(running.url + "/metrics", timeout=5)
                assert resp.status_code == 200
                assert time.monotonic() - started < PROMPT
    finally:
        for sock in slow:
            sock.close()


@pytest.mark.parametrize(
    "data, status",
    [
        (b"GET /" + b"a" * (MAX_REQUEST_LINE + 10) + b" HTTP/1.1\r\n\r\n", 414),
        (b"GET / HTTP/1.1\r\nX-Big: " + b"b" * (MAX_REQUEST_LINE + 10) + b"\r\n\r\n", 431),
        (b"GET / HTTP/1.1\r\n" + b"".join(b"X-H%d: %s\r\n" % (i, b"c" * 4000) for i in range(6)) + b"\r\n", 431),
        (b"GET / HTTP/1.1\r\n" + b"".join(b"X-H%d: v\r\n" % i for i in range(MAX_HEADERS + 1)) + b"\r\n", 431),
        # Lines are counted, not names: 3,000 repeats of one short header
        # fit in 16 KiB and were all accepted.
        (b"GET / HTTP/1.1\r\n" + b"a:b\r\n" * 3000 + b"\r\n", 431),
        (b"GET / HTTP/1.1\r\n" + b"X-Same: v\r\n" * (MAX_HEADERS + 1) + b"\r\n", 431),
    ],
    ids=["long-request-line", "long-header-line", "headers-over-16k", "too-many-headers", "3000-repeated-lines", "101-repeated-lines"],
)
def test_oversized_request_heads_are_refused(serve, data, status):
    running = serve()
    got, headers, _ = request(running.port, data)
    assert got == status
    assert headers["connection"] == "close"
    assert request(running.port, get("/"))[0] == 200


def test_a_hundred_header_lines_are_served(serve):
    head = b"GET / HTTP/1.1\r\n" + b"X-Same: v\r\n" * MAX_HEADERS + b"\r\n"
    assert request(serve().port, head)[0] == 200


@pytest.mark.parametrize(
    "line",
    [b"X-Nul: a\x00b", b"X-N\x00ul: ab", b"X-Ctl: a\x01b", b"X-Cr: a\rb", b"X-Del: a\x7fb", b"X Space: v", b"X-Folded: a\r\n  b"],
    ids=["nul-in-value", "nul-in-name", "control-in-value", "bare-cr", "del", "space-in-name", "obsolete-folding"],
)
def test_control_characters_in_headers_are_refused(serve, line):
    running = serve()
    status, headers, _ = request(running.port, b"GET / HTTP/1.1\r\nHost: x\r\n" + line + b"\r\n\r\n")
    assert (status, headers["connection"]) == (400, "close")


@pytest.mark.parametrize("line", [b"GET /a\x00b HTTP/1.1", b"GET /a\tb HTTP/1.1", b"G\x00T / HTTP/1.1"], ids=["nul-in-target", "tab-in-target", "nul-in-method"])
def test_control_characters_in_the_request_line_are_refused(serve, line):
    assert request(serve().port, line + b"\r\nHost: x\r\n\r\n")[0] == 400


def test_header_values_keep_visible_text_and_tabs(serve):
    seen = []

    def echo(request: Request) -> Response:
        seen.append(request.header("x-value"))
        return Response(200, b"ok\n")

    running = serve(echo)
    assert request(running.port, b"GET / HTTP/1.1\r\nX-Value: \t a\tb \xe9 \t\r\n\r\n")[0] == 200
    assert seen == ["a\tb \xe9"]


def test_endless_header_does_not_grow_memory(serve):
    running = serve()
    rss_before = psutil.Process().memory_info().rss
    sent = 0
    chunk = b"X" * 65536
    with running.connect() as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nX-Endless: ")
        sock.settimeout(2)
        try:
            while sent < 64 * 1024 * 1024:
                sock.sendall(chunk)
                sent += len(chunk)
        except OSError:
            pass  # the server answered 431 and closed: the rest was never read
    rss_growth = psutil.Process().memory_info().rss - rss_before
    assert sent < 16 * 1024 * 1024, f"server kept reading an endless header ({sent} bytes)"
    assert rss_growth < 16 * 1024 * 1024, f"memory grew {rss_growth} bytes"
    assert request(running.port, get("/"))[0] == 200


GARBAGE = [
    os.urandom(2048),
    b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 64,  # a TLS hello on the plain port
    b"\r\n\r\n",
    b"GET\r\n\r\n",
    b"GET / HTTP/9.9\r\n\r\n",
    b"GET / HTTP/1.1\r\nno colon here\r\n\r\n",
    b"GET / HTTP/1.1\r\n : empty name\r\n\r\n",
    b"\x00" * 100 + b"\n",
    b"GET / HTTP/1.1\r\nHost: x",  # then hang up mid-head
]


def test_garbage_does_not_kill_the_server(serve):
    running = serve(limits=Limits(read_timeout=1.0))
    for data in GARBAGE:
        with running.connect() as sock:
            sock.sendall(data)
            sock.shutdown(socket.SHUT_WR)
            try:
                status, _, _ = read_response(sock)
            except (ConnectionError, socket.timeout):
                status = None  # closed without an answer is fine too
            assert status in (None, 400, 505), (data[:40], status)
    assert request(running.port, get("/"))[0] == 200
    wait_until(lambda: running.server.connections == 0, 5, "every connection closed")


def test_handler_error_is_500_and_server_survives(serve):
    def broken(request: Request) -> Response:
        raise RuntimeError("bug")

    running = serve(broken)
    assert request(running.port, get("/"))[0] == 500
    assert request(running.port, get("/"))[0] == 500


def test_client_that_stops_reading_is_cut_after_write_timeout(serve):
    big = b"x" * (32 * 1024 * 1024)
    running = serve(lambda r: Response(200, big), Limits(write_timeout=1.0))
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", running.port))
    try:
        sock.sendall(get("/"))
        wait_until(lambda: running.server.connections == 1, 5, "the connection open")
        wait_until(lambda: running.server.connections == 0, 6.0, "the stalled reader to be cut")
    finally:
        sock.close()


def test_many_concurrent_keepalive_clients_all_succeed(serve):
    running = serve(limits=Limits(max_requests=40))

    def client(_: int) -> int:
        ok = 0
        with requests.Session() as session:
            for _ in range(20):
                ok += session.get(running.url + "/metrics", timeout=10).status_code == 200
        return ok

    with ThreadPoolExecutor(20) as pool:
        results = list(pool.map(client, range(20)))
    # 20 clients can never have more than 20 requests in flight: no 503s.
    assert sum(results) == 400, results


def test_request_bodies_are_not_read_and_end_the_connection(serve):
    running = serve()
    with running.connect() as sock:
        sock.sendall(b"POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\n\r\nGET / HTTP/1.1")
        status, headers, _ = read_response(sock)
        assert headers["connection"] == "close"
        # The body was never parsed as a second request: the server hung up.
        assert closed_within(sock, 2.0) is not None
