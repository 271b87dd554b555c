"""HTTP/1.1 details a real server gets right: content negotiation, request
target forms and request framing."""

from __future__ import annotations

from typing import Tuple

import pytest
from web.rawhttp import get, request

from hostagent.web import Routes


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
