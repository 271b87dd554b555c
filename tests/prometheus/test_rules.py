"""Prometheus config and rules: promtool checks, promtool unit tests, coverage
of every alert by those tests, runbooks, the metric names the rules use, one
definition of each quantity, and the cost of day-long windows."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Dict, Iterator, List, Set, Tuple

import pytest
import yaml

from hostagent.alerting import generate, thresholds
from support import REPO, require_tool

PROM_DIR = REPO / "prometheus"
RULES_DIR = PROM_DIR / "rules"
RULE_FILES = sorted(RULES_DIR.glob("*.rules.yml"))
TEST_DIR = Path(__file__).resolve().parent
TEST_FILES = sorted(TEST_DIR.glob("*.test.yml"))
ALERTS_DOC = REPO / "docs" / "alerts.md"
SEVERITIES = {"info", "warning", "critical"}
# The runbook base the promtool test files are written with: the default,
# as promtool renders it (it has no external URL, so {{ $externalURL }} is "").
TESTS_RUNBOOK_BASE = thresholds.DEFAULT_RUNBOOK_BASE_URL.replace("{{ $externalURL }}", "")


def promtool(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([require_tool("promtool"), *args], capture_output=True, text=True, timeout=120)


def rule_groups() -> Iterator[Tuple[Path, dict]]:
    for path in RULE_FILES:
        for group in yaml.safe_load(path.read_text())["groups"]:
            yield path, group


def alert_rules() -> List[dict]:
    return [rule for _, group in rule_groups() for rule in group["rules"] if "alert" in rule]


def test_there_are_rule_and_test_files():
    names = {p.name for p in RULE_FILES}
    assert {"hostagent-alerts.rules.yml", "hostagent-recording.rules.yml", "hostagent-trends.rules.yml"} <= names
    assert len(TEST_FILES) >= 5


def test_promtool_check_config():
    result = promtool("check", "config", str(PROM_DIR / "prometheus.yml"))
    assert result.returncode == 0, result.stdout + result.stderr
    # The config's rule_files glob must reach every rule file.
    assert f"SUCCESS: {len(RULE_FILES)} rule files found" in result.stdout + result.stderr


def test_promtool_check_rules():
    result = promtool("check", "rules", *map(str, RULE_FILES))
    assert result.returncode == 0, result.stdout + result.stderr


def promtool_copy(test_file: Path, out_dir: Path, base: str, rules_dir: Path = RULES_DIR) -> Path:
    """``test_file`` for promtool with runbook links under ``base`` and rule
    files read from ``rules_dir``: the test files are written for the
    default base, and a deployment sets its own."""
    doc = yaml.safe_load(test_file.read_text())
    doc["rule_files"] = [str(rules_dir / Path(name).name) for name in doc["rule_files"]]
    for case in doc["tests"]:
        for check in case.get("alert_rule_test", []):
            for alert in check.get("exp_alerts") or []:
                notes = alert.get("exp_annotations", {})
                old_base, _, anchor = notes.get("runbook_url", "").partition("#")
                assert old_base == TESTS_RUNBOOK_BASE, f"{test_file.name}: runbook_url {notes.get('runbook_url')!r}"
                notes["runbook_url"] = f"{base.replace('{{ $externalURL }}', '')}#{anchor}"
    copy = out_dir / test_file.name
    copy.write_text(yaml.safe_dump(doc, sort_keys=False))
    return copy


@pytest.mark.parametrize("test_file", TEST_FILES, ids=lambda p: p.name)
def test_promtool_unit_tests(test_file, tmp_path):
    base = thresholds.load_config().runbook_base_url
    result = promtool("test", "rules", str(promtool_copy(test_file, tmp_path, base)))
    assert result.returncode == 0, f"promtool test rules {test_file.name} failed:\n{result.stdout}{result.stderr}"


def test_promtool_unit_tests_follow_a_changed_runbook_base_url(tmp_path):
    """Setting runbook_base_url to a web address, as docs/alerts.md says,
    moves every runbook link, hand-written alerts' too, and the tests follow."""
    doc = yaml.safe_load(thresholds.DEFAULT_PATH.read_text())
    doc["runbook_base_url"] = "https://git.example.com/ops/hostagent/blob/main/docs/alerts.md"
    config = tmp_path / "alerting.yaml"
    config.write_text(yaml.safe_dump(doc, sort_keys=False))
    rules = tmp_path / "rules"
    assert generate.main(["--config", str(config), "--output-dir", str(rules)]) == 0
    (rules / "hostagent-recording.rules.yml").write_text((RULES_DIR / "hostagent-recording.rules.yml").read_text())
    for path in rules.glob("*.rules.yml"):
        for group in yaml.safe_load(path.read_text())["groups"]:
            for rule in group["rules"]:
                if "alert" in rule:
                    assert rule["annotations"]["runbook_url"].startswith(doc["runbook_base_url"] + "#"), rule["alert"]
    for name in ("agent.test.yml", "trends.test.yml"):
        copy = promtool_copy(TEST_DIR / name, tmp_path, doc["runbook_base_url"], rules)
        result = promtool("test", "rules", str(copy))
        assert result.returncode == 0, f"{name} with a changed runbook base:\n{result.stdout}{result.stderr}"


@pytest.mark.parametrize("test_file", TEST_FILES, ids=lambda p: p.name)
def test_unit_test_files_load_every_rule_file_in_dependency_order(test_file):
    doc = yaml.safe_load(test_file.read_text())
    loaded = {(test_file.parent / name).resolve() for name in doc["rule_files"]}
    assert loaded == {p.resolve() for p in RULE_FILES}
    order = doc.get("group_eval_order", [])
    groups = [group["name"] for _, group in rule_groups()]
    assert sorted(order) == sorted(groups), "group_eval_order must list every rule group"
    recording = [group["name"] for _, group in rule_groups() if all("record" in r for r in group["rules"])]
    assert order[: len(recording)] == recording, "recording groups are evaluated before alerts"


def expected_alerts() -> Tuple[Set[Tuple[str, str]], Set[str]]:
    """(alertname, severity) pairs some test expects to fire, and the
    alertnames some test expects not to fire."""
    firing: Set[Tuple[str, str]] = set()
    quiet: Set[str] = set()
    for path in TEST_FILES:
        for case in yaml.safe_load(path.read_text())["tests"]:
            for check in case.get("alert_rule_test", []):
                expected = check.get("exp_alerts") or []
                if not expected:
                    quiet.add(check["alertname"])
                for alert in expected:
                    firing.add((check["alertname"], alert["exp_labels"]["severity"]))
    return firing, quiet


def test_every_alert_level_has_a_promtool_test_that_fires_it_and_one_that_does_not():
    firing, quiet = expected_alerts()
    levels = {(rule["alert"], rule["labels"]["severity"]) for rule in alert_rules()}
    assert levels, "no alerts found"
    assert sorted(levels - firing) == [], "alert levels no promtool test fires"
    assert sorted({name for name, _ in levels} - quiet) == [], "alerts with no test where they stay quiet"
    assert sorted(firing - levels) == [], "tests for alerts that do not exist"


# Alerts about the whole fleet, with no instance label to name.
NO_INSTANCE_ALERTS = {"HostagentTargetsMissing"}


def test_every_alert_has_severity_texts_and_runbook():
    anchors = doc_anchors()
    runbook_base = thresholds.load_config().runbook_base_url
    for rule in alert_rules():
        name = rule["alert"]
        assert rule["labels"]["severity"] in SEVERITIES, name
        notes = rule["annotations"]
        assert {"summary", "description", "runbook_url"} <= set(notes), name
        if name in NO_INSTANCE_ALERTS:
            assert "$labels.instance" not in notes["summary"] + notes["description"], name
        else:
            assert "{{ $labels.instance }}" in notes["summary"] + notes["description"], name
        base, _, anchor = notes["runbook_url"].partition("#")
        assert base == runbook_base, f"{name}: runbook_url {notes['runbook_url']} is not under runbook_base_url"
        assert anchor == name.lower(), f"{name}: runbook anchor {anchor}"
        assert anchor in anchors, f"{name}: docs/alerts.md has no heading for #{anchor}"


def doc_anchors() -> Set[str]:
    """Anchors of docs/alerts.md headings, as git hosts make them."""
    anchors = set()
    for line in ALERTS_DOC.read_text().splitlines():
        match = re.match(r"#{1,6}\s+(.*)", line)
        if match:
            text = re.sub(r"[^\w\- ]", "", match.group(1).strip().lower())
            anchors.add(text.replace(" ", "-"))
    return anchors


def test_alerts_doc_covers_every_alert_and_no_other():
    alerts = {rule["alert"] for rule in alert_rules()}
    headings = set(re.findall(r"^### (\w+)$", ALERTS_DOC.read_text(), flags=re.M))
    assert sorted(alerts - headings) == [], "alerts without a runbook section"
    assert sorted(headings - alerts) == [], "runbook sections for alerts that do not exist"


def test_multi_level_alerts_share_name_and_differ_by_severity():
    seen: Dict[Tuple[str, Tuple[Tuple[str, str], ...]], int] = {}
    for rule in alert_rules():
        key = (rule["alert"], tuple(sorted(rule.get("labels", {}).items())))
        seen[key] = seen.get(key, 0) + 1
    assert [key for key, count in seen.items() if count > 1] == [], "two rules make the same alert identity"


def test_recording_rule_names_follow_level_metric_operations():
    for _, group in rule_groups():
        for rule in group["rules"]:
            if "record" in rule:
                level, metric, ops = rule["record"].split(":")
                assert level in ("instance", "instance_device", "instance_mountpoint"), rule["record"]
                assert metric.startswith("host_") and ops, rule["record"]


# --------------------------------------------------------------------------
# The rules against what the agent declares it serves


def declared_metrics() -> Dict[str, Tuple[str, ...]]:
    from hostagent.collectors import load_all
    from hostagent.exposition import AGENT_METRICS
    from hostagent.selfmon import SELF_METRICS

    specs = [spec for cls in load_all().values() for spec in cls.metrics] + list(AGENT_METRICS) + list(SELF_METRICS)
    return {spec.name: tuple(spec.labels) for spec in specs}


def expressions() -> Iterator[Tuple[str, str]]:
    for _, group in rule_groups():
        for rule in group["rules"]:
            yield rule.get("alert") or rule["record"], rule["expr"]


def test_rules_use_only_metrics_and_labels_the_agent_declares():
    declared = declared_metrics()
    recorded = {rule["record"] for _, g in rule_groups() for rule in g["rules"] if "record" in rule}
    used = 0
    for name, expr in expressions():
        for metric, matchers in re.findall(r"(?<![:\w])((?:host|hostagent)_\w+)(\{[^}]*\})?", expr):
            used += 1
            assert metric in declared, f"{name}: {metric} is not a metric the agent declares"
            for label in re.findall(r"(\w+)\s*[=!~]", matchers):
                assert label in declared[metric], f"{name}: {metric} has no label {label!r}"
        for series in re.findall(r"\b(\w+:\w+:\w+)\b", expr):
            assert series in recorded, f"{name}: {series} is not recorded by any rule"
    assert used > 30


def test_alerts_doc_states_the_shipped_thresholds_of_each_alert():
    from hostagent.alerting import thresholds

    doc = ALERTS_DOC.read_text()
    for key, alert in thresholds.load().items():
        section = doc.split(f"### {alert.alert}\n", 1)[1].split("\n### ", 1)[0]
        section = " ".join(section.split())
        assert f"(key `{key}`)" in section, alert.alert
        for level in alert.levels:
            stated = f"{level.severity} {alert.direction} {thresholds.humanize(level.threshold, alert.unit)} for {level.for_}"
            assert stated in section, f"docs/alerts.md, {alert.alert}: expected '{stated}'"


# --------------------------------------------------------------------------
# Cost: long windows are read in steps, day-long ones once a minute

_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}


def seconds(duration: str) -> float:
    """A Prometheus duration in seconds: '1d' -> 86400, '1h30m' -> 5400."""
    parts = re.findall(r"(\d+)(ms|[smhdwy])", duration)
    assert parts and "".join(n + u for n, u in parts) == duration, f"not a duration: {duration!r}"
    return sum(int(n) * _UNITS[u] for n, u in parts)


def test_seconds():
    assert [seconds(d) for d in ("5m", "1d", "1h30m", "6h")] == [300, 86400, 5400, 21600]
    with pytest.raises(AssertionError):
        seconds("5x")


def test_long_windows_are_read_from_5_minute_points_and_day_long_ones_once_a_minute():
    """A range over an hour at full resolution reads 240+ points per series at
    every evaluation (5760 for a day at a 15s scrape). Read instead in steps
    of 5 minutes or more (a subquery), or over a series recorded only every 5
    minutes or more, it holds at most 288; and a day need not be read every
    15s."""
    recorded_every = {
        rule["record"]: seconds(group.get("interval", "15s")) for _, group in rule_groups() for rule in group["rules"] if "record" in rule
    }
    long_ranges = 0
    for path, group in rule_groups():
        interval = seconds(group.get("interval", "15s"))
        for rule in group["rules"]:
            name = rule.get("alert") or rule["record"]
            for series, window, step in re.findall(r"([\w:]*)(?:\{[^}]*\})?\[(\w+)(?::(\w*))?\]", rule["expr"]):
                if seconds(window) <= 3600:
                    continue
                long_ranges += 1
                coarse = (step and seconds(step) >= 300) or (not step and recorded_every.get(series, 0) >= 300)
                # The must-run alert reads a day of the must-run groups' own
                # series (one or two a host), where 5-minute steps would miss
                # a group that ran for a few minutes: once a minute suffices.
                coarse = coarse or (name == "HostProcessGroupNotRunning" and series == "host_process_group_processes")
                assert coarse, f"{path.name}: {name} reads {series}[{window}] at full resolution"
                if seconds(window) >= 86400:
                    assert interval >= 60, f"{path.name}: {name} reads a day every {interval:g}s (group {group['name']})"
    assert long_ranges >= 9, "the day-long baselines and histories are gone?"


def test_fill_prediction_is_evaluated_once_a_minute():
    """predict_linear over 6 hours per mount need not run every 15s. (promtool
    2.42 ignores a group's interval in unit tests, so only the file says so.)"""
    groups = {group["name"]: group for _, group in rule_groups()}
    assert seconds(groups["hostagent-trends"].get("interval", "15s")) == 60


def test_state_alerts_read_the_recorded_day_not_the_raw_one():
    """Per mount and per interface there are many series: the day is read
    one series at a time from 5-minute points, not from a subquery that
    holds every series' points at once."""
    exprs = dict(expressions())
    assert exprs["instance_mountpoint:host_filesystem_readonly:avg_over_time_1d"] == (
        "avg_over_time(instance_mountpoint:host_filesystem_readonly:min_over_time_5m[1d])"
    )
    assert exprs["instance_device:host_network_up:max_over_time_1d"] == "max_over_time(instance_device:host_network_up:max_over_time_5m[1d])"
    assert "instance_mountpoint:host_filesystem_readonly:avg_over_time_1d" in exprs["HostFilesystemRemountedReadOnly"]
    assert "instance_device:host_network_up:max_over_time_1d" in exprs["HostNetworkInterfaceDown"]


# --------------------------------------------------------------------------
# One definition of each quantity


# One filesystem byte count over another: a share of space computed anew.
SHARE_OF_BYTES = r"host_filesystem_\w+_bytes(?:\{[^}]*\})?\s*/\s*\(*\s*host_filesystem_\w+_bytes"


def test_filesystem_usage_is_the_agents_df_style_ratio_everywhere():
    """Space used is host_filesystem_usage_ratio (used / (used + avail), as
    df shows it) in every rule; no rule derives another share from the
    byte counts, so alerts, dashboards and df agree."""
    for name, expr in expressions():
        if name in ("HostFilesystemAlmostFull", "HostFilesystemWillFillIn24Hours"):
            assert re.match(r"host_filesystem_usage_ratio\s", expr), name
        assert not re.search(SHARE_OF_BYTES, expr), (
            f"{name} computes its own share of filesystem bytes: {expr}"
        )


def test_inode_usage_has_one_definition():
    """Inodes used is 1 - free / total (df -i), in one recording rule."""
    recorded = {
        rule["record"]: rule["expr"] for _, g in rule_groups() for rule in g["rules"] if "record" in rule and "host_filesystem_files" in rule["expr"]
    }
    assert recorded == {
        "instance_mountpoint:host_filesystem_inodes_usage:ratio": "1 - host_filesystem_files_free / (host_filesystem_files > 0)"
    }
    users = [name for name, expr in expressions() if "host_filesystem_files" in expr]
    assert users == ["instance_mountpoint:host_filesystem_inodes_usage:ratio"]
