"""``hostagent export``: any PromQL over a range, at a step, to CSV or JSON lines.

    $ hostagent export --from now-1d --step 5m 'host_load5'
    timestamp,"host_load5{instance=""web-1:9100"",job=""hostagent""}",...
    2026-05-01T10:00:00Z,0.42,...

Formats: ``csv`` (wide: one row per timestamp, one column per series, an
empty cell where a series has no value), ``csv-long`` (one row per point:
timestamp, series, value) and ``jsonl`` (one JSON object per point, labels
as a mapping). Values are written as Prometheus sends them, so nothing is
lost to rounding. The range is fetched in pieces sized so that no request
passes Prometheus' 11,000-points-per-series limit and no piece holds more
than about :data:`POINT_BUDGET` points (sized by the series count of the
piece before), whatever the range: memory stays flat.
The wide format needs its columns before the first row, so it reads the
range twice (first only for the series' names).

Exit status: 0 written, 1 no data or Prometheus failed, 2 bad usage.
"""

from __future__ import annotations

import contextlib
import csv
import gzip
import io
import json
import math
import sys
from typing import IO, Any, Dict, Iterator, List, Optional, Sequence, Tuple

from . import ArgumentParser, ToolError, connection, plural, promapi, replaced_on_success, run
from .promapi import MAX_POINTS, Prometheus, label_key, series_name
from .timeparse import iso, parse_duration, range_of

FORMATS = ("csv", "csv-long", "jsonl")
# Points held in memory at once (one piece of the range, all its series).
POINT_BUDGET = 500_000
DEFAULT_SPAN = 86400.0
Key = Tuple[Tuple[str, str], ...]


def build_parser() -> ArgumentParser:
    p = ArgumentParser(prog="hostagent export", description="Export a PromQL expression over a time range to CSV or JSON lines.")
    p.add_argument("expr", metavar="PROMQL", help="a selector or expression, e.g. 'host_load5' or 'rate(host_cpu_seconds_total[5m])'")
    promapi.add_url_argument(p)
    p.add_argument("--from", dest="start", default="", metavar="TIME", help="start (default: --to minus 1 day); RFC 3339, a date, unix seconds, now-7d")
    p.add_argument("--to", dest="end", default="", metavar="TIME", help="end (default: now)")
    p.add_argument("--step", default="1m", metavar="DURATION", help="resolution, e.g. 15s, 1m, 1h (default 1m)")
    p.add_argument("--format", choices=FORMATS, default="csv", help="csv (wide, one column per series), csv-long or jsonl (default csv)")
    p.add_argument("--unix-time", action="store_true", help="timestamps as unix seconds instead of RFC 3339")
    p.add_argument("-o", "--output", default="-", metavar="FILE", help="file to write (default: standard output); replaced only when the export succeeds")
    p.add_argument("--gzip", action="store_true", help="compress the output with gzip")
    connection.add_arguments(p)
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    return run("export", _main, argv)


def _main(argv: List[str]) -> int:
    args = build_parser().parse_args(argv)
    start, end = range_of(args.start, args.end, DEFAULT_SPAN)
    step = parse_duration(args.step, "--step")
    prom = promapi.from_args(args)
    exporter = Exporter(prom, args.expr, start, end, step, unix_time=args.unix_time)
    with output(args.output, args.gzip) as out:
        rows = exporter.write(out, args.format)
        if rows == 0:  # raised inside: a file named by -o is left as it was
            raise ToolError(f"no data: {args.expr!r} returned no series between {iso(start)} and {iso(end)}")
    if args.output != "-":
        print(f"hostagent export: wrote {plural(rows, 'row')} to {args.output}", file=sys.stderr)
    return 0


class output:
    """A text stream to ``path`` ('-': standard output), gzipped on request.
    A file is written beside its final name and put in place only on success."""

    def __init__(self, path: str, compress: bool):
        self.path, self.compress = path, compress
        self.file: Optional[contextlib.AbstractContextManager] = None

    def __enter__(self) -> IO[str]:
        if self.path == "-":
            raw: IO[bytes] = sys.stdout.buffer
        else:
            self.file = replaced_on_success(self.path)
            raw = self.file.__enter__()
        self.raw = raw
        self.gz = gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) if self.compress else None
        self.text = io.TextIOWrapper(self.gz or raw, encoding="utf-8", newline="", write_through=False)
        return self.text

    def __exit__(self, kind: Any, exc: Any, tb: Any) -> None:
        try:
            self.text.detach()  # flushes; leaves the layers below open
            if self.gz is not None:
                self.gz.close()  # writes the gzip trailer; leaves raw open
            self.raw.flush()
        finally:
            if self.file is not None:
                self.file.__exit__(kind, exc, tb)


class Exporter:
    """Reads ``expr`` over [start, end] at ``step`` in pieces and writes rows."""

    def __init__(self, prom: Prometheus, expr: str, start: float, end: float, step: float, unix_time: bool = False, budget: int = POINT_BUDGET):
        self.prom, self.expr = prom, expr
        self.start, self.end, self.step = start, end, step
        self.unix_time = unix_time
        self.budget = budget

    def pieces(self) -> Iterator[List[promapi.Series]]:
        """The range piece by piece; each piece's size follows how many series the last one had."""
        total = promapi.points(self.start, self.end, self.step)
        k, size = 0, 100  # small until the series are counted
        while k < total:
            n = min(size, total - k)
            lo = self.start + k * self.step
            hi = self.start + (k + n - 1) * self.step
            result = self.prom.query_range(self.expr, lo, hi, self.step)
            yield result
            k += n
            size = max(1, min(MAX_POINTS, self.budget // max(1, len(result))))

    def stamp(self, t: float) -> str:
        if self.unix_time:
            text = f"{t:.3f}".rstrip("0").rstrip(".")
            return text
        return iso(t)

    def write(self, out: IO[str], fmt: str) -> int:
        """Write every row in ``fmt``; the number of rows (header not counted)."""
        if fmt == "csv":
            return self._wide(out)
        if fmt == "csv-long":
            return self._long(out)
        return self._jsonl(out)

    def _points(self) -> Iterator[Tuple[float, Key, Dict[str, str], str]]:
        """(timestamp, series key, labels, value) in time order, series sorted within a timestamp."""
        for result in self.pieces():
            by_time: Dict[float, List[Tuple[Key, Dict[str, str], str]]] = {}
            for s in result:
                key = label_key(s["metric"])
                for t, v in s["values"]:
                    by_time.setdefault(float(t), []).append((key, s["metric"], v))
            for t in sorted(by_time):
                for key, metric, v in sorted(by_time[t], key=lambda item: item[0]):
                    yield t, key, metric, v

    def _long(self, out: IO[str]) -> int:
        writer = csv.writer(out, lineterminator="\n")
        rows = 0
        names: Dict[Key, str] = {}
        for t, key, metric, v in self._points():
            if rows == 0:
                writer.writerow(["timestamp", "series", "value"])
            name = names.get(key) or names.setdefault(key, series_name(metric))
            writer.writerow([self.stamp(t), name, v])
            rows += 1
        return rows

    def _jsonl(self, out: IO[str]) -> int:
        rows = 0
        for t, _, metric, v in self._points():
            value = float(v)
            record = {"timestamp": t if self.unix_time else iso(t), "metric": metric, "value": value if math.isfinite(value) else v}
            out.write(json.dumps(record, separators=(",", ":")) + "\n")
            rows += 1
        return rows

    def _wide(self, out: IO[str]) -> int:
        # First pass: the columns.
        columns: Dict[Key, str] = {}
        for result in self.pieces():
            for s in result:
                key = label_key(s["metric"])
                if key not in columns:
                    columns[key] = series_name(s["metric"])
        if not columns:
            return 0
        order = sorted(columns)
        index = {key: i for i, key in enumerate(order)}
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(["timestamp"] + [columns[key] for key in order])
        rows = 0
        for result in self.pieces():
            by_time: Dict[float, List[str]] = {}
            for s in result:
                col = index.get(label_key(s["metric"]))
                if col is None:  # a series that appeared between the two passes
                    continue
                for t, v in s["values"]:
                    row = by_time.get(float(t))
                    if row is None:
                        row = by_time[float(t)] = [""] * len(order)
                    row[col] = v
            for t in sorted(by_time):
                writer.writerow([self.stamp(t)] + by_time[t])
                rows += 1
        return rows


if __name__ == "__main__":
    sys.exit(main())
