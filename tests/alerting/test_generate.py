"""The alert rule generator: committed output is current, thresholds reach the
rules, and `hostagent rules` reports problems plainly."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any, Dict

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from hostagent.alerting import generate, thresholds
from support import REPO, require_tool

COMMITTED = REPO / "prometheus" / "rules" / generate.OUTPUT_NAME
TRENDS = REPO / "prometheus" / "rules" / generate.TRENDS_NAME


def shipped() -> Dict[str, Any]:
    return yaml.safe_load(thresholds.DEFAULT_PATH.read_text())


def write_config(tmp_path: Path, doc: Dict[str, Any]) -> Path:
    path = tmp_path / "alerting.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def rules_of(text: str) -> Dict[str, list]:
    """Rules by alert name."""
    out: Dict[str, list] = {}
    for group in yaml.safe_load(text)["groups"]:
        for rule in group["rules"]:
            out.setdefault(rule["alert"], []).append(rule)
    return out


def test_committed_rules_are_what_the_generator_makes():
    expected = generate.render(thresholds.load_config())
    assert COMMITTED.read_text() == expected, "prometheus/rules is stale: run `hostagent rules`"


def test_check_passes_on_the_repository(capsys):
    assert generate.main(["--check"]) == 0
    out = capsys.readouterr().out
    assert "hostagent-alerts.rules.yml is up to date" in out
    assert "hostagent-trends.rules.yml is up to date" in out


def test_committed_trends_are_what_the_generator_makes():
    expected = generate.render_trends(thresholds.load_config())
    assert TRENDS.read_text() == expected, "prometheus/rules is stale: run `hostagent rules`"


def test_trends_take_runbook_links_from_the_file_and_keep_prometheus_templates(tmp_path):
    doc = shipped()
    doc["runbook_base_url"] = "https://git.example.com/ops/hostagent/blob/main/docs/alerts.md"
    text = generate.render_trends(thresholds.load_config(write_config(tmp_path, doc)))
    rules = rules_of(text)
    assert sorted(rules) == ["HostCpuUsageAnomaly", "HostFilesystemWillFillIn24Hours", "HostNetworkThroughputAnomaly"]
    for name, made in rules.items():
        for rule in made:
            assert rule["annotations"]["runbook_url"] == doc["runbook_base_url"] + "#" + name.lower()
    # Jinja leaves Prometheus' own {{ }} alone; only the links are filled in.
    assert TRENDS.read_text().replace("docs/alerts.md#", doc["runbook_base_url"] + "#") == text
    assert "{{ $labels.instance }}" in rules["HostCpuUsageAnomaly"][0]["annotations"]["summary"]


def test_a_hand_written_alert_without_a_generated_runbook_link_is_refused(tmp_path, monkeypatch):
    source = (generate.TEMPLATES / "trends.rules.yml.j2").read_text()
    broken = source.replace('[[ runbook_url("HostCpuUsageAnomaly") ]]', "docs/alerts.md#hostcpuusageanomaly")
    assert broken != source
    (tmp_path / "trends.rules.yml.j2").write_text(broken)
    monkeypatch.setattr(generate, "TEMPLATES", tmp_path)
    doc = shipped()
    doc["runbook_base_url"] = "https://git.example.com/ops/hostagent/blob/main/docs/alerts.md"
    config = thresholds.load_config(write_config(tmp_path, doc))
    with pytest.raises(generate.GenerateError, match=r'alert HostCpuUsageAnomaly must have runbook_url: \[\[ runbook_url\("HostCpuUsageAnomaly"\) \]\]'):
        generate.render_trends(config)


def test_every_key_of_the_shipped_file_becomes_rules():
    alerts = thresholds.load()
    rules = rules_of(COMMITTED.read_text())
    for key, alert in alerts.items():
        made = rules[alert.alert]
        assert [r["labels"]["severity"] for r in made] == [lv.severity for lv in alert.levels], key
        assert [r["for"] for r in made] == [lv.for_ for lv in alert.levels], key


def test_every_generator_key_has_an_expression_macro():
    module = generate.environment().get_template("expressions.promql.j2").module
    keys = [key for _, group in generate.GROUPS for key in group]
    assert len(keys) == len(set(keys))
    for key in keys:
        assert callable(getattr(module, key, None)), key
    assert set(thresholds.load()) == set(keys)


def test_thresholds_durations_severities_and_texts_come_from_the_file(tmp_path):
    doc = shipped()
    doc["runbook_base_url"] = "https://git.example.com/ops/hostagent/blob/main/docs/alerts.md"
    doc["alerts"]["cpu_usage"]["levels"] = [
        {"severity": "info", "threshold": 0.5, "for": "1h"},
        {"severity": "critical", "threshold": 0.75, "for": "90s"},
    ]
    doc["alerts"]["cpu_usage"]["summary"] = "CPU {{ $labels.instance }} past {threshold}"
    text = generate.render(thresholds.load_config(write_config(tmp_path, doc)))
    info, critical = rules_of(text)["HostHighCpuUsage"]
    assert info["expr"] == "instance:host_cpu_utilisation:rate5m > 0.5"
    assert info["for"] == "1h" and info["labels"] == {"severity": "info"}
    assert info["annotations"]["summary"] == "CPU {{ $labels.instance }} past 50%"
    assert critical["expr"] == "instance:host_cpu_utilisation:rate5m > 0.75"
    assert critical["for"] == "90s" and critical["labels"] == {"severity": "critical"}
    assert critical["annotations"]["summary"] == "CPU {{ $labels.instance }} past 75%"
    assert critical["annotations"]["runbook_url"] == doc["runbook_base_url"] + "#hosthighcpuusage"


def test_direction_below_compares_with_less_than_and_numbers_read_back_exactly(tmp_path):
    doc = shipped()
    doc["alerts"]["memory_available"]["levels"] = [
        {"severity": "critical", "threshold": 0.025, "for": "5m"},
        {"severity": "warning", "threshold": 0.125, "for": "5m"},
    ]
    text = generate.render(thresholds.load_config(write_config(tmp_path, doc)))
    critical, warning = rules_of(text)["HostLowAvailableMemory"]
    assert critical["expr"] == "instance:host_memory_and_swap_available:ratio < 0.025"
    assert warning["expr"] == "instance:host_memory_and_swap_available:ratio < 0.125"
    assert "below 2.5%" in critical["annotations"]["description"]


def test_value_annotation_is_written_where_the_alert_has_one(tmp_path):
    rules = rules_of(COMMITTED.read_text())
    for key, alert in thresholds.load().items():
        for made in rules[alert.alert]:
            assert made["annotations"].get("value", "") == alert.value_template(), key
    assert rules["HostHighCpuUsage"][0]["annotations"]["value"] == "{{ $value | humanizePercentage }}"
    assert "value" not in rules["HostagentDown"][0]["annotations"]
    doc = shipped()
    doc["alerts"]["load_per_core"]["value"] = "{{ $value | humanize }} per core, over {threshold}"
    text = generate.render(thresholds.load_config(write_config(tmp_path, doc)))
    assert rules_of(text)["HostHighLoad"][0]["annotations"]["value"] == "{{ $value | humanize }} per core, over 2"


def test_collector_alerts_leave_switched_off_collectors_to_their_own_alert():
    rules = rules_of(COMMITTED.read_text())
    [failing] = rules["HostagentCollectorFailing"]
    [stale] = rules["HostagentCollectorStale"]
    [disabled] = rules["HostagentCollectorDisabled"]
    assert failing["expr"].endswith("\nand hostagent_collector_enabled == 1")
    assert stale["expr"].endswith("\nand hostagent_collector_enabled == 1")
    assert disabled["expr"] == "hostagent_collector_enabled < 1"
    assert disabled["labels"] == {"severity": "info"}


def test_removing_an_optional_alert_turns_it_off(tmp_path):
    doc = shipped()
    del doc["alerts"]["tcp_connections"]
    text = generate.render(thresholds.load_config(write_config(tmp_path, doc)))
    assert "HostManyTcpConnections" not in rules_of(text)
    assert "HostManyTimeWaitConnections" in rules_of(text)


def test_a_key_without_an_expression_is_an_error(tmp_path, capsys):
    doc = shipped()
    doc["alerts"]["gpu_usage"] = dict(doc["alerts"]["cpu_usage"], alert="HostHighGpuUsage")
    path = write_config(tmp_path, doc)
    assert generate.main(["--config", str(path), "--output-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "alerts.gpu_usage: no rule expression for this key" in err
    assert "Traceback" not in err
    assert not (tmp_path / generate.OUTPUT_NAME).exists()


def test_an_invalid_config_exits_2_naming_the_key_path(tmp_path, capsys):
    doc = shipped()
    doc["alerts"]["cpu_usage"]["levels"][0]["threshold"] = "ninety"
    path = write_config(tmp_path, doc)
    assert generate.main(["--config", str(path), "--output-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("hostagent rules: ")
    assert "alerts.cpu_usage.levels[0].threshold: must be a finite number, got 'ninety'" in err


def test_write_then_check_then_stale_then_missing(tmp_path, capsys):
    out = tmp_path / "rules"
    assert generate.main(["--output-dir", str(out)]) == 0
    target = out / generate.OUTPUT_NAME
    assert target.read_text() == COMMITTED.read_text()
    assert f"wrote {target}" in capsys.readouterr().out

    assert generate.main(["--output-dir", str(out)]) == 0
    assert "is up to date" in capsys.readouterr().out
    assert generate.main(["--check", "--output-dir", str(out)]) == 0

    target.write_text(target.read_text().replace("> 0.85", "> 0.51"))
    assert generate.main(["--check", "--output-dir", str(out)]) == 1
    err = capsys.readouterr().err
    assert f"{target} is out of date; run `hostagent rules` to regenerate it" in err
    assert "> 0.51" in target.read_text(), "--check writes nothing"

    target.unlink()
    assert generate.main(["--check", "--output-dir", str(out)]) == 1
    assert f"{target} is missing" in capsys.readouterr().err
    assert not target.exists()

    trends = out / generate.TRENDS_NAME
    assert trends.read_text() == TRENDS.read_text()
    trends.write_text(trends.read_text().replace("+ 0.25", "+ 0.5"))
    assert generate.main(["--output-dir", str(out)]) == 0
    assert f"wrote {trends}" in capsys.readouterr().out
    assert trends.read_text() == TRENDS.read_text()


def test_generated_file_from_a_changed_config_passes_promtool(tmp_path):
    doc = shipped()
    doc["alerts"]["filesystem_usage"]["levels"].insert(0, {"severity": "info", "threshold": 0.7, "for": "30m"})
    doc["alerts"]["filesystem_usage"]["description"] = 'Quote " and colon: {threshold} # not a comment'
    text = generate.render(thresholds.load_config(write_config(tmp_path, doc)))
    rules = tmp_path / "rules.yml"
    rules.write_text(text)
    result = subprocess.run([require_tool("promtool"), "check", "rules", str(rules)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    info = rules_of(text)["HostFilesystemAlmostFull"][0]
    assert info["annotations"]["description"] == 'Quote " and colon: 70% # not a comment'


def test_module_runs_as_a_script():
    result = subprocess.run(
        [sys.executable, "-m", "hostagent.alerting.generate", "--check"], capture_output=True, text=True, cwd=REPO
    )
    assert result.returncode == 0, result.stderr
    assert "up to date" in result.stdout


@given(st.text(alphabet=st.characters(min_codepoint=9, max_codepoint=0xFFFD, blacklist_categories=("Cs", "Cc", "Zl", "Zp")) | st.sampled_from("\n\t :#'\"{}[]|>-*&!%@`"), max_size=60))
@settings(max_examples=300, deadline=None)
def test_yaml_value_reads_back_as_given(text):
    rendered = generate.yaml_value(text, 4)
    assert yaml.safe_load("k: " + rendered) == {"k": text}


@pytest.mark.parametrize(
    "value, text",
    [(0.85, "0.85"), (268435456.0, "268435456"), (1.0, "1"), (0.0, "0"), (1e-05, "1e-05"), (1.5, "1.5")],
)
def test_number_is_written_as_promql_reads_it(value, text):
    assert generate.number(value) == text
