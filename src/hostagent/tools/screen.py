"""What ``hostagent top`` shows, as lines of (text, style) segments.

The same lines feed the full-screen view (rich) and the plain text of
``--once``, dumb terminals and pipes, so both always say the same thing.
Styles are names: ``ok``, ``warning``, ``critical`` (the alert levels of
config/alerting.yaml), ``dim``, ``bold``, ``head`` and ``bar``.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Tuple

from .. import promql
from . import plural, thresholdfile
from .fleet import sort_hosts
from .hostview import TABLES, sort_rows
from .stats import scaled
from .timeparse import human_duration, local_time

Segment = Tuple[str, str]
Line = List[Segment]
SORT_KEYS = {"c": "cpu", "m": "memory", "d": "disk", "n": "network"}
TABLE_KEY = "g"  # switches the process table: processes, groups, services
TABLE_TITLES = {"processes": "processes", "groups": "process groups", "services": "services and containers"}
TABLE_NAMES = {"processes": "processes", "groups": "groups", "services": "services"}  # short, for the table's heading
HOST_KEYS = "c cpu  m mem  d disk  n net  g procs/groups/svcs"
FLEET_KEYS = "c cpu  m mem  d disk  n net"
# ps's one-letter process states.
STATE_LETTERS = {
    "running": "R", "sleeping": "S", "disk-sleep": "D", "stopped": "T", "tracing-stop": "t", "zombie": "Z",
    "dead": "X", "wake-kill": "K", "waking": "W", "parked": "P", "idle": "I", "locked": "L", "waiting": "W",
}  # fmt: skip
# PSI's own words for the agent's "waiting" and "stalled".
PSI_WORDS = {"waiting": "some", "stalled": "full"}
SPARK = "▁▂▃▄▅▆▇█"


@dataclass
class Context:
    """How to draw: size, character set, sort order, thresholds, state of the source."""

    width: int = 80
    height: Optional[int] = None  # None: as many lines as there is content (plain output)
    unicode: bool = True
    sort: str = "cpu"
    table: Optional[str] = None  # the process table asked for (TABLES); None: the first the agent has
    thresholds: Optional[object] = None
    thresholds_source: str = ""
    interval: float = 2.0
    help: bool = False
    error: Optional[str] = None  # the last fetch failed: why
    error_since: Optional[float] = None
    message: str = ""  # a passing note, e.g. "sort: memory"
    extra: Dict[str, Any] = field(default_factory=dict)

    def level(self, key: Optional[str], value: Optional[float]) -> str:
        """The colour of ``value`` by alert ``key``: none without a thresholds
        file, a value or that alert (a key the file leaves out is no alert)."""
        if key is None or value is None or key not in getattr(self.thresholds, "alerts", {}):
            return ""
        return thresholdfile.level_of(self.thresholds, key, value) or "ok"


# --------------------------------------------------------------------------
# Formatting


def pct(v: Optional[float], width: int = 5) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–".rjust(width)
    return f"{v * 100:.1f}%".rjust(width)


def size(v: Optional[float]) -> str:
    """Bytes in binary units, 4 significant characters: 512B, 3.1K, 23.5G."""
    return scaled(v, 1024, ("B", "K", "M", "G", "T", "P"))


def rate(v: Optional[float]) -> str:
    """Bytes per second in decimal units: 12k/s, 1.2M/s."""
    return scaled(v, 1000, ("B", "k", "M", "G", "T"), suffix="/s")


def num(v: Optional[float], digits: int = 2) -> str:
    return "–" if v is None else f"{v:.{digits}f}"


def bar(fraction: Optional[float], width: int, style: str, ctx: Context) -> List[Segment]:
    """A horizontal gauge; '#' and '.' without unicode."""
    full_char, empty_char = ("█", "░") if ctx.unicode else ("#", ".")
    f = 0.0 if fraction is None or math.isnan(fraction) else max(0.0, min(1.0, fraction))
    filled = int(round(f * width))
    return [("[", "dim"), (full_char * filled, style or "bar"), (empty_char * (width - filled), "dim"), ("]", "dim")]


def fit(line: Line, width: int) -> Line:
    """The line cut to ``width`` characters."""
    out: Line = []
    left = width
    for text, style in line:
        if left <= 0:
            break
        out.append((text[:left], style))
        left -= len(text[:left])
    return out


def plain(lines: Sequence[Line]) -> str:
    return "\n".join("".join(t for t, _ in line).rstrip() for line in lines) + "\n"


def dimmed(lines: List[Line]) -> List[Line]:
    return [[(t, "dim" if s not in ("head",) else s) for t, s in line] for line in lines]


# --------------------------------------------------------------------------
# One host


def host_lines(view: Optional[Dict[str, Any]], ctx: Context) -> List[Line]:
    """The whole host screen, fitted to ctx.width and (if set) ctx.height."""
    w = ctx.width
    top = [header(view, ctx)] + status_lines(ctx)
    footer = footer_line(ctx, HOST_KEYS)
    if view is None:
        body = [[("waiting for the first answer…" if ctx.error is None else "no data yet", "dim")]]
        return finish(top, body, footer, ctx)
    if ctx.help:
        return finish(top, help_lines(ctx, fleet=False), footer, ctx)
    fixed: List[Line] = []
    fixed += cpu_lines(view, ctx)
    fixed.append(load_line(view, ctx))
    if view.get("pressure") is not None:
        fixed.append(pressure_line(view["pressure"], ctx))
    fixed += memory_lines(view, ctx)
    fs = filesystem_lines(view, ctx)
    io = disk_net_lines(view, ctx)
    tail = [tcp_line(view, ctx), collectors_line(view, ctx)]
    procs = process_lines(view, ctx)
    if ctx.height is not None:
        room = ctx.height - len(top) - 1 - len(fixed) - len(io) - len(tail)
        # Filesystems keep at least 2 lines (header and one mount), processes get the rest.
        keep_fs = max(0, min(len(fs), max(2, room - 4)))
        if room - keep_fs >= 0:
            fs = fs[:keep_fs] if keep_fs >= 2 or len(fs) <= keep_fs else []
        procs = procs[: max(0, room - len(fs))]
    body = fixed + fs + io + tail + procs
    lines = finish(top, body, footer, ctx)
    return dimmed(lines) if ctx.error else lines


def finish(top: List[Line], body: List[Line], footer: Line, ctx: Context) -> List[Line]:
    lines = top + body
    if ctx.height is not None:
        lines = lines[: max(0, ctx.height - 1)]
        lines += [[]] * (ctx.height - 1 - len(lines))
        lines.append(footer)
    return [fit(line, ctx.width) for line in lines]


def header(view: Optional[Dict[str, Any]], ctx: Context) -> Line:
    clock = local_time(_now(), "%H:%M:%S")
    if view is None or "hostname" not in view:
        name = "fleet" if view is not None else ""
        src = (view or {}).get("source") or ctx.extra.get("source", "")
        text = f" hostagent top · {name + ' · ' if name else ''}{src}"
    else:
        up = f" · up {human_duration(view['uptime_seconds'])}" if view.get("uptime_seconds") else ""
        text = f" {view['hostname'] or '?'} · {view['source']} · {view['os']}{up}"
    right = f" sort {ctx.sort} · every {ctx.interval:g}s · {clock} "
    room = max(0, ctx.width - len(right))
    if len(text) > room:
        text = text[: max(0, room - 1)] + "…"
    return [(text.ljust(room) + right, "head")]


def status_lines(ctx: Context) -> List[Line]:
    """Why the figures are old (wrapped onto a second line if need be), or a passing note."""
    if ctx.error:
        since = ""
        if ctx.error_since is not None:
            since = f" for {human_duration(max(0.0, _now() - ctx.error_since))} (since {local_time(ctx.error_since, '%H:%M:%S')})"
        text = f" NO ANSWER{since}: {ctx.error}"
        lines = [[(text[: ctx.width], "critical")]]
        if len(text) > ctx.width:
            lines.append([("   " + text[ctx.width :], "critical")])
        return lines
    if ctx.message:
        return [[(f" {ctx.message}", "bold")]]
    return []


def _now() -> float:
    return time.time()


def footer_line(ctx: Context, sorts: str) -> Line:
    return [(f" q quit  {sorts}  h help ".ljust(ctx.width), "head")]


def help_lines(ctx: Context, fleet: bool) -> List[Line]:
    lines: List[Line] = [
        [("Keys", "bold")],
        [("  q        quit (also Ctrl-C)", "")],
        [("  c m d n  sort by CPU, memory, disk, network" + (" (hosts)" if fleet else ""), "")],
    ]
    if not fleet:
        lines += [
            [("           the table by CPU or memory, filesystems by use, interfaces by traffic", "dim")],
            [(f"  {TABLE_KEY}        the table: processes, process groups, services and containers", "")],
        ]
    lines += [
        [("  h ?      this help; any key closes it", "")],
        [],
        [("Colours", "bold")],
        [("  green", "ok"), (" under every alert threshold, ", ""), ("yellow", "warning"), (" past a warning, ", ""), ("red", "critical"), (" past a critical", "")],
        [("  " + (ctx.thresholds_source or "no thresholds"), "dim")],
        [("  The alert rules and Grafana use the same thresholds; a figure no alert", "dim")],
        [("  watches (PSI memory and io 'some') has no colour.", "dim")],
        [],
    ]
    if fleet:
        lines += [[("Rows: one per host Prometheus scrapes, DOWN first.", "dim")], [("Rates: over each host's last 2 minutes.", "dim")]]
    else:
        lines += [
            [("Rates: per second, between two runs of the agent's collector.", "dim")],
            [("%CPU: of one core (100 = a full core); S: the process state, as ps shows it.", "dim")],
            [("'full in': a line through the free space seen since top started", "dim")],
            [("(after 2 minutes; none while free space is not shrinking).", "dim")],
        ]
    return lines


def cpu_lines(view: Dict[str, Any], ctx: Context) -> List[Line]:
    cpu = view["cpu"]
    usage = cpu.get("usage")
    style = ctx.level("cpu_usage", usage)
    line: Line = [("CPU  ", "bold"), (pct(usage, 6), style), (" ", "")] + bar(usage, 20, style, ctx)
    modes = cpu.get("modes")
    if modes:
        shown = [("user", "usr"), ("system", "sys"), ("iowait", "wa"), ("steal", "st"), ("nice", "ni"), ("irq", "irq"), ("softirq", "si")]
        for mode, short in shown:
            if mode in modes and (short in ("usr", "sys", "wa") or modes[mode] >= 0.005):
                s = ctx.level("cpu_iowait", modes[mode]) if mode == "iowait" else ""
                line += [(f" {short} ", "dim"), (f"{modes[mode] * 100:.0f}%", s if s not in ("ok",) else "")]
    lines = [line]
    cores = cpu.get("per_core") or []
    cell = 19
    per_line = max(1, (ctx.width - 1) // cell)
    most_lines = 2 if ctx.height is None or ctx.height < 40 else 4
    if cores and len(cores) <= per_line * most_lines:
        for i in range(0, len(cores), per_line):
            row: Line = [(" ", "")]
            for c in cores[i : i + per_line]:
                s = ctx.level("cpu_usage", c["usage"])
                row += [(f"{c['cpu']:>3} ", "dim"), (pct(c["usage"], 6), s), (" ", "")] + bar(c["usage"], 6, s, ctx) + [(" ", "")]
            lines.append(row)
    elif cores:
        row = [(f" {plural(len(cores), 'core')} ", "dim")]
        chars = SPARK if ctx.unicode else " .:-=+*#"
        for c in cores:
            u = max(0.0, min(1.0, c["usage"] or 0.0))
            row.append((chars[min(len(chars) - 1, int(u * len(chars)))], ctx.level("cpu_usage", c["usage"])))
        lines.append(row)
    return lines


def load_line(view: Dict[str, Any], ctx: Context) -> Line:
    load = view["load"]
    cores = view["cpu"].get("cores")
    per_core = load.get("load5_per_core")
    line: Line = [("Load ", "bold"), (f"{num(load['load1'])} {num(load['load5'])} {num(load['load15'])}", ""), (" (", "dim"), (f"{num(per_core)}/core", ctx.level("load_per_core", per_core)), (f" × {cores:g})" if cores else ")", "dim")]
    return line


def pressure_line(psi: Dict[str, Optional[float]], ctx: Context) -> Line:
    """PSI: the share of time tasks waited for each resource ("some") and
    all waited at once ("full"), each coloured by the alert that compares
    the same quantity, if any (HostCpuPressure: cpu some; memory and io:
    full); the others uncoloured."""
    line: Line = [("PSI  ", "bold")]
    for resource in ("cpu", "memory", "io"):
        kinds = [k for k in ("waiting", "stalled") if f"{resource}_{k}" in psi]
        if not kinds:
            continue
        line.append((f" {resource}", ""))
        for kind in kinds:
            value = psi[f"{resource}_{kind}"]
            alert = pressure_alert(resource, kind)
            line += [(f" {PSI_WORDS[kind]} ", "dim"), (pct(value, 0), ctx.level(alert, value) if alert else "")]
        line.append((" ", ""))
    return line


def pressure_alert(resource: str, kind: str) -> Optional[str]:
    """The threshold key of the alert on this PSI figure (as the rules compare it), if any."""
    return thresholdfile.alert_comparing(promql.pressure[(resource, kind)].series())


def memory_lines(view: Dict[str, Any], ctx: Context) -> List[Line]:
    mem, swap = view["memory"], view["swap"]
    style = ctx.level("memory_usage", mem.get("usage"))
    line: Line = [("Mem  ", "bold"), (pct(mem.get("usage"), 6), style), (" ", "")] + bar(mem.get("usage"), 20, style, ctx)
    line += [(f" {size((mem.get('total') or 0) - (mem.get('available') or 0))} of {size(mem.get('total'))}", ""), ("  avail ", "dim"), (size(mem.get("available")), ""), ("  cache ", "dim"), (size(mem.get("cached")), "")]
    sline: Line = [("Swap ", "bold")]
    if not swap.get("total"):
        sline.append(("  none", "dim"))
    else:
        s = ctx.level("swap_usage", swap.get("usage"))
        sline += [(pct(swap.get("usage"), 6), s), (" ", "")] + bar(swap.get("usage"), 20, s, ctx) + [(f" {size(swap.get('used'))} of {size(swap.get('total'))}", "")]
    return [line, sline]


def filesystem_lines(view: Dict[str, Any], ctx: Context) -> List[Line]:
    fss = list(view["filesystems"])
    if ctx.sort == "disk":
        fss.sort(key=lambda f: -(f.get("usage") or 0.0))
    if not fss:
        return []
    mw = max(6, min(24, ctx.width - 56))
    out: List[Line] = [[(f"{'Filesystem':<{mw}} {'used':>6} {'':12} {'size':>6} {'avail':>6}  full in", "bold")]]
    for fs in fss:
        mount = fs["mountpoint"] if len(fs["mountpoint"]) <= mw else "…" + fs["mountpoint"][-(mw - 1):]
        # As the alert: read-only mounts (images, snaps) are full by design.
        s = "" if fs.get("readonly") else ctx.level("filesystem_usage", fs.get("usage"))
        days = fs.get("days_until_full")
        full = "–" if days is None else ("<1d" if days < 1 else f"~{days:.0f}d")
        full_style = "critical" if days is not None and days < 1 else ("warning" if days is not None and days < 7 else "")
        flags = (" ro" if fs.get("readonly") else "") + (" ERROR" if fs.get("error") else "")
        out.append(
            [(f"{mount:<{mw}} ", ""), (pct(fs.get("usage"), 6), s), (" ", "")] + bar(fs.get("usage"), 10, s, ctx)
            + [(f" {size(fs.get('size')):>6} {size(fs.get('avail')):>6}  ", ""), (f"{full}", full_style), (flags, "critical" if fs.get("error") else "warning")]
        )
    return out


def disk_net_lines(view: Dict[str, Any], ctx: Context) -> List[Line]:
    out: List[Line] = []
    disks = list(view["disks"])
    if ctx.sort == "disk":
        disks.sort(key=lambda d: -(d.get("busy") or 0.0))
    line: Line = [("Disk ", "bold")]
    for d in disks:
        busy = d.get("busy")
        line += [(f" {d['device']} ", ""), ("r ", "dim"), (rate(d.get("read_bytes_per_second")), ""), (" w ", "dim"), (rate(d.get("written_bytes_per_second")), ""), (" busy ", "dim"), (pct(busy, 0), ctx.level("disk_io_utilisation", busy)), (" ", "")]
    if disks:
        out.append(line)
    nics = [n for n in view["network"] if n.get("up", True) or (n.get("receive_bytes_per_second") or 0) > 0]
    if ctx.sort == "network":
        nics.sort(key=lambda n: -((n.get("receive_bytes_per_second") or 0) + (n.get("transmit_bytes_per_second") or 0)))
    down, up = ("↓", "↑") if ctx.unicode else ("rx ", "tx ")
    line = [("Net  ", "bold")]
    for n in nics:
        errors = (n.get("receive_errors_per_second") or 0) + (n.get("transmit_errors_per_second") or 0)
        line += [(f" {n['device']} ", ""), (down, "dim"), (rate(n.get("receive_bytes_per_second")), ""), (f" {up}", "dim"), (rate(n.get("transmit_bytes_per_second")), "")]
        if errors > 0:
            line.append((f" err {errors:.1f}/s", "warning"))
        line.append((" ", ""))
    if nics:
        out.append(line)
    return out


def tcp_line(view: Dict[str, Any], ctx: Context) -> Line:
    tcp = view["tcp"]
    if not tcp:
        return [("TCP  ", "bold"), ("–", "dim")]
    line: Line = [("TCP  ", "bold")]
    for state, short in (("ESTABLISHED", "estab"), ("LISTEN", "listen"), ("TIME_WAIT", "time_wait"), ("CLOSE_WAIT", "close_wait"), ("SYN_SENT", "syn_sent"), ("SYN_RECV", "syn_recv"), ("FIN_WAIT1", "fin_wait1"), ("FIN_WAIT2", "fin_wait2")):
        v = tcp.get(state, 0)
        if v or state in ("ESTABLISHED", "LISTEN", "TIME_WAIT"):
            s = ctx.level("tcp_time_wait", v) if state == "TIME_WAIT" else ""
            line += [(f" {short} ", "dim"), (str(v), s if s != "ok" else "")]
    total = tcp.get("total", 0)
    line += [("  total ", "dim"), (str(total), ctx.level("tcp_connections", total))]
    return line


def collectors_line(view: Dict[str, Any], ctx: Context) -> Line:
    cs = [c for c in view["collectors"] if c["enabled"]]
    if not cs:
        return [("Collectors ", "bold"), ("–", "dim")]
    # A collector whose source this host lacks is not a fault: counted apart.
    available = [c for c in cs if c["available"]]
    up = [c for c in available if c["up"]]
    line: Line = [("Collectors ", "bold"), (f"{len(up)}/{len(available)} up", "ok" if len(up) == len(available) else "warning")]
    for c in cs:
        if not c["available"]:
            line.append((f"  {c['name']} n/a", "dim"))
        elif not c["up"]:
            age = f", last ok {human_duration(c['age_seconds'])} ago" if c.get("age_seconds") is not None else ""
            line.append((f"  {c['name']} DOWN ({c.get('errors') or 0} errors{age})", "critical"))
    return line


def tables_available(view: Optional[Dict[str, Any]]) -> List[str]:
    """The process tables the agent has data for, in the switch key's order."""
    tables = ((view or {}).get("processes") or {}).get("tables") or {}
    return [t for t in TABLES if t in tables]


def shown_table(view: Optional[Dict[str, Any]], ctx: Context) -> Optional[str]:
    """The table asked for where the agent has it, else the first it has."""
    available = tables_available(view)
    if ctx.table in available:
        return ctx.table
    return available[0] if available else None


def next_table(view: Optional[Dict[str, Any]], ctx: Context) -> Optional[str]:
    """The table the switch key goes to: the next one the agent has."""
    available = tables_available(view)
    if not available:
        return None
    now = shown_table(view, ctx)
    return available[(available.index(now) + 1) % len(available)] if now in available else available[0]


def _pct_num(v: Optional[float]) -> str:
    return "–" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v * 100:.1f}"


def process_lines(view: Dict[str, Any], ctx: Context) -> List[Line]:
    p = view["processes"]
    states = p.get("states") or {}
    zombies = f", {states['zombie']} zombie" if states.get("zombie") else ""
    head: Line = [("Processes ", "bold"), (f"{p.get('count') if p.get('count') is not None else '–'}", ""), (f" ({states.get('running', 0)} running, {states.get('disk-sleep', 0)} blocked{zombies})", "dim")]
    threads = [(f" · {p['threads']:.0f} threads", "dim")] if p.get("threads") is not None else []
    shown = shown_table(view, ctx)
    if shown is None:
        return [head + [(" · no per-process data from this agent", "dim")] + threads]
    key = "memory" if ctx.sort == "memory" else "cpu"
    table = p["tables"][shown]
    missing = f"no {TABLE_NAMES[ctx.table]}: " if ctx.table and ctx.table != shown else ""
    head += [(" · ", "dim"), (f"{missing}{TABLE_NAMES[shown]} by {key}", "bold")]
    if table.get("time"):
        # The run the table comes from: the processes collector's is every 30 s by default.
        head.append((f" at {local_time(table['time'], '%H:%M:%S')}", "dim"))
    head += threads
    rows = sort_rows(table.get("rows") or [], key)
    out = [head]
    if shown == "processes":
        out.append([(f"{'PID':>7} {'USER':<9} S {'%CPU':>6} {'%MEM':>5} {'RSS':>6}  NAME", "bold")])
        for r in rows:
            state = r.get("state")
            letter = "–" if not state else STATE_LETTERS.get(state, state[:1])
            out.append([(f"{r.get('pid', ''):>7} {str(r.get('user', ''))[:9]:<9} {letter} {_pct_num(r.get('cpu')):>6} {_pct_num(r.get('memory_ratio')):>5} {size(r.get('rss')):>6}  {r.get('name', '')}", "")])
    elif shown == "groups":
        out.append([(f"{'PROCS':>6} {'THR':>5} {'%CPU':>6} {'%MEM':>5} {'RSS':>6}  GROUP", "bold")])
        for r in rows:
            procs = "" if r.get("processes") is None else str(r["processes"])
            thr = "" if r.get("threads") is None else str(r["threads"])
            out.append([(f"{procs:>6} {thr:>5} {_pct_num(r.get('cpu')):>6} {_pct_num(r.get('memory_ratio')):>5} {size(r.get('rss')):>6}  {r.get('name', '')}", "")])
    else:
        out.append([(f"{'PROCS':>6} {'%CPU':>6} {'%MEM':>5} {'MEMORY':>6}  {'KIND':<9} SERVICE OR CONTAINER", "bold")])
        for r in rows:
            procs = "" if r.get("processes") is None else str(r["processes"])
            out.append([(f"{procs:>6} {_pct_num(r.get('cpu')):>6} {_pct_num(r.get('memory_ratio')):>5} {size(r.get('memory')):>6}  {str(r.get('kind', ''))[:9]:<9} {r.get('name', '')}", "")])
    return out


# --------------------------------------------------------------------------
# The fleet


def fleet_lines(view: Optional[Dict[str, Any]], ctx: Context) -> List[Line]:
    top = [header(view, ctx)] + status_lines(ctx)
    footer = footer_line(ctx, FLEET_KEYS)
    if view is None:
        return finish(top, [[("waiting for the first answer…" if ctx.error is None else "no data yet", "dim")]], footer, ctx)
    if ctx.help:
        return finish(top, help_lines(ctx, fleet=True), footer, ctx)
    hosts = sort_hosts(view["hosts"], ctx.sort)
    up = sum(1 for h in hosts if h["up"])
    iw = max(12, min(32, ctx.width - 62))
    psi = view.get("pressure")
    summary: Line = [(f"{plural(len(hosts), 'host')}, ", ""), (f"{up} up", "ok" if up == len(hosts) else ""), (", ", ""), (f"{len(hosts) - up} down", "critical" if up < len(hosts) else "dim"), (f", {plural(len(view['alerts']), 'alert')} firing", "warning" if view["alerts"] else "dim")]
    cols = f"{'INSTANCE':<{iw}} {'CPU':>6} {'MEM':>6} {'DISK':>6} {'LOAD':>5}" + (f" {'PSI':>5}" if psi else "") + f" {'NET IN':>8} {'NET OUT':>8}  ALERTS"
    body: List[Line] = [summary, [(cols, "bold")]]
    rows: List[Line] = []
    for h in hosts:
        name = h["instance"] if len(h["instance"]) <= iw else h["instance"][: iw - 1] + "…"
        if not h["up"]:
            rows.append([(f"{name:<{iw}} ", "critical"), ("DOWN: Prometheus cannot scrape it", "critical"), (f"  {' '.join(h['alerts'])}", "critical")])
            continue
        line: Line = [(f"{name:<{iw}} ", "")]
        line += [(pct(h.get("cpu"), 6), ctx.level("cpu_usage", h.get("cpu"))), (" ", ""), (pct(h.get("memory"), 6), ctx.level("memory_usage", h.get("memory"))), (" ", "")]
        line += [(pct(h.get("disk"), 6), ctx.level("filesystem_usage", h.get("disk"))), (" ", ""), (num(h.get("load5_per_core")).rjust(5), ctx.level("load_per_core", h.get("load5_per_core")))]
        if psi:
            line += [(" ", ""), (pct(h.get("pressure_cpu"), 5), ctx.level(pressure_alert("cpu", "waiting"), h.get("pressure_cpu")))]
        line += [(f" {rate(h.get('receive')):>8} {rate(h.get('transmit')):>8}  ", ""), (" ".join(h["alerts"]), "warning" if h["alerts"] else "")]
        rows.append(line)
    alerts = alert_lines(view, ctx)
    if ctx.height is not None:
        room = ctx.height - len(top) - 1 - len(body)
        alerts = alerts[: max(0, min(len(alerts), room - min(len(rows), max(3, room // 2))))]
        rows = rows[: max(0, room - len(alerts))]
    return finish(top, body + rows + alerts, footer, ctx)


def alert_lines(view: Dict[str, Any], ctx: Context) -> List[Line]:
    if not view["alerts"]:
        return []
    out: List[Line] = [[], [("Firing alerts", "bold")]]
    for a in sorted(view["alerts"], key=lambda a: ({"critical": 0, "warning": 1}.get(a.get("severity", ""), 2), a.get("alertname", ""), a.get("instance", ""))):
        extra = " ".join(f"{k}={v}" for k, v in sorted(a.items()) if k not in ("alertname", "severity", "instance", "job"))
        sev = a.get("severity", "")
        out.append([(f" {sev:<8} ", sev if sev in ("critical", "warning") else "dim"), (f"{a.get('alertname', '')} ", "bold"), (f"{a.get('instance', '')} {extra}", "")])
    return out
