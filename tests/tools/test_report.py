"""hostagent report against a real Prometheus holding thirty days of known history."""

from __future__ import annotations

import csv
import io
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict

import pytest
from history import (
    BUSY,
    BUSY_HOURS,
    CGROUPS,
    DATA_RATE,
    DAY,
    FILL_DAYS_AFTER_END,
    GONE,
    GROUP_RSS,
    IDLE,
    IDLE_CPU,
    IDLE_MEM_USED,
    MODES,
    QUIET,
    RX_PEAK,
    TX,
    WEB,
    WEB_MEM_USED,
    WEB_SWAP_USED,
    fill_time,
    incidents,
)
from support import REPO, require_tool
from tools_support import one_line_error, tool

from hostagent.tools import thresholdfile
from hostagent.tools.timeparse import iso, parse_time


@pytest.fixture(scope="module")
def report(backfilled) -> Dict[str, Any]:
    h = backfilled.history
    done = tool("report", "--prometheus", backfilled.url, "--from", str(h.start), "--to", str(h.end), "--format", "json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def host(report: Dict[str, Any], instance: str) -> Dict[str, Any]:
    return next(h for h in report["hosts"] if h["instance"] == instance)


def test_usage_percentiles_match_what_was_put_in(report) -> None:
    web, idle = host(report, WEB), host(report, IDLE)
    assert [h["instance"] for h in report["hosts"]] == [GONE, IDLE, WEB]
    assert host(report, GONE)["cpu"] is None and host(report, GONE)["filesystems"] == []
    # Busy a third of the day: the median is the quiet level, p95 and max the busy one.
    assert web["cpu"]["p50"] == pytest.approx(QUIET, abs=1e-9)
    assert web["cpu"]["p95"] == pytest.approx(BUSY, abs=1e-9)
    assert web["cpu"]["max"] == pytest.approx(BUSY, abs=1e-9)
    assert web["cpu"]["mean"] == pytest.approx((8 * BUSY + 16 * QUIET) / 24, abs=2e-3)
    assert idle["cpu"]["p95"] == pytest.approx(IDLE_CPU, abs=1e-9)
    assert web["memory"]["p95"] == pytest.approx(WEB_MEM_USED, abs=1e-9)
    assert idle["memory"]["max"] == pytest.approx(IDLE_MEM_USED, abs=1e-9)
    assert web["swap"]["p50"] == pytest.approx(WEB_SWAP_USED, abs=1e-9)
    assert idle["swap"] is None  # no swap at all: no figure rather than 0/0
    assert web["load5"]["max"] == pytest.approx(2 * BUSY) and web["load5_per_core"]["p95"] == pytest.approx(2 * BUSY)
    assert idle["load5_per_core"]["p50"] == pytest.approx(0.1 / 4)
    assert (web["cores"], idle["cores"]) == (1, 4)


def test_pressure_only_where_the_agent_has_it(report) -> None:
    web, idle = host(report, WEB), host(report, IDLE)
    assert set(web["pressure"]) == {"cpu_waiting"}
    assert web["pressure"]["cpu_waiting"]["p50"] == pytest.approx(0.01) and web["pressure"]["cpu_waiting"]["max"] == pytest.approx(0.05)
    assert idle["pressure"] == {}


def test_busiest_hours_are_the_busy_ones(report) -> None:
    web = host(report, WEB)
    assert len(web["busiest_hours"]) == 3
    assert {b["hour"] for b in web["busiest_hours"]} <= set(BUSY_HOURS)
    assert host(report, IDLE)["busiest_hours"] == []  # the same load at every hour
    profile = web["cpu_by_hour"]
    for hour in range(24):
        if hour in BUSY_HOURS and hour != BUSY_HOURS[0]:
            assert profile[hour] == pytest.approx(BUSY, abs=1e-6)
        elif hour not in BUSY_HOURS and hour != BUSY_HOURS[-1] + 1:
            assert profile[hour] == pytest.approx(QUIET, abs=1e-6)


def test_fill_date_within_two_percent_of_the_truth(report, backfilled) -> None:
    h = backfilled.history
    data = next(fs for fs in host(report, WEB)["filesystems"] if fs["mountpoint"] == "/data")
    truth = fill_time(h.start)
    assert truth == pytest.approx(h.end + FILL_DAYS_AFTER_END * DAY)
    predicted = parse_time(data["fill_date"])
    assert abs(predicted - truth) <= 0.02 * (truth - h.end), (data["fill_date"], iso(truth))
    assert parse_time(data["fill_date_earliest"]) <= truth <= parse_time(data["fill_date_latest"])
    assert data["growth_bytes_per_day"] == pytest.approx(DATA_RATE * DAY, rel=0.01)
    assert data["days_until_full"] == pytest.approx(FILL_DAYS_AFTER_END, rel=0.02)
    assert data["confidence"] == "high" and data["fit_r2"] > 0.99
    assert data["usage_ratio"] == pytest.approx(1 - data["avail_bytes"] / 1e12)
    root = next(fs for fs in host(report, WEB)["filesystems"] if fs["mountpoint"] == "/")
    assert root["fill_date"] is None and root["growth_bytes_per_day"] == 0.0


def test_interfaces_peak_and_p95(report) -> None:
    nics = host(report, WEB)["interfaces"]
    assert [n["device"] for n in nics] == ["eth0"]  # loopback left out
    eth0 = nics[0]
    assert eth0["receive_peak_bytes_per_second"] == pytest.approx(RX_PEAK)
    # Two busy hours a day are 8 % of the time: p95 is still the peak rate.
    assert eth0["receive_p95_bytes_per_second"] == pytest.approx(RX_PEAK)
    assert eth0["transmit_p95_bytes_per_second"] == pytest.approx(TX)


def test_alerts_with_their_durations(report, backfilled) -> None:
    h = backfilled.history
    got = {(inst, a["alertname"], a["start"], a["duration_seconds"], a["severity"], a["pending_since"]) for inst in (WEB, IDLE, GONE) for a in host(report, inst)["alerts"]}
    got |= {("", a["alertname"], a["start"], a["duration_seconds"], a["severity"], a["pending_since"]) for a in report["fleet_alerts"]}
    want = {(i.instance, i.alertname, iso(h.start + i.start), i.duration, i.severity, iso(h.start + i.start - 300)) for i in incidents()}
    assert got == want
    assert not any(a["still_firing"] for a in host(report, WEB)["alerts"])
    assert [a["alertname"] for a in report["fleet_alerts"]] == ["HostagentTargetsMissing"]
    oom = next(a for a in host(report, WEB)["alerts"] if a["alertname"] == "HostCgroupOomKillDetected")
    assert oom["labels"] == {"cgroup": "docker/app"} and oom["duration_seconds"] == 600


def used_cores(h, family: str, **match: str) -> float:
    """Average cores a group or cgroup used over the whole range, from the
    counters put in: every mode's rise, over the range's seconds."""
    total = 0.0
    for mode in MODES:
        points = h.values(family, mode=mode, **match)
        total += points[-1][1] - points[0][1]
    return total / (h.end - h.start)


def test_top_process_groups_and_services(report, backfilled) -> None:
    h = backfilled.history
    web, idle = host(report, WEB), host(report, IDLE)
    groups, services = web["top_users"]
    assert groups["kind"] == "process groups" and services["kind"] == "services and containers"
    # Groups: CPU summed over modes, averaged over the range; memory the peak.
    assert [r["name"] for r in groups["cpu"]] == ["postgres", "nginx", "backup"]
    for row in groups["cpu"]:
        assert row["value"] == pytest.approx(used_cores(h, "host_process_group_cpu_seconds", instance=WEB, group=row["name"]), rel=1e-12)
    # postgres: 0.5 cores for 8 hours a day, 0.05 for 16.
    assert groups["cpu"][0]["value"] == pytest.approx((8 * 0.5 + 16 * 0.05) / 24, rel=1e-3)
    assert {r["name"]: r["value"] for r in groups["memory"]} == GROUP_RSS
    # Services and containers, from host_cgroup_*: the busy hours' memory is the peak.
    assert [r["name"] for r in services["cpu"]] == ["postgresql.service", "docker/app", "nginx.service"]
    for row in services["cpu"]:
        assert row["value"] == pytest.approx(used_cores(h, "host_cgroup_cpu_seconds", instance=WEB, cgroup=row["name"]), rel=1e-12)
    assert {r["name"]: r["value"] for r in services["memory"]} == {name: high for name, (_, _, high) in CGROUPS[WEB].items()}
    assert [r["name"] for r in services["memory"]] == ["postgresql.service", "docker/app", "nginx.service"]
    # A host with services and no process groups has the one table.
    assert [t["kind"] for t in idle["top_users"]] == ["services and containers"]
    (sshd,) = idle["top_users"][0]["cpu"]
    assert sshd["name"] == "sshd.service" and sshd["value"] == pytest.approx(used_cores(h, "host_cgroup_cpu_seconds", instance=IDLE, cgroup="sshd.service"), rel=1e-12)
    assert host(report, GONE)["top_users"] == []


def test_findings_to_act_on(report) -> None:
    found = {(f["instance"], f["subject"], f["severity"]) for f in report["findings"]}
    assert found == {
        (WEB, "filesystem /data", "warning"),  # fills in 20 days
        (WEB, "cpu", "warning"),  # p95 85 % > 80 % warning
        (WEB, "alert HostHighCpuUsage", "warning"),  # fired 3 times
        (IDLE, "idle", "info"),
        (GONE, "no data", "warning"),
    }
    assert report["thresholds"] == f"thresholds from {REPO / 'config' / 'alerting.yaml'}"


def test_thresholds_file_moves_the_findings(backfilled, tmp_path: Path) -> None:
    h = backfilled.history
    text = (REPO / "config" / "alerting.yaml").read_text()
    lenient = tmp_path / "alerting.yaml"
    lenient.write_text(text.replace("- {severity: warning, threshold: 0.8, for: 5m}", "- {severity: warning, threshold: 0.9, for: 5m}"))
    done = tool("report", "--prometheus", backfilled.url, "--from", str(h.start), "--to", str(h.end), "--format", "json", "--thresholds", str(lenient), "--hosts", "web.*")
    assert done.returncode == 0, done.stderr
    got = json.loads(done.stdout)
    assert [x["instance"] for x in got["hosts"]] == [WEB]
    assert "cpu" not in {f["subject"] for f in got["findings"]}
    assert got["thresholds"] == f"thresholds from {lenient}"


def test_no_thresholds_file_is_said(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setattr(thresholdfile, "candidates", lambda: (tmp_path / "none.yaml",))
    config, source = thresholdfile.load(None)
    assert config is None and "no thresholds file found" in source and str(tmp_path / "none.yaml") in source


def test_csv_holds_the_same_figures(report, backfilled) -> None:
    h = backfilled.history
    done = tool("report", "--prometheus", backfilled.url, "--from", str(h.start), "--to", str(h.end), "--format", "csv")
    assert done.returncode == 0, done.stderr
    rows = list(csv.reader(io.StringIO(done.stdout.decode())))
    assert rows[0] == ["instance", "section", "subject", "measure", "value"]
    cells = {(r[0], r[1], r[2], r[3]): r[4] for r in rows[1:] if r[1] != "alert"}
    data = next(fs for fs in host(report, WEB)["filesystems"] if fs["mountpoint"] == "/data")
    assert cells[(WEB, "filesystem", "/data", "fill_date")] == data["fill_date"]
    assert float(cells[(WEB, "cpu", "", "p95")]) == host(report, WEB)["cpu"]["p95"]
    assert sum(1 for r in rows if r[1] == "alert" and r[3] == "duration_seconds") == len(incidents())
    assert [r[2] for r in rows if r[0] == "" and r[1] == "alert" and r[3] == "severity"] == ["HostagentTargetsMissing"]
    assert sum(1 for r in rows if r[1] == "finding") == len(report["findings"])


def test_default_range_is_the_last_thirty_days(backfilled) -> None:
    done = tool("report", "--prometheus", backfilled.url, "--format", "json")
    assert done.returncode == 0, done.stderr
    got = json.loads(done.stdout)
    span = parse_time(got["to"]) - parse_time(got["from"])
    assert span == pytest.approx(30 * DAY, abs=1)
    assert {x["instance"] for x in got["hosts"]} == {WEB, IDLE, GONE}


def test_html_is_self_contained_and_renders_in_chromium(backfilled, tmp_path: Path) -> None:
    chromium = require_tool("chromium")
    h = backfilled.history
    page = tmp_path / "report.html"
    done = tool("report", "--prometheus", backfilled.url, "--from", str(h.start), "--to", str(h.end), "-o", str(page))
    assert done.returncode == 0, done.stderr
    assert f"written to {page}" in done.stderr
    text = page.read_text()
    # Nothing to fetch: plots are data: URIs, no scripts, styles or fonts from elsewhere.
    assert "<script" not in text and "<link" not in text and "@import" not in text and "url(" not in text
    assert re.findall(r'\bsrc="([^"]+)"', text) and all(src.startswith("data:image/svg+xml;base64,") for src in re.findall(r'\bsrc="([^"]+)"', text))
    assert not re.findall(r'\bhref="(?!#)', text)
    gone = text.split(f">{GONE}</h2>")[1].split("<h2")[0]
    assert "No CPU, memory or load figures" in gone and "<img" not in gone and "HostagentDown" in gone
    for words in ("/data fills in 20 days", "HostHighCpuUsage", "postgres", "postgresql.service", "Top services and containers", "Busiest hours", WEB, IDLE, GONE, "Alerts not tied to one host"):
        assert words in text, words
    shot = tmp_path / "report.png"
    profile = tmp_path / "chromium-profile"
    run = subprocess.run(
        [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--no-first-run", f"--user-data-dir={profile}", f"--screenshot={shot}", "--window-size=1280,2000", page.as_uri()],
        capture_output=True, text=True, timeout=120,
    )
    assert shot.is_file(), run.stderr[-2000:]
    from PIL import Image

    image = Image.open(shot).convert("RGB")
    assert image.size == (1280, 2000)
    colours = image.getcolors(maxcolors=1 << 20)
    assert colours is not None and len(colours) > 20, "the screenshot is (nearly) blank"
    # Text was drawn: the page's dark text colour covers a fair number of pixels.
    dark = sum(n for n, (r, g, b) in colours if r < 80 and g < 80 and b < 80)
    assert dark > 2000
    shutil.rmtree(profile, ignore_errors=True)


# --------------------------------------------------------------------------
# Errors a user can cause


def test_errors_are_one_line(backfilled, tmp_path: Path) -> None:
    h = backfilled.history
    cases = [
        (["--prometheus", backfilled.url, "--from", "2001-01-01", "--to", "2001-01-31", "--format", "json"], 1, "no hosts"),
        (["--prometheus", backfilled.url, "--from", str(h.start), "--to", str(h.end), "--hosts", "nomatch.*", "--format", "json"], 1, "no hosts matching 'nomatch.*'"),
        (["--prometheus", backfilled.url, "--hosts", "web-(", "--format", "json"], 1, "refused"),
        (["--prometheus", "http://127.0.0.1:1", "--format", "json"], 1, "Connection refused"),
        (["--prometheus", "ftp://x", "--format", "json"], 2, "must look like http://"),
        (["--prometheus", backfilled.url, "--from", "soon"], 2, "--from: cannot read 'soon'"),
        (["--prometheus", backfilled.url, "--from", "now-1h", "--step", "1h"], 2, "fewer than 3 steps"),
        (["--prometheus", backfilled.url, "--thresholds", str(tmp_path / "missing.yaml")], 2, "cannot read"),
        (["--prometheus", backfilled.url, "--format", "pdf"], 2, "invalid choice"),
        (["--prometheus", backfilled.url, "--from", str(h.start), "--to", str(h.end), "-o", str(tmp_path / "no" / "r.html")], 2, "cannot write"),
    ]
    for argv, status, words in cases:
        line = one_line_error(tool("report", *argv), (status,))
        assert line.startswith("hostagent report: ") and words in line, (argv, line)


def test_html_without_the_report_extra_says_which_to_install(backfilled, tmp_path: Path) -> None:
    code = "import sys; sys.modules['matplotlib'] = None; from hostagent.cli import main; sys.exit(main(sys.argv[1:]))"
    done = subprocess.run([sys.executable, "-c", code, "report", "--prometheus", backfilled.url, "-o", str(tmp_path / "r.html")], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert done.stderr.strip() == "hostagent report needs the 'report' extra: pip install 'hostagent[report]'"
    # JSON needs no plotting library.
    done = subprocess.run([sys.executable, "-c", code, "report", "--prometheus", backfilled.url, "--format", "json"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
