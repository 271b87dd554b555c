"""The HTTP server's own metrics: requests by code, rejections by reason,
requests in flight and connections by state, as promhttp exports them."""

from __future__ import annotations

import socket
from typing import List

from support import samples_of, wait_until
from web.rawhttp import get, request

from hostagent.web import HTTP_METRICS, REJECT_REASONS, Limits, Request, Response

BIG = Response(200, b"x" * (16 * 1024 * 1024))


def handler(req: Request) -> Response:
    return BIG if req.path == "/big" else Response(200 if req.path == "/" else 404, b"answer\n")


def samples(running) -> dict:
    return samples_of(running.server.families())


def test_requests_rejections_in_flight_and_connections_are_counted(serve):
    running = serve(handler, Limits(max_requests=2, write_timeout=20))
    for path in ("/", "/", "/nope"):
        request(running.port, get(path))
    assert request(running.port, b"GET / HTTP/1.1\r\nX-Bad\x00: v\r\n\r\n")[0] == 400
    stalled: List[socket.socket] = []
    try:
        for _ in range(2):
            sock = running.connect(timeout=20)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            sock.sendall(get("/big"))  # never read
            stalled.append(sock)
        wait_until(lambda: running.server.in_flight == 2, 5, "two responses in flight")
        assert request(running.port, get("/"))[0] == 503
        wait_until(lambda: running.server.connections == 2, 5, "the other connections closed")
        got = samples(running)
        assert got[("hostagent_http_requests_in_flight", ())] == 2
        assert got[("hostagent_http_connections", (("state", "active"),))] == 2
        assert got[("hostagent_http_connections", (("state", "idle"),))] == 0
    finally:
        for sock in stalled:
            sock.close()
    wait_until(lambda: running.server.in_flight == 0, 10, "the stalled responses to end")
    got = samples(running)
    codes = {dict(labels)["code"]: value for (name, labels), value in got.items() if name == "hostagent_http_requests_total"}
    assert codes == {"200": 4, "404": 1, "400": 1, "503": 1}  # the two stalled ones were answered 200, if never read
    rejected = {dict(labels)["reason"]: value for (name, labels), value in got.items() if name == "hostagent_http_rejected_total"}
    assert set(rejected) == set(REJECT_REASONS)  # every reason from the start, so rate() has a series
    assert rejected["busy"] == 1 and sum(rejected.values()) == 1
    assert got[("hostagent_http_tls_handshake_errors_total", ())] == 0


def test_every_family_the_server_emits_is_declared():
    declared = {spec.name: spec for spec in HTTP_METRICS}
    from hostagent.web import HTTPServer

    server = HTTPServer("127.0.0.1", 0, handler)
    try:
        emitted = {family.name + ("_total" if family.type == "counter" else ""): family for family in server.families()}
    finally:
        server.stop()
    assert set(emitted) == set(declared)
    for name, family in emitted.items():
        assert family.documentation == declared[name].help and family.type == declared[name].type
        assert name.startswith("hostagent_http_")
