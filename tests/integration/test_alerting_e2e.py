"""Alert delivery end to end: agent -> Prometheus (repo rules) -> Alertmanager (repo routes) -> receivers.

Every server is real and listens on a loopback port picked here. The repo's
prometheus.yml and alertmanager.yml are loaded and adapted (fast intervals,
local addresses, every receiver pointed at a webhook receiver run by this test);
routing tree, inhibition rules, rule files and notification templates are used
as they are.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple

import pytest
import requests
import yaml

from alerting.amstack import FAST, Inbox, adapt_alertmanager, webhook_sink
from hostagent.alerting.cli import parse_duration
from support import REPO, agent_server, alertmanager_server, fast_agent_config, prometheus_server, require_tool

PROM_DIR = REPO / "prometheus"

ALERT_RULE = """
groups:
  - name: e2e
    rules:
      - alert: E2EMemoryPresent
        expr: host_memory_total_bytes > 0
        labels:
          severity: warning
        annotations:
          summary: "Memory of {{ $labels.instance }} is {{ $value | humanize1024 }}B"
          description: "Test rule that holds on every host."
          value: "{{ $value | humanize1024 }}B"
          runbook_url: "https://runbooks.example.com/e2ememorypresent"
"""


@pytest.fixture
def inbox() -> Iterator[Tuple[Inbox, str]]:
    with webhook_sink() as sink:
        yield sink


def adapt_prometheus(agent: str, alertmanager: str, test_rules: Path) -> str:
    """prometheus.yml scraping only the test agent every second, alerting to the test Alertmanager."""
    doc = yaml.safe_load((PROM_DIR / "prometheus.yml").read_text())
    doc["global"].update(scrape_interval=FAST, scrape_timeout=FAST, evaluation_interval=FAST)
    doc["rule_files"] = [str(PROM_DIR / pattern) for pattern in doc["rule_files"]] + [str(test_rules)]
    doc["alerting"]["alertmanagers"] = [{"static_configs": [{"targets": [alertmanager]}]}]
    [job] = [j for j in doc["scrape_configs"] if j["job_name"] == "hostagent"]
    job.pop("file_sd_configs", None)
    job["static_configs"] = [{"targets": [agent]}]
    doc["scrape_configs"] = [job]
    return yaml.safe_dump(doc, sort_keys=False)


def names(notification: Dict[str, Any]) -> List[str]:
    return sorted(a["labels"]["alertname"] for a in notification["alerts"])


def has_alert(alertname: str, status: str) -> Callable[[Dict[str, Any]], bool]:
    return lambda n: any(a["labels"]["alertname"] == alertname and a["status"] == status for a in n["alerts"])


def slack_title(alertname: str, status: str) -> Callable[[Dict[str, Any]], bool]:
    return lambda n: alertname in n["attachments"][0]["title"] and n["attachments"][0]["title"].startswith(f"[{status}")


# --------------------------------------------------------------------------
# The test


def synthetic(alertname: str, severity: str, instance: str, **extra: str) -> Dict[str, Any]:
    """An alert as Prometheus would post it."""
    return {"labels": {"alertname": alertname, "severity": severity, "instance": instance, **extra}, "annotations": {"summary": f"{alertname} {severity}"}}


SYNTHETIC = [
    # A critical mutes the warning of the same alert on the same host.
    synthetic("E2EInhibited", "critical", "h1:9100"),
    synthetic("E2EInhibited", "warning", "h1:9100"),
    # The agent being down mutes everything else from its host.
    synthetic("HostagentDown", "critical", "h2:9100"),
    synthetic("E2EOnDownHost", "warning", "h2:9100"),
    # Two alerts of one group (same alertname and instance): one notification.
    synthetic("E2EGrouped", "warning", "h3:9100", mountpoint="/"),
    synthetic("E2EGrouped", "warning", "h3:9100", mountpoint="/var"),
    # Another instance is another group.
    synthetic("E2EGrouped", "warning", "h4:9100", mountpoint="/"),
    # Info goes to the low-noise channel.
    synthetic("E2EInfo", "info", "h5:9100"),
]


def check_synthetic(box: Inbox, am_url: str) -> None:
    """What the SYNTHETIC alerts produced, seconds after their group_wait."""
    critical = box.wait("/hook/pager", has_alert("E2EInhibited", "firing"))
    assert [a["labels"]["severity"] for a in critical["alerts"]] == ["critical"]
    box.wait("/hook/pager", has_alert("HostagentDown", "firing"))
    grouped = box.wait("/hook/chat", lambda n: n["groupLabels"] == {"alertname": "E2EGrouped", "instance": "h3:9100"})
    assert sorted(a["labels"]["mountpoint"] for a in grouped["alerts"]) == ["/", "/var"]
    other = box.wait("/hook/chat", lambda n: n["groupLabels"] == {"alertname": "E2EGrouped", "instance": "h4:9100"})
    assert [a["labels"]["mountpoint"] for a in other["alerts"]] == ["/"]
    info = box.wait("/hook/low-noise", has_alert("E2EInfo", "firing"))
    assert names(info) == ["E2EInfo"]

    # Muted alerts were never delivered anywhere, though their groups'
    # group_wait passed long ago, and Alertmanager reports them suppressed.
    delivered = {a["labels"]["alertname"] + "/" + a["labels"]["severity"] for n in box.at() for a in n.get("alerts", [])}
    assert "E2EInhibited/warning" not in delivered and "E2EOnDownHost/warning" not in delivered
    assert {"E2EInhibited/critical", "HostagentDown/critical", "E2EGrouped/warning", "E2EInfo/info"} <= delivered
    states = {
        (a["labels"]["alertname"], a["labels"]["severity"]): a["status"]["state"]
        for a in requests.get(am_url + "/api/v2/alerts", timeout=10).json()
    }
    assert states[("E2EInhibited", "warning")] == "suppressed"
    assert states[("E2EOnDownHost", "warning")] == "suppressed"
    assert states[("E2EInhibited", "critical")] == "active"


def test_alert_delivery_resolution_inhibition_and_grouping(tmp_path: Path, inbox: Tuple[Inbox, str]) -> None:
    require_tool("prometheus")
    require_tool("alertmanager")
    box, receiver_url = inbox
    started = time.monotonic()
    rules = tmp_path / "e2e.rules.yml"
    rules.write_text(ALERT_RULE)
    agent_config = fast_agent_config()
    for sub in ("agent", "am", "prom"):
        (tmp_path / sub).mkdir()

    with agent_server(tmp_path / "agent", agent_config).start() as agent, \
            alertmanager_server(tmp_path / "am", adapt_alertmanager(receiver_url)).start() as am:
        agent_addr = agent.base_url.split("//", 1)[1]
        am_addr = am.base_url.split("//", 1)[1]
        # Inhibition and grouping are checked with alerts posted straight to
        # Alertmanager; posted first, they are delivered while Prometheus starts.
        requests.post(am.base_url + "/api/v2/alerts", json=SYNTHETIC, timeout=10).raise_for_status()

        with prometheus_server(tmp_path / "prom", adapt_prometheus(agent_addr, am_addr, rules)).start():

            # 1. A rule the host surely breaks fires and reaches the warning
            #    channels with its labels and annotations.
            fired = box.wait("/hook/chat", has_alert("E2EMemoryPresent", "firing"))
            fired_at = time.monotonic()
            [alert] = fired["alerts"]
            assert alert["labels"]["severity"] == "warning"
            assert alert["labels"]["instance"] == agent_addr
            assert alert["labels"]["job"] == "hostagent"
            assert alert["annotations"]["summary"].startswith(f"Memory of {agent_addr} is ")
            assert alert["annotations"]["value"].endswith("iB")
            assert alert["annotations"]["runbook_url"] == "https://runbooks.example.com/e2ememorypresent"
            assert alert["generatorURL"].startswith("http")
            assert fired["receiver"] == "chat"
            assert fired["groupLabels"] == {"alertname": "E2EMemoryPresent", "instance": agent_addr}
            elsewhere = [n for path in ("/hook/pager", "/hook/low-noise") for n in box.at(path) if has_alert("E2EMemoryPresent", "firing")(n)]
            assert elsewhere == []

            # The Slack and Discord messages are rendered by the repo's templates.
            for path, channel in (("/slack/chat/0", "#ops-alerts"), ("/slack/chat/1", None)):
                slack = box.wait(path, slack_title("E2EMemoryPresent", "FIRING"))
                attachment = slack["attachments"][0]
                assert attachment["title"] == f"[FIRING:1] E2EMemoryPresent on {agent_addr} (warning)"
                assert attachment["color"] == "warning"
                assert f"> Host: `{agent_addr}`" in attachment["text"]
                assert f"> Value: {alert['annotations']['value']}" in attachment["text"]
                assert "> Runbook: <https://runbooks.example.com/e2ememorypresent|" in attachment["text"]
                assert slack["username"] == "hostagent"
                assert slack.get("channel") == channel

            # 2. Meanwhile the synthetic alerts were routed, muted and grouped.
            check_synthetic(box, am.base_url)

            # An unchanged firing group is flushed every second (group_interval
            # 1s) but notified only once, until repeat_interval.
            time.sleep(max(0.0, 3.0 - (time.monotonic() - fired_at)))
            firing_notices = [n for n in box.at("/hook/chat") if has_alert("E2EMemoryPresent", "firing")(n)]
            assert len(firing_notices) == 1, firing_notices

            # 3. The condition goes away: the agent stops, Prometheus marks its
            #    series stale at the next scrape, the rule stops matching and a
            #    resolved notice follows.
            agent.stop()
            resolved = box.wait("/hook/chat", has_alert("E2EMemoryPresent", "resolved"))
            assert resolved["status"] == "resolved"
            assert [a["labels"]["instance"] for a in resolved["alerts"]] == [agent_addr]
            slack = box.wait("/slack/chat/0", slack_title("E2EMemoryPresent", "RESOLVED"))
            assert slack["attachments"][0]["title"] == f"[RESOLVED] E2EMemoryPresent on {agent_addr}"
            assert slack["attachments"][0]["color"] == "good"
            assert "*RESOLVED* Memory of" in slack["attachments"][0]["text"]

    assert time.monotonic() - started < 60


# --------------------------------------------------------------------------
# One incident, one notification


def scaled_routes(factor: float, text: Optional[str] = None) -> str:
    """alertmanager.yml with every route's waits and intervals times ``factor``
    (so the test runs in seconds with the shipped proportions)."""
    doc = yaml.safe_load(text if text is not None else (REPO / "alertmanager" / "alertmanager.yml").read_text())

    def scale(route: Dict[str, Any]) -> None:
        for key in ("group_wait", "group_interval", "repeat_interval"):
            if key in route:
                route[key] = f"{int(parse_duration(route[key], key).total_seconds() * factor * 1000)}ms"
        for child in route.get("routes", []):
            scale(child)

    scale(doc["route"])
    return yaml.safe_dump(doc, sort_keys=False)


FACTOR = 1 / 12  # 2m -> 10s, 10s -> 833ms, 1m -> 5s
# A CPU burn seen by the shipped rules (5m rates, evaluated every 15s): the
# 5m rate crosses 80% and 95% about 45s apart and both levels wait 5m
# (`for`), so the warning fires up to 45s + one evaluation before the
# critical; on the way down the critical resolves about 45s before the warning.
FIRING_GAP = 60 * FACTOR
RESOLVING_GAP = 45 * FACTOR


def posted(alertname: str, severity: str, ends: float = 3600) -> Dict[str, Any]:
    now = time.time()
    stamp = lambda t: time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t % 1 * 1000):03d}Z"  # noqa: E731
    return {"labels": {"alertname": alertname, "severity": severity, "instance": "web-1"}, "annotations": {"summary": f"CPU burn ({severity})"}, "startsAt": stamp(now - 1), "endsAt": stamp(now + ends)}


def test_a_cpu_burn_is_one_notification_per_channel(tmp_path: Path) -> None:
    """Warning, then critical a few seconds later, then both resolve: the
    people paged get the critical and its resolution, and no warning. With
    the warning's group_wait as short as the default route's, the warning
    would go out first (the check has teeth)."""
    require_tool("alertmanager")
    shipped = (REPO / "alertmanager" / "alertmanager.yml").read_text()
    doc = yaml.safe_load(shipped)
    warning_route = next(r for r in doc["route"]["routes"] if r["matchers"] == ['severity="warning"'])
    warning_route["group_wait"] = doc["route"]["group_wait"]
    quick_warning = yaml.safe_dump(doc, sort_keys=False)
    for sub in ("shipped", "quick"):
        (tmp_path / sub).mkdir()
    with webhook_sink() as (box, sink), webhook_sink() as (quick_box, quick_sink), \
            alertmanager_server(tmp_path / "shipped", adapt_alertmanager(sink, scaled_routes(FACTOR), fast=None)).start() as am, \
            alertmanager_server(tmp_path / "quick", adapt_alertmanager(quick_sink, scaled_routes(FACTOR, quick_warning), fast=None)).start() as quick_am:
        both = (am.base_url, quick_am.base_url)

        def post(*alerts: Dict[str, Any]) -> None:
            for url in both:
                requests.post(url + "/api/v2/alerts", json=list(alerts), timeout=10).raise_for_status()

        started = time.monotonic()
        post(posted("HostHighCpuUsage", "warning"))
        time.sleep(FIRING_GAP)
        post(posted("HostHighCpuUsage", "warning"), posted("HostHighCpuUsage", "critical"))
        assert time.monotonic() - started < 120 * FACTOR - 2, "the critical must arrive well within the warning's group_wait"
        box.wait("/hook/pager", has_alert("HostHighCpuUsage", "firing"))
        # Past the warning's group_wait: it was muted when its group flushed.
        time.sleep(max(0.0, 150 * FACTOR - (time.monotonic() - started)))
        post(posted("HostHighCpuUsage", "warning"), posted("HostHighCpuUsage", "critical", ends=-0.5))
        time.sleep(RESOLVING_GAP)
        post(posted("HostHighCpuUsage", "warning", ends=-0.5))
        resolved = box.wait("/hook/pager", has_alert("HostHighCpuUsage", "resolved"), timeout=30)
        quick_box.wait("/hook/pager", has_alert("HostHighCpuUsage", "resolved"), timeout=30)

    # Webhook, Slack and Discord of the chat receiver got nothing; the pager's
    # channels got the critical once and its resolution.
    assert [path for path, _ in box.items if "/chat" in path] == [], "the warning reached the chat channels"
    firing = [n for n in box.at("/hook/pager") if n["status"] == "firing"]
    assert [[a["labels"]["severity"] for a in n["alerts"]] for n in firing] == [["critical"]]
    assert [a["labels"]["severity"] for a in resolved["alerts"]] == ["critical"]
    assert len([n for n in box.at("/slack/pager/0") if n["attachments"][0]["title"].startswith("[FIRING")]) == 1
    # The same schedule with a 30s warning wait: the warning goes out first.
    assert any(n["status"] == "firing" for n in quick_box.at("/hook/chat")), quick_box.items
