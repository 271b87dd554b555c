"""``/api/v1/processes``: the current process list as JSON.

Served from the processes collector's latest run, never by reading /proc in
the request: the handler runs on the event loop, so it only slices a list
made in the collector's thread and renders it (once per list and query).

    GET /api/v1/processes?sort=memory&limit=2
    {"timestamp":1717171717.5,"sort":"memory","limit":2,"total_processes":212,
     "memory_total_bytes":8232906752,"processes":[{"pid":812,"ppid":1,"name":"postgres",
     "user":"postgres","group":"postgres","state":"sleeping","cpu_cores":0.35,
     "resident_memory_bytes":134217728,"threads":1,"start_time_seconds":1717100000.0}, ...]}
"""

from __future__ import annotations

from typing import Tuple
from urllib.parse import parse_qsl

from .collectors.processes import API_MAX_LIMIT
from .web import Request, Response, text_response

PATH = "/api/v1/processes"
DEFAULT_LIMIT = 50
SORTS = ("cpu", "memory")


class QueryError(ValueError):
    """A query parameter the endpoint does not accept; the message says which."""


def parse_query(target: str) -> Tuple[str, int]:
    """(sort, limit) from a request target's query string."""
    query = target.partition("?")[2]
    try:
        pairs = parse_qsl(query, keep_blank_values=True, strict_parsing=True) if query else []
    except ValueError:
        raise QueryError(f"malformed query string: {query[:100]!r}") from None
    seen = {}
    for key, value in pairs:
        if key not in ("sort", "limit"):
            raise QueryError(f"unknown query parameter {key[:40]!r} (known: sort, limit)")
        if key in seen:
            raise QueryError(f"query parameter {key!r} given twice")
        seen[key] = value
    sort = seen.get("sort", "cpu")
    if sort not in SORTS:
        raise QueryError(f"sort must be cpu or memory, got {sort[:40]!r}")
    text = seen.get("limit", str(DEFAULT_LIMIT))
    if not text.isdigit() or not 1 <= int(text) <= API_MAX_LIMIT:
        raise QueryError(f"limit must be a whole number from 1 to {API_MAX_LIMIT}, got {text[:40]!r}")
    return sort, int(text)


def processes_response(agent: object, request: Request) -> Response:
    """The answer to a GET or HEAD of ``PATH``."""
    try:
        sort, limit = parse_query(request.target)
    except QueryError as exc:
        return text_response(400, str(exc))
    runner = next((r for r in agent.runners if r.name == "processes" and r.status.enabled), None)  # type: ignore[attr-defined]
    if runner is None:
        return text_response(404, "the processes collector is not enabled")
    plist = getattr(runner.collector, "process_list", None)
    if plist is None or runner.fresh_snapshot(agent.clock()) is None:  # type: ignore[attr-defined]
        return text_response(503, "no fresh process list: the processes collector has not run yet, or its last runs failed")
    return Response(200, plist.json(sort, limit), "application/json", [("Cache-Control", "no-store")])
