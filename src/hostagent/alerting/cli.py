"""Operator commands against Alertmanager: ``hostagent alerts`` and ``hostagent silence``.

    $ hostagent alerts
    ALERTNAME         SEVERITY  INSTANCE  STATE   SINCE                           SUMMARY
    HostHighCpuUsage  critical  web-1     active  2024-05-01 10:02 UTC (14m ago)  CPU usage on web-1 is 97%

    SILENCE ID                            STATE   MATCHERS         ENDS                             CREATED BY  COMMENT
    6b1c4d6e-0f2a-4a55-9a6e-2c1b0e9f1d3a  active  instance="db-2"  2024-05-01 12:00 UTC (in 1h44m)  alice       kernel upgrade

    $ hostagent silence add --instance db-2 --duration 2h --comment "kernel upgrade"
    $ hostagent silence expire 6b1c4d6e-0f2a-4a55-9a6e-2c1b0e9f1d3a
    $ hostagent alerts test --severity critical --instance web-1
    Posted HostagentTestAlert (severity=critical, instance=web-1, test_id=20240501-100203-3fa2) to http://localhost:9093.
    Routed to receiver pager (email x1, slack x2, webhook x1); the first notice goes out after its group_wait (10s). Waiting up to 25s...
    Delivered: email 1 of 1, slack 2 of 2, webhook 1 of 1.
"""

from __future__ import annotations

import argparse
import datetime as dt
import getpass
import json
import os
import secrets
import socket
import sys
import time
from dataclasses import dataclass
from typing import Any, Dict, List, Mapping, Optional, Sequence

import yaml

from hostagent import durations
from hostagent.alerting import routing
from hostagent.alerting.amclient import Alertmanager, AlertmanagerError, isoformat, parse_time
from hostagent.tools import plural
from hostagent.tools.timeparse import local_time

DEFAULT_URL = "http://localhost:9093"
URL_ENV = "HOSTAGENT_ALERTMANAGER_URL"
SEVERITIES = ("info", "warning", "critical")
SEVERITY_ORDER = {"critical": 0, "warning": 1, "info": 2}
TEST_ALERTNAME = "HostagentTestAlert"


class UsageError(Exception):
    """A bad command-line value (exit status 2); the message names the option."""


# --------------------------------------------------------------------------
# Parsing and formatting helpers


def resolve_url(flag: Optional[str]) -> str:
    """The Alertmanager URL: the flag, else $HOSTAGENT_ALERTMANAGER_URL, else the default."""
    url = flag or os.environ.get(URL_ENV) or DEFAULT_URL
    if not url.startswith(("http://", "https://")):
        source = "--alertmanager.url" if flag else URL_ENV
        raise UsageError(f"{source}: Alertmanager URL must start with http:// or https://, got {url!r}")
    return url.rstrip("/")


def parse_duration(text: str, option: str) -> dt.timedelta:
    """A Prometheus-style duration ("90s", "2h", "1h30m", "1d") as a timedelta."""
    try:
        total = durations.seconds(text)
    except ValueError:
        raise UsageError(f"{option}: {text.strip()!r} is not a duration (use e.g. 30m, 2h, 1h30m, 1d)") from None
    if total <= 0:
        raise UsageError(f"{option}: the duration must be longer than 0, got {text!r}")
    return dt.timedelta(seconds=total)


def human_duration(delta: dt.timedelta) -> str:
    """A short rounded duration: 45s, 14m, 3h05m, 2d4h."""
    seconds = int(abs(delta.total_seconds()))
    if seconds < 60:
        return f"{seconds}s"
    minutes, _ = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours}h{minutes:02d}m"
    days, hours = divmod(hours, 24)
    return f"{days}d{hours}h"


def when(stamp: str, now: dt.datetime) -> str:
    """A timestamp in local time, its offset from UTC and its distance from
    now: '2024-05-01 10:02 UTC+02:00 (14m ago)'."""
    moment = parse_time(stamp)
    local = local_time(moment)
    distance = human_duration(moment - now)
    return f"{local} ({distance} ago)" if moment <= now else f"{local} (in {distance})"


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Left-aligned columns separated by two spaces; the last column is not padded."""
    widths = [max(len(str(row[i])) for row in [headers, *rows]) for i in range(len(headers))]
    lines = []
    for row in [headers, *rows]:
        cells = [str(cell).ljust(width) for cell, width in zip(row[:-1], widths)] + [str(row[-1])]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


def matcher_text(matcher: Mapping[str, Any]) -> str:
    """A silence matcher as PromQL-style text: name="value", name=~"regex", ..."""
    equal = matcher.get("isEqual", True)
    op = ("=~" if equal else "!~") if matcher.get("isRegex") else ("=" if equal else "!=")
    return f'{matcher["name"]}{op}{json.dumps(matcher["value"])}'


def one_line(text: str, limit: int = 80) -> str:
    """Collapse whitespace and cut long text for a table cell."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


def _alert_state(alert: Mapping[str, Any]) -> str:
    status = alert.get("status") or {}
    if status.get("silencedBy"):
        return "silenced"
    if status.get("inhibitedBy"):
        return "inhibited"
    return str(status.get("state", "active"))


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def _add_url_option(parser: argparse.ArgumentParser, suppress: bool) -> None:
    # Accepted before and after the sub-command; SUPPRESS keeps a sub-parser
    # from overwriting a value given earlier with its default.
    parser.add_argument(
        "--alertmanager.url",
        dest="url",
        metavar="URL",
        default=argparse.SUPPRESS if suppress else None,
        help=f"Alertmanager to talk to (default: ${URL_ENV}, else http://localhost:9093)",
    )


def _add_output_option(parser: argparse.ArgumentParser, suppress: bool = False) -> None:
    default = argparse.SUPPRESS if suppress else "table"
    parser.add_argument("-o", "--output", choices=("table", "json"), default=default, help="output format (default: table)")


def _add_alert_list_options(parser: argparse.ArgumentParser, suppress: bool) -> None:
    _add_url_option(parser, suppress)
    _add_output_option(parser, suppress)
    default = argparse.SUPPRESS if suppress else False
    parser.add_argument("--active", action="store_true", default=default, help="hide silenced and inhibited alerts")


def _run(parser: argparse.ArgumentParser, argv: Sequence[str]) -> int:
    """Parse, dispatch, and turn expected failures into one line on stderr."""
    try:
        args = parser.parse_args(list(argv))
    except SystemExit as exc:  # argparse already printed usage and the error
        return int(exc.code or 0)
    try:
        client = Alertmanager(resolve_url(args.url))
        return int(args.func(client, args))
    except UsageError as exc:
        print(f"{parser.prog}: error: {exc}", file=sys.stderr)
        return 2
    except AlertmanagerError as exc:
        print(f"{parser.prog}: error: {exc}", file=sys.stderr)
        return 1


# --------------------------------------------------------------------------
# hostagent alerts


def list_alerts(client: Alertmanager, args: argparse.Namespace) -> int:
    """Print the alerts Alertmanager holds now and the silences in force."""
    alerts = client.alerts(include_suppressed=True)
    silences = [s for s in client.silences() if (s.get("status") or {}).get("state") != "expired"]
    muted = [a for a in alerts if _alert_state(a) in ("silenced", "inhibited")]
    if args.active:
        alerts = [a for a in alerts if a not in muted]
    if args.output == "json":
        print(json.dumps({"alerts": alerts, "silences": silences}, indent=2, sort_keys=True))
        return 0
    now = _now()
    alerts.sort(key=lambda a: (SEVERITY_ORDER.get(a["labels"].get("severity", ""), 3), a.get("startsAt", ""), a["labels"].get("alertname", "")))
    if alerts:
        rows = [
            [
                a["labels"].get("alertname", ""),
                a["labels"].get("severity", "-"),
                a["labels"].get("instance", "-"),
                _alert_state(a),
                when(a["startsAt"], now),
                one_line(a.get("annotations", {}).get("summary", "")),
            ]
            for a in alerts
        ]
        print(table(["ALERTNAME", "SEVERITY", "INSTANCE", "STATE", "SINCE", "SUMMARY"], rows))
    elif muted:
        print(f"No alerts firing outside silences and inhibitions (Alertmanager at {client.url}).")
    else:
        print(f"No alerts firing (Alertmanager at {client.url}).")
    if args.active:
        for line in muted_lines(muted, silences):
            print(line)
    print()
    print(silence_table(silences, now) if silences else "No active silences.")
    return 0


def muted_lines(muted: Sequence[Mapping[str, Any]], silences: Sequence[Mapping[str, Any]]) -> List[str]:
    """What ``--active`` hides, one line per kind: '1 firing alert is
    silenced: HostHighCpuUsage on web-1 (silence 6b1c4d6e)'."""
    ids = {s["id"] for s in silences}
    lines = []
    for kind in ("silenced", "inhibited"):
        these = [a for a in muted if _alert_state(a) == kind]
        if not these:
            continue
        names = []
        for a in these:
            status = a.get("status") or {}
            by = [i for i in status.get("silencedBy") or [] if i in ids] if kind == "silenced" else []
            why = f" (silence {by[0][:8]})" if by else ""
            names.append(f"{a['labels'].get('alertname', '?')} on {a['labels'].get('instance', '-')}{why}")
        verb = "is" if len(these) == 1 else "are"
        lines.append(f"{plural(len(these), 'firing alert')} {verb} {kind}: {', '.join(names)}")
    return lines


def silence_table(silences: List[Mapping[str, Any]], now: dt.datetime) -> str:
    """Silences as a table, soonest to end first."""
    rows = [
        [
            s["id"],
            s["status"]["state"],
            ", ".join(matcher_text(m) for m in s.get("matchers", [])),
            when(s["endsAt"], now),
            s.get("createdBy", ""),
            one_line(s.get("comment", ""), 60),
        ]
        for s in sorted(silences, key=lambda s: s.get("endsAt", ""))
    ]
    return table(["SILENCE ID", "STATE", "MATCHERS", "ENDS", "CREATED BY", "COMMENT"], rows)


def _test_labels(args: argparse.Namespace, test_id: str) -> Dict[str, str]:
    return {
        "alertname": TEST_ALERTNAME,
        "severity": args.severity or "warning",
        "instance": args.instance,
        "job": "hostagent-test",
        "test_id": test_id,
    }


def send_test_alert(client: Alertmanager, args: argparse.Namespace) -> int:
    """Post a synthetic alert through Alertmanager's routing and say what became of it."""
    if args.resolve:
        return resolve_test_alerts(client, args)
    duration = parse_duration(args.duration, "--duration")
    wait = parse_duration(args.wait, "--wait") if args.wait else None
    now = _now()
    # Each test is its own alert (test_id): a test never mutes or joins another.
    test_id = now.strftime("%Y%m%d-%H%M%S-") + secrets.token_hex(2)
    labels = _test_labels(args, test_id)
    alert: Dict[str, Any] = {
        "labels": labels,
        "annotations": {
            "summary": f"Test alert ({labels['severity']}) for {args.instance}: notification channels work",
            "description": "Sent by `hostagent alerts test` to check notification delivery end to end. No action needed.",
        },
        "generatorURL": "",
        "startsAt": isoformat(now),
        "endsAt": isoformat(now + duration),
    }
    before = client.notification_requests()
    client.post_alerts([alert])
    where = f"severity={labels['severity']}, instance={args.instance}, test_id={test_id}"
    print(f"Posted {TEST_ALERTNAME} ({where}) to {client.url}.")
    status = 0 if args.no_wait else report_outcome(client, labels, before, wait)
    ends = local_time(now + duration, "%H:%M:%S")
    print(f"It resolves by itself at {ends}; resolve it now with: hostagent alerts test --resolve --instance {args.instance}")
    return status


def resolve_test_alerts(client: Alertmanager, args: argparse.Namespace) -> int:
    """End every test alert of an instance (of one severity when given) now."""
    filters = [f'alertname="{TEST_ALERTNAME}"', f"instance={json.dumps(args.instance)}"]
    if args.severity:
        filters.append(f'severity="{args.severity}"')
    found = client.alerts(filters=filters)
    now = _now()
    # Same labels, an end in the past: Alertmanager marks them resolved now.
    client.post_alerts(
        [{"labels": a["labels"], "annotations": a.get("annotations", {}), "startsAt": a["startsAt"], "endsAt": isoformat(now - dt.timedelta(milliseconds=1))} for a in found]
    )
    which = f"severity={args.severity}, " if args.severity else ""
    if not found:
        print(f"No {TEST_ALERTNAME} ({which}instance={args.instance}) is active at {client.url}.")
    else:
        print(f"Resolved {plural(len(found), 'test alert')} ({TEST_ALERTNAME}, {which}instance={args.instance}) at {client.url}; receivers with send_resolved get a resolved notice.")
    return 0


@dataclass
class Outcome:
    """What became of a test alert: a line for people and the exit status."""

    text: str
    status: int


def report_outcome(client: Alertmanager, labels: Mapping[str, str], before: Mapping[str, Mapping[str, float]], wait: Optional[dt.timedelta]) -> int:
    """Wait for a test alert to be delivered, silenced or inhibited; print which."""
    config = yaml.safe_load(client.status().get("config", {}).get("original") or "{}") or {}
    try:
        route = routing.find_route(config, labels)
        channels = routing.integrations(config, route.receiver)
        group_wait = parse_duration(route.group_wait, "group_wait")
    except (KeyError, ValueError, UsageError):  # a configuration this reader does not follow
        route, channels, group_wait = None, None, dt.timedelta(seconds=30)
    if wait is None:
        wait = group_wait + dt.timedelta(seconds=15)
    if route is not None:
        listed = ", ".join(f"{kind} x{n}" for kind, n in sorted(channels.items())) or "no channels"
        print(f"Routed to receiver {route.receiver} ({listed}); the first notice goes out after its group_wait ({route.group_wait}). Waiting up to {human_duration(wait)}...")
    deadline = time.monotonic() + wait.total_seconds()
    outcome = None
    while outcome is None or (outcome.status == 2 and time.monotonic() < deadline):
        time.sleep(0.5)
        outcome = _outcome(client, labels, before, channels)
    if outcome.status == 2:
        outcome = Outcome(f"Not delivered within {human_duration(wait)}: {outcome.text}. See Alertmanager's log (docker-compose logs alertmanager).", 1)
    print(outcome.text)
    return outcome.status


def _outcome(client: Alertmanager, labels: Mapping[str, str], before: Mapping[str, Mapping[str, float]], channels: Optional[Mapping[str, int]]) -> Outcome:
    """The test alert's state now; status 2 while it is still on its way."""
    found = client.alerts(filters=[f'test_id="{labels["test_id"]}"'])
    if not found:
        return Outcome("Alertmanager does not hold the alert (yet)", 2)
    status = found[0].get("status") or {}
    if status.get("silencedBy"):
        silence = client.silence(status["silencedBy"][0])
        matchers = ", ".join(matcher_text(m) for m in silence.get("matchers", []))
        return Outcome(
            f"Silenced by silence {silence.get('id')} ({matchers}; {silence.get('createdBy', '?')}: {silence.get('comment', '')}): no channel gets it.",
            1,
        )
    if status.get("inhibitedBy"):
        wanted = set(status["inhibitedBy"])
        sources = [a for a in client.alerts() if a.get("fingerprint") in wanted]
        names = ", ".join(f"{a['labels'].get('alertname')} ({a['labels'].get('severity', '-')}, instance={a['labels'].get('instance', '-')})" for a in sources)
        return Outcome(f"Inhibited by {names or 'another alert'}: no channel gets it while that fires.", 1)
    if channels is None:
        return Outcome("active; which channels it goes to is unknown (the configuration could not be read)", 2)
    if not channels:
        return Outcome(f"Routed to receiver {found[0].get('receivers', [{}])[0].get('name', '?')}, which has no channels: nothing is sent.", 1)
    after = client.notification_requests()
    sent = {kind: after.get(kind, {}).get("sent", 0) - before.get(kind, {}).get("sent", 0) for kind in channels}
    failed = {kind: after.get(kind, {}).get("failed", 0) - before.get(kind, {}).get("failed", 0) for kind in channels}
    # Alertmanager counts requests per integration, not per alert: one sent for
    # another alert in the same seconds counts here too, hence the cap.
    ok = {kind: min(sent[kind] - failed[kind], n) for kind, n in channels.items()}
    report = ", ".join(f"{kind} {int(ok[kind])} of {n}" + (f" ({plural(int(failed[kind]), 'failed attempt')})" if failed[kind] else "") for kind, n in sorted(channels.items()))
    if all(ok[kind] >= n for kind, n in channels.items()):
        return Outcome(f"Delivered: {report}.", 0)
    if any(failed.values()):
        return Outcome(f"Delivery failing: {report}. See Alertmanager's log (docker-compose logs alertmanager) and docs/alerting.md", 1)
    return Outcome(f"not sent yet ({report})", 2)


def alerts_parser() -> argparse.ArgumentParser:
    """The ``hostagent alerts`` command line."""
    parser = argparse.ArgumentParser(prog="hostagent alerts", description="Show what Alertmanager is alerting on, or send a test alert.")
    _add_alert_list_options(parser, suppress=False)
    parser.set_defaults(func=list_alerts)
    sub = parser.add_subparsers(dest="command", metavar="{list,test}")
    listing = sub.add_parser("list", help="firing alerts and silences (the default)")
    _add_alert_list_options(listing, suppress=True)
    listing.set_defaults(func=list_alerts)
    test = sub.add_parser("test", help="send a synthetic alert through Alertmanager to check the channels")
    _add_url_option(test, suppress=True)
    test.add_argument("--severity", choices=SEVERITIES, default=None, help="severity label (default: warning; with --resolve: every severity)")
    test.add_argument("--instance", default=socket.gethostname(), help="instance label (default: this host's name)")
    test.add_argument("--duration", default="5m", help="how long the alert fires before it resolves by itself (default: 5m)")
    test.add_argument("--wait", default="", help="how long to wait for the outcome (default: the route's group_wait and 15s)")
    test.add_argument("--no-wait", action="store_true", help="post the alert and return without waiting for the outcome")
    test.add_argument("--resolve", action="store_true", help="resolve the test alerts of this instance now")
    test.set_defaults(func=send_test_alert)
    return parser


def alerts_main(argv: List[str]) -> int:
    """``hostagent alerts [list|test]``; returns the exit status."""
    return _run(alerts_parser(), argv)


# --------------------------------------------------------------------------
# hostagent silence


def add_silence(client: Alertmanager, args: argparse.Namespace) -> int:
    """Silence an instance (optionally one alert name) for a while."""
    if not args.instance and not args.alertname:
        raise UsageError("give --instance and/or --alertname: a silence needs at least one matcher")
    if not args.comment.strip():
        raise UsageError("--comment must not be empty: say why the alerts are silenced")
    duration = parse_duration(args.duration, "--duration")
    matchers = [
        {"name": name, "value": value, "isRegex": False, "isEqual": True}
        for name, value in (("instance", args.instance), ("alertname", args.alertname))
        if value
    ]
    now = _now()
    silence_id = client.add_silence(matchers, now, now + duration, args.author, args.comment.strip())
    ends = local_time(now + duration, "%Y-%m-%d %H:%M:%S")
    print(f"Silence {silence_id} mutes {', '.join(matcher_text(m) for m in matchers)} until {ends}.")
    return 0


def _find_silence(silences: List[Mapping[str, Any]], wanted: str) -> Mapping[str, Any]:
    """The silence whose ID is ``wanted`` or starts with it (when unique)."""
    exact = [s for s in silences if s["id"] == wanted]
    if exact:
        return exact[0]
    prefixed = [s for s in silences if s["id"].startswith(wanted)] if wanted else []
    if len(prefixed) == 1:
        return prefixed[0]
    if prefixed:
        raise UsageError(f"silence ID prefix {wanted!r} matches {len(prefixed)} silences; give more of the ID")
    raise UsageError(f"no silence with ID {wanted!r} (see `hostagent silence list`)")


def expire_silences(client: Alertmanager, args: argparse.Namespace) -> int:
    """Expire silences by ID (or unique ID prefix)."""
    silences = client.silences()
    status = 0
    for wanted in args.ids:
        try:
            silence = _find_silence(silences, wanted)
        except UsageError as exc:
            print(f"hostagent silence expire: error: {exc}", file=sys.stderr)
            status = 1
            continue
        if silence["status"]["state"] == "expired":
            print(f"Silence {silence['id']} had already expired.")
            continue
        client.expire_silence(silence["id"])
        print(f"Expired silence {silence['id']}.")
    return status


def list_silences(client: Alertmanager, args: argparse.Namespace) -> int:
    """Print silences in force (and expired ones with --all)."""
    silences = client.silences()
    if not args.all:
        silences = [s for s in silences if s["status"]["state"] != "expired"]
    if args.output == "json":
        print(json.dumps(silences, indent=2, sort_keys=True))
    elif silences:
        print(silence_table(silences, _now()))
    else:
        print(f"No {'' if args.all else 'active '}silences (Alertmanager at {client.url}).")
    return 0


def silence_parser() -> argparse.ArgumentParser:
    """The ``hostagent silence`` command line."""
    parser = argparse.ArgumentParser(prog="hostagent silence", description="Mute alerts during planned work, list and expire silences.")
    _add_url_option(parser, suppress=False)
    sub = parser.add_subparsers(dest="command", metavar="{add,expire,list}")
    sub.required = True
    add = sub.add_parser("add", help="silence the alerts of an instance (optionally one alert name)")
    _add_url_option(add, suppress=True)
    add.add_argument("--instance", help="instance label to silence, e.g. web-1")
    add.add_argument("--alertname", help="silence only this alert")
    add.add_argument("--duration", default="2h", help="how long, e.g. 30m, 2h, 1d (default: 2h)")
    add.add_argument("--comment", required=True, help="why (shown to everyone who looks at the silence)")
    add.add_argument("--author", default=_default_author(), help="who (default: your login name)")
    add.set_defaults(func=add_silence)
    expire = sub.add_parser("expire", help="end silences now")
    _add_url_option(expire, suppress=True)
    expire.add_argument("ids", nargs="+", metavar="ID", help="silence ID or a unique prefix of it")
    expire.set_defaults(func=expire_silences)
    listing = sub.add_parser("list", help="silences in force")
    _add_url_option(listing, suppress=True)
    _add_output_option(listing)
    listing.add_argument("--all", action="store_true", help="include expired silences")
    listing.set_defaults(func=list_silences)
    return parser


def _default_author() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no login name in minimal containers
        return "hostagent"


def silence_main(argv: List[str]) -> int:
    """``hostagent silence add|expire|list``; returns the exit status."""
    return _run(silence_parser(), argv)


if __name__ == "__main__":
    if sys.argv[1:2] == ["silence"]:
        sys.exit(silence_main(sys.argv[2:]))
    sys.exit(alerts_main(sys.argv[1:] if sys.argv[1:2] != ["alerts"] else sys.argv[2:]))
