"""alertmanager/alertmanager.yml and its templates, checked with amtool and a live Alertmanager."""

from __future__ import annotations

import json
import re
import subprocess
import time
from pathlib import Path
from typing import Any, Dict, Iterator, List, Tuple

import pytest
import requests
import yaml

from hostagent.alerting import thresholds
from support import REPO, alertmanager_server, require_tool

AM_DIR = REPO / "alertmanager"
CONFIG = AM_DIR / "alertmanager.yml"
SECRETS_DIR = "/etc/alertmanager/secrets/"
# Fields of Alertmanager 0.25 that hold a secret inline; the repo must use the
# *_file variant (or, where 0.25 has none, not use the field at all).
INLINE_SECRET_FIELDS = {
    "smtp_auth_password", "auth_password", "auth_secret", "smtp_auth_secret",
    "api_url", "slack_api_url", "webhook_url", "api_key", "routing_key",
    "service_key", "bot_token", "credentials", "password",
}


def amtool(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([require_tool("amtool"), *args], capture_output=True, text=True, timeout=30)


def load_config() -> Dict[str, Any]:
    return yaml.safe_load(CONFIG.read_text())


def walk(node: Any, path: str = "") -> Iterator[Tuple[str, str, Any]]:
    """Every (path, key, value) of a parsed YAML document."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield f"{path}.{key}", key, value
            yield from walk(value, f"{path}.{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from walk(value, f"{path}[{i}]")


# --------------------------------------------------------------------------
# amtool check-config and routing


def test_amtool_check_config_passes() -> None:
    result = amtool("check-config", str(CONFIG))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout
    assert "3 receivers" in result.stdout and "1 templates" in result.stdout


def test_amtool_check_config_rejects_a_broken_copy(tmp_path: Path) -> None:
    # Proves the check above can fail: a route naming a missing receiver.
    doc = load_config()
    doc["route"]["routes"][0]["receiver"] = "nobody"
    broken = tmp_path / "alertmanager.yml"
    broken.write_text(yaml.safe_dump(doc))
    result = amtool("check-config", str(broken))
    assert result.returncode != 0
    assert "nobody" in result.stdout + result.stderr


@pytest.mark.parametrize(
    "labels, receiver",
    [
        (["alertname=HostHighCpuUsage", "severity=critical", "instance=web-1:9100"], "pager"),
        (["alertname=HostFilesystemAlmostFull", "severity=critical", "instance=web-1:9100", "mountpoint=/"], "pager"),
        (["alertname=HostHighCpuUsage", "severity=warning", "instance=web-1:9100"], "chat"),
        (["alertname=HostHighLoad", "severity=info", "instance=web-1:9100"], "low-noise"),
        (["alertname=HostagentDown", "severity=critical", "instance=web-1:9100"], "pager"),
        # No or unknown severity: still seen by people in chat.
        (["alertname=SomethingElse", "instance=web-1:9100"], "chat"),
        (["alertname=SomethingElse", "severity=page", "instance=web-1:9100"], "chat"),
    ],
)
def test_routes_by_severity(labels: List[str], receiver: str) -> None:
    result = amtool("config", "routes", "test", f"--config.file={CONFIG}", f"--verify.receivers={receiver}", *labels)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.split() == [receiver]


def test_route_verification_can_fail() -> None:
    result = amtool("config", "routes", "test", f"--config.file={CONFIG}", "--verify.receivers=chat", "severity=critical", "alertname=X")
    assert result.returncode != 0
    assert result.stdout.split()[0] == "pager"


def test_grouping_and_timing() -> None:
    route = load_config()["route"]
    # test_id: only `hostagent alerts test` alerts have it, so each test is a group of its own.
    assert route["group_by"] == ["alertname", "instance", "test_id"]
    seconds = {"s": 1, "m": 60, "h": 3600}
    as_s = lambda d: int(d[:-1]) * seconds[d[-1]]  # noqa: E731
    assert as_s(route["group_wait"]) <= as_s(route["group_interval"]) <= as_s(route["repeat_interval"])
    children = {r["matchers"][0]: r for r in route["routes"]}
    assert set(children) == {'severity="critical"', 'severity="warning"', 'severity="info"'}
    # Critical reaches people fastest and is repeated most often; info least.
    crit, info = children['severity="critical"'], children['severity="info"']
    assert as_s(crit["group_wait"]) < as_s(route["group_wait"]) < as_s(info["group_wait"])
    assert as_s(crit["repeat_interval"]) < as_s(route["repeat_interval"]) < as_s(info["repeat_interval"])


# --------------------------------------------------------------------------
# inhibition


def test_inhibition_rules_structure() -> None:
    rules = load_config()["inhibit_rules"]
    by_source = {tuple(r["source_matchers"]): r for r in rules}
    crit = by_source[('severity="critical"',)]
    assert crit["target_matchers"] == ['severity=~"warning|info"']
    assert set(crit["equal"]) == {"alertname", "instance", "mountpoint", "device", "test_id"}
    warn = by_source[('severity="warning"',)]
    assert warn["target_matchers"] == ['severity="info"']
    assert set(warn["equal"]) == set(crit["equal"])


def test_agent_down_inhibition_uses_the_rules_alert_name() -> None:
    # The name must be the one the alert rules give to the agent-down alert.
    agent_down = thresholds.load()["agent_down"].alert
    rules = [r for r in load_config()["inhibit_rules"] if r["source_matchers"] == [f'alertname="{agent_down}"']]
    assert len(rules) == 1, f"no inhibition rule with source alertname={agent_down}"
    assert rules[0]["target_matchers"] == [f'alertname!="{agent_down}"']
    assert rules[0]["equal"] == ["instance"]


def test_low_available_memory_mutes_high_memory_usage_of_the_same_level() -> None:
    # Without swap the two alerts are one condition; the names are the rules' own.
    alerts = thresholds.load()
    low, high = alerts["memory_available"].alert, alerts["memory_usage"].alert
    rules = [r for r in load_config()["inhibit_rules"] if r["source_matchers"] == [f'alertname="{low}"']]
    assert len(rules) == 1, f"no inhibition rule with source alertname={low}"
    assert rules[0]["target_matchers"] == [f'alertname="{high}"']
    assert rules[0]["equal"] == ["instance", "severity"]


# One problem, one page: (source key, target keys, labels that must match).
ONE_PROBLEM_ONE_PAGE = (
    ("disk_io_saturation", ("disk_io_utilisation",), ["instance", "device", "test_id"]),
    ("disk_io_saturation", ("io_pressure", "cpu_iowait"), ["instance", "test_id"]),
    ("io_pressure", ("cpu_iowait",), ["instance", "test_id"]),
    ("cpu_pressure", ("load_per_core",), ["instance", "test_id"]),
    ("raid_degraded", ("raid_disk_failed",), ["instance", "device", "test_id"]),
)


@pytest.mark.parametrize("source, targets, equal", ONE_PROBLEM_ONE_PAGE, ids=lambda v: str(v))
def test_the_alert_that_names_the_cause_mutes_its_effects(source: str, targets: Tuple[str, ...], equal: List[str]) -> None:
    # The names are the rules' own, so renaming an alert in config/alerting.yaml breaks this.
    alerts = thresholds.load()
    names = [alerts[t].alert for t in targets]
    target = f'alertname="{names[0]}"' if len(names) == 1 else f'alertname=~"{"|".join(names)}"'
    rules = [r for r in load_config()["inhibit_rules"] if r["source_matchers"] == [f'alertname="{alerts[source].alert}"'] and r["target_matchers"] == [target]]
    assert len(rules) == 1, f"no inhibition rule from {alerts[source].alert} to {names}"
    assert rules[0]["equal"] == equal


def _alert(**labels: str) -> Dict[str, Any]:
    return {"labels": labels, "annotations": {"summary": "test"}}


def test_inhibition_in_a_live_alertmanager(tmp_path: Path) -> None:
    """The real Alertmanager mutes exactly the alerts the rules should mute."""
    with alertmanager_server(tmp_path, CONFIG.read_text().replace("templates/*.tmpl", str(AM_DIR / "templates" / "*.tmpl"))).start() as am:
        alerts = [
            _alert(alertname="HostHighCpuUsage", severity="critical", instance="a:9100"),
            _alert(alertname="HostHighCpuUsage", severity="warning", instance="a:9100"),  # muted by the critical
            _alert(alertname="HostHighCpuUsage", severity="warning", instance="b:9100"),  # other host: kept
            _alert(alertname="HostFilesystemAlmostFull", severity="critical", instance="a:9100", mountpoint="/"),
            _alert(alertname="HostFilesystemAlmostFull", severity="warning", instance="a:9100", mountpoint="/var"),  # other mount: kept
            _alert(alertname="HostFilesystemAlmostFull", severity="warning", instance="a:9100", mountpoint="/"),  # muted
            _alert(alertname="HostHighLoad", severity="info", instance="b:9100"),  # no higher level: kept
            _alert(alertname="HostagentDown", severity="critical", instance="c:9100"),
            _alert(alertname="HostHighMemoryUsage", severity="critical", instance="c:9100"),  # agent down: muted
            _alert(alertname="HostNetworkInterfaceDown", severity="warning", instance="c:9100", device="eth0"),  # muted
            # A host without swap at 97% memory: one problem, one page.
            _alert(alertname="HostLowAvailableMemory", severity="critical", instance="d:9100"),
            _alert(alertname="HostHighMemoryUsage", severity="critical", instance="d:9100"),  # muted
            _alert(alertname="HostHighMemoryUsage", severity="warning", instance="e:9100"),  # no low-available alert: kept
            _alert(alertname="HostLowAvailableMemory", severity="warning", instance="f:9100"),
            _alert(alertname="HostHighMemoryUsage", severity="critical", instance="f:9100"),  # higher level: kept
            # A saturated disk: the queue pages; busy time, I/O pressure and
            # iowait of that host are the same problem. Another disk's busy
            # time is not.
            _alert(alertname="HostDiskIoSaturation", severity="warning", instance="g:9100", device="sda"),
            _alert(alertname="HostDiskIoSaturated", severity="warning", instance="g:9100", device="sda"),  # muted
            _alert(alertname="HostDiskIoSaturated", severity="warning", instance="g:9100", device="sdb"),  # other disk: kept
            _alert(alertname="HostIoPressure", severity="warning", instance="g:9100"),  # muted
            _alert(alertname="HostHighCpuIowait", severity="warning", instance="g:9100"),  # muted
            # I/O pressure without a saturated disk (an NFS mount): it is sent, iowait is not.
            _alert(alertname="HostIoPressure", severity="warning", instance="h:9100"),
            _alert(alertname="HostHighCpuIowait", severity="warning", instance="h:9100"),  # muted
            # CPU pressure explains the load; load alone (tasks in D state) is sent.
            _alert(alertname="HostCpuPressure", severity="warning", instance="i:9100"),
            _alert(alertname="HostHighLoad", severity="warning", instance="i:9100"),  # muted
            _alert(alertname="HostHighLoad", severity="warning", instance="j:9100"),  # kept
            # A degraded array with its failed disk: the critical pages alone.
            _alert(alertname="HostRaidDegraded", severity="critical", instance="k:9100", device="md0"),
            _alert(alertname="HostRaidDiskFailed", severity="warning", instance="k:9100", device="md0"),  # muted
            _alert(alertname="HostRaidDiskFailed", severity="warning", instance="k:9100", device="md1"),  # other array: kept
        ]
        requests.post(am.base_url + "/api/v2/alerts", json=alerts, timeout=5).raise_for_status()

        def state() -> Dict[Tuple[str, str, str, str], bool]:
            got = requests.get(am.base_url + "/api/v2/alerts", timeout=5).json()
            return {
                (a["labels"]["alertname"], a["labels"]["severity"], a["labels"]["instance"], a["labels"].get("mountpoint", a["labels"].get("device", ""))): bool(a["status"]["inhibitedBy"])
                for a in got
            }

        # Alertmanager works out inhibitions as the alerts come in; on a
        # busy machine a read right after the post can see some not yet
        # muted. Wait (with a generous deadline) for the expected state.
        deadline = time.monotonic() + 20
        while state() != EXPECTED_INHIBITION and time.monotonic() < deadline:
            time.sleep(0.2)
        final = state()
    assert final == EXPECTED_INHIBITION


EXPECTED_INHIBITION = {
    ("HostHighCpuUsage", "critical", "a:9100", ""): False,
    ("HostHighCpuUsage", "warning", "a:9100", ""): True,
    ("HostHighCpuUsage", "warning", "b:9100", ""): False,
    ("HostFilesystemAlmostFull", "critical", "a:9100", "/"): False,
    ("HostFilesystemAlmostFull", "warning", "a:9100", "/var"): False,
    ("HostFilesystemAlmostFull", "warning", "a:9100", "/"): True,
    ("HostHighLoad", "info", "b:9100", ""): False,
    ("HostagentDown", "critical", "c:9100", ""): False,
    ("HostHighMemoryUsage", "critical", "c:9100", ""): True,
    ("HostNetworkInterfaceDown", "warning", "c:9100", "eth0"): True,
    ("HostLowAvailableMemory", "critical", "d:9100", ""): False,
    ("HostHighMemoryUsage", "critical", "d:9100", ""): True,
    ("HostHighMemoryUsage", "warning", "e:9100", ""): False,
    ("HostLowAvailableMemory", "warning", "f:9100", ""): False,
    ("HostHighMemoryUsage", "critical", "f:9100", ""): False,
    ("HostDiskIoSaturation", "warning", "g:9100", "sda"): False,
    ("HostDiskIoSaturated", "warning", "g:9100", "sda"): True,
    ("HostDiskIoSaturated", "warning", "g:9100", "sdb"): False,
    ("HostIoPressure", "warning", "g:9100", ""): True,
    ("HostHighCpuIowait", "warning", "g:9100", ""): True,
    ("HostIoPressure", "warning", "h:9100", ""): False,
    ("HostHighCpuIowait", "warning", "h:9100", ""): True,
    ("HostCpuPressure", "warning", "i:9100", ""): False,
    ("HostHighLoad", "warning", "i:9100", ""): True,
    ("HostHighLoad", "warning", "j:9100", ""): False,
    ("HostRaidDegraded", "critical", "k:9100", "md0"): False,
    ("HostRaidDiskFailed", "warning", "k:9100", "md0"): True,
    ("HostRaidDiskFailed", "warning", "k:9100", "md1"): False,
}


# --------------------------------------------------------------------------
# Removing a channel as docs/alerting.md says keeps the file valid

# Channel -> how to tell its entries apart once parsed.
CHANNELS = {
    "Email": lambda kind, c: kind == "email_configs",
    "Slack": lambda kind, c: kind == "slack_configs" and c.get("api_url_file", "").endswith("/slack_api_url"),
    "Discord": lambda kind, c: kind == "slack_configs" and c.get("api_url_file", "").endswith("/discord_slack_url"),
    "Webhook": lambda kind, c: kind == "webhook_configs",
}


def without_channel(text: str, channel: str) -> str:
    """``text`` with every entry of ``channel`` deleted as a person following
    docs/alerting.md would: from its comment (``# Slack``) to the next comment
    or key at the same indentation."""
    lines = text.splitlines(keepends=True)
    out: List[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        stripped = line.lstrip()
        if not re.match(rf"# {channel}\b", stripped):
            out.append(line)
            i += 1
            continue
        indent = len(line) - len(stripped)
        while i < len(lines) and lines[i].lstrip().startswith("#") and len(lines[i]) - len(lines[i].lstrip()) == indent:
            i += 1  # the entry's comment
        assert lines[i][indent:].startswith("- "), f"the # {channel} comment is not above an entry: {lines[i]!r}"
        i += 1
        while i < len(lines) and lines[i].strip() and len(lines[i]) - len(lines[i].lstrip()) > indent:
            i += 1  # the entry's fields
    return "".join(out)


def entries(doc: Dict[str, Any]) -> List[Tuple[str, Dict[str, Any]]]:
    return [(kind, c) for r in doc["receivers"] for kind, configs in r.items() if kind.endswith("_configs") for c in configs or []]


def test_docs_say_how_to_remove_a_channel() -> None:
    docs = " ".join((REPO / "docs" / "alerting.md").read_text().split())
    assert "each starts with a comment naming its channel (" + ", ".join(f"`# {c}`" for c in CHANNELS) + ")" in docs


@pytest.mark.parametrize("channel", sorted(CHANNELS))
def test_removing_a_channel_as_documented_keeps_the_file_valid(channel: str, tmp_path: Path) -> None:
    edited = without_channel(CONFIG.read_text(), channel)
    assert edited != CONFIG.read_text(), f"no # {channel} entry in alertmanager.yml"
    copy = tmp_path / "alertmanager.yml"
    copy.write_text(edited)
    (tmp_path / "templates").symlink_to(AM_DIR / "templates")
    result = amtool("check-config", str(copy))
    assert result.returncode == 0, f"without {channel}:\n{result.stdout}{result.stderr}"
    before, after = entries(load_config()), entries(yaml.safe_load(edited))
    assert [e for e in after if CHANNELS[channel](*e)] == []
    assert after == [e for e in before if not CHANNELS[channel](*e)], "other channels must stay as they were"


def test_removing_every_channel_keeps_the_file_valid(tmp_path: Path) -> None:
    text = CONFIG.read_text()
    for channel in CHANNELS:
        text = without_channel(text, channel)
    assert entries(yaml.safe_load(text)) == []
    copy = tmp_path / "alertmanager.yml"
    copy.write_text(text)
    (tmp_path / "templates").symlink_to(AM_DIR / "templates")
    result = amtool("check-config", str(copy))
    assert result.returncode == 0, result.stdout + result.stderr


# --------------------------------------------------------------------------
# receivers and secrets


def test_receivers_cover_every_channel() -> None:
    receivers = {r["name"]: r for r in load_config()["receivers"]}
    assert set(receivers) == {"pager", "chat", "low-noise"}
    pager = receivers["pager"]
    assert pager["email_configs"] and pager["webhook_configs"]
    slack_files = {c["api_url_file"] for c in pager["slack_configs"]}
    assert slack_files == {SECRETS_DIR + "slack_api_url", SECRETS_DIR + "discord_slack_url"}
    assert {c["api_url_file"] for c in receivers["chat"]["slack_configs"]} == slack_files
    assert receivers["low-noise"]["webhook_configs"]
    # People are told when a problem is over.
    for name in ("pager", "chat"):
        for kind, configs in receivers[name].items():
            if kind.endswith("_configs"):
                assert all(c.get("send_resolved") for c in configs), f"{name}.{kind}"
    assert load_config()["global"]["smtp_require_tls"] is True


def test_no_secret_is_inline_and_every_secret_file_is_documented() -> None:
    doc = load_config()
    files = set()
    for path, key, value in walk(doc):
        assert key not in INLINE_SECRET_FIELDS, f"{path}: secret given inline; use {key}_file"
        if key.endswith("_file"):
            assert isinstance(value, str) and value.startswith(SECRETS_DIR), f"{path}: {value!r} is not under {SECRETS_DIR}"
            files.add(value[len(SECRETS_DIR):])
    assert files == {"smtp_password", "slack_api_url", "discord_slack_url"}
    readme = (AM_DIR / "secrets" / "README.md").read_text()
    docs = (REPO / "docs" / "alerting.md").read_text()
    for name in files:
        assert f"`{name}`" in readme, f"{name} missing from alertmanager/secrets/README.md"
        assert name in docs, f"{name} missing from docs/alerting.md"


def test_secrets_directory_is_ignored_by_git() -> None:
    for name in ("slack_api_url", "smtp_password", "discord_slack_url"):
        probe = subprocess.run(["git", "check-ignore", "-q", f"alertmanager/secrets/{name}"], cwd=REPO)
        assert probe.returncode == 0, f"alertmanager/secrets/{name} would be committed"
    kept = subprocess.run(["git", "check-ignore", "-q", "alertmanager/secrets/README.md"], cwd=REPO)
    assert kept.returncode == 1


# --------------------------------------------------------------------------
# templates, rendered by amtool


def _data(status: str) -> Dict[str, Any]:
    firing = {
        "status": "firing",
        "labels": {"alertname": "HostFilesystemAlmostFull", "severity": "critical", "instance": "web-1:9100", "mountpoint": "/var", "device": "/dev/sda2"},
        "annotations": {
            "summary": "Filesystem /var on web-1:9100 is 97% full",
            "description": "Only 1.2GiB left on /var.",
            "value": "97%",
            "runbook_url": "https://runbooks.example.com/hostfilesystemalmostfull",
        },
        "startsAt": "2024-05-01T10:00:00Z",
        "endsAt": "0001-01-01T00:00:00Z",
        "generatorURL": "http://prometheus:9090/graph?g0.expr=x",
        "fingerprint": "1",
    }
    resolved = dict(firing, status="resolved", endsAt="2024-05-01T10:30:00Z", fingerprint="2")
    resolved["labels"] = dict(firing["labels"], mountpoint="/")
    alerts = [firing, resolved] if status == "firing" else [resolved]
    return {
        "receiver": "pager",
        "status": status,
        "alerts": alerts,
        "groupLabels": {"alertname": "HostFilesystemAlmostFull", "instance": "web-1:9100"},
        "commonLabels": {"alertname": "HostFilesystemAlmostFull", "severity": "critical", "instance": "web-1:9100"},
        "commonAnnotations": {},
        "externalURL": "http://alertmanager:9093",
    }


def render(tmp_path: Path, name: str, data: Dict[str, Any], kind: str = "text") -> str:
    data_file = tmp_path / "data.json"
    data_file.write_text(json.dumps(data))
    result = amtool(
        "template", "render",
        f"--template.glob={AM_DIR / 'templates' / '*.tmpl'}",
        f"--template.data={data_file}",
        f"--template.type={kind}",
        f'--template.text={{{{ template "{name}" . }}}}',
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def test_title_and_colour(tmp_path: Path) -> None:
    assert render(tmp_path, "hostagent.title", _data("firing")).strip() == "[FIRING:1] HostFilesystemAlmostFull on web-1:9100 (critical)"
    assert render(tmp_path, "hostagent.title", _data("resolved")).strip() == "[RESOLVED] HostFilesystemAlmostFull on web-1:9100"
    assert render(tmp_path, "hostagent.color", _data("firing")).strip() == "danger"
    assert render(tmp_path, "hostagent.color", _data("resolved")).strip() == "good"
    assert render(tmp_path, "hostagent.link", _data("firing")).strip() == "http://alertmanager:9093/#/alerts?receiver=pager"


def test_slack_text_shows_what_an_operator_needs(tmp_path: Path) -> None:
    text = render(tmp_path, "hostagent.slack.text", _data("firing"))
    lines = text.strip().splitlines()
    assert lines[0] == "*FIRING* Filesystem /var on web-1:9100 is 97% full"
    for expected in (
        "> Severity: `critical`",
        "> Host: `web-1:9100`",
        "> Mountpoint: `/var`",
        "> Device: `/dev/sda2`",
        "> Value: 97%",
        "> firing since 2024-05-01 10:00:00 UTC",
        "> Only 1.2GiB left on /var.",
        "> Runbook: <https://runbooks.example.com/hostfilesystemalmostfull|https://runbooks.example.com/hostfilesystemalmostfull>",
    ):
        assert expected in lines, f"{expected!r} not in\n{text}"
    # Firing alerts come first, then resolved ones with their end time.
    resolved_at = lines.index("*RESOLVED* Filesystem /var on web-1:9100 is 97% full")
    assert resolved_at > lines.index("> Value: 97%")
    assert "> resolved 2024-05-01 10:30:00 UTC (fired from 2024-05-01 10:00:00 UTC)" in lines[resolved_at:]


def test_templates_cope_with_bare_alerts(tmp_path: Path) -> None:
    data = _data("firing")
    data["alerts"] = [{"status": "firing", "labels": {"alertname": "Bare"}, "annotations": {}, "startsAt": "2024-05-01T10:00:00Z",
                       "endsAt": "0001-01-01T00:00:00Z", "generatorURL": "", "fingerprint": "3"}]
    data["groupLabels"] = {"alertname": "Bare"}
    data["commonLabels"] = {"alertname": "Bare"}
    assert render(tmp_path, "hostagent.title", data).strip() == "[FIRING:1] Bare"
    assert render(tmp_path, "hostagent.slack.text", data).strip().splitlines() == ["*FIRING* Bare", "> firing since 2024-05-01 10:00:00 UTC"]
    assert render(tmp_path, "hostagent.color", data).strip() == "warning"


def test_email_text_and_html(tmp_path: Path) -> None:
    text = render(tmp_path, "hostagent.email.text", _data("firing"))
    assert text.startswith("[FIRING:1] HostFilesystemAlmostFull on web-1:9100 (critical)\n")
    assert "  Value:      97%" in text and "  Host:       web-1:9100" in text
    assert "RESOLVED: Filesystem /var on web-1:9100 is 97% full" in text
    assert "All alerts of this group: http://alertmanager:9093/#/alerts?receiver=pager" in text
    data = _data("firing")
    data["alerts"][0]["annotations"]["description"] = "disk <full> & busy"
    html = render(tmp_path, "hostagent.email.html", data, kind="html")
    assert "<title>[FIRING:1] HostFilesystemAlmostFull on web-1:9100 (critical)</title>" in html
    assert '<a href="https://runbooks.example.com/hostfilesystemalmostfull">' in html
    # Annotation text is escaped, not injected into the mail's markup.
    assert "disk &lt;full&gt; &amp; busy" in html
    assert html.count("<table") == 2
