"""config/alerting.yaml: the shipped file loads, and every kind of mistake is named."""

from __future__ import annotations

import copy
import dataclasses
from pathlib import Path
from typing import Any, Dict

import pytest
import yaml

from hostagent.alerting import thresholds
from hostagent.alerting.thresholds import AlertThreshold, Level, ThresholdsError, load, load_config


def shipped() -> Dict[str, Any]:
    """The repository's file, parsed, for tests to spoil one thing at a time."""
    return yaml.safe_load(thresholds.DEFAULT_PATH.read_text())


def load_doc(tmp_path: Path, doc: Any) -> Dict[str, AlertThreshold]:
    path = tmp_path / "alerting.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return load(path)


def error_of(tmp_path: Path, doc: Any) -> str:
    with pytest.raises(ThresholdsError) as info:
        load_doc(tmp_path, doc)
    return str(info.value)


def test_default_path_is_the_repository_file():
    assert thresholds.DEFAULT_PATH == Path(__file__).resolve().parents[2] / "config" / "alerting.yaml"
    assert thresholds.DEFAULT_PATH.is_file()


def test_shipped_file_has_every_required_key_with_sane_levels():
    alerts = load()
    for key in thresholds.REQUIRED_KEYS:
        assert key in alerts, key
    for key, alert in alerts.items():
        assert alert.key == key
        assert alert.levels, key
        assert [lv.threshold for lv in alert.levels] == sorted(lv.threshold for lv in alert.levels)
        for level in alert.levels:
            assert level.severity in ("info", "warning", "critical")
            assert isinstance(level.threshold, float)
        if alert.unit == "percentunit":
            assert all(0 <= lv.threshold <= 1 for lv in alert.levels), f"{key}: ratios are 0..1"
    assert len({a.alert for a in alerts.values()}) == len(alerts)


def test_shipped_values_are_read_as_written():
    cpu = load()["cpu_usage"]
    assert cpu.alert == "HostHighCpuUsage"
    assert cpu.unit == "percentunit"
    assert cpu.direction == "above"
    assert cpu.levels == (Level("warning", 0.8, "5m"), Level("critical", 0.95, "5m"))
    assert "{{ $labels.instance }}" in cpu.summary
    available = load()["memory_available"]
    assert available.direction == "below" and available.unit == "percentunit"
    assert available.levels == (Level("critical", 0.05, "5m"), Level("warning", 0.1, "5m"))


def test_shipped_thresholds_are_the_ones_users_asked_for():
    """CPU 80/95 for 5 minutes, memory 85/95, disk 85/95."""
    alerts = load()
    for key, warning, critical in (("cpu_usage", 0.8, 0.95), ("memory_usage", 0.85, 0.95), ("filesystem_usage", 0.85, 0.95)):
        by_severity = {lv.severity: lv.threshold for lv in alerts[key].levels}
        assert by_severity == {"warning": warning, "critical": critical}, key
    assert {lv.for_ for lv in alerts["cpu_usage"].levels} == {"5m"}


def test_value_annotation_follows_the_unit_unless_the_file_says_otherwise(tmp_path):
    alerts = load()
    assert alerts["cpu_usage"].value_template() == "{{ $value | humanizePercentage }}"
    assert alerts["collector_stale"].value_template() == "{{ $value | humanizeDuration }}"
    assert alerts["tcp_connections"].value_template() == "{{ $value | humanize }}"
    assert alerts["agent_down"].value_template() == ""  # a state: its value says nothing
    doc = shipped()
    doc["alerts"]["memory_available"]["unit"] = "bytes"
    doc["alerts"]["memory_available"]["levels"] = [{"severity": "critical", "threshold": 268435456, "for": "5m"}]
    assert load_doc(tmp_path, doc)["memory_available"].value_template() == "{{ $value | humanize1024 }}B"
    doc["alerts"]["load_per_core"]["value"] = '{{ $value | printf "%.2f" }} per core'
    assert load_doc(tmp_path, doc)["load_per_core"].value_template() == '{{ $value | printf "%.2f" }} per core'


def test_load_uses_the_given_path(tmp_path):
    doc = shipped()
    doc["alerts"]["cpu_usage"]["levels"] = [{"severity": "critical", "threshold": 0.5, "for": "1h"}]
    doc["runbook_base_url"] = "https://git.example.com/ops/hostagent/blob/main/docs/alerts.md"
    assert load_doc(tmp_path, doc)["cpu_usage"].levels == (Level("critical", 0.5, "1h"),)
    config = load_config(tmp_path / "alerting.yaml")
    assert config.runbook_base_url == doc["runbook_base_url"]


def test_levels_come_out_ascending_by_threshold(tmp_path):
    doc = shipped()
    doc["alerts"]["cpu_usage"]["levels"] = [
        {"severity": "critical", "threshold": 0.95, "for": "5m"},
        {"severity": "info", "threshold": 0.5, "for": "5m"},
        {"severity": "warning", "threshold": 0.8, "for": "5m"},
    ]
    levels = load_doc(tmp_path, doc)["cpu_usage"].levels
    assert [lv.severity for lv in levels] == ["info", "warning", "critical"]
    assert [lv.threshold for lv in levels] == [0.5, 0.8, 0.95]


def test_below_alerts_put_the_most_severe_level_lowest(tmp_path):
    doc = shipped()
    doc["alerts"]["memory_available"]["levels"] = [
        {"severity": "warning", "threshold": 0.2, "for": "5m"},
        {"severity": "critical", "threshold": 0.02, "for": "5m"},
    ]
    levels = load_doc(tmp_path, doc)["memory_available"].levels
    assert [lv.severity for lv in levels] == ["critical", "warning"]
    doc["alerts"]["memory_available"]["levels"][0]["threshold"] = 0.01
    assert "alerts.memory_available.levels: a more severe level must have a lower threshold" in error_of(tmp_path, doc)


def test_results_are_immutable():
    alert = load()["cpu_usage"]
    with pytest.raises(dataclasses.FrozenInstanceError):
        alert.levels[0].threshold = 0.1  # type: ignore[misc]


@pytest.mark.parametrize(
    "spoil, expected",
    [
        (lambda d: d["alerts"]["cpu_usage"].update(colour="red"), "alerts.cpu_usage.colour: unknown key"),
        (lambda d: d.update(extra=1), "extra: unknown key"),
        (lambda d: d["alerts"]["cpu_usage"]["levels"][0].update(severty="warning"), "alerts.cpu_usage.levels[0].severty: unknown key"),
        (lambda d: d["alerts"]["cpu_usage"]["levels"][1].update(severity="page"), "alerts.cpu_usage.levels[1].severity: must be one of info, warning, critical, got 'page'"),
        (lambda d: d["alerts"]["cpu_usage"]["levels"][0].update(threshold="high"), "alerts.cpu_usage.levels[0].threshold: must be a finite number, got 'high'"),
        (lambda d: d["alerts"]["cpu_usage"]["levels"][0].update(threshold=True), "alerts.cpu_usage.levels[0].threshold: must be a finite number, got True"),
        (lambda d: d["alerts"]["cpu_usage"]["levels"][0].update(threshold=float("nan")), "alerts.cpu_usage.levels[0].threshold: must be a finite number"),
        (lambda d: d["alerts"]["cpu_usage"]["levels"][0].pop("threshold"), "alerts.cpu_usage.levels[0].threshold: must be a finite number, got None"),
        (lambda d: d["alerts"]["swap_usage"]["levels"][0].update({"for": "5 minutes"}), "alerts.swap_usage.levels[0].for: must be a Prometheus duration like 30s, 5m or 1h, got '5 minutes'"),
        (lambda d: d["alerts"]["swap_usage"]["levels"][0].update({"for": 300}), "alerts.swap_usage.levels[0].for: must be a Prometheus duration like 30s, 5m or 1h, got 300"),
        (lambda d: d["alerts"]["swap_usage"]["levels"][0].update({"for": ""}), "alerts.swap_usage.levels[0].for: must be a Prometheus duration"),
        (lambda d: d["alerts"]["cpu_usage"].update(unit="percent"), "alerts.cpu_usage.unit: must be one of percentunit, bytes, s, short, cps, got 'percent'"),
        (lambda d: d["alerts"]["cpu_usage"].update(direction="up"), "alerts.cpu_usage.direction: must be above or below, got 'up'"),
        (lambda d: d["alerts"]["cpu_usage"].update(alert="High CPU"), "alerts.cpu_usage.alert: must be an alert name like HostHighCpuUsage, got 'High CPU'"),
        (lambda d: d["alerts"]["cpu_usage"].update(alert="HostHighMemoryUsage"), "alerts.memory_usage.alert: 'HostHighMemoryUsage' is already the name of alerts.cpu_usage"),
        (lambda d: d["alerts"]["cpu_usage"].pop("summary"), "alerts.cpu_usage.summary: must be a non-empty string, got None"),
        (lambda d: d["alerts"]["cpu_usage"].update(description="above {treshold}"), "alerts.cpu_usage.description: unknown placeholder {treshold}"),
        (lambda d: d["alerts"]["cpu_usage"].update(value=0.9), "alerts.cpu_usage.value: must be a Prometheus template string, or \"\" for no value annotation, got float 0.9"),
        (lambda d: d["alerts"]["cpu_usage"].update(value="{{ $value }} of {limit}"), "alerts.cpu_usage.value: unknown placeholder {limit}"),
        (lambda d: d["alerts"]["cpu_usage"].update(levels=[]), "alerts.cpu_usage.levels: must be a non-empty list"),
        (lambda d: d["alerts"]["cpu_usage"].update(levels=["warning"]), "alerts.cpu_usage.levels[0]: must be a mapping with severity, threshold and for, got str 'warning'"),
        (lambda d: d["alerts"]["cpu_usage"]["levels"][1].update(severity="warning"), "alerts.cpu_usage.levels: each severity may appear once"),
        (lambda d: d["alerts"]["cpu_usage"]["levels"][1].update(threshold=0.8), "alerts.cpu_usage.levels: thresholds must differ between levels"),
        (lambda d: d["alerts"]["cpu_usage"]["levels"][1].update(threshold=0.5), "alerts.cpu_usage.levels: a more severe level must have a higher threshold"),
        (lambda d: d["alerts"].pop("cpu_iowait"), "alerts.cpu_iowait: missing"),
        (lambda d: d["alerts"].update({"Bad-Key": d["alerts"]["cpu_usage"]}), "alerts.Bad-Key: key must be lowercase letters, digits and '_'"),
        (lambda d: d["alerts"].update(cpu_usage="high"), "alerts.cpu_usage: must be a mapping, got str 'high'"),
        (lambda d: d.update(runbook_base_url="docs/alerts.md#top"), "runbook_base_url: must be a URL or path without '#'"),
        (lambda d: d.update(alerts=None), "alerts: must be a non-empty mapping of alert keys, got nothing"),
    ],
)
def test_mistakes_are_reported_with_their_key_path(tmp_path, spoil, expected):
    doc = shipped()
    spoil(doc)
    assert expected in error_of(tmp_path, doc)


def test_every_mistake_is_reported_at_once(tmp_path):
    doc = shipped()
    doc["alerts"]["cpu_usage"]["levels"][0]["severity"] = "page"
    doc["alerts"]["swap_usage"]["levels"][0]["for"] = "soon"
    doc["alerts"]["disk_io_utilisation"]["unit"] = "%"
    message = error_of(tmp_path, doc)
    assert str(tmp_path / "alerting.yaml") in message
    for path in ("alerts.cpu_usage.levels[0].severity", "alerts.swap_usage.levels[0].for", "alerts.disk_io_utilisation.unit"):
        assert path in message


def test_not_a_mapping_and_not_yaml_and_missing_file(tmp_path):
    assert "(top level): must be a mapping" in error_of(tmp_path, ["alerts"])
    path = tmp_path / "broken.yaml"
    path.write_text("alerts: [unclosed\n")
    with pytest.raises(ThresholdsError, match="not valid YAML"):
        load(path)
    with pytest.raises(ThresholdsError, match="cannot read"):
        load(tmp_path / "absent.yaml")


def test_thresholds_error_is_a_value_error():
    assert issubclass(ThresholdsError, ValueError)


@pytest.mark.parametrize(
    "value, unit, text",
    [
        (0.85, "percentunit", "85%"),
        (0.15, "percentunit", "15%"),
        (0.005, "percentunit", "0.5%"),
        (268435456, "bytes", "256MiB"),
        (1536, "bytes", "1.5KiB"),
        (100, "bytes", "100B"),
        (300, "s", "5m"),
        (5400, "s", "1h30m"),
        (90061, "s", "1d1h1m1s"),
        (20000, "short", "20000"),
        (2.5, "short", "2.5"),
        (500, "cps", "500/s"),
        (0.5, "cps", "0.5/s"),
    ],
)
def test_humanize(value, unit, text):
    assert thresholds.humanize(value, unit) == text


def test_render_text_fills_placeholders_and_keeps_prometheus_templates():
    alert = load()["cpu_usage"]
    level = alert.levels[1]
    text = thresholds.render_text("{{ $labels.instance }} above {threshold} for {for}; {{ $value }}", alert, level)
    assert text == "{{ $labels.instance }} above 95% for 5m; {{ $value }}"


def test_every_shipped_text_only_uses_known_placeholders():
    for alert in load().values():
        for level in alert.levels:
            for text in (alert.summary, alert.description, alert.value_template()):
                rendered = thresholds.render_text(text, alert, level)
                assert "{threshold}" not in rendered and "{for}" not in rendered


def test_parse_of_a_copy_does_not_change_the_input():
    doc = shipped()
    before = copy.deepcopy(doc)
    errors: list = []
    thresholds.parse(doc, errors)
    assert errors == [] and doc == before
