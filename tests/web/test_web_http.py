"""HTTP/1.1 details a real server gets right: content negotiation, request
target forms and request framing."""

from __future__ import annotations

from typing import Tuple

import pytest
from web.rawhttp import get, request

from hostagent.routes import Routes


class FakeExposition:
    """Says which variant the route asked for instead of rendering one."""

    def body(self, openmetrics: bool = False, compressed: bool = False) -> Tuple[bytes, str]:
        kind = "openmetrics" if openmetrics else "text"
        return kind.encode(), f"{kind}; fake"


PROMETHEUS = ("application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,"
              "text/plain;version=0.0.4;q=0.5,*/*;q=0.1")  # fmt: skip


@pytest.mark.parametrize(
    "accept, variant",
    [
        (None, "text"),
        ("*/*", "text"),
        (PROMETHEUS, "openmetrics"),
        ("application/openmetrics-text; version=1.0.0", "openmetrics"),
        ("application/openmetrics-text;q=0", "text"),
        ("application/openmetrics-text; q=0.000, text/plain", "text"),
        ("application/openmetrics-text;q=0.5, text/plain", "text"),
        ("application/openmetrics-text;q=0.5, text/*;q=0.4", "openmetrics"),
        ("text/plain;q=0, application/openmetrics-text;q=0.1", "openmetrics"),
        ("application/openmetrics-text;q=0.2, */*;q=0.3", "text"),
        ("text/plain, application/openmetrics-text", "text"),
        ("application/openmetrics-text, text/plain", "openmetrics"),
        ("application/openmetrics-text;q=nonsense", "text"),
        ("application/openmetrics-text;q=2", "text"),
    ],
)
def test_accept_weights_choose_between_openmetrics_and_text(serve, accept, variant):
    # q=0 means "not acceptable"; the text format is the fallback for any
    # header that does not rank OpenMetrics first.
    running = serve(Routes(None, FakeExposition()))
    status, headers, body = request(running.port, get("/metrics", f"Accept: {accept}\r\n" if accept else ""))
    assert (status, body) == (200, variant.encode())
    assert headers["content-type"] == f"{variant}; fake"
    assert headers["vary"] == "Accept, Accept-Encoding"


@pytest.mark.parametrize("encoding, gzip", [("gzip", True), ("gzip;q=0", False), ("deflate, gzip; q=0.0", False), ("gzip;q=0.5", True), ("identity", False)])
def test_accept_encoding_weights(serve, encoding, gzip):
    running = serve(Routes(None, FakeExposition()))
    _, headers, _ = request(running.port, get("/metrics", f"Accept-Encoding: {encoding}\r\n"))
    assert (headers.get("content-encoding") == "gzip") is gzip


@pytest.mark.parametrize(
    "target, path",
    [
        ("http://host:9100/-/healthy", "/-/healthy"),
        ("HTTP://host/metrics?x=1", "/metrics"),
        ("https://[::1]:9100/", "/"),
        ("http://host:9100", "/"),
        ("http://host?x=1", "/"),
    ],
)
def test_absolute_form_targets_are_served_by_their_path(serve, target, path):
    # RFC 9112 3.2.2: a server must accept absolute-form; the authority is ignored.
    running = serve()
    status, _, body = request(running.port, f"GET {target} HTTP/1.1\r\nHost: elsewhere\r\n\r\n".encode())
    assert (status, body) == (200, f"ok {path}\n".encode())


def test_absolute_form_reaches_the_agent_routes(serve):
    running = serve(Routes(None, FakeExposition()))
    assert request(running.port, b"GET http://127.0.0.1:9100/-/healthy HTTP/1.1\r\nHost: x\r\n\r\n")[0] == 200
    assert request(running.port, b"GET http://127.0.0.1:9100/metrics HTTP/1.1\r\nHost: x\r\n\r\n")[2] == b"text"


@pytest.mark.parametrize(
    "lengths",
    [["abc"], ["-1"], ["+5"], ["1.5"], [""], ["\xb2"], ["1", "2"], ["3, 4"]],
    ids=["letters", "negative", "plus-sign", "fraction", "empty", "superscript-digit", "two-headers", "two-in-one"],
)
def test_unframeable_content_length_is_400(serve, lengths):
    running = serve()
    extra = "".join(f"Content-Length: {value}\r\n" for value in lengths)
    status, headers, body = request(running.port, get("/", extra))
    assert status == 400
    assert body.startswith(b"invalid Content-Length: ")
    assert headers["connection"] == "close"
    assert request(running.port, get("/"))[0] == 200


def test_repeated_equal_content_lengths_are_accepted(serve):
    running = serve()
    status, headers, _ = request(running.port, get("/", "Content-Length: 0\r\nContent-Length: 0\r\n"))
    assert status == 200 and headers["connection"] == "close"  # bodies are not read: the stream ends
