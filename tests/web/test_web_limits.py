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

from hostagent.web import (
    MAX_HEADERS,
    MAX_REQUEST_LINE,
    HandlerPool,
    Limits,
    Request,
    Response,
)

# Generous bound for "at once" on a shared 2-core machine.
PROMPT = 0.5


def test_request_beyond_max_in_flight_gets_503_at_once(serve):
    release = threading.Event()

    def slow(request: Request) -> Response:
        release.wait(20)
        return Response(200, b"slow done\n")

    running = serve(slow, Limits(max_requests=40))
    threads_before = threading.active_count()
    socks: List[socket.socket] = []
    try:
        for _ in range(40):
            sock = running.connect(timeout=20)
            sock.sendall(get("/metrics"))
            socks.append(sock)
        wait_until(lambda: running.server.in_flight == 40, 5, "40 requests in flight")

        started = time.monotonic()
        status, headers, body = request(running.port, get("/metrics"))
        elapsed = time.monotonic() - started
        assert status == 503, body
        assert headers.get("retry-after") == "1"
        assert elapsed < PROMPT, f"503 took {elapsed:.3f}s"
        assert running.server.rejected_busy == 1
        # The handler pool never grows past the limit.
        handler_threads = [t for t in threading.enumerate() if t.name.startswith("http-handler")]
        assert len(handler_threads) <= 40
        assert threading.active_count() - threads_before <= 40

        release.set()
        for sock in socks:
            status, _, body = read_response(sock)
            assert (status, body) == (200, b"slow done\n")
    finally:
        release.set()
        for sock in socks:
            sock.close()
    assert request(running.port, get("/metrics"))[0] == 200


def test_limit_also_holds_for_routes_served_on_the_loop(serve):
    # The agent's routes run on the event loop; a request stays in flight
    # until its response is written, so readers that stall count.
    big = Response(200, b"x" * (16 * 1024 * 1024))

    def fast(request: Request) -> Response:
        return big

    fast.never_blocks = True  # type: ignore[attr-defined]
    running = serve(fast, Limits(max_requests=2, write_timeout=20))
    socks: List[socket.socket] = []
    try:
        for _ in range(2):
            sock = running.connect(timeout=20)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            sock.sendall(get("/metrics"))  # and never read the answer
            socks.append(sock)
        wait_until(lambda: running.server.in_flight == 2, 5, "2 responses stuck in flight")
        started = time.monotonic()
        status, _, _ = request(running.port, get("/metrics"))
        assert status == 503 and time.monotonic() - started < PROMPT
    finally:
        for sock in socks:
            sock.close()
    wait_until(lambda: running.server.in_flight == 0, 10, "the stalled responses to end")


def test_slow_handler_does_not_hold_other_requests(serve):
    release = threading.Event()

    def handler(request: Request) -> Response:
        if request.path == "/slow":
            release.wait(20)
        return Response(200, b"ok\n")

    running = serve(handler, Limits(max_requests=4))
    with running.connect(timeout=20) as slow:
        slow.sendall(get("/slow"))
        wait_until(lambda: running.server.in_flight == 1, 5, "the slow request in flight")
        started = time.monotonic()
        assert request(running.port, get("/fast"))[0] == 200
        assert time.monotonic() - started < PROMPT
        release.set()
        assert read_response(slow)[0] == 200


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


def test_connections_beyond_max_are_closed_at_once(serve):
    running = serve(limits=Limits(max_connections=5, read_timeout=10.0))
    held = [running.connect() for _ in range(5)]
    try:
        wait_until(lambda: running.server.connections == 5, 5, "5 connections open")
        with running.connect() as extra:
            took = closed_within(extra, 3.0)
            assert took is not None and took < PROMPT
        held.pop().close()
        wait_until(lambda: running.server.connections == 4, 5, "one connection closed")
        assert request(running.port, get("/"))[0] == 200
    finally:
        for sock in held:
            sock.close()


@pytest.mark.parametrize(
    "data, status",
    [
        (b"GET /" + b"a" * (MAX_REQUEST_LINE + 10) + b" HTTP/1.1\r\n\r\n", 414),
        (b"GET / HTTP/1.1\r\nX-Big: " + b"b" * (MAX_REQUEST_LINE + 10) + b"\r\n\r\n", 431),
        (b"GET / HTTP/1.1\r\n" + b"".join(b"X-H%d: %s\r\n" % (i, b"c" * 4000) for i in range(6)) + b"\r\n", 431),
        (b"GET / HTTP/1.1\r\n" + b"".join(b"X-H%d: v\r\n" % i for i in range(MAX_HEADERS + 1)) + b"\r\n", 431),
    ],
    ids=["long-request-line", "long-header-line", "headers-over-16k", "too-many-headers"],
)
def test_oversized_request_heads_are_refused(serve, data, status):
    running = serve()
    got, headers, _ = request(running.port, data)
    assert got == status
    assert headers["connection"] == "close"
    assert request(running.port, get("/"))[0] == 200


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


def test_handler_pool_is_bounded_and_retires_idle_threads():
    pool = HandlerPool(3, linger=0.3, name="pool-test")
    release = threading.Event()
    futures = [pool.submit(lambda i: (release.wait(10), i)[1], i) for i in range(10)]
    wait_until(lambda: sum(f.running() for f in futures) == 3, 5, "3 calls running")
    assert pool.threads == 3
    assert len([t for t in threading.enumerate() if t.name.startswith("pool-test")]) == 3
    release.set()
    assert [f.result(5) for f in futures] == list(range(10))
    # A burst leaves nothing behind once the threads have been idle a while.
    wait_until(lambda: pool.threads == 0 and not [t for t in threading.enumerate() if t.name.startswith("pool-test")], 3, "idle threads to exit")
    # And the pool starts threads again when work comes back.
    assert pool.submit(lambda x: x * 2, 21).result(5) == 42
    failing = pool.submit(lambda x: 1 / x, 0)
    with pytest.raises(ZeroDivisionError):
        failing.result(5)
    pool.close()
    wait_until(lambda: pool.threads == 0, 5, "the pool to close")


def test_handler_pool_keeps_count_when_the_system_refuses_a_thread(monkeypatch):
    pool = HandlerPool(3, linger=5, name="pool-refused")
    release = threading.Event()
    first = pool.submit(lambda i: (release.wait(10), i)[1], 1)
    wait_until(lambda: first.running(), 5, "the first call to run")
    real_start = threading.Thread.start

    def refuse(self):
        raise RuntimeError("can't start new thread")

    monkeypatch.setattr(threading.Thread, "start", refuse)
    second = pool.submit(lambda i: i, 2)  # no new thread, but no error: one is running
    assert pool.threads == 1
    monkeypatch.setattr(threading.Thread, "start", real_start)
    release.set()
    assert (first.result(5), second.result(5)) == (1, 2)  # the running thread took it
    pool.close()
    # With no thread at all, the refusal reaches the caller (a 500), counted right.
    wait_until(lambda: pool.threads == 0, 10, "the pool to close")
    empty = HandlerPool(2, linger=0.2, name="pool-empty")
    monkeypatch.setattr(threading.Thread, "start", refuse)
    with pytest.raises(RuntimeError):
        empty.submit(lambda i: i, 3)
    assert empty.threads == 0


def test_request_bodies_are_not_read_and_end_the_connection(serve):
    running = serve()
    with running.connect() as sock:
        sock.sendall(b"POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\n\r\nGET / HTTP/1.1")
        status, headers, _ = read_response(sock)
        assert headers["connection"] == "close"
        # The body was never parsed as a second request: the server hung up.
        assert closed_within(sock, 2.0) is not None
