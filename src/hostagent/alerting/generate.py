"""Render Prometheus alert rules from config/alerting.yaml.

``hostagent rules`` writes prometheus/rules/hostagent-alerts.rules.yml (the
threshold alerts) and prometheus/rules/hostagent-trends.rules.yml (the
hand-written trend and anomaly alerts of templates/rules/trends.rules.yml.j2,
with runbook links from the same file); ``hostagent rules --check`` exits 1
when either differs from what the current configuration makes. Sample run::

    $ hostagent rules
    wrote prometheus/rules/hostagent-alerts.rules.yml (30 rules)
    prometheus/rules/hostagent-trends.rules.yml is up to date (4 rules)
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import jinja2
import yaml

from hostagent.alerting import thresholds
from hostagent.alerting.thresholds import AlertingConfig, AlertThreshold, Level, ThresholdsError
from hostagent.project import ROOT, shown

RULES_DIR = ROOT / "prometheus" / "rules"
OUTPUT_NAME = "hostagent-alerts.rules.yml"
TRENDS_NAME = "hostagent-trends.rules.yml"
TEMPLATES = Path(__file__).resolve().parents[1] / "templates" / "rules"

# Which rule group each alert key goes to, in output order. Every key needs a
# macro of the same name in expressions.promql.j2.
GROUPS: Tuple[Tuple[str, Tuple[str, ...]], ...] = (
    ("hostagent-agent", ("agent_down", "targets_missing", "collector_failing", "collector_disabled", "collector_stale", "clock_skew")),
    ("hostagent-cpu", ("cpu_usage", "load_per_core", "cpu_iowait")),
    ("hostagent-memory", ("memory_usage", "memory_available", "swap_usage")),
    ("hostagent-filesystem", ("filesystem_usage", "filesystem_inodes", "filesystem_device_error", "filesystem_readonly")),
    ("hostagent-disk", ("disk_io_utilisation",)),
    (
        "hostagent-network",
        ("network_receive_errors", "network_transmit_errors", "network_interface_down", "tcp_time_wait", "tcp_connections"),
    ),
)
OPERATORS = {"above": ">", "below": "<"}


class GenerateError(Exception):
    """The rules cannot be made; the message says why."""


def environment(**delimiters: str) -> jinja2.Environment:
    """The Jinja environment for the rule templates."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES)),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=False,
        **delimiters,
    )
    env.filters["yaml_value"] = yaml_value
    return env


def yaml_value(text: str, indent: int) -> str:
    """``text`` as a YAML scalar at ``indent``: plain when that reads back the
    same, else a literal block for several lines, else double-quoted."""
    pad = " " * indent
    candidates = ["|-\n" + "\n".join(pad + line if line else "" for line in text.split("\n"))] if "\n" in text else [text]
    for candidate in candidates:
        try:
            if yaml.safe_load(f"k: {candidate}") == {"k": text}:
                return candidate
        except yaml.YAMLError:
            pass
    return json.dumps(text)


def number(value: float) -> str:
    """A threshold as PromQL writes it: 0.85, 268435456."""
    return str(int(value)) if value.is_integer() else repr(value)


def anchor(alert: str) -> str:
    """The docs/alerts.md anchor of an alert's runbook section (its heading)."""
    return alert.lower()


def runbook_url(base: str, alert: str) -> str:
    """Where an alert's runbook section is."""
    return f"{base}#{anchor(alert)}"


def rule(alert: AlertThreshold, level: Level, expr: str, runbook_base_url: str) -> Dict[str, Any]:
    """One alerting rule, as Prometheus reads it."""
    annotations = {
        "summary": thresholds.render_text(alert.summary, alert, level),
        "description": thresholds.render_text(alert.description, alert, level),
    }
    if alert.value_template():
        annotations["value"] = thresholds.render_text(alert.value_template(), alert, level)
    annotations["runbook_url"] = runbook_url(runbook_base_url, alert.alert)
    return {
        "alert": alert.alert,
        "expr": expr,
        "for": level.for_,
        "labels": {"severity": level.severity},
        "annotations": annotations,
    }


def build(config: AlertingConfig, env: Optional[jinja2.Environment] = None) -> Dict[str, Any]:
    """The rule file's content: groups of rules, one rule per alert level."""
    env = env or environment()
    expressions = env.get_template("expressions.promql.j2").module
    known = {key for _, keys in GROUPS for key in keys}
    unknown = sorted(set(config.alerts) - known)
    if unknown:
        raise GenerateError(
            f"config/alerting.yaml: alerts.{unknown[0]}: no rule expression for this key "
            f"(known keys: {', '.join(sorted(known))})"
        )
    groups: List[Dict[str, Any]] = []
    for name, keys in GROUPS:
        rules = []
        for key in keys:
            alert = config.alerts.get(key)
            if alert is None:  # removed from the file: the alert is off
                continue
            macro = getattr(expressions, key, None)
            if macro is None:
                raise GenerateError(f"{TEMPLATES / 'expressions.promql.j2'}: no macro {key}(op, threshold)")
            for level in alert.levels:
                expr = str(macro(op=OPERATORS[alert.direction], threshold=number(level.threshold))).strip()
                rules.append(rule(alert, level, expr, config.runbook_base_url))
        if rules:
            groups.append({"name": name, "rules": rules})
    return {"groups": groups}


def render(config: AlertingConfig) -> str:
    """The rule file's text; checked to read back as exactly what build() made."""
    env = environment()
    content = build(config, env)
    text = env.get_template("alerts.rules.yml.j2").render(groups=content["groups"])
    if yaml.safe_load(text) != content:
        raise GenerateError("rendered rules do not read back as built (a template quoting bug)")
    return text


def render_trends(config: AlertingConfig) -> str:
    """The hand-written trend and anomaly rules, with runbook links from
    ``config``; every alert in them must take its link from there."""
    # [[ ]] for Jinja: {{ }} is Prometheus' own template syntax in annotations.
    env = environment(variable_start_string="[[", variable_end_string="]]")
    template = env.get_template("trends.rules.yml.j2")
    text = template.render(runbook_url=lambda alert: yaml_value(runbook_url(config.runbook_base_url, alert), 10))
    where = TEMPLATES / "trends.rules.yml.j2"
    try:
        content = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise GenerateError(f"{where}: does not render to valid YAML: {exc}") from None
    for group in content["groups"]:
        for item in group["rules"]:
            if "alert" in item and item.get("annotations", {}).get("runbook_url") != runbook_url(config.runbook_base_url, item["alert"]):
                raise GenerateError(f"{where}: alert {item['alert']} must have runbook_url: [[ runbook_url(\"{item['alert']}\") ]]")
    return text


def outputs(config: AlertingConfig) -> Dict[str, str]:
    """File name -> text of every rule file the generator writes."""
    return {OUTPUT_NAME: render(config), TRENDS_NAME: render_trends(config)}


def count_rules(text: str) -> int:
    """How many rules a rendered file holds."""
    return sum(len(g["rules"]) for g in yaml.safe_load(text)["groups"])


def main(argv: Optional[Sequence[str]] = None) -> int:
    """`hostagent rules [--check]`: write or check the generated alert rules."""
    parser = argparse.ArgumentParser(
        prog="hostagent rules",
        description="Generate Prometheus alert rules from config/alerting.yaml.",
    )
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 if a rule file is not current")
    parser.add_argument("--config", "--thresholds", dest="config", type=Path, default=thresholds.DEFAULT_PATH, help="thresholds file (default: %(default)s)")
    parser.add_argument("--output-dir", "--output", dest="output_dir", type=Path, default=RULES_DIR, help="where rule files go (default: %(default)s)")
    args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
    try:
        texts = outputs(thresholds.load_config(args.config))
    except (ThresholdsError, GenerateError) as exc:
        print(f"hostagent rules: {exc}", file=sys.stderr)
        return 2
    status = 0
    for name, text in texts.items():
        status = max(status, _write_or_check(args.output_dir / name, text, args.check))
    return status


def _write_or_check(target: Path, text: str, check: bool) -> int:
    """Write (or with ``check`` compare) one rule file; main()'s exit status."""
    current = target.read_text() if target.is_file() else None
    shown_path = shown(target)
    if check:
        if current != text:
            why = "missing" if current is None else "out of date"
            print(f"hostagent rules: {shown_path} is {why}; run `hostagent rules` to regenerate it", file=sys.stderr)
            return 1
        print(f"{shown_path} is up to date")
        return 0
    if current == text:
        print(f"{shown_path} is up to date ({count_rules(text)} rules)")
        return 0
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
    except OSError as exc:
        print(f"hostagent rules: cannot write {shown_path}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    print(f"wrote {shown_path} ({count_rules(text)} rules)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
