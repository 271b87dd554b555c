"""The agent's endpoints: /metrics, /, /-/healthy, /-/ready, /api/v1/processes.

``Routes`` is the handler the HTTP server of ``web.py`` calls for every
request that passed authentication. Every route hands out bytes made
beforehand or a small page, so it runs on the event loop itself.
"""

from __future__ import annotations

import functools
import html
import time
from typing import Optional

from . import __version__
from . import procapi
from .web import Request, Response, text_response

def _q(params: str) -> float:
    """The weight in a header element's parameters: 1 without one, 0 (not
    acceptable) for q=0 and for a weight that is not a number from 0 to 1."""
    for param in params.split(";"):
        name, _, value = param.partition("=")
        if name.strip().lower() == "q":
            try:
                q = float(value)
            except ValueError:
                return 0.0
            return q if 0.0 <= q <= 1.0 else 0.0
    return 1.0


def _wants_gzip(accept_encoding: str) -> bool:
    for part in accept_encoding.split(","):
        token, _, params = part.partition(";")
        if token.strip().lower() == "gzip":
            return _q(params) > 0
    return False


# The text format answers every Accept header that does not rank OpenMetrics
# first: a more specific range counts over a wider one, a tie goes to the one
# named first.
_TEXT_RANGES = {"text/plain": 2, "text/*": 1, "*/*": 0}


@functools.lru_cache(maxsize=32)  # a scraper sends the same header every time
def _wants_openmetrics(accept: str) -> bool:
    if "openmetrics-text" not in accept:
        return False  # the common case, without parsing
    om_q, om_at = 0.0, 0
    text_rank, text_q, text_at = -1, 0.0, 0
    for at, part in enumerate(accept.split(",")):
        media, _, params = part.partition(";")
        media = media.strip().lower()
        if media == "application/openmetrics-text":
            q = _q(params)
            if q > om_q:
                om_q, om_at = q, at
        elif media in _TEXT_RANGES:
            q, rank = _q(params), _TEXT_RANGES[media]
            if rank > text_rank or rank == text_rank and q > text_q:
                text_rank, text_q, text_at = rank, q, at
    return om_q > text_q or om_q == text_q > 0 and om_at < text_at


class Routes:
    """The agent's endpoints, as a Handler."""

    def __init__(self, agent: "object", exposition: "object", started_wall: Optional[float] = None):
        self.agent = agent
        self.exposition = exposition
        self.started_wall = started_wall or time.time()

    def __call__(self, request: Request) -> Response:
        path = request.path
        if request.method not in ("GET", "HEAD"):
            known = path in ("/metrics", "/", "/-/healthy", "/-/ready", procapi.PATH)
            return text_response(405 if known else 404, "method not allowed" if known else "not found", headers=[("Allow", "GET, HEAD")] if known else [])
        if path == "/metrics":
            return self.metrics(request)
        if path == "/-/healthy":
            return text_response(200, "OK")
        if path == "/-/ready":
            reason = self.agent.not_ready_reason()  # type: ignore[attr-defined]
            return text_response(503, "not ready: " + reason) if reason else text_response(200, "OK")
        if path == "/":
            return Response(200, self.landing().encode("utf-8"), "text/html; charset=utf-8")
        if path == procapi.PATH:
            return procapi.processes_response(self.agent, request)
        return text_response(404, "not found")

    def metrics(self, request: Request) -> Response:
        openmetrics = _wants_openmetrics(request.header("accept"))
        compressed = _wants_gzip(request.header("accept-encoding"))
        body, ctype = self.exposition.body(openmetrics, compressed)  # type: ignore[attr-defined]
        headers = [("Vary", "Accept, Accept-Encoding")]
        if compressed:
            headers.append(("Content-Encoding", "gzip"))
        return Response(200, body, ctype, headers)

    def landing(self) -> str:
        now = self.agent.clock()  # type: ignore[attr-defined]
        rows = []
        for r in self.agent.runners:  # type: ignore[attr-defined]
            st = r.status
            state = r.state(now)
            last = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(st.last_success_wall)) if st.last_success_wall else "never"
            # A failing state names its error already; a running one may still have failed once or twice.
            error = "" if state.kind == "failing" else st.last_error
            rows.append((r.name, state.kind, state.text, f"{r.interval:g}s", last, f"{st.last_duration * 1000:.1f} ms", error))
        for name, why in self.agent.disabled.items():  # type: ignore[attr-defined]
            rows.append((name, "disabled", why, "-", "-", "-", ""))
        cells = "".join(
            f"<tr><td>{html.escape(name)}</td><td class='{kind}'>{html.escape(text)}</td>"
            + "".join(f"<td>{html.escape(v)}</td>" for v in rest)
            + "</tr>"
            for name, kind, text, *rest in sorted(rows)
        )
        return (
            "<!DOCTYPE html><html><head><meta charset='utf-8'><title>hostagent</title>"
            "<style>body{font-family:sans-serif;margin:2em}td,th{padding:.2em .8em;text-align:left}"
            ".running{color:#1a7f37}.failing,.stale{color:#cf222e}.starting,.disabled,.not-available{color:#6e7781}</style></head><body>"
            f"<h1>hostagent {html.escape(__version__)}</h1>"
            "<p><a href='/metrics'>Metrics</a> &middot; <a href='/-/healthy'>health</a> &middot; <a href='/-/ready'>readiness</a></p>"
            "<table><tr><th>collector</th><th>state</th><th>interval</th><th>last success</th><th>last duration</th><th>last error</th></tr>"
            + cells
            + "</table></body></html>\n"
        )
