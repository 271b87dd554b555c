"""The alerts about services, containers and process groups.

The must-run list of config/alerting.yaml: its names are group names, the
shipped agent configuration pins them, several groups and names a regex
would misread work in promtool, the alert fires only where a group ran
and stopped (promtool, and a real agent and Prometheus), never where it
never ran. The cgroup OOM kill alert mutes the host-wide one in a real
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


def promtool_rules(tmp_path: Path, doc: Dict[str, Any]) -> Path:
    rules = tmp_path / "rules.yml"
    rules.write_text(generate.render(thresholds.load_config(write(tmp_path, doc))))
    checked = promtool("check", "rules", str(rules))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    return rules


def promtool_test(tmp_path: Path, rules: Path, series: Dict[str, str], checks: List[Dict[str, Any]]) -> None:
    test = {
        "rule_files": [str(rules)],
        "evaluation_interval": "1m",
        "tests": [{"interval": "1m", "input_series": [{"series": k, "values": v} for k, v in series.items()], "alert_rule_test": checks}],
    }
    path = tmp_path / "must_run.test.yml"
    path.write_text(yaml.safe_dump(test, sort_keys=False))
    result = promtool("test", "rules", str(path))
    assert result.returncode == 0, result.stdout + result.stderr


def fired(instance: str, group: str, value: str, summary: str = "s") -> Dict[str, Any]:
    return {
        "exp_labels": {"severity": "critical", "job": "hostagent", "instance": instance, "group": group},
        "exp_annotations": {"summary": summary, "description": "d", "value": value, "runbook_url": "rb#hostprocessgroupnotrunning"},
    }


def test_fires_where_the_group_ran_and_stopped_not_where_it_never_ran(tmp_path):
    """The shipped alert (sshd, critical, for 2m), on five hosts, sampled
    every minute: one never had sshd (a container); one pins sshd, which
    never ran there (exported at 0 all along); on one sshd stops at 10m; one
    reboots at 10m (no samples for 5 minutes) and its pinned sshd never
    comes back (0 from 15m); on one whose agent does not pin sshd, the group
    loses its series at the reboot, and cannot be told from one the agent
    no longer names."""
    doc = shipped()
    doc["runbook_base_url"] = "rb"
    doc["alerts"][KEY].update(description="d")
    rules = promtool_rules(tmp_path, doc)
    sshd = 'host_process_group_processes{{job="hostagent", instance="{}", group="sshd"}}'
    other = 'host_process_groups_other{{job="hostagent", instance="{}"}}'
    day = 24 * 60
    series = {
        other.format("container"): f"3x{day + 60}",
        sshd.format("pinned-never"): f"0x{day + 60}",
        sshd.format("stopped"): f"1x9 0x{day + 50}",
        sshd.format("rebooted"): f"1x9 _x5 0x{day + 45}",
        sshd.format("unpinned"): "1x9",
    }
    summary = "No sshd process is running on {}"
    checks = [
        # 12m: sshd stopped 2 minutes ago, not yet for 2m; the reboot is under way.
        {"eval_time": "11m", "alertname": "HostProcessGroupNotRunning", "exp_alerts": []},
        {"eval_time": "13m", "alertname": "HostProcessGroupNotRunning", "exp_alerts": [fired("stopped", "sshd", "0 processes", summary.format("stopped"))]},
        # Back from the reboot at 15m with sshd at 0: fires 2 minutes on.
        {"eval_time": "16m", "alertname": "HostProcessGroupNotRunning", "exp_alerts": [fired("stopped", "sshd", "0 processes", summary.format("stopped"))]},
        {"eval_time": "18m", "alertname": "HostProcessGroupNotRunning",
         "exp_alerts": [fired("rebooted", "sshd", "0 processes", summary.format("rebooted")), fired("stopped", "sshd", "0 processes", summary.format("stopped"))]},
        # Still firing most of a day on ...
        {"eval_time": f"{day}m", "alertname": "HostProcessGroupNotRunning",
         "exp_alerts": [fired("rebooted", "sshd", "0 processes", summary.format("rebooted")), fired("stopped", "sshd", "0 processes", summary.format("stopped"))]},
        # ... and once the last sample with a process is a day old, sshd is
        # taken as something these hosts do not have.
        {"eval_time": f"{day + 15}m", "alertname": "HostProcessGroupNotRunning", "exp_alerts": []},
    ]
    promtool_test(tmp_path, rules, series, checks)


def test_several_groups_and_names_a_regex_would_misread(tmp_path):
    """Four groups, two with regex characters: php-fpm7.4 must not match the
    group php-fpm7x4, and g++ must not make the rule unreadable. One host
    runs sshd and g++, and php-fpm7.4 and php-fpm7x4 stop at 2m."""
    doc = shipped()
    doc["runbook_base_url"] = "rb"
    doc["alerts"][KEY].update(groups=["sshd", "chronyd", "php-fpm7.4", "g++"], summary="s", description="d", value="{{ $value }}")
    rules = promtool_rules(tmp_path, doc)
    host = 'job="hostagent", instance="web-1:9100"'
    series = {f'host_process_group_processes{{{host}, group="{g}"}}': v for g, v in (("sshd", "1x9"), ("g++", "2x9"), ("php-fpm7.4", "1 1 0x7"), ("php-fpm7x4", "1 1 0x7"))}
    series[f"host_process_groups_other{{{host}}}"] = "3x9"
    promtool_test(tmp_path, rules, series, [{"eval_time": "5m", "alertname": "HostProcessGroupNotRunning", "exp_alerts": [fired("web-1:9100", "php-fpm7.4", "0")]}])


def test_a_real_agent_and_prometheus_fire_for_a_group_that_stops(tmp_path):
    """A real agent pins two groups: one runs (a copy of sleep under a name
    of its own) until the test ends it, one never runs. The rule fires for
    the first once it stops, and never for the second, nor for a listed
    group the agent does not export at all."""
    gone, never, unknown = "hostagent-gone", "hostagent-idle", "hostagent-unpinned"
    exe = tmp_path / gone
    exe.write_bytes(Path(require_tool("sleep")).read_bytes())
    exe.chmod(0o755)
    doc = shipped()
    doc["alerts"][KEY]["groups"] = [gone, never, unknown]
    doc["alerts"][KEY]["levels"][0]["for"] = "0s"
    rules_dir = tmp_path / "rules"
    assert generate.main(["--config", str(write(tmp_path, doc)), "--output-dir", str(rules_dir)]) == 0
    # The shipped group is evaluated once a minute; here every second, so the
    # test waits on the rule, not on the group's schedule.
    alerts_file = rules_dir / "hostagent-alerts.rules.yml"
    shipped_rules = yaml.safe_load(alerts_file.read_text())
    for group in shipped_rules["groups"]:
        if any(r.get("alert") == "HostProcessGroupNotRunning" for r in group["rules"]):
            group["interval"] = "1s"
    alerts_file.write_text(yaml.safe_dump(shipped_rules, sort_keys=False))
    lines = ["collectors:"]
    for name in load_all():
        lines.append(f"  processes: {{interval: 1, pinned_groups: [{gone}, {never}]}}" if name == "processes" else f"  {name}: {{enabled: false}}")
    sleeper = subprocess.Popen([str(exe), "300"])
    try:
        with agent_server(tmp_path, "\n".join(lines) + "\n").start() as agent:
            instance = agent.base_url.split("//", 1)[1]
            config = (
                "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
                f"rule_files: ['{rules_dir}/*.rules.yml']\n"
                f"scrape_configs: [{{job_name: hostagent, static_configs: [{{targets: ['{instance}']}}]}}]\n"
            )
            with prometheus_server(tmp_path, config).start() as prom:
                running = f'host_process_group_processes{{group="{gone}"}} >= 1'
                wait_until(lambda: len(prom_query(prom.base_url, running)) == 1, 30, f"Prometheus to see {gone} running\n{prom.log()}")
                query = 'ALERTS{alertname="HostProcessGroupNotRunning"}'
                assert prom_query(prom.base_url, query) == []
                sleeper.kill()
                sleeper.wait(timeout=10)
                wait_until(lambda: len(prom_query(prom.base_url, query + ' == 1 and ALERTS{alertstate="firing"}')) == 1, 60, "the alert to fire")
                # The group that never ran was scraped all along, and stays quiet.
                evaluated = prom_query(prom.base_url, f'count_over_time(host_process_group_processes{{group="{never}"}}[1m])')
                assert evaluated and float(evaluated[0]["value"][1]) >= 2
                firing = {a["metric"]["group"] for a in prom_query(prom.base_url, query)}
                values = {s["metric"]["group"]: float(s["value"][1]) for s in prom_query(prom.base_url, f'host_process_group_processes{{group=~"{gone}|{never}|{unknown}"}}')}
    finally:
        sleeper.kill()
        sleeper.wait(timeout=10)
    assert firing == {gone}
    assert values == {gone: 0, never: 0}, values


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
