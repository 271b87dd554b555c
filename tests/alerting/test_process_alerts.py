"""The alerts about services, containers and process groups.

The must-run list of config/alerting.yaml: its names are group names, the
shipped agent configuration pins them, several groups and names a regex
would misread work in promtool, and a real agent and Prometheus fire both
cases (a pinned group without processes, a group the agent does not
export). The cgroup OOM kill alert mutes the host-wide one in a real
Alertmanager.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Dict, List

import pytest
import requests
import yaml
from support import REPO, agent_server, alertmanager_server, prom_query, prometheus_server, require_tool, wait_until

from hostagent import config as agent_config
from hostagent import promql
from hostagent.alerting import generate, thresholds
from hostagent.collectors import load_all
from hostagent.collectors.procgroups import group_name

KEY = "must_run_groups"
# The host-wide OOM kill alert (config key oom_kill) that the cgroup one mutes.
HOST_WIDE_OOM = "HostOomKillDetected"


def shipped() -> Dict[str, Any]:
    return yaml.safe_load(thresholds.DEFAULT_PATH.read_text())


def write(tmp_path: Path, doc: Dict[str, Any]) -> Path:
    """``doc`` as the alerting file to read."""
    (tmp_path / "alerting.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    return tmp_path / "alerting.yaml"


def alert_names(config: thresholds.AlertingConfig) -> List[str]:
    return [rule["alert"] for group in generate.build(config)["groups"] for rule in group["rules"]]


# --------------------------------------------------------------------------
# The must-run list


def test_shipped_must_run_groups_are_pinned_by_the_shipped_agent_config():
    """The agent configuration this repository ships (scripts/run-agent, the
    container image) exports every must-run group even with no process."""
    groups = thresholds.load()[KEY].groups
    assert groups == ("sshd",)
    cfg = agent_config.load(str(REPO / "config" / "agent.yaml"), load_all(), environ={})
    pinned = cfg.collectors["processes"].options["pinned_groups"] or []
    assert set(groups) <= set(pinned), f"config/agent.yaml does not pin {sorted(set(groups) - set(pinned))}"


@pytest.mark.parametrize(
    "groups, expected",
    [
        (["sshd", "cron job"], "alerts.must_run_groups.groups: 'cron job' is not a label-safe group name"),
        (["other"], "alerts.must_run_groups.groups: 'other' is not a label-safe group name"),
        (["x" * 33], "is not a label-safe group name (letters, digits and _.:@+- only, at most 32"),
        (["sshd", "chronyd", "sshd"], "alerts.must_run_groups.groups: 'sshd' listed twice"),
        ("sshd", "alerts.must_run_groups.groups: must be a list of group names, got 'sshd'"),
        ([1], "alerts.must_run_groups.groups: must be a list of group names, got [1]"),
        (None, "alerts.must_run_groups.groups: missing: list the process groups that must run, or [] to turn the alert off"),
    ],
)
def test_must_run_groups_must_be_group_names(tmp_path, groups, expected):
    doc = shipped()
    if groups is None:
        del doc["alerts"][KEY]["groups"]
    else:
        doc["alerts"][KEY]["groups"] = groups
    with pytest.raises(thresholds.ThresholdsError) as info:
        thresholds.load(write(tmp_path, doc))
    assert expected in str(info.value)


def test_only_the_must_run_alert_takes_groups(tmp_path):
    doc = shipped()
    doc["alerts"]["cpu_usage"]["groups"] = ["sshd"]
    with pytest.raises(thresholds.ThresholdsError, match=r"alerts\.cpu_usage\.groups: only must_run_groups takes a list of process groups"):
        thresholds.load(write(tmp_path, doc))


def test_an_empty_list_or_no_key_turns_the_alert_off(tmp_path):
    name = thresholds.load()[KEY].alert
    assert name in alert_names(thresholds.load_config())
    doc = shipped()
    doc["alerts"][KEY]["groups"] = []
    assert thresholds.load(write(tmp_path, doc))[KEY].groups == ()
    assert name not in alert_names(thresholds.load_config(write(tmp_path, doc)))
    del doc["alerts"][KEY]
    assert name not in alert_names(thresholds.load_config(write(tmp_path, doc)))


def promtool(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([require_tool("promtool"), *args], capture_output=True, text=True, timeout=60)


def test_several_groups_and_names_a_regex_would_misread(tmp_path):
    """Four groups, two with regex characters: php-fpm7.4 must not match the
    group php-fpm7x4, and g++ must not make the rule unreadable. One host
    runs sshd and g++, pins php-fpm7.4 (0 processes) and does not export
    chronyd."""
    doc = shipped()
    doc["runbook_base_url"] = "rb"
    doc["alerts"][KEY].update(groups=["sshd", "chronyd", "php-fpm7.4", "g++"], summary="s", description="d", value="{{ $value }}")
    rules = tmp_path / "rules.yml"
    rules.write_text(generate.render(thresholds.load_config(write(tmp_path, doc))))
    checked = promtool("check", "rules", str(rules))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    host = 'job="hostagent", instance="web-1:9100"'

    def fired(group: str, value: str) -> Dict[str, Any]:
        return {
            "exp_labels": {"severity": "critical", "job": "hostagent", "instance": "web-1:9100", "group": group},
            "exp_annotations": {"summary": "s", "description": "d", "value": value, "runbook_url": "rb#hostprocessgroupnotrunning"},
        }

    test = {
        "rule_files": [str(rules)],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": [
                    {"series": f"host_process_group_processes{{{host}, group=\"{g}\"}}", "values": f"{n}x5"}
                    for g, n in (("sshd", 1), ("g++", 2), ("php-fpm7.4", 0), ("php-fpm7x4", 0))
                ]
                + [{"series": f"host_process_groups_other{{{host}}}", "values": "3x5"}],
                "alert_rule_test": [{"eval_time": "3m", "alertname": "HostProcessGroupNotRunning", "exp_alerts": [fired("chronyd", "-1"), fired("php-fpm7.4", "0")]}],
            }
        ],
    }
    path = tmp_path / "must_run.test.yml"
    path.write_text(yaml.safe_dump(test, sort_keys=False))
    result = promtool("test", "rules", str(path))
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_real_agent_and_prometheus_fire_both_cases(tmp_path):
    """The agent pins one group that never runs and not another: the rule
    fires for the first with 0 processes and for the second with -1 (not
    exported), and not for a group that runs (the agent itself)."""
    idle, unpinned = "hostagent-idle", "hostagent-unpinned"
    running = group_name(os.path.basename(sys.executable)[:15])  # the agent's own command name
    doc = shipped()
    doc["alerts"][KEY]["groups"] = [idle, unpinned, running]
    doc["alerts"][KEY]["levels"][0]["for"] = "0s"
    rules_dir = tmp_path / "rules"
    assert generate.main(["--config", str(write(tmp_path, doc)), "--output-dir", str(rules_dir)]) == 0
    lines = ["collectors:"]
    for name in load_all():
        lines.append(f"  processes: {{interval: 1, pinned_groups: [{idle}]}}" if name == "processes" else f"  {name}: {{enabled: false}}")
    with agent_server(tmp_path, "\n".join(lines) + "\n").start() as agent:
        instance = agent.base_url.split("//", 1)[1]
        config = (
            "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
            f"rule_files: ['{rules_dir}/*.rules.yml']\n"
            f"scrape_configs: [{{job_name: hostagent, static_configs: [{{targets: ['{instance}']}}]}}]\n"
        )
        with prometheus_server(tmp_path, config).start() as prom:
            query = 'ALERTS{alertname="HostProcessGroupNotRunning",alertstate="firing"}'
            wait_until(lambda: len(prom_query(prom.base_url, query)) >= 2, 30, f"both alerts to fire\n{prom.log()}")
            firing = {a["metric"]["group"] for a in prom_query(prom.base_url, query)}
            values = {
                s["metric"]["group"]: float(s["value"][1])
                for s in prom_query(prom.base_url, promql.must_run_processes(promql.RULES, doc["alerts"][KEY]["groups"]))
            }
    assert firing == {idle, unpinned}
    assert values[idle] == 0 and values[unpinned] == -1 and values[running] >= 1, values


# --------------------------------------------------------------------------
# OOM kills: the cgroup's alert mutes the host's


def test_the_inhibition_names_the_rules_alerts():
    alerts = thresholds.load()
    rules = [r for r in yaml.safe_load((REPO / "alertmanager" / "alertmanager.yml").read_text())["inhibit_rules"] if r["target_matchers"] == [f'alertname="{HOST_WIDE_OOM}"']]
    assert [r["source_matchers"] for r in rules] == [[f'alertname="{alerts["cgroup_oom_kill"].alert}"']]
    assert rules[0]["equal"] == ["instance", "test_id"]
    if "oom_kill" in alerts:  # the host-wide alert's own key, where this file has it
        assert alerts["oom_kill"].alert == HOST_WIDE_OOM


def test_cgroup_oom_kill_mutes_the_host_wide_alert_of_the_same_host(tmp_path):
    text = (REPO / "alertmanager" / "alertmanager.yml").read_text().replace("templates/*.tmpl", str(REPO / "alertmanager" / "templates" / "*.tmpl"))
    cgroup = thresholds.load()["cgroup_oom_kill"].alert
    with alertmanager_server(tmp_path, text).start() as am:
        alerts = [
            {"labels": {"alertname": cgroup, "severity": "warning", "instance": "a:9100", "cgroup": "docker/web-1"}},
            {"labels": {"alertname": HOST_WIDE_OOM, "severity": "warning", "instance": "a:9100"}},  # same host: muted
            {"labels": {"alertname": HOST_WIDE_OOM, "severity": "warning", "instance": "b:9100"}},  # no cgroup kill there: sent
            # A cgroup alert that has ended mutes nothing.
            {"labels": {"alertname": cgroup, "severity": "warning", "instance": "c:9100", "cgroup": "nginx.service"}, "endsAt": "2000-01-01T00:00:00Z"},
            {"labels": {"alertname": HOST_WIDE_OOM, "severity": "warning", "instance": "c:9100"}},
        ]
        requests.post(am.base_url + "/api/v2/alerts", json=alerts, timeout=5).raise_for_status()
        # The ended alert is not listed; the others are, each with its state.
        deadline = time.time() + 10
        while True:
            got = requests.get(am.base_url + "/api/v2/alerts", timeout=5).json()
            if len(got) == 4 or time.time() > deadline:
                break
            time.sleep(0.1)
    state = {(a["labels"]["alertname"], a["labels"]["instance"]): bool(a["status"]["inhibitedBy"]) for a in got}
    assert state == {
        (cgroup, "a:9100"): False,
        (HOST_WIDE_OOM, "a:9100"): True,
        (HOST_WIDE_OOM, "b:9100"): False,
        (HOST_WIDE_OOM, "c:9100"): False,
    }
