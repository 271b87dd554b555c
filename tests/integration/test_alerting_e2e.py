"""Alert delivery end to end: agent -> Prometheus (repo rules) -> Alertmanager (repo routes) -> receivers.

Every server is real and listens on a loopback port picked here. The repo's
prometheus.yml and alertmanager.yml are loaded and adapted (fast intervals,
local addresses, every receiver pointed at a webhook receiver run by this test);
routing tree, inhibition rules, rule files and notification templates are used
as they are.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple

import pytest
import requests
import yaml

from support import REPO, agent_server, alertmanager_server, prometheus_server, require_tool

AM_DIR = REPO / "alertmanager"
PROM_DIR = REPO / "prometheus"
FAST = "1s"

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


# --------------------------------------------------------------------------
# A webhook receiver in the test process


class Inbox:
    """Notifications received, by path, and a way to wait for one."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self.items: List[Tuple[str, Dict[str, Any]]] = []

    def add(self, path: str, body: Dict[str, Any]) -> None:
        with self._cond:
            self.items.append((path, body))
            self._cond.notify_all()

    def at(self, path: Optional[str] = None) -> List[Dict[str, Any]]:
        """What arrived so far at ``path`` (everywhere when None)."""
        with self._cond:
            return [body for p, body in self.items if path is None or p == path]

    def wait(self, path: str, match: Callable[[Dict[str, Any]], bool], timeout: float = 20.0) -> Dict[str, Any]:
        """The first notification at ``path`` that ``match`` accepts."""
        def found() -> Optional[Dict[str, Any]]:
            return next((body for p, body in self.items if p == path and match(body)), None)

        with self._cond:
            if not self._cond.wait_for(lambda: found() is not None, timeout):
                summary = [(p, b.get("status"), [a.get("labels", {}).get("alertname") for a in b.get("alerts", [])]) for p, b in self.items]
                raise AssertionError(f"no matching notification at {path} within {timeout}s; received: {summary}")
            return found()  # type: ignore[return-value]


@pytest.fixture
def inbox() -> Iterator[Tuple[Inbox, str]]:
    box = Inbox()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            box.add(self.path, json.loads(body))
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield box, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


# --------------------------------------------------------------------------
# The repo's configs, adapted


def adapt_alertmanager(receiver_url: str) -> str:
    """alertmanager.yml with fast timings and every channel posting to ``receiver_url``."""
    doc = yaml.safe_load((AM_DIR / "alertmanager.yml").read_text())
    doc["templates"] = [str(AM_DIR / t) for t in doc["templates"]]

    def fast(route: Dict[str, Any]) -> None:
        for key in ("group_wait", "group_interval"):
            if key in route or route is doc["route"]:
                route[key] = FAST
        if "repeat_interval" in route or route is doc["route"]:
            route["repeat_interval"] = "1h"  # no repeats during the test
        for child in route.get("routes", []):
            fast(child)

    fast(doc["route"])
    for receiver in doc["receivers"]:
        name = receiver["name"]
        # Copies: YAML aliases make receivers share one config object.
        slack = [dict(config) for config in receiver.get("slack_configs", [])]
        for i, config in enumerate(slack):
            # Slack and Discord (its Slack-compatible endpoint) render our templates.
            config.pop("api_url_file")
            config["api_url"] = f"{receiver_url}/slack/{name}/{i}"
        # Webhook JSON carries every label and annotation; email needs an SMTP
        # server and is rendered by amtool in tests/alerting instead.
        receiver.clear()
        receiver.update(name=name, webhook_configs=[{"url": f"{receiver_url}/hook/{name}", "send_resolved": True}])
        if slack:
            receiver["slack_configs"] = slack
    return yaml.safe_dump(doc, sort_keys=False)


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
    agent_config = "collectors:\n" + "".join(f"  {c}: {{interval: 1}}\n" for c in ("cpu", "memory", "filesystem", "diskio", "network", "connections", "processes", "system"))
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
