"""A client for Prometheus' HTTP API (``/api/v1``): instant and range queries,
range queries split into chunks, metric names.

Prometheus refuses a range query that would return more than 11,000 points
per series; :meth:`Prometheus.query_range_chunks` splits any range so each
request stays under :data:`MAX_POINTS`, with every timestamp on the grid
``start + k * step`` exactly as one big query would have it.
"""

from __future__ import annotations

import math
from typing import Any, Dict, Iterator, List, Optional, Set, Tuple

from . import ToolError
from .connection import Connection

# Below Prometheus' own limit of 11,000 points per series per query.
MAX_POINTS = 10_000

Series = Dict[str, Any]  # {"metric": {labels}, "values": [[t, "v"], ...]} or "value": [t, "v"]


def fmt_ts(ts: float) -> str:
    """A timestamp as Prometheus takes it, exact to the millisecond."""
    return f"{ts:.3f}"


def fmt_step(step: float) -> str:
    return f"{step:g}" if step == int(step) else f"{step:.3f}"


class Prometheus:
    """One Prometheus (or a compatible API, e.g. VictoriaMetrics)."""

    def __init__(self, conn: Connection):
        self.conn = conn
        conn.what = "Prometheus"

    @property
    def url(self) -> str:
        return self.conn.url

    def _api(self, path: str, params: Dict[str, Any], expr: Optional[str] = None) -> Any:
        resp = self.conn.get("/api/v1" + path, params=params, ok=(200, 400, 422, 503))
        try:
            body = resp.json()
        except ValueError:
            raise ToolError(f"{self.url} did not answer /api/v1{path} with JSON: is it a Prometheus?") from None
        if not isinstance(body, dict) or "status" not in body:
            raise ToolError(f"{self.url} did not answer /api/v1{path} as Prometheus does: is it a Prometheus?")
        if body["status"] != "success":
            what = f"the query {expr!r}" if expr is not None else f"/api/v1{path}"
            error = " ".join(str(body.get("error", "no reason given")).split())
            raise ToolError(f"Prometheus at {self.url} refused {what}: {error}")
        return body.get("data")

    def query(self, expr: str, at: Optional[float] = None) -> List[Series]:
        """An instant query: vectors as lists of series, scalars as one series without labels."""
        params = {"query": expr}
        if at is not None:
            params["time"] = fmt_ts(at)
        data = self._api("/query", params, expr)
        kind, result = data["resultType"], data["result"]
        if kind in ("scalar", "string"):
            return [{"metric": {}, "value": result}]
        return list(result)

    def query_range(self, expr: str, start: float, end: float, step: float) -> List[Series]:
        """A range query as one request (at most MAX_POINTS points per series)."""
        if points(start, end, step) > MAX_POINTS:
            raise ValueError("range too long for one request; use query_range_chunks")
        params = {"query": expr, "start": fmt_ts(start), "end": fmt_ts(end), "step": fmt_step(step)}
        return list(self._api("/query_range", params, expr)["result"])

    def query_range_chunks(self, expr: str, start: float, end: float, step: float, max_points: int = MAX_POINTS) -> Iterator[Tuple[float, float, List[Series]]]:
        """(chunk start, chunk end, series) for consecutive pieces of the range."""
        for lo, hi in chunks(start, end, step, max_points):
            yield lo, hi, self.query_range(expr, lo, hi, step)

    def query_range_all(self, expr: str, start: float, end: float, step: float) -> List[Series]:
        """A range query of any length, its chunks joined per series (held in memory)."""
        joined: Dict[Tuple[Tuple[str, str], ...], Series] = {}
        for _, _, result in self.query_range_chunks(expr, start, end, step):
            for s in result:
                key = label_key(s["metric"])
                if key in joined:
                    joined[key]["values"].extend(s["values"])
                else:
                    joined[key] = {"metric": s["metric"], "values": list(s["values"])}
        return list(joined.values())

    def metric_names(self, start: Optional[float] = None, end: Optional[float] = None) -> Set[str]:
        """Every metric name with data in [start, end] (Prometheus' default: recent data)."""
        params: Dict[str, Any] = {}
        if start is not None:
            params["start"] = fmt_ts(start)
        if end is not None:
            params["end"] = fmt_ts(end)
        return set(self._api("/label/__name__/values", params) or [])

    def check(self) -> None:
        """Fail with one line unless the server answers a trivial query."""
        self.query("1")


def points(start: float, end: float, step: float) -> int:
    """How many points a range query returns per series: start, start+step, ... <= end."""
    return int(math.floor((end - start) / step + 1e-9)) + 1


def chunks(start: float, end: float, step: float, max_points: int = MAX_POINTS) -> Iterator[Tuple[float, float]]:
    """Consecutive [lo, hi] pieces on the grid start + k*step, each with at most
    ``max_points`` points, together covering exactly the points of [start, end]."""
    total = points(start, end, step)
    k = 0
    while k < total:
        n = min(max_points, total - k)
        yield start + k * step, start + (k + n - 1) * step
        k += n


def label_key(metric: Dict[str, str]) -> Tuple[Tuple[str, str], ...]:
    return tuple(sorted(metric.items()))


def series_name(metric: Dict[str, str]) -> str:
    """A series as PromQL writes it: name{a="b",c="d"} (labels sorted)."""
    name = metric.get("__name__", "")
    labels = ",".join(f'{k}="{_escape(v)}"' for k, v in sorted(metric.items()) if k != "__name__")
    return f"{name}{{{labels}}}" if labels or not name else name


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def floats(series: Series) -> List[Tuple[float, float]]:
    """A range series' points as (timestamp, value) floats."""
    return [(float(t), float(v)) for t, v in series["values"]]


DEFAULT_URL = "http://localhost:9090"
URL_ENV = "HOSTAGENT_PROMETHEUS_URL"


def add_url_argument(parser: Any) -> None:
    parser.add_argument("--prometheus", metavar="URL", help=f"Prometheus base URL (default: ${URL_ENV}, else {DEFAULT_URL})")


def from_args(args: Any) -> Prometheus:
    """The Prometheus named by --prometheus (or its environment default) with the shared connection options."""
    import os

    url = args.prometheus or os.environ.get(URL_ENV) or DEFAULT_URL
    return Prometheus(Connection.from_args(url, args, "Prometheus"))
