"""``hostagent alerts`` and ``hostagent silence`` against a real Alertmanager on loopback."""

from __future__ import annotations

import datetime as dt
import json
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Dict, Iterator, List, Tuple

import pytest
import requests

from hostagent.alerting import cli
from hostagent.alerting.amclient import parse_time
from support import REPO, alertmanager_server, free_port, wait_until

# Nothing is delivered: these tests look at Alertmanager's state only.
QUIET_CONFIG = """
route:
  receiver: nowhere
  group_by: [alertname, instance]
receivers:
  - name: nowhere
"""


@pytest.fixture(scope="module")
def am_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    tmp = tmp_path_factory.mktemp("am-cli")
    with alertmanager_server(tmp, QUIET_CONFIG).start() as am:
        yield am.base_url


@pytest.fixture(autouse=True)
def no_url_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(cli.URL_ENV, raising=False)


def run(main: Any, argv: List[str], capsys: pytest.CaptureFixture) -> Tuple[int, str, str]:
    status = main(argv)
    out, err = capsys.readouterr()
    return status, out, err


def api(url: str, path: str) -> Any:
    resp = requests.get(f"{url}/api/v2{path}", timeout=5)
    resp.raise_for_status()
    return resp.json()


def alerts_named(url: str, instance: str) -> List[Dict[str, Any]]:
    return [a for a in api(url, "/alerts") if a["labels"].get("instance") == instance]


# --------------------------------------------------------------------------
# hostagent alerts test / list

MUTING_CONFIG = QUIET_CONFIG + """
inhibit_rules:
  - source_matchers: ['severity="critical"']
    target_matchers: ['severity="warning"']
    equal: [instance]
"""


def test_active_says_what_silences_and_inhibitions_hide(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    with alertmanager_server(tmp_path, MUTING_CONFIG).start() as am:
        url = am.base_url
        assert cli.alerts_main(["--alertmanager.url", url, "test", "--severity", "info", "--instance", "m1:9100", "--no-wait"]) == 0
        capsys.readouterr()
        status, out, _ = run(cli.silence_main, ["--alertmanager.url", url, "add", "--instance", "m1:9100", "--comment", "work"], capsys)
        silence_id = out.split()[1]
        wait_until(lambda: all(a["status"]["silencedBy"] for a in alerts_named(url, "m1:9100")), 20, "the alert to be silenced")
        status, out, err = run(cli.alerts_main, ["--alertmanager.url", url, "--active"], capsys)
        assert (status, err) == (0, "")
        lines = out.splitlines()
        assert lines[0] == f"No alerts firing outside silences and inhibitions (Alertmanager at {url})."
        assert lines[1] == f"1 firing alert is silenced: HostagentTestAlert on m1:9100 (silence {silence_id[:8]})"
        # A critical alert inhibits a warning one of the same instance.
        for severity in ("critical", "warning"):
            assert cli.alerts_main(["--alertmanager.url", url, "test", "--severity", severity, "--instance", "m2:9100", "--no-wait"]) == 0
        wait_until(lambda: any(a["status"]["inhibitedBy"] for a in alerts_named(url, "m2:9100")), 30, "the warning to be inhibited")
        capsys.readouterr()
        status, out, _ = run(cli.alerts_main, ["--alertmanager.url", url, "--active"], capsys)
        lines = out.splitlines()
        assert lines[0].split()[:4] == ["ALERTNAME", "SEVERITY", "INSTANCE", "STATE"]
        assert [line.split()[:4] for line in lines[1:2]] == [["HostagentTestAlert", "critical", "m2:9100", "active"]]
        assert lines[2:4] == [
            f"1 firing alert is silenced: HostagentTestAlert on m1:9100 (silence {silence_id[:8]})",
            "1 firing alert is inhibited: HostagentTestAlert on m2:9100",
        ]


@pytest.mark.parametrize("zone, shown", [("UTC", " UTC"), ("Asia/Kolkata", " UTC+05:30"), ("America/St_Johns", " UTC-0")])
def test_times_carry_their_zone(am_url: str, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch, zone: str, shown: str) -> None:
    monkeypatch.setenv("TZ", zone)
    time.tzset()
    try:
        status, out, _ = run(cli.silence_main, ["--alertmanager.url", am_url, "add", "--instance", f"z-{zone}", "--duration", "1h", "--comment", "zones"], capsys)
        assert status == 0 and re.search(r"until \d{4}-\d\d-\d\d \d\d:\d\d:\d\d" + re.escape(shown), out), out
        status, out, _ = run(cli.silence_main, ["--alertmanager.url", am_url, "list"], capsys)
        [row] = [line for line in out.splitlines() if f"z-{zone}" in line]
        assert re.search(r"\d\d:\d\d" + re.escape(shown) + r"[:0-9]* \(in 59m\)", row), row
    finally:
        monkeypatch.undo()
        time.tzset()


def test_test_alert_is_posted_with_labels_annotations_and_end(am_url: str, capsys: pytest.CaptureFixture) -> None:
    status, out, err = run(cli.alerts_main, ["--alertmanager.url", am_url, "test", "--severity", "critical", "--instance", "t1:9100", "--duration", "10m", "--no-wait"], capsys)
    assert (status, err) == (0, "")
    assert "Posted HostagentTestAlert (severity=critical, instance=t1:9100, test_id=" in out
    [alert] = alerts_named(am_url, "t1:9100")
    test_id = alert["labels"].pop("test_id")
    assert f"test_id={test_id}) to {am_url}" in out
    assert alert["labels"] == {"alertname": "HostagentTestAlert", "severity": "critical", "instance": "t1:9100", "job": "hostagent-test"}
    assert "t1:9100" in alert["annotations"]["summary"] and alert["annotations"]["description"]
    lasts = parse_time(alert["endsAt"]) - parse_time(alert["startsAt"])
    assert dt.timedelta(minutes=9, seconds=50) < lasts <= dt.timedelta(minutes=10)


def test_test_alert_resolve(am_url: str, capsys: pytest.CaptureFixture) -> None:
    for severity in ("info", "warning"):
        assert cli.alerts_main(["--alertmanager.url", am_url, "test", "--severity", severity, "--instance", "t2:9100", "--no-wait"]) == 0
    assert len(alerts_named(am_url, "t2:9100")) == 2, "two tests are two alerts"
    capsys.readouterr()
    status, out, _ = run(cli.alerts_main, ["--alertmanager.url", am_url, "test", "--instance", "t2:9100", "--severity", "info", "--resolve"], capsys)
    assert status == 0 and "Resolved 1 test alert (HostagentTestAlert, severity=info, instance=t2:9100)" in out
    assert [a["labels"]["severity"] for a in alerts_named(am_url, "t2:9100")] == ["warning"]
    status, out, _ = run(cli.alerts_main, ["--alertmanager.url", am_url, "test", "--instance", "t2:9100", "--resolve"], capsys)
    assert status == 0 and "Resolved 1 test alert (HostagentTestAlert, instance=t2:9100)" in out
    # Resolved alerts are no longer active.
    assert alerts_named(am_url, "t2:9100") == []
    status, out, _ = run(cli.alerts_main, ["--alertmanager.url", am_url, "test", "--instance", "t2:9100", "--resolve"], capsys)
    assert status == 0 and "No HostagentTestAlert (instance=t2:9100) is active" in out


def test_list_shows_firing_alerts_and_silences(am_url: str, capsys: pytest.CaptureFixture) -> None:
    cli.alerts_main(["--alertmanager.url", am_url, "test", "--severity", "info", "--instance", "t3:9100", "--no-wait"])
    cli.silence_main(["--alertmanager.url", am_url, "add", "--instance", "t3:9100", "--duration", "1h", "--comment", "listing test", "--author", "ops"])
    capsys.readouterr()
    status, out, err = run(cli.alerts_main, ["--alertmanager.url", am_url], capsys)
    assert (status, err) == (0, "")
    lines = out.splitlines()
    assert lines[0].split() == ["ALERTNAME", "SEVERITY", "INSTANCE", "STATE", "SINCE", "SUMMARY"]
    [row] = [line for line in lines if "t3:9100" in line and line.startswith("HostagentTestAlert")]
    assert row.split()[:4] == ["HostagentTestAlert", "info", "t3:9100", "silenced"]
    assert "ago)" in row and "Test alert (info) for t3:9100" in row
    [silence_row] = [line for line in lines if "listing test" in line]
    assert 'instance="t3:9100"' in silence_row and " ops " in silence_row and "(in 59m)" in silence_row
    # --active hides what is silenced; `list` is the same command.
    status, out, _ = run(cli.alerts_main, ["list", "--active", "--alertmanager.url", am_url], capsys)
    assert status == 0 and "t3:9100  silenced" not in out


def test_list_json(am_url: str, capsys: pytest.CaptureFixture) -> None:
    cli.alerts_main(["--alertmanager.url", am_url, "test", "--instance", "t4:9100", "--no-wait"])
    capsys.readouterr()
    status, out, _ = run(cli.alerts_main, ["--alertmanager.url", am_url, "-o", "json"], capsys)
    doc = json.loads(out)
    assert status == 0 and set(doc) == {"alerts", "silences"}
    assert any(a["labels"]["instance"] == "t4:9100" for a in doc["alerts"])


def test_url_from_environment(am_url: str, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(cli.URL_ENV, am_url)
    status, out, _ = run(cli.silence_main, ["list"], capsys)
    assert status == 0 and ("SILENCE ID" in out or f"No active silences (Alertmanager at {am_url})" in out)
    # The flag wins over the environment.
    monkeypatch.setenv(cli.URL_ENV, "http://127.0.0.1:1")
    assert cli.silence_main(["list", "--alertmanager.url", am_url]) == 0


def test_empty_alertmanager(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    with alertmanager_server(tmp_path, QUIET_CONFIG).start() as am:
        status, out, _ = run(cli.alerts_main, ["--alertmanager.url", am.base_url], capsys)
        assert status == 0
        assert out == f"No alerts firing (Alertmanager at {am.base_url}).\n\nNo active silences.\n"
        status, out, _ = run(cli.silence_main, ["list", "--alertmanager.url", am.base_url], capsys)
        assert out == f"No active silences (Alertmanager at {am.base_url}).\n"


# --------------------------------------------------------------------------
# hostagent silence


def test_silence_add_list_expire(am_url: str, capsys: pytest.CaptureFixture) -> None:
    status, out, err = run(
        cli.silence_main,
        ["add", "--alertmanager.url", am_url, "--instance", "s1:9100", "--alertname", "HostHighCpuUsage", "--duration", "2h", "--comment", "kernel upgrade", "--author", "alice"],
        capsys,
    )
    assert (status, err) == (0, "")
    silence_id = out.split()[1]
    [silence] = [s for s in api(am_url, "/silences") if s["id"] == silence_id]
    assert silence["status"]["state"] == "active"
    assert silence["createdBy"] == "alice" and silence["comment"] == "kernel upgrade"
    assert sorted((m["name"], m["value"], m["isEqual"], m["isRegex"]) for m in silence["matchers"]) == [
        ("alertname", "HostHighCpuUsage", True, False),
        ("instance", "s1:9100", True, False),
    ]
    lasts = parse_time(silence["endsAt"]) - parse_time(silence["startsAt"])
    assert dt.timedelta(hours=1, minutes=59) < lasts <= dt.timedelta(hours=2)

    status, out, _ = run(cli.silence_main, ["list", "--alertmanager.url", am_url], capsys)
    [row] = [line for line in out.splitlines() if line.startswith(silence_id)]
    assert 'instance="s1:9100", alertname="HostHighCpuUsage"' in row and "kernel upgrade" in row

    # Expire by a unique prefix of the ID.
    status, out, _ = run(cli.silence_main, ["expire", silence_id[:13], "--alertmanager.url", am_url], capsys)
    assert (status, out) == (0, f"Expired silence {silence_id}.\n")
    [silence] = [s for s in api(am_url, "/silences") if s["id"] == silence_id]
    assert silence["status"]["state"] == "expired"
    status, out, _ = run(cli.silence_main, ["list", "--alertmanager.url", am_url], capsys)
    assert silence_id not in out
    status, out, _ = run(cli.silence_main, ["list", "--all", "--alertmanager.url", am_url], capsys)
    assert silence_id in out and "expired" in out
    status, out, _ = run(cli.silence_main, ["expire", silence_id, "--alertmanager.url", am_url], capsys)
    assert (status, out) == (0, f"Silence {silence_id} had already expired.\n")


def test_silence_actually_mutes_the_instance(am_url: str, capsys: pytest.CaptureFixture) -> None:
    cli.alerts_main(["--alertmanager.url", am_url, "test", "--instance", "s2:9100", "--no-wait"])
    cli.alerts_main(["--alertmanager.url", am_url, "test", "--instance", "s3:9100", "--no-wait"])
    assert cli.silence_main(["--alertmanager.url", am_url, "add", "--instance", "s2:9100", "--comment", "maintenance"]) == 0
    [muted] = alerts_named(am_url, "s2:9100")
    [kept] = alerts_named(am_url, "s3:9100")
    assert muted["status"]["silencedBy"] and muted["status"]["state"] == "suppressed"
    assert not kept["status"]["silencedBy"] and kept["status"]["state"] == "active"


def test_expire_unknown_id(am_url: str, capsys: pytest.CaptureFixture) -> None:
    status, out, err = run(cli.silence_main, ["expire", "0000dead", "--alertmanager.url", am_url], capsys)
    assert status == 1 and out == ""
    assert err == "hostagent silence expire: error: no silence with ID '0000dead' (see `hostagent silence list`)\n"


@pytest.mark.parametrize(
    "argv, message",
    [
        (["add", "--duration", "2h", "--comment", "x"], "give --instance and/or --alertname"),
        (["add", "--instance", "a", "--duration", "2x", "--comment", "x"], "--duration: '2x' is not a duration"),
        (["add", "--instance", "a", "--duration", "0m", "--comment", "x"], "--duration: the duration must be longer than 0"),
        (["add", "--instance", "a", "--comment", "  "], "--comment must not be empty"),
    ],
)
def test_silence_add_usage_errors(am_url: str, capsys: pytest.CaptureFixture, argv: List[str], message: str) -> None:
    before = len(api(am_url, "/silences"))
    status, out, err = run(cli.silence_main, ["--alertmanager.url", am_url, *argv], capsys)
    assert status == 2 and out == ""
    assert err.startswith("hostagent silence: error: ") and message in err
    assert len(api(am_url, "/silences")) == before


def test_argparse_errors_exit_2(capsys: pytest.CaptureFixture) -> None:
    status, _, err = run(cli.alerts_main, ["test", "--severity", "page"], capsys)
    assert status == 2 and "invalid choice: 'page'" in err
    status, _, err = run(cli.silence_main, ["add", "--instance", "a"], capsys)
    assert status == 2 and "--comment" in err
    status, _, err = run(cli.silence_main, [], capsys)
    assert status == 2 and "required" in err


# --------------------------------------------------------------------------
# Alertmanager unreachable or wrong


@pytest.mark.parametrize(
    "main, argv",
    [
        (cli.alerts_main, []),
        (cli.alerts_main, ["test"]),
        (cli.silence_main, ["list"]),
        (cli.silence_main, ["add", "--instance", "a", "--comment", "x"]),
        (cli.silence_main, ["expire", "abc"]),
    ],
)
def test_unreachable_alertmanager_is_one_clear_line(main: Any, argv: List[str], capsys: pytest.CaptureFixture) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    status, out, err = run(main, [*argv, "--alertmanager.url", url], capsys)
    assert status == 1 and out == ""
    assert err.count("\n") == 1 and "Traceback" not in err
    assert f"cannot reach Alertmanager at {url} (Connection refused)" in err


def test_url_without_scheme(capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(cli.URL_ENV, "localhost:9093")
    status, _, err = run(cli.alerts_main, [], capsys)
    assert status == 2
    assert err == "hostagent alerts: error: HOSTAGENT_ALERTMANAGER_URL: Alertmanager URL must start with http:// or https://, got 'localhost:9093'\n"


def test_not_an_alertmanager(am_url: str, capsys: pytest.CaptureFixture) -> None:
    # Alertmanager's own /metrics path is not its API: a 404 is reported plainly.
    status, _, err = run(cli.silence_main, ["list", "--alertmanager.url", am_url + "/metrics"], capsys)
    assert status == 1 and err.count("\n") == 1
    assert f"Alertmanager at {am_url}/metrics answered 404 to GET /silences" in err


def test_command_line_entry_point(am_url: str) -> None:
    """The installed command reaches these functions and exits with their status."""
    result = subprocess.run(
        [sys.executable, "-m", "hostagent", "silence", "list", "--alertmanager.url", am_url],
        capture_output=True, text=True, timeout=60, cwd=REPO, env={"PYTHONPATH": str(REPO / "src"), "PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 0, result.stderr
    assert "SILENCE ID" in result.stdout or "No active silences" in result.stdout
    result = subprocess.run(
        [sys.executable, "-m", "hostagent", "alerts", "--alertmanager.url", f"http://127.0.0.1:{free_port()}"],
        capture_output=True, text=True, timeout=60, cwd=REPO, env={"PYTHONPATH": str(REPO / "src"), "PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "cannot reach Alertmanager" in result.stderr


# --------------------------------------------------------------------------
# helpers


@pytest.mark.parametrize(
    "text, seconds",
    [("90s", 90), ("30m", 1800), ("2h", 7200), ("1h30m", 5400), ("1d", 86400), ("1w", 604800), ("500ms", 0.5)],
)
def test_parse_duration(text: str, seconds: float) -> None:
    assert cli.parse_duration(text, "--duration").total_seconds() == seconds


@pytest.mark.parametrize("text", ["", "2", "h", "2 h", "1.5h", "-1h", "2hours", "1h30"])
def test_parse_duration_rejects(text: str) -> None:
    with pytest.raises(cli.UsageError, match="--duration"):
        cli.parse_duration(text, "--duration")


def test_parse_time_handles_nanoseconds_and_zulu() -> None:
    assert parse_time("2024-05-01T10:00:00.123456789Z") == dt.datetime(2024, 5, 1, 10, 0, 0, 123456, tzinfo=dt.timezone.utc)
    assert parse_time("2024-05-01T10:00:00Z") == dt.datetime(2024, 5, 1, 10, tzinfo=dt.timezone.utc)
    assert parse_time("2024-05-01T12:00:00.5+02:00") == dt.datetime(2024, 5, 1, 10, 0, 0, 500000, tzinfo=dt.timezone.utc)


def test_one_line() -> None:
    assert cli.one_line("  a\n b  ") == "a b"
    assert cli.one_line("x" * 100, 10) == "xxxxxxx..."


def test_human_duration() -> None:
    assert [cli.human_duration(dt.timedelta(seconds=s)) for s in (5, 125, 3 * 3600 + 300, 3 * 86400 + 7200)] == ["5s", "2m", "3h05m", "3d2h"]
