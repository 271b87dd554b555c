"""hostagent export against a real Prometheus holding thirty days of known history."""

from __future__ import annotations

import csv
import gzip
import io
import json
from pathlib import Path

import pytest
from history import DAY, IDLE, STEP, WEB
from tools_support import one_line_error, tool

from hostagent.tools.promapi import MAX_POINTS, chunks, points
from hostagent.tools.timeparse import iso


def expected_at(history_values, t):
    """The value a query at ``t`` sees: the latest sample at or before it (within 5 minutes)."""
    best = None
    for ts, v in history_values:
        if ts <= t:
            best = v
        else:
            break
    return best


def test_wide_csv_is_exact_over_thirty_days_at_one_minute(backfilled, tmp_path: Path) -> None:
    h = backfilled.history
    start, end = h.start, h.end
    # 43,201 points per series: five requests under Prometheus' 11,000-point limit.
    assert points(start, end, 60) > 4 * MAX_POINTS
    done = tool("export", "--prometheus", backfilled.url, "--from", str(start), "--to", str(end), "--step", "1m", 'host_filesystem_avail_bytes{mountpoint="/data"}')
    assert done.returncode == 0, done.stderr
    rows = list(csv.reader(io.StringIO(done.stdout.decode())))
    header, body = rows[0], rows[1:]
    assert header == ["timestamp", 'host_filesystem_avail_bytes{device="/dev/sdb1",fstype="ext4",instance="web-1:9100",job="hostagent",mountpoint="/data"}']
    assert len(body) == 30 * DAY // 60 + 1
    assert [r[0] for r in body] == [iso(start + k * 60) for k in range(len(body))]
    truth = h.values("host_filesystem_avail_bytes", mountpoint="/data")
    by_time = dict(truth)
    for k, row in enumerate(body):
        t = start + k * 60
        sample_t = t - (t - start) % STEP
        assert float(row[1]) == by_time[sample_t], (row, sample_t)


def test_wide_csv_leaves_cells_empty_where_a_series_has_no_value(backfilled) -> None:
    h = backfilled.history
    # Only web-1 has PSI; join it with idle-1's cores so one column has gaps.
    expr = 'host_pressure_cpu_waiting_seconds_total or host_cpu_cores{instance="%s"}' % IDLE
    done = tool("export", "--prometheus", backfilled.url, "--from", str(h.end - 3600), "--to", str(h.end), "--step", "5m", expr)
    assert done.returncode == 0, done.stderr
    rows = list(csv.reader(io.StringIO(done.stdout.decode())))
    assert len(rows[0]) == 3 and len(rows) == 1 + 13
    assert all(r[1] and r[2] for r in rows[1:])
    # A range where a column only exists part of the time.
    first_alert = h.start + 4 * DAY + 10 * 3600
    done = tool("export", "--prometheus", backfilled.url, "--from", str(first_alert - 600), "--to", str(first_alert + 600), "--step", "5m", f'ALERTS or host_cpu_cores{{instance="{WEB}"}}')
    rows = list(csv.reader(io.StringIO(done.stdout.decode())))
    alert_col = next(i for i, name in enumerate(rows[0]) if name.startswith("ALERTS"))
    assert [r[alert_col] for r in rows[1:]] == ["", "", "1", "1", "1"]


def test_long_csv_gzip_to_a_file_matches_prometheus_values(backfilled, tmp_path: Path) -> None:
    h = backfilled.history
    out = tmp_path / "rx.csv.gz"
    expr = 'rate(host_network_receive_bytes_total{device="eth0"}[10m])'
    start, end = h.start + DAY, h.start + 3 * DAY
    done = tool("export", "--prometheus", backfilled.url, "--from", str(start), "--to", str(end), "--step", "10m", "--format", "csv-long", "--unix-time", "--gzip", "-o", str(out), expr)
    assert done.returncode == 0, done.stderr
    rows = list(csv.reader(io.StringIO(gzip.decompress(out.read_bytes()).decode())))
    assert rows[0] == ["timestamp", "series", "value"]
    n = points(start, end, 600)
    assert len(rows) - 1 == 2 * n  # both hosts' eth0
    assert "wrote %d rows" % (2 * n) in done.stderr
    web = [(float(t), float(v)) for t, s, v in rows[1:] if WEB in s]
    assert [t for t, _ in web] == [start + k * 600 for k in range(n)]
    for t, v in web:
        hour = int(t % DAY) // 3600
        # The 10-minute window ending at t lies in one hour unless t is on the hour.
        if t % 3600 >= 600:
            assert v == pytest.approx(5e6 if hour in (12, 13) else 1e6, rel=1e-9)


def test_jsonl_points_are_prometheus_own_numbers(backfilled) -> None:
    h = backfilled.history
    start, end = h.end - 2 * 3600, h.end
    done = tool("export", "--prometheus", backfilled.url, "--from", iso(start), "--to", iso(end), "--step", "15m", "--format", "jsonl", "host_load5")
    assert done.returncode == 0, done.stderr
    records = [json.loads(line) for line in done.stdout.decode().splitlines()]
    assert len(records) == 2 * points(start, end, 900)
    assert records[0]["timestamp"] == iso(start)
    web = h.values("host_load5", instance=WEB)
    for r in records:
        assert set(r) == {"timestamp", "metric", "value"}
        if r["metric"]["instance"] == WEB:
            t = start + [iso(start + k * 900) for k in range(9)].index(r["timestamp"]) * 900
            assert r["value"] == expected_at(web, t)


def test_pieces_join_to_the_same_output_whatever_their_size(backfilled) -> None:
    from hostagent.tools.connection import Connection
    from hostagent.tools.export import Exporter
    from hostagent.tools.promapi import Prometheus

    h = backfilled.history
    prom = Prometheus(Connection(backfilled.url))
    outputs = []
    for budget in (10**6, 7, 1):  # 7 points over 3 series: pieces of 2 points; 1: one point each
        exporter = Exporter(prom, "host_filesystem_size_bytes", h.end - 3600, h.end, 300, budget=budget)
        buf = io.StringIO()
        assert exporter.write(buf, "csv") == 13
        outputs.append(buf.getvalue())
    assert outputs[0] == outputs[1] == outputs[2]


def test_chunks_cover_every_point_once() -> None:
    for start, end, step, most in ((0, 100, 1, 7), (10.5, 10.5, 2, 3), (0, 99_999, 1, MAX_POINTS), (1, 1000, 7, 1)):
        grid = [t for lo, hi in chunks(start, end, step, most) for t in _grid(lo, hi, step)]
        assert grid == _grid(start, end, step)
        assert all(points(lo, hi, step) <= most for lo, hi in chunks(start, end, step, most))


def _grid(lo, hi, step):
    return [lo + k * step for k in range(points(lo, hi, step))]


# --------------------------------------------------------------------------
# Errors a user can cause: one line, exit 1 or 2, nothing overwritten


def test_errors_are_one_line(backfilled, tmp_path: Path) -> None:
    h = backfilled.history
    rng = ["--from", str(h.start), "--to", str(h.end)]
    keep = tmp_path / "keep.csv"
    keep.write_text("precious\n")
    cases = [
        (["--prometheus", "localhost:9090", "up"], 2, "must look like http://"),
        (["--prometheus", "http://127.0.0.1:1", "up"], 1, "Connection refused"),
        (["--prometheus", backfilled.url, *rng, "rate(host_load5["], 1, "parse error"),
        (["--prometheus", backfilled.url, *rng, "-o", str(keep), "no_such_metric"], 1, "no data"),
        (["--prometheus", backfilled.url, "--from", str(h.end + DAY), "host_load5"], 2, "must be before --to"),
        (["--prometheus", backfilled.url, "--from", "last tuesday", "host_load5"], 2, "cannot read 'last tuesday' as a time"),
        (["--prometheus", backfilled.url, "--step", "0s", "host_load5"], 2, "--step"),
        (["--prometheus", backfilled.url, "-o", str(tmp_path / "no" / "dir.csv"), "host_load5"], 2, "cannot write"),
        (["--prometheus", backfilled.url, "--format", "xlsx", "host_load5"], 2, "invalid choice"),
        (["--prometheus", backfilled.url, "--ca-file", str(tmp_path / "missing.pem"), "up"], 2, "no such file"),
    ]
    for argv, status, words in cases:
        done = tool("export", *argv)
        line = one_line_error(done, (status,))
        assert line.startswith("hostagent export: ") and words in line, (argv, line)
    assert keep.read_text() == "precious\n"
    assert [p.name for p in tmp_path.iterdir()] == ["keep.csv"]


def test_a_query_with_too_many_points_is_split_not_refused(backfilled) -> None:
    h = backfilled.history
    # 30 days at 30 s: 86,401 points per series, eight times Prometheus' limit.
    done = tool("export", "--prometheus", backfilled.url, "--from", str(h.start), "--to", str(h.end), "--step", "30s", "--format", "csv-long", f'host_cpu_cores{{instance="{IDLE}"}}')
    assert done.returncode == 0, done.stderr
    lines = done.stdout.decode().splitlines()
    assert len(lines) == 1 + 30 * DAY // 30 + 1
    assert all(line.endswith(",4") for line in lines[1:])
