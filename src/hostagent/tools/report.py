"""``hostagent report``: capacity and trends of every host over a range, from Prometheus.

    $ hostagent report --from now-30d -o report.html
    hostagent report: 12 hosts, 3 findings, written to report.html

Per host: CPU, memory, swap, load and (where the agent has PSI) pressure as
p50/p95/max; the busiest hours of the day; per filesystem the usage now, the
growth rate and the date a straight line fitted over the range reaches zero
free space, with how well the line fits; per interface the peak and p95
throughput; the alerts that fired and how long each lasted; the top process
groups and the top services and containers by CPU and memory; and a short
list of findings to act on. The figures are the quantities of
``hostagent.promql`` that the alerts and dashboards read. ``--format
html`` (the default) writes one self-contained page with plots (needs the
``report`` extra); ``json`` and ``csv`` write the same figures as data.

Rates are averaged over windows of two steps (10 minutes at the default
5-minute step for 30 days), so p95 and max describe sustained load, not
single scrapes. Hours are UTC.

A host may have less history than the range asks for (a Prometheus started
an hour ago, a host added last week): each host's figures cover the span its
samples cover, which the report states (``data_from``, ``data_to``,
``covered_seconds``), and rates whose window reaches outside that span are
left out, since ``rate()`` over a half-empty window reads low. Averages over
the range (the top users' CPU) divide by the covered span, not the range.

Exit status: 0 written, 1 Prometheus failed or has no data for the range, 2 bad usage.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple

from .. import promql as q
from . import ArgumentParser, ToolError, connection, plural, promapi, replaced_on_success, run, stats, thresholdfile
from .promapi import Prometheus, label_key
from .queries import cpu_utilisation, pressure_metric, scope
from .timeparse import human_duration, iso, parse_duration, range_of

DEFAULT_SPAN = 30 * 86400.0
FORMATS = ("html", "json", "csv")
# Most points per series a report reads: the step grows with the range.
MAX_REPORT_POINTS = 10_000
MIN_STEP = 300.0
# A host with less history than this share of the range gets a finding saying so.
SHORT_HISTORY = 0.9
# A host below both (p95) could be consolidated onto another.
IDLE_CPU = 0.10
IDLE_MEMORY = 0.30
FILL_HORIZON_DAYS = 30
RECURRING_ALERT = 3  # incidents of one alert on one host in the range
TOP = 10

# Who used the machine: (kind, the accounting of hostagent.promql, what its memory is).
USERS = (
    ("process groups", q.PROCESS_GROUPS, "resident"),
    ("services and containers", q.CGROUPS, "page cache included"),
)

HostKey = Tuple[str, str]  # (job, instance)
# Every host's figures hold these keys, with these values when there is no data.
DEFAULT_FIGURES: Dict[str, Any] = {
    "cpu": None, "memory": None, "swap": None, "load5": None, "load5_per_core": None,
    "data_from": None, "data_to": None, "covered_seconds": 0.0,
    "pressure": dict, "cpu_by_hour": lambda: [None] * 24, "busiest_hours": list,
    "filesystems": list, "interfaces": list, "top_users": list, "alerts": list,
}  # fmt: skip


def build_parser() -> ArgumentParser:
    p = ArgumentParser(prog="hostagent report", description="Capacity and trend report of hosts over a time range, from Prometheus.")
    promapi.add_url_argument(p)
    p.add_argument("--from", dest="start", default="", metavar="TIME", help="start (default: --to minus 30 days); RFC 3339, a date, unix seconds, now-30d")
    p.add_argument("--to", dest="end", default="", metavar="TIME", help="end (default: now)")
    p.add_argument("--hosts", default="", metavar="REGEX", help="only instances matching this regular expression (default: all)")
    p.add_argument("--job", default="hostagent", help="the scrape job of the agents (default hostagent)")
    p.add_argument("--step", default="", metavar="DURATION", help=f"resolution (default: {MIN_STEP:g}s, more for ranges over {MAX_REPORT_POINTS} steps)")
    p.add_argument("--format", choices=FORMATS, default="html", help="html (default), json or csv")
    p.add_argument("-o", "--output", default="", metavar="FILE", help="file to write (default: hostagent-report.html for html, standard output otherwise)")
    p.add_argument("--thresholds", metavar="FILE", help="alert thresholds file (default: the project's config/alerting.yaml)")
    connection.add_arguments(p)
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    return run("report", _main, argv)


def _main(argv: List[str]) -> int:
    args = build_parser().parse_args(argv)
    start, end = range_of(args.start, args.end, DEFAULT_SPAN)
    step = parse_duration(args.step, "--step") if args.step else auto_step(end - start)
    if (end - start) / step < 3:
        raise ToolError(f"the range {human_duration(end - start)} holds fewer than 3 steps of {human_duration(step)}: widen it or lower --step", 2)
    if args.format == "html":
        from . import report_html  # checks the 'report' extra before any query

        report_html.check_extra()
    thresholds, source = thresholdfile.load(args.thresholds)
    prom = promapi.from_args(args)
    data = Collector(prom, start, end, step, args.job, args.hosts, thresholds).collect()
    data.meta["thresholds"] = source
    if not data.hosts:
        where = f" matching {args.hosts!r}" if args.hosts else ""
        raise ToolError(f"no hosts{where} in job {args.job!r} have data between {iso(start)} and {iso(end)} at {prom.url}")
    if args.format == "html":
        from . import report_html

        text = report_html.render(data)
        path = args.output or "hostagent-report.html"
    else:
        text = to_json(data) if args.format == "json" else to_csv(data)
        path = args.output or "-"
    write(path, text)
    if path != "-":
        hosts, found = plural(len(data.hosts), "host"), plural(len(data.findings), "finding")
        print(f"hostagent report: {hosts}, {found}, written to {path}", file=sys.stderr)
    return 0


def auto_step(span: float) -> float:
    """MIN_STEP, or a whole number of minutes keeping the range under MAX_REPORT_POINTS."""
    step = max(MIN_STEP, span / MAX_REPORT_POINTS)
    return math.ceil(step / 60) * 60


def write(path: str, text: str) -> None:
    if path == "-":
        sys.stdout.write(text)
        sys.stdout.flush()
        return
    with replaced_on_success(path) as fh:
        fh.write(text.encode("utf-8"))


# --------------------------------------------------------------------------
# Gathering


@dataclass
class Host:
    job: str
    instance: str
    cores: Optional[float] = None
    memory_bytes: Optional[float] = None
    data_from: Optional[float] = None  # the span the host's samples cover within the range
    data_to: Optional[float] = None
    figures: Dict[str, Any] = field(default_factory=dict)  # everything the JSON shows
    series: Dict[str, List[stats.Point]] = field(default_factory=dict)  # for plots only
    fs_series: Dict[str, List[stats.Point]] = field(default_factory=dict)

    @property
    def covered_seconds(self) -> float:
        return 0.0 if self.data_from is None or self.data_to is None else self.data_to - self.data_from

    def covers(self, t: float, window: float) -> bool:
        """Whether a rate at ``t`` over ``window`` seconds reads samples of its
        whole window (always, for a host whose span is not known)."""
        if self.data_from is None or self.data_to is None:
            return True
        return self.data_from <= t - window and t <= self.data_to


@dataclass
class ReportData:
    meta: Dict[str, Any]
    hosts: List[Host]
    fleet_alerts: List[Dict[str, Any]]
    findings: List[Dict[str, Any]]
    thresholds: Optional[object] = None  # the AlertingConfig colours and findings use


class Collector:
    """Runs the report's queries and turns the answers into figures."""

    def __init__(self, prom: Prometheus, start: float, end: float, step: float, job: str, hosts: str, thresholds: Optional[object]):
        self.prom = prom
        self.start, self.end, self.step = start, end, step
        self.window_seconds = float(int(2 * step))
        self.window = f"{int(self.window_seconds)}s"
        self.span = f"{int(round(end - start))}s"
        # Rates over two steps, for the figures per step; totals over the whole range.
        self.scope = scope(job, hosts, self.window)
        self.whole = scope(job, hosts, self.span)
        self.job, self.hosts_regex = job, hosts
        self.thresholds = thresholds
        self.hosts: Dict[HostKey, Host] = {}

    def host(self, metric: Dict[str, str]) -> Optional[Host]:
        key = (metric.get("job", ""), metric.get("instance", ""))
        if not key[1]:
            return None
        if key not in self.hosts:
            self.hosts[key] = Host(*key)
        return self.hosts[key]

    def range(self, expr: str) -> List[promapi.Series]:
        return self.prom.query_range_all(expr, self.start, self.end, self.step)

    def collect(self) -> ReportData:
        names = self.prom.metric_names(self.start, self.end)
        self._coverage()
        self._per_host_usage(names)
        self._filesystems()
        self._interfaces()
        self._users(names)
        fleet = self._alerts()
        for host in self.hosts.values():
            host.figures.update(data_from=iso(host.data_from) if host.data_from is not None else None,
                                data_to=iso(host.data_to) if host.data_to is not None else None,
                                covered_seconds=host.covered_seconds)
            for key, empty in DEFAULT_FIGURES.items():
                host.figures.setdefault(key, empty() if callable(empty) else empty)
        hosts = sorted(self.hosts.values(), key=lambda h: (h.instance, h.job))
        meta = {
            "generated_at": iso(round(time.time())),
            "from": iso(self.start),
            "to": iso(self.end),
            "span_seconds": self.end - self.start,
            "step_seconds": self.step,
            "rate_window": self.window,
            "prometheus": self.prom.url,
            "selector": self.scope.sel(),
            "hours": "UTC",
        }
        data = ReportData(meta, hosts, fleet, [], self.thresholds)
        data.findings = findings(data, self.thresholds, self.end)
        return data

    def _coverage(self) -> None:
        """Each host's span of samples within the range, to the step: from the
        first step whose last step holds a sample to the last such step."""
        sampled = self.scope.sel('__name__=~"host_cpu_seconds_total|host_memory_total_bytes"')
        for series in self.range(f"count by (job, instance) (count_over_time({sampled}[{int(self.step)}s]))"):
            host = self.host(series["metric"])
            times = [t for t, _ in promapi.floats(series)]
            if host is not None and times:
                host.data_from = max(self.start, times[0] - self.step)
                host.data_to = times[-1]

    def _per_host_usage(self, names: set) -> None:
        s = self.scope
        rates = {"cpu"} | {f"pressure_{resource}_{kind}" for resource, kind in q.pressure}
        exprs = {
            "cpu": cpu_utilisation(s),
            "memory": q.memory_utilisation.expr(s),
            "swap": q.swap_utilisation.expr(s),
            "load5": f"host_load5{s.sel()}",
            "load5_per_core": q.load5_per_cpu.expr(s),
        }
        for (resource, kind), quantity in q.pressure.items():
            if pressure_metric(resource, kind) in names:
                exprs[f"pressure_{resource}_{kind}"] = quantity.expr(s)
        for key, expr in exprs.items():
            for series in self.range(expr):
                host = self.host(series["metric"])
                if host is None:
                    continue
                points = promapi.floats(series)
                if key in rates:
                    points = [(t, v) for t, v in points if host.covers(t, self.window_seconds)]
                host.series[key] = points
                figures = stats.summary([v for _, v in points])
                if key.startswith("pressure_"):
                    host.figures.setdefault("pressure", {})[key[len("pressure_"):]] = figures
                else:
                    host.figures[key] = figures
        for host in self.hosts.values():
            profile = stats.hourly_profile(host.series.get("cpu", []))
            host.figures["cpu_by_hour"] = profile
            host.figures["busiest_hours"] = [{"hour": h, "cpu": profile[h]} for h in stats.busiest_hours(profile)]
        for name, attr in (("host_cpu_cores", "cores"), ("host_memory_total_bytes", "memory_bytes")):
            for series in self.prom.query(f"last_over_time({name}{self.scope.sel()}[{self.span}])", self.end):
                host = self.host(series["metric"])
                if host is not None:
                    setattr(host, attr, float(series["value"][1]))

    def _filesystems(self) -> None:
        sel = self.scope.sel()
        by_fs: Dict[Tuple[HostKey, str], Dict[str, Any]] = {}
        for series in self.range(f"host_filesystem_avail_bytes{sel}"):
            host = self.host(series["metric"])
            if host is None:
                continue
            m = series["metric"]
            points = promapi.floats(series)
            host.fs_series[m.get("mountpoint", "")] = points
            by_fs[((host.job, host.instance), m.get("mountpoint", ""))] = {"points": points, "device": m.get("device", ""), "fstype": m.get("fstype", "")}
        last: Dict[str, Dict[Tuple[HostKey, str], float]] = {}
        for name, now in (("size", f"host_filesystem_size_bytes{sel}"), ("usage", q.filesystem_usage(self.scope))):
            last[name] = {}
            for series in self.prom.query(f"last_over_time({now}[{self.span}])", self.end):
                m = series["metric"]
                last[name][((m.get("job", ""), m.get("instance", "")), m.get("mountpoint", ""))] = float(series["value"][1])
        for (hkey, mount), info in sorted(by_fs.items()):
            points = info["points"]
            fs: Dict[str, Any] = {
                "mountpoint": mount,
                "device": info["device"],
                "fstype": info["fstype"],
                "size_bytes": last["size"].get((hkey, mount)),
                "avail_bytes": points[-1][1] if points else None,
                "usage_ratio": last["usage"].get((hkey, mount)),
            }
            fs.update(fill_prediction(points, self.end))
            self.hosts[hkey].figures.setdefault("filesystems", []).append(fs)

    def _interfaces(self) -> None:
        found: Dict[Tuple[HostKey, str], Dict[str, Any]] = {}
        for direction in q.DIRECTIONS:
            # Per interface: what promql.network_bytes sums over them.
            for series in self.range(self.scope.rate(f"host_network_{direction}_bytes_total", q.NOT_LOOPBACK)):
                host = self.host(series["metric"])
                if host is None:
                    continue
                device = series["metric"].get("device", "")
                figures = stats.summary([v for t, v in promapi.floats(series) if host.covers(t, self.window_seconds)])
                entry = found.setdefault(((host.job, host.instance), device), {"device": device})
                entry[f"{direction}_peak_bytes_per_second"] = figures["max"] if figures else None
                entry[f"{direction}_p95_bytes_per_second"] = figures["p95"] if figures else None
        for (hkey, _), entry in sorted(found.items()):
            self.hosts[hkey].figures.setdefault("interfaces", []).append(entry)

    def _users(self, names: set) -> None:
        """Top process groups and top services and containers by CPU and
        memory, as the processes dashboard ranks them over its range; the
        peaks of the per-process series only where the agents have neither.
        CPU is the CPU time used in the range over the time the host's
        samples cover: an average in cores over the span there is data for."""
        rankings = []
        for kind, acct, memory_what in USERS:
            if acct.cpu in names or acct.memory in names:
                cpu = q.top(TOP, q.used_cpu(self.whole, acct, fn="increase"))
                rankings.append((kind, acct.label, "cores (average)", f"peak ({memory_what})", cpu, q.top(TOP, q.peak_memory(self.whole, acct))))
        if not rankings:
            kind, label = "processes (peaks while in the agent's top N)", "name"
            peak = "max by (job, instance, name) (max_over_time({}{}[{}]))"
            cpu = q.top(TOP, peak.format("host_process_cpu_usage_cores", self.scope.sel(), self.span))
            memory = q.top(TOP, peak.format("host_process_resident_memory_bytes", self.scope.sel(), self.span))
            rankings.append((kind, label, "cores (peak)", "peak (resident)", cpu, memory))
        for kind, label, cpu_what, memory_what, cpu, memory in rankings:
            tables: Dict[HostKey, Dict[str, Any]] = {}
            for part, expr in (("cpu", cpu), ("memory", memory)):
                for series in self.prom.query(expr, self.end):
                    host = self.host(series["metric"])
                    if host is None:
                        continue
                    table = tables.setdefault((host.job, host.instance), {"kind": kind, "label": label, "cpu_unit": cpu_what, "memory_unit": memory_what, "cpu": [], "memory": []})
                    value = float(series["value"][1])
                    if part == "cpu" and cpu_what == "cores (average)":
                        if not host.covered_seconds:
                            continue
                        value /= host.covered_seconds
                    table[part].append({"name": series["metric"].get(label, ""), "value": value})
            for hkey, table in tables.items():
                for part in ("cpu", "memory"):
                    table[part].sort(key=lambda row: (-row["value"], row["name"]))
                    table[part] = table[part][:TOP]
                self.hosts[hkey].figures.setdefault("top_users", []).append(table)

    def _alerts(self) -> List[Dict[str, Any]]:
        """Incidents from raw ALERTS samples, read a day at a time; fleet-wide ones returned."""
        firing: Dict[Tuple[Tuple[str, str], ...], List[float]] = {}
        pending_since: Dict[Tuple[Tuple[str, str], ...], Dict[float, float]] = {}
        for name, sink in (("ALERTS", firing), ("ALERTS_FOR_STATE", None)):
            sel = 'alertstate="firing"' if name == "ALERTS" else ""
            for lo, hi in day_windows(self.start, self.end):
                expr = f"{name}{{{sel}}}[{max(1, int(round(hi - lo)))}s]"
                for series in self.prom.query(expr, hi):
                    labels = {k: v for k, v in series["metric"].items() if k not in ("__name__", "alertstate")}
                    key = label_key(labels)
                    if sink is not None:
                        sink.setdefault(key, []).extend(float(t) for t, _ in series["values"] if lo < float(t) <= hi or lo == self.start)
                    else:
                        pending_since.setdefault(key, {}).update({float(t): float(v) for t, v in series["values"]})
        fleet: List[Dict[str, Any]] = []
        for inc in stats.incidents(firing, self.end):
            labels = dict(inc.labels)
            active = pending_since.get(inc.labels, {})
            since = min((v for t, v in active.items() if inc.start <= t < inc.end), default=None)
            entry = {
                "alertname": labels.get("alertname", ""),
                "severity": labels.get("severity", ""),
                "labels": {k: v for k, v in labels.items() if k not in ("alertname", "severity", "job", "instance")},
                "start": iso(inc.start),
                "end": None if inc.still_firing else iso(inc.end),
                "duration_seconds": inc.duration,
                "still_firing": inc.still_firing,
                "pending_since": iso(since) if since is not None else None,
            }
            instance = labels.get("instance")
            if not instance:
                fleet.append(entry)
            elif self.selected(labels):
                # A host may have alerts and no other data in the range (down all along).
                self.host(labels).figures.setdefault("alerts", []).append(entry)  # type: ignore[union-attr]
        return fleet

    def selected(self, labels: Dict[str, str]) -> bool:
        """Whether an alert's job and instance are among the hosts reported on."""
        if (labels.get("job", ""), labels.get("instance", "")) in self.hosts:
            return True
        if labels.get("job") != self.job:
            return False
        try:
            return not self.hosts_regex or re.fullmatch(self.hosts_regex, labels.get("instance", "")) is not None
        except re.error:
            return False


def day_windows(start: float, end: float) -> Iterator[Tuple[float, float]]:
    """(lo, hi] pieces of at most a day; the first also takes samples at ``start``."""
    lo = start
    while lo < end:
        hi = min(end, lo + 86400)
        yield lo, hi
        lo = hi


def fill_prediction(points: Sequence[stats.Point], end: float) -> Dict[str, Any]:
    """Growth per day and the date free space reaches zero, from a straight
    line fitted to free space over the range, with the line's fit (r2) and a
    95 % interval on the date from the uncertainty of its slope."""
    fit = stats.linear_fit(points)
    out: Dict[str, Any] = {"growth_bytes_per_day": None, "fill_date": None, "fill_date_earliest": None, "fill_date_latest": None, "fit_r2": None, "confidence": None, "days_until_full": None}
    if fit is None:
        return out
    out["growth_bytes_per_day"] = 0.0 - fit.slope * 86400  # never -0.0
    out["fit_r2"] = fit.r2
    if fit.slope >= 0:
        return out  # free space is not shrinking
    when = fit.crossing(0.0)
    if when is None or not math.isfinite(when):
        return out
    out["fill_date"] = iso(round(when))
    out["days_until_full"] = (when - end) / 86400
    out["confidence"] = stats.confidence_word(fit.r2)
    steep, shallow = fit.slope - stats.Z95 * fit.slope_stderr, fit.slope + stats.Z95 * fit.slope_stderr
    earliest = fit.crossing(0.0, steep)
    out["fill_date_earliest"] = iso(round(earliest)) if earliest is not None else None
    latest = fit.crossing(0.0, shallow) if shallow < 0 else None
    out["fill_date_latest"] = iso(round(latest)) if latest is not None and math.isfinite(latest) else None
    return out


# --------------------------------------------------------------------------
# Findings


def findings(data: ReportData, thresholds: Optional[object], end: float) -> List[Dict[str, Any]]:
    """What to act on, most urgent first."""
    out: List[Dict[str, Any]] = []

    def add(severity: str, host: Host, subject: str, text: str) -> None:
        out.append({"severity": severity, "instance": host.instance, "subject": subject, "text": text})

    cpu_warn = thresholdfile.threshold(thresholds, "cpu_usage")
    mem_warn = thresholdfile.threshold(thresholds, "memory_usage")
    swap_warn = thresholdfile.threshold(thresholds, "swap_usage")
    load_warn = thresholdfile.threshold(thresholds, "load_per_core")
    asked = data.meta["span_seconds"]
    for host in data.hosts:
        f = host.figures
        if host.data_from is not None and host.covered_seconds < SHORT_HISTORY * asked:
            add("info", host, "short history",
                f"Prometheus holds {human_duration(host.covered_seconds)} of this host's data in the {human_duration(asked)} asked for "
                f"({iso(host.data_from)} to {iso(host.data_to)}): its figures cover that span only.")
        for fs in f["filesystems"]:
            days = fs.get("days_until_full")
            if days is not None and days <= FILL_HORIZON_DAYS:
                severity = "critical" if days <= 7 else "warning"
                add(severity, host, f"filesystem {fs['mountpoint']}",
                    f"{fs['mountpoint']} fills in {max(days, 0):.0f} days (around {fs['fill_date'][:10]}, {fs['confidence']} confidence, r²={fs['fit_r2']:.2f}) "
                    f"at {fmt_bytes(fs['growth_bytes_per_day'])}/day: free space or grow it.")
        for key, limit, what in (("cpu", cpu_warn, "CPU usage"), ("memory", mem_warn, "memory usage"), ("swap", swap_warn, "swap usage"), ("load5_per_core", load_warn, "load per core")):
            fig = f.get(key)
            if fig and limit is not None and fig["p95"] > limit:
                shown = f"{fig['p95']:.2f}" if key == "load5_per_core" else f"{fig['p95']:.0%}"
                limit_text = f"{limit:g}" if key == "load5_per_core" else f"{limit:.0%}"
                add("warning", host, key, f"p95 {what} is {shown}, above the warning threshold of {limit_text}: give it more capacity or move work off it.")
        cpu, mem = f.get("cpu"), f.get("memory")
        if cpu is None and mem is None:
            add("warning", host, "no data", "sent no CPU or memory figures in the whole range, only alerts: is it gone, or down all along?")
        if cpu and mem and cpu["p95"] < IDLE_CPU and mem["p95"] < IDLE_MEMORY:
            add("info", host, "idle", f"p95 CPU {cpu['p95']:.0%} and p95 memory {mem['p95']:.0%} over the whole range: a candidate to consolidate onto another host.")
        counts: Dict[str, List[Dict[str, Any]]] = {}
        for alert in f["alerts"]:
            counts.setdefault(alert["alertname"], []).append(alert)
        for name, items in sorted(counts.items()):
            if len(items) >= RECURRING_ALERT:
                total = sum(a["duration_seconds"] for a in items)
                add("warning", host, f"alert {name}", f"{name} fired {len(items)} times ({human_duration(total)} in all): fix the cause or tune the alert.")
    order = {"critical": 0, "warning": 1, "info": 2}
    return sorted(out, key=lambda x: (order.get(x["severity"], 3), x["instance"], x["subject"]))


def fmt_bytes(value: Optional[float]) -> str:
    """Bytes in decimal units, for people: 8.0 GB."""
    return stats.scaled(value, 1000, ("B", "KB", "MB", "GB", "TB", "PB"), " ")


# --------------------------------------------------------------------------
# JSON and CSV


def as_dict(data: ReportData) -> Dict[str, Any]:
    return {
        **data.meta,
        "hosts": [{"job": h.job, "instance": h.instance, "cores": h.cores, "memory_bytes": h.memory_bytes, **h.figures} for h in data.hosts],
        "fleet_alerts": data.fleet_alerts,
        "findings": data.findings,
    }


def to_json(data: ReportData) -> str:
    return json.dumps(as_dict(data), indent=2, allow_nan=False, default=str) + "\n"


def csv_rows(data: ReportData) -> Iterator[List[Any]]:
    """instance, section, subject, measure, value: one figure per row."""
    yield ["instance", "section", "subject", "measure", "value"]
    for h in data.hosts:
        f = h.figures
        yield [h.instance, "host", "", "cores", h.cores]
        yield [h.instance, "host", "", "memory_bytes", h.memory_bytes]
        for measure in ("data_from", "data_to", "covered_seconds"):
            yield [h.instance, "host", "", measure, f[measure]]
        for key in ("cpu", "memory", "swap", "load5", "load5_per_core"):
            for measure, value in (f.get(key) or {}).items():
                yield [h.instance, key, "", measure, value]
        for key, fig in f["pressure"].items():
            for measure, value in (fig or {}).items():
                yield [h.instance, "pressure", key, measure, value]
        for b in f["busiest_hours"]:
            yield [h.instance, "busiest_hours", f"{b['hour']:02d}:00", "cpu_mean", b["cpu"]]
        for fs in f["filesystems"]:
            for measure, value in fs.items():
                if measure not in ("mountpoint",):
                    yield [h.instance, "filesystem", fs["mountpoint"], measure, value]
        for nic in f["interfaces"]:
            for measure, value in nic.items():
                if measure != "device":
                    yield [h.instance, "interface", nic["device"], measure, value]
        for a in f["alerts"]:
            subject = a["alertname"] + "".join(f" {k}={v}" for k, v in sorted(a["labels"].items()))
            for measure in ("severity", "start", "end", "duration_seconds", "pending_since"):
                yield [h.instance, "alert", subject, measure, a[measure]]
        for users in f["top_users"]:
            for part in ("cpu", "memory"):
                for row in users[part]:
                    yield [h.instance, f"top_{part}", row["name"], users["kind"], row["value"]]
    for a in data.fleet_alerts:
        for measure in ("severity", "start", "end", "duration_seconds"):
            yield ["", "alert", a["alertname"], measure, a[measure]]
    for item in data.findings:
        yield [item["instance"], "finding", item["subject"], item["severity"], item["text"]]


def to_csv(data: ReportData) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    for row in csv_rows(data):
        writer.writerow(["" if v is None else (repr(v) if isinstance(v, float) else v) for v in row])
    return buf.getvalue()


if __name__ == "__main__":
    sys.exit(main())
