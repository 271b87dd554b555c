"""hostagent report on a Prometheus that holds an hour of data when the
report asks for thirty days (a stack started an hour ago)."""

from __future__ import annotations

import json
import re
from typing import Any, Dict

import matplotlib
import matplotlib.dates as mdates
import pytest
from history import MODES, YOUNG, YOUNG_BUSY, YOUNG_GROUPS, YOUNG_QUIET, YOUNG_SPAN
from tools_support import tool

from hostagent.tools import connection, promapi
from hostagent.tools.report import Collector
from hostagent.tools.timeparse import iso

matplotlib.use("Agg")


@pytest.fixture(scope="module")
def report(young) -> Dict[str, Any]:
    # The default range: the last 30 days, of which Prometheus holds one hour.
    done = tool("report", "--prometheus", young.url, "--format", "json")
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert [h["instance"] for h in data["hosts"]] == [YOUNG]
    return data


def test_cpu_figures_cover_only_the_hour_there_is(report) -> None:
    cpu = report["hosts"][0]["cpu"]
    # Half an hour at 30 %, then half an hour at 70 %: no 10-minute window was busier.
    assert cpu["max"] == pytest.approx(YOUNG_BUSY, abs=1e-9)
    assert cpu["p95"] == pytest.approx(YOUNG_BUSY, abs=1e-9)
    assert min(YOUNG_QUIET, YOUNG_BUSY) - 1e-9 <= cpu["p50"] <= YOUNG_BUSY + 1e-9
    assert YOUNG_QUIET < cpu["mean"] < YOUNG_BUSY


def test_the_report_says_how_much_history_it_had(report, young) -> None:
    h = report["hosts"][0]
    step = report["step_seconds"]
    assert abs(h["covered_seconds"] - YOUNG_SPAN) <= step
    assert iso(young.history.start - step) <= h["data_from"] <= iso(young.history.start + step)
    (short,) = [f for f in report["findings"] if f["subject"] == "short history"]
    assert short["severity"] == "info" and "30d0h asked for" in short["text"] and short["text"].startswith("Prometheus holds 1h0")


def test_top_groups_average_over_the_covered_hour(report) -> None:
    (groups,) = report["hosts"][0]["top_users"]
    assert [r["name"] for r in groups["cpu"]] == sorted(YOUNG_GROUPS, key=lambda g: -YOUNG_GROUPS[g])
    assert sum(MODES.values()) == pytest.approx(1)
    for row in groups["cpu"]:
        # The span is known to a report step (5 min of the hour).
        assert row["value"] == pytest.approx(YOUNG_GROUPS[row["name"]], rel=0.1)


def test_usage_plot_spans_the_data_not_years(young) -> None:
    from hostagent.tools import report_html

    h = young.history
    prom = promapi.Prometheus(connection.Connection(young.url))
    data = Collector(prom, h.end - 30 * 86400, h.end + 60, 300.0, "hostagent", "", None).collect()
    (host,) = data.hosts
    plt = report_html._matplotlib()
    fig = report_html.usage_figure(plt, host, {"cpu": 0.8}, 300.0)
    lo, hi = (mdates.num2date(x).timestamp() for x in fig.axes[0].get_xlim())
    plt.close(fig)
    assert h.start - 300 <= lo <= h.start + 300
    assert h.end - 300 <= hi <= h.end + 360


def test_one_sample_is_drawn_on_an_hour_not_years() -> None:
    from hostagent.tools import report_html
    from hostagent.tools.report import Host

    host = Host("hostagent", "one:9100")
    host.series["cpu"] = [(1_780_000_000.0, 0.5)]
    plt = report_html._matplotlib()
    fig = report_html.usage_figure(plt, host, {}, 300.0)
    fig.canvas.draw()
    lo, hi = (mdates.num2date(x).timestamp() for x in fig.axes[0].get_xlim())
    labels = [t.get_text() for t in fig.axes[0].get_xticklabels()]
    assert labels and all(re.fullmatch(r"\d\d:\d\d", label) for label in labels[1:]), labels  # times of day
    plt.close(fig)
    assert (lo, hi) == (1_780_000_000.0 - 1800, 1_780_000_000.0 + 1800)
    assert not any(re.fullmatch(r"20\d\d", label) for label in labels), labels
