"""Prometheus config and rules: promtool checks, promtool unit tests, coverage
of every alert by those tests, runbooks, and the metric names the rules use."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Dict, Iterator, List, Set, Tuple

import pytest
import yaml

from support import REPO, require_tool

PROM_DIR = REPO / "prometheus"
RULES_DIR = PROM_DIR / "rules"
RULE_FILES = sorted(RULES_DIR.glob("*.rules.yml"))
TEST_DIR = Path(__file__).resolve().parent
TEST_FILES = sorted(TEST_DIR.glob("*.test.yml"))
ALERTS_DOC = REPO / "docs" / "alerts.md"
SEVERITIES = {"info", "warning", "critical"}


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


@pytest.mark.parametrize("test_file", TEST_FILES, ids=lambda p: p.name)
def test_promtool_unit_tests(test_file):
    result = promtool("test", "rules", str(test_file))
    assert result.returncode == 0, f"promtool test rules {test_file.name} failed:\n{result.stdout}{result.stderr}"


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


def test_every_alert_has_severity_texts_and_runbook():
    anchors = doc_anchors()
    for rule in alert_rules():
        name = rule["alert"]
        assert rule["labels"]["severity"] in SEVERITIES, name
        notes = rule["annotations"]
        assert {"summary", "description", "runbook_url"} <= set(notes), name
        assert "{{ $labels.instance }}" in notes["summary"] + notes["description"], name
        base, _, anchor = notes["runbook_url"].partition("#")
        assert base == "docs/alerts.md", f"{name}: runbook_url {notes['runbook_url']}"
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
