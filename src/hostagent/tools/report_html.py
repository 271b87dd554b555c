"""The report as one self-contained HTML page: tables, plus plots drawn by
matplotlib as SVG and embedded as data: URIs (each plot keeps its own ids,
and opening the file needs no network). Text in the plots is drawn as
paths, so they look the same without any font installed."""

from __future__ import annotations

import base64
import datetime as dt
import html
import io
from typing import Any, Dict, List, Optional, Sequence, Tuple

from . import plural, require_extra, stats
from .report import Host, ReportData, fmt_bytes
from .timeparse import human_duration

COLOURS = {"critical": "#c62828", "warning": "#ef8f00", "info": "#1565c0", "ok": "#2e7d32"}
CSS = """
body { font-family: "DejaVu Sans", "Liberation Sans", Arial, sans-serif; margin: 24px; color: #222; background: #fff; }
h1 { margin-bottom: 4px; } h2 { border-bottom: 2px solid #1565c0; padding-bottom: 4px; margin-top: 36px; }
.meta { color: #555; font-size: 13px; }
table { border-collapse: collapse; margin: 8px 0 16px; font-size: 13px; }
th, td { border: 1px solid #ccc; padding: 3px 8px; text-align: right; }
th { background: #e8eef7; } td.l, th.l { text-align: left; }
.critical { background: #fbe0e0; } .warning { background: #fff1d6; } .info { background: #e3eefb; }
.finding { padding: 6px 10px; margin: 4px 0; border-left: 6px solid; }
.finding.critical { border-color: #c62828; } .finding.warning { border-color: #ef8f00; } .finding.info { border-color: #1565c0; }
.plots img { max-width: 100%; margin: 6px 0; }
"""


def check_extra() -> None:
    require_extra("report", "report", "matplotlib")


def _matplotlib() -> Any:
    mpl = require_extra("report", "report", "matplotlib")
    mpl.use("Agg", force=True)
    mpl.rcParams.update({"svg.fonttype": "path", "svg.hashsalt": "hostagent", "font.size": 9, "axes.grid": True, "grid.alpha": 0.3})
    import matplotlib.pyplot as plt

    return plt


def _time_axis(ax: Any) -> None:
    import matplotlib.dates as mdates

    locator = mdates.AutoDateLocator(minticks=4, maxticks=10)
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))


def _svg(fig: Any) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="svg", bbox_inches="tight", metadata={"Date": None})
    fig.clf()
    import matplotlib.pyplot as plt

    plt.close(fig)
    data = base64.b64encode(buf.getvalue()).decode("ascii")
    return f'<img alt="" src="data:image/svg+xml;base64,{data}">'


def _dates(ts: Sequence[float]) -> List[dt.datetime]:
    return [dt.datetime.fromtimestamp(t, dt.timezone.utc) for t in ts]


def _pct(v: Optional[float]) -> str:
    return "–" if v is None else f"{v * 100:.1f}%"


def _num(v: Optional[float]) -> str:
    return "–" if v is None else f"{v:.2f}"


def plot_bucket(span: float, step: float) -> float:
    """Seconds each plotted point sums up: an hour, or less for a short span
    (at most 200 points, never finer than the report's step)."""
    return max(step, min(3600.0, span / 200))


def plot_span(host: Host, points: Sequence[stats.Point]) -> Optional[Tuple[dt.datetime, dt.datetime]]:
    """The time axis's limits: the span the host's samples cover (else its
    points'), so a few hours of data are drawn across the plot's width."""
    lo = host.data_from if host.data_from is not None else (points[0][0] if points else None)
    hi = host.data_to if host.data_to is not None else (points[-1][0] if points else None)
    if lo is None or hi is None:
        return None
    if hi <= lo:  # one sample: half an hour either side, not matplotlib's years
        lo, hi = lo - 1800, hi + 1800
    return _dates([lo])[0], _dates([hi])[0]


def usage_plot(plt: Any, host: Host, thresholds: Dict[str, Optional[float]], step: float) -> str:
    return _svg(usage_figure(plt, host, thresholds, step))


def usage_figure(plt: Any, host: Host, thresholds: Dict[str, Optional[float]], step: float) -> Any:
    """CPU, memory and swap over the span the host has data for: means per
    bucket (an hour over long spans), CPU's max per bucket shaded."""
    fig, ax = plt.subplots(figsize=(9, 2.6))
    cpu = host.series.get("cpu", [])
    bucket = plot_bucket(host.covered_seconds or (cpu[-1][0] - cpu[0][0] if cpu else 0.0), step)
    per = "hourly" if bucket == 3600 else f"per {human_duration(bucket)}"
    for key, colour in (("cpu", "#1565c0"), ("memory", "#2e7d32"), ("swap", "#8e24aa")):
        rows = stats.downsample(host.series.get(key, []), bucket)
        if not rows:
            continue
        when = _dates([r[0] for r in rows])
        ax.plot(when, [r[1] * 100 for r in rows], color=colour, linewidth=1, marker="." if len(rows) < 3 else None, label=f"{key} ({per} mean)")
        if key == "cpu":
            ax.fill_between(when, [r[1] * 100 for r in rows], [r[2] * 100 for r in rows], color=colour, alpha=0.15, label=f"cpu ({per} max)")
    if thresholds.get("cpu") is not None:
        ax.axhline(thresholds["cpu"] * 100, color=COLOURS["warning"], linestyle="--", linewidth=1, label="CPU warning")
    ax.set_ylim(0, 100)
    span = plot_span(host, cpu or host.series.get("memory", []))
    if span:
        ax.set_xlim(*span)
    _time_axis(ax)
    ax.set_ylabel("%")
    ax.legend(loc="upper left", fontsize=7, ncol=5)
    ax.set_title("CPU, memory and swap used")
    return fig


def hours_plot(plt: Any, host: Host) -> str:
    profile = host.figures.get("cpu_by_hour") or []
    fig, ax = plt.subplots(figsize=(9, 2.0))
    busiest = {b["hour"] for b in host.figures.get("busiest_hours", [])}
    values = [0.0 if v is None else v * 100 for v in profile]
    ax.bar(range(len(values)), values, color=["#c62828" if h in busiest else "#90a4ae" for h in range(len(values))])
    ax.set_xticks(range(0, 24, 2))
    ax.set_xlabel("hour of day (UTC)")
    ax.set_ylabel("mean CPU %")
    ax.set_title("CPU by hour of day (busiest in red)")
    return _svg(fig)


def filesystem_plot(plt: Any, host: Host) -> Optional[str]:
    growing = [fs for fs in host.figures["filesystems"] if fs.get("fill_date")]
    if not growing:
        return None
    fig, ax = plt.subplots(figsize=(9, 2.6))
    for fs in growing:
        points = host.fs_series.get(fs["mountpoint"], [])
        rows = stats.downsample(points, 3600)
        line = ax.plot(_dates([r[0] for r in rows]), [r[1] / 1e9 for r in rows], linewidth=1, label=f"{fs['mountpoint']} free")[0]
        fit = stats.linear_fit(points)
        if fit is not None and fit.slope < 0:
            full = fit.crossing(0.0)
            xs = [points[0][0], full]
            ax.plot(_dates(xs), [fit.at(x) / 1e9 for x in xs], linestyle="--", color=line.get_color(), linewidth=1, label=f"{fs['mountpoint']} trend: full {fs['fill_date'][:10]}")
            ax.plot(_dates([full]), [0], marker="x", color=COLOURS["critical"])
    span = plot_span(host, [])
    if span:
        ax.set_xlim(left=span[0])  # the right end: the latest fill date drawn
    _time_axis(ax)
    ax.set_ylabel("GB free")
    ax.set_ylim(bottom=0)
    ax.legend(loc="upper right", fontsize=7)
    ax.set_title("Free space and its linear trend")
    return _svg(fig)


def _findings(items: List[Dict[str, Any]]) -> str:
    if not items:
        return "<p>Nothing to act on.</p>"
    return "".join(
        f'<div class="finding {html.escape(i["severity"])}"><b>{html.escape(i["instance"])}</b> — {html.escape(i["text"])}</div>' for i in items
    )


def _summary_table(host: Host, thresholds: Dict[str, Optional[float]]) -> str:
    rows = []
    keys = [("cpu", "CPU used", _pct), ("memory", "memory used", _pct), ("swap", "swap used", _pct), ("load5", "load (5m)", _num), ("load5_per_core", "load per core", _num)]
    keys += [(f"pressure:{k}", f"pressure {k.replace('_', ' ')}", _pct) for k in host.figures["pressure"]]
    for key, title, fmt in keys:
        fig = host.figures["pressure"].get(key.split(":", 1)[1]) if key.startswith("pressure:") else host.figures.get(key)
        if not fig:
            continue
        limit = thresholds.get(key)
        cls = ' class="warning"' if limit is not None and fig["p95"] > limit else ""
        rows.append(f'<tr{cls}><td class="l">{title}</td><td>{fmt(fig["p50"])}</td><td>{fmt(fig["p95"])}</td><td>{fmt(fig["max"])}</td></tr>')
    return '<table><tr><th class="l"></th><th>p50</th><th>p95</th><th>max</th></tr>' + "".join(rows) + "</table>"


def _fs_table(host: Host) -> str:
    fss = host.figures["filesystems"]
    if not fss:
        return ""
    rows = []
    for fs in fss:
        when = fs["fill_date"][:10] if fs.get("fill_date") else "not filling"
        span = ""
        if fs.get("fill_date_earliest"):
            span = f'{fs["fill_date_earliest"][:10]} – {fs["fill_date_latest"][:10] if fs.get("fill_date_latest") else "never"}'
        days = fs.get("days_until_full")
        cls = ' class="critical"' if days is not None and days <= 7 else (' class="warning"' if days is not None and days <= 30 else "")
        r2 = "–" if fs.get("fit_r2") is None else f'{fs["fit_r2"]:.2f} ({fs["confidence"] or "—"})'
        rows.append(
            f'<tr{cls}><td class="l">{html.escape(fs["mountpoint"])}</td><td>{_pct(fs.get("usage_ratio"))}</td><td>{fmt_bytes(fs.get("size_bytes"))}</td>'
            f'<td>{fmt_bytes(fs.get("growth_bytes_per_day"))}/day</td><td>{when}</td><td>{span}</td><td>{r2}</td></tr>'
        )
    head = '<tr><th class="l">mount</th><th>used now</th><th>size</th><th>growth</th><th>full on</th><th>95% range</th><th>fit r² (confidence)</th></tr>'
    return "<h3>Filesystems</h3><table>" + head + "".join(rows) + "</table>"


def _nic_table(host: Host) -> str:
    nics = host.figures["interfaces"]
    if not nics:
        return ""
    rows = "".join(
        f'<tr><td class="l">{html.escape(n["device"])}</td>'
        + "".join(f"<td>{fmt_bytes(n.get(k))}/s</td>" for k in ("receive_p95_bytes_per_second", "receive_peak_bytes_per_second", "transmit_p95_bytes_per_second", "transmit_peak_bytes_per_second"))
        + "</tr>"
        for n in nics
    )
    return '<h3>Network</h3><table><tr><th class="l">interface</th><th>receive p95</th><th>receive peak</th><th>transmit p95</th><th>transmit peak</th></tr>' + rows + "</table>"


def _alert_table(alerts: List[Dict[str, Any]], title: str = "Alerts that fired") -> str:
    if not alerts:
        return f"<h3>{title}</h3><p>None.</p>"
    rows = "".join(
        f'<tr class="{html.escape(a["severity"])}"><td class="l">{html.escape(a["alertname"])}</td><td class="l">{html.escape(a["severity"])}</td>'
        f'<td class="l">{html.escape(" ".join(f"{k}={v}" for k, v in sorted(a["labels"].items())))}</td>'
        f'<td class="l">{a["start"].replace("T", " ")}</td><td>{human_duration(a["duration_seconds"])}{" (still firing)" if a["still_firing"] else ""}</td></tr>'
        for a in alerts
    )
    return f'<h3>{title}</h3><table><tr><th class="l">alert</th><th class="l">severity</th><th class="l">labels</th><th class="l">started (UTC)</th><th>lasted</th></tr>' + rows + "</table>"


def _users_table(host: Host) -> str:
    """Top process groups, and top services and containers, each by CPU and by memory."""
    parts = []
    for users in host.figures["top_users"]:
        cpu = "".join(f'<tr><td class="l">{html.escape(r["name"])}</td><td>{r["value"]:.3f}</td></tr>' for r in users["cpu"])
        mem = "".join(f'<tr><td class="l">{html.escape(r["name"])}</td><td>{fmt_bytes(r["value"])}</td></tr>' for r in users["memory"])
        parts.append(
            f"<h3>Top {html.escape(users['kind'])}</h3>"
            f'<div style="display:flex;gap:24px"><table><tr><th class="l">by CPU</th><th>{html.escape(users["cpu_unit"])}</th></tr>{cpu}</table>'
            f'<table><tr><th class="l">by memory</th><th>{html.escape(users["memory_unit"])}</th></tr>{mem}</table></div>'
        )
    return "".join(parts)


def render(data: ReportData) -> str:
    """The whole page."""
    from . import thresholdfile

    plt = _matplotlib()
    meta = data.meta
    # Limits for colouring the tables, from the same thresholds as the alerts.
    config = data.thresholds
    limits = {
        "cpu": thresholdfile.threshold(config, "cpu_usage"),
        "memory": thresholdfile.threshold(config, "memory_usage"),
        "swap": thresholdfile.threshold(config, "swap_usage"),
        "load5_per_core": thresholdfile.threshold(config, "load_per_core"),
    }
    parts = [
        "<!DOCTYPE html><html><head><meta charset='utf-8'><title>hostagent report</title>",
        f"<style>{CSS}</style></head><body>",
        "<h1>hostagent capacity report</h1>",
        f'<p class="meta">{html.escape(meta["from"])} to {html.escape(meta["to"])} · {plural(len(data.hosts), "host")} · Prometheus {html.escape(meta["prometheus"])} '
        f'{html.escape(meta["selector"])} · rates over {html.escape(meta["rate_window"])} windows · hours in UTC · {html.escape(meta.get("thresholds", ""))} · generated {html.escape(meta["generated_at"])}</p>',
        "<h2>Act on this</h2>",
        _findings(data.findings),
    ]
    overview = "".join(
        f'<tr><td class="l"><a href="#h{i}">{html.escape(h.instance)}</a></td><td>{_num(h.cores) if h.cores is None else f"{h.cores:g}"}</td>'
        f'<td>{fmt_bytes(h.memory_bytes)}</td><td>{_pct((h.figures.get("cpu") or {}).get("p95"))}</td><td>{_pct((h.figures.get("memory") or {}).get("p95"))}</td>'
        f'<td>{len(h.figures["alerts"])}</td></tr>'
        for i, h in enumerate(data.hosts)
    )
    parts.append('<h2>Hosts</h2><table><tr><th class="l">instance</th><th>cores</th><th>memory</th><th>CPU p95</th><th>memory p95</th><th>alerts</th></tr>' + overview + "</table>")
    if data.fleet_alerts:
        parts.append(_alert_table(data.fleet_alerts, "Alerts not tied to one host"))
    for i, host in enumerate(data.hosts):
        parts.append(f'<h2 id="h{i}">{html.escape(host.instance)}</h2>')
        if host.data_from is not None:
            f = host.figures
            parts.append(f'<p class="meta">Data from {html.escape(f["data_from"])} to {html.escape(f["data_to"])} ({human_duration(host.covered_seconds)} of the '
                         f'{human_duration(meta["span_seconds"])} asked for): the figures cover that span.</p>')
        if not host.series:
            parts.append("<p>No CPU, memory or load figures from this host in the range.</p>")
        else:
            busiest = ", ".join(f'{b["hour"]:02d}:00 ({_pct(b["cpu"])})' for b in host.figures["busiest_hours"])
            if not busiest and any(v is not None for v in host.figures["cpu_by_hour"]):
                busiest = "none: CPU use is the same at every hour"
            parts.append(f"<p>Busiest hours (UTC, mean CPU): {busiest or '–'}</p>")
            parts.append(_summary_table(host, limits))
            plots = [usage_plot(plt, host, limits, meta["step_seconds"]), hours_plot(plt, host)]
            parts.append(f'<div class="plots">{"".join(plots)}</div>')
        parts.append(_fs_table(host))
        fs_plot = filesystem_plot(plt, host)
        if fs_plot:
            parts.append(f'<div class="plots">{fs_plot}</div>')
        parts.append(_nic_table(host))
        parts.append(_users_table(host))
        parts.append(_alert_table(host.figures["alerts"]))
    parts.append("</body></html>\n")
    return "".join(parts)
