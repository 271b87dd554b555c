"""At the connection limit the server makes room instead of refusing
newcomers: idle keep-alive connections go first, then connections that have
not sent a whole request, then idle authenticated ones; a scraper is never
the one locked out."""

from __future__ import annotations

import base64
import socket
import time
from pathlib import Path
from typing import List

import bcrypt
import pytest
from support import wait_until
from web.rawhttp import closed_within, get, read_response, request

from hostagent import web
from hostagent.web import ACTIVE, IDLE, READING, Limits, Response
from hostagent.webconfig import load_web_config

PROMPT = 0.5  # generous bound for "at once" on a shared 2-core machine
PASSWORD = "shed-Passw0rd"
HASH = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=4)).decode()
AUTH = "Authorization: Basic " + base64.b64encode(f"alice:{PASSWORD}".encode()).decode() + "\r\n"


def is_closed(sock: socket.socket, within: float = 2.0) -> bool:
    return closed_within(sock, within) is not None


def connect(running, source: str) -> socket.socket:
    return socket.create_connection(("127.0.0.1", running.port), timeout=10, source_address=(source, 0))


def idle_connections(running, count: int, extra: str = "", source: str = "127.0.0.1") -> List[socket.socket]:
    """``count`` connections that made one request and now idle, kept alive."""
    socks = []
    for _ in range(count):
        sock = connect(running, source)
        sock.sendall(get("/", extra))
        read_response(sock)
        socks.append(sock)
    return socks


def partial_heads(running, count: int, source: str = "127.0.0.1") -> List[socket.socket]:
    socks = []
    for _ in range(count):
        sock = connect(running, source)
        sock.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
        socks.append(sock)
    return socks


def scrape_promptly(running, times: int = 5) -> None:
    for _ in range(times):
        started = time.monotonic()
        status, _, _ = request(running.port, get("/metrics"))
        assert status == 200
        assert time.monotonic() - started < PROMPT


@pytest.mark.parametrize(
    "hold, state, reason",
    [(idle_connections, IDLE, "shed_idle"), (partial_heads, READING, "shed_unfinished")],
    ids=["idle-keepalive", "unfinished-heads"],
)
def test_held_connections_make_room_for_new_scrapers(serve, hold, state, reason):
    # 600 connections idle after one request used to keep every new scrape
    # out for the whole idle_timeout (120 s); 600 unfinished heads, for 10 s.
    running = serve(limits=Limits(max_connections=10, idle_timeout=120, read_timeout=30))
    held = hold(running, 10, source="127.0.0.2")  # another host than the scraper's
    try:
        wait_until(lambda: running.server.count(state) == 10, 5, f"10 connections {state}")
        scrape_promptly(running)
        assert running.server.rejected(reason) >= 1
        assert running.server.connections <= 10
        assert is_closed(held[0])  # the longest waiting went first
        assert not is_closed(held[-1], 0.2)
    finally:
        for sock in held:
            sock.close()


def test_shedding_order_spares_authenticated_scrapers_longest(serve, tmp_path: Path):
    web_yml = tmp_path / "web.yml"
    web_yml.write_text(f"basic_auth_users:\n  alice: '{HASH}'\n")
    running = serve(limits=Limits(max_connections=3, read_timeout=30), security=load_web_config(str(web_yml)).security)
    scraper = idle_connections(running, 1, AUTH)[0]  # authenticated, then idle
    slow = partial_heads(running, 1)[0]  # never finishes its head
    stranger = idle_connections(running, 1)[0]  # got 401, then idle
    others: List[socket.socket] = []
    try:
        wait_until(lambda: running.server.count(IDLE) == 2 and running.server.count(READING) == 1, 5, "the three connections in place")
        # A newcomer: the idle stranger makes room.
        others += idle_connections(running, 1, AUTH)
        assert is_closed(stranger) and not is_closed(scraper, 0.2) and not is_closed(slow, 0.2)
        # Another: the unfinished head goes before any authenticated scraper.
        others += idle_connections(running, 1, AUTH)
        assert is_closed(slow) and not is_closed(scraper, 0.2)
        # Only authenticated idle connections left: the longest idle goes.
        others += idle_connections(running, 1, AUTH)
        assert is_closed(scraper)
        assert running.server.rejected("shed_idle") == 2 and running.server.rejected("shed_unfinished") == 1
    finally:
        for sock in [scraper, slow, stranger, *others]:
            sock.close()


def test_a_crowding_host_pays_for_room_before_other_hosts(serve):
    # A host holding more than its share (FAIR_SHARE) loses connections
    # first, and its own newcomers only take the place of its own.
    running = serve(limits=Limits(max_connections=22, idle_timeout=120))
    scrapers = idle_connections(running, 2, source="127.0.0.1")  # the oldest idle connections
    crowd = idle_connections(running, 20, source="127.0.0.2")
    try:
        wait_until(lambda: running.server.count(IDLE) == 22, 5, "22 idle connections")
        newcomer = idle_connections(running, 1, source="127.0.0.3")
        assert is_closed(crowd[0]) and not is_closed(scrapers[0], 0.2)
        crowd += idle_connections(running, 1, source="127.0.0.2")
        assert is_closed(crowd[1]) and not is_closed(scrapers[0], 0.2) and not is_closed(newcomer[0], 0.2)
        assert running.server.rejected("shed_idle") == 2
    finally:
        for sock in scrapers + crowd + newcomer:
            sock.close()


def test_a_newcomer_is_refused_only_when_every_connection_has_a_request_in_flight(serve):
    big = Response(200, b"x" * (16 * 1024 * 1024))
    running = serve(lambda r: big, Limits(max_connections=2, max_requests=10, write_timeout=20))
    stalled = []
    try:
        for _ in range(2):
            sock = running.connect(timeout=20)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            sock.sendall(get("/"))  # and never read the answer
            stalled.append(sock)
        wait_until(lambda: running.server.count(ACTIVE) == 2, 5, "two requests in flight")
        with running.connect() as extra:
            took = closed_within(extra, 3.0)
            assert took is not None and took < PROMPT
        assert running.server.rejected("connection_limit") == 1
    finally:
        for sock in stalled:
            sock.close()


@pytest.mark.parametrize("max_connections, closed", [(4, True), (10, False)], ids=["busy", "quiet"])
def test_idle_keepalive_is_short_once_the_server_is_busy(serve, monkeypatch, max_connections, closed):
    # Two idle connections are half of 4 (busy: closed after
    # BUSY_IDLE_TIMEOUT when someone else connects), a fifth of 10 (kept).
    monkeypatch.setattr(web, "BUSY_IDLE_TIMEOUT", 0.3)
    running = serve(limits=Limits(max_connections=max_connections, idle_timeout=120))
    idle = idle_connections(running, 2)
    try:
        time.sleep(0.5)
        assert request(running.port, get("/"))[0] == 200
        assert [is_closed(sock, 1.0 if closed else 0.3) for sock in idle] == [closed, closed]
        assert running.server.rejected("shed_idle") == (2 if closed else 0)
    finally:
        for sock in idle:
            sock.close()
