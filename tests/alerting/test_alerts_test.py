"""``hostagent alerts test`` against a real Alertmanager running the
repository's routes, with every channel posting to a webhook sink here: each
test reaches its own channels, and the command says whether its alert was
delivered, silenced or inhibited."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any, Iterator, List, Tuple

import pytest
import requests
import yaml

from alerting.amstack import Inbox, adapt_alertmanager, webhook_sink
from hostagent.alerting import cli, routing
from support import alertmanager_server, free_port, require_tool


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Tuple[Inbox, str]]:
    """(sink, Alertmanager URL): the repo's routes at 1s waits, channels into the sink."""
    with webhook_sink() as (box, sink_url):
        with alertmanager_server(tmp_path, adapt_alertmanager(sink_url)).start() as am:
            yield box, am.base_url


def run(argv: List[str], capsys: pytest.CaptureFixture) -> Tuple[int, str]:
    status = cli.alerts_main(argv)
    out, err = capsys.readouterr()
    assert err == ""
    return status, out


def test_info_then_warning_each_reach_their_channels(stack: Tuple[Inbox, str], capsys: pytest.CaptureFixture) -> None:
    """As docs/alerting.md runs them: the warning test must not mute the info one."""
    box, url = stack
    status, out = run(["--alertmanager.url", url, "test", "--severity", "info", "--instance", "web-1", "--no-wait"], capsys)
    assert status == 0 and "Posted HostagentTestAlert (severity=info, instance=web-1, test_id=" in out
    status, out = run(["--alertmanager.url", url, "test", "--severity", "warning", "--instance", "web-1"], capsys)
    assert status == 0, out
    assert "Routed to receiver chat (slack x2, webhook x1)" in out
    assert "Delivered: slack 2 of 2, webhook 1 of 1." in out
    chat = box.wait("/hook/chat", lambda n: n["commonLabels"].get("alertname") == "HostagentTestAlert")
    assert chat["commonLabels"]["severity"] == "warning"
    info = box.wait("/hook/low-noise", lambda n: n["commonLabels"].get("alertname") == "HostagentTestAlert")
    assert info["commonLabels"]["severity"] == "info" and info["commonLabels"]["instance"] == "web-1"
    states = {a["labels"]["severity"]: a["status"] for a in requests.get(url + "/api/v2/alerts", timeout=10).json()}
    assert states["info"]["inhibitedBy"] == [] and states["info"]["state"] == "active"


def test_a_silenced_test_alert_is_reported_with_its_silence(stack: Tuple[Inbox, str], capsys: pytest.CaptureFixture) -> None:
    box, url = stack
    assert cli.silence_main(["--alertmanager.url", url, "add", "--instance", "db-2", "--comment", "kernel upgrade", "--author", "alice"]) == 0
    silence_id = capsys.readouterr().out.split()[1]
    status, out = run(["--alertmanager.url", url, "test", "--severity", "critical", "--instance", "db-2"], capsys)
    assert status == 1
    assert f'Silenced by silence {silence_id} (instance="db-2"; alice: kernel upgrade): no channel gets it.' in out
    assert [n for n in box.at() if n.get("commonLabels", {}).get("instance") == "db-2"] == []


def test_an_inhibited_test_alert_names_what_mutes_it(stack: Tuple[Inbox, str], capsys: pytest.CaptureFixture) -> None:
    box, url = stack
    down = {"labels": {"alertname": "HostagentDown", "severity": "critical", "instance": "db-3"}, "annotations": {"summary": "down"}}
    requests.post(url + "/api/v2/alerts", json=[down], timeout=10).raise_for_status()
    status, out = run(["--alertmanager.url", url, "test", "--instance", "db-3"], capsys)
    assert status == 1
    assert "Inhibited by HostagentDown (critical, instance=db-3): no channel gets it while that fires." in out
    assert not any(a["labels"]["alertname"] == "HostagentTestAlert" for n in box.at() for a in n.get("alerts", []))


def test_a_failing_channel_is_reported(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    closed = f"http://127.0.0.1:{free_port()}"
    config = f"""
route:
  receiver: broken
  group_wait: 1s
receivers:
  - name: broken
    webhook_configs:
      - url: {closed}/hook
"""
    with alertmanager_server(tmp_path, config).start() as am:
        status, out = run(["--alertmanager.url", am.base_url, "test", "--instance", "web-9", "--wait", "20s"], capsys)
    assert status == 1
    assert "Routed to receiver broken (webhook x1)" in out
    assert "Delivery failing: webhook 0 of 1 (" in out and re.search(r"\(\d+ failed attempts?\)", out)


def test_a_receiver_without_channels_is_reported(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    with alertmanager_server(tmp_path, "route: {receiver: nowhere}\nreceivers: [{name: nowhere}]\n").start() as am:
        status, out = run(["--alertmanager.url", am.base_url, "test", "--instance", "web-9"], capsys)
    assert status == 1
    assert "Routed to receiver nowhere, which has no channels: nothing is sent." in out


@pytest.mark.parametrize(
    "labels, receiver, group_wait",
    [
        ({"severity": "critical", "alertname": "X"}, "pager", "10s"),
        ({"severity": "warning", "alertname": "X"}, "chat", "2m"),
        ({"severity": "info", "alertname": "X"}, "low-noise", "5m"),
        ({"alertname": "X"}, "chat", "30s"),
    ],
)
def test_routes_are_read_as_alertmanager_reads_them(labels: Any, receiver: str, group_wait: str) -> None:
    config = yaml.safe_load(adapt_alertmanager("http://127.0.0.1:9", fast=None))
    route = routing.find_route(config, labels)
    assert (route.receiver, route.group_wait) == (receiver, group_wait)
    assert routing.integrations(config, "pager") == {"webhook": 1, "slack": 2}


ROUTING = """
route:
  receiver: root
  routes:
    - matchers: ['team=~"db|cache"', 'severity!="info"']
      receiver: db
      continue: true
    - match: {severity: critical}
      receiver: pager
      routes:
        - match_re: {alertname: "Host.*Disk.*"}
          receiver: storage
    - matchers: [env=staging]
      receiver: staging
receivers: [{name: root}, {name: db}, {name: pager}, {name: storage}, {name: staging}]
"""


@pytest.mark.parametrize(
    "labels",
    [
        {"team": "db", "severity": "critical", "alertname": "X"},
        {"team": "db", "severity": "info", "alertname": "X"},
        {"team": "dba", "severity": "warning"},
        {"severity": "critical", "alertname": "HostDiskFull"},
        {"severity": "critical", "alertname": "NotHostDiskFull"},
        {"env": "staging"},
        {},
    ],
)
def test_route_walk_agrees_with_amtool(labels: Any, tmp_path: Path) -> None:
    """The receivers found are the ones Alertmanager's own amtool finds."""
    config = tmp_path / "am.yml"
    config.write_text(ROUTING)
    args = [f"{k}={v}" for k, v in labels.items()] or ["alertname=none"]
    done = subprocess.run([require_tool("amtool"), "config", "routes", "test", f"--config.file={config}", *args], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    theirs = done.stdout.strip().split(",")
    ours = [r.receiver for r in routing.find_routes(yaml.safe_load(ROUTING), labels)]
    assert ours == theirs
