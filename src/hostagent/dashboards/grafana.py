"""Grafana dashboard JSON building blocks: queries, panels, variables, layout.

Plain dicts in the dashboard JSON model (schemaVersion 39), so the output is
exactly what Grafana stores and what the tests read.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, Iterable, Iterator, List, Mapping, NamedTuple, Optional, Sequence

Json = Dict[str, Any]

SCHEMA_VERSION = 39
TAG = "hostagent"
# The provisioned datasource (grafana/provisioning/datasources/prometheus.yml).
DATASOURCE_UID = "hostagent-prometheus"
DATASOURCE_NAME = "Prometheus"
DS = {"type": "prometheus", "uid": "${datasource}"}
# The long-term store (grafana/provisioning/datasources/longterm.yml): the
# 5-minute and hourly tiers for a year or more.
LONGTERM_UID = "hostagent-longterm"
LONGTERM = {"type": "prometheus", "uid": LONGTERM_UID}
REFRESH = "10s"
REFRESH_INTERVALS = ["10s", "30s", "1m", "5m", "15m", "30m", "1h"]
TIME_OPTIONS = ["1h", "3h", "6h", "12h", "24h", "2d", "7d", "30d"]
SEVERITY_COLOURS = {"info": "blue", "warning": "orange", "critical": "red"}
OK_COLOUR = "green"
GRID_WIDTH = 24


@dataclass(frozen=True)
class Query:
    """One PromQL query of a panel and its legend."""

    expr: str
    legend: str = ""


@dataclass(frozen=True)
class Unit:
    """How a panel shows its values: Grafana's unit and the axis range (None: automatic)."""

    name: str
    lo: Optional[float] = 0
    hi: Optional[float] = None


SHARE = Unit("percentunit", 0, 1)  # a share of a whole, 0..1 shown as 0-100 %
CORES = Unit("percentunit")  # CPU seconds per second: 100 % is one full core, more on several
PERCENT = Unit("percentunit")  # a share that is small next to 100 % (iowait, failed packets)
BYTES = Unit("bytes")  # sizes, binary prefixes (KiB, MiB)
BYTES_RATE = Unit("binBps")  # disk and swap throughput, binary prefixes
NET_RATE = Unit("Bps")  # network throughput and link speed, decimal prefixes
PACKETS_RATE = Unit("pps")
IOPS = Unit("iops")
PER_SECOND = Unit("cps")  # events per second
SECONDS = Unit("s")
COUNT = Unit("short")  # counts and plain numbers
HERTZ = Unit("hertz")  # clock frequencies
RPM = Unit("rotrpm")  # fan speeds
CELSIUS = Unit("celsius")  # temperatures


def dashed(name: str, colour: str = "", *, regex: bool = False) -> Json:
    """An override drawing the series ``name`` (with ``regex``: every series
    whose name matches it) as an unfilled dashed line (a limit)."""
    properties: List[Json] = [{"id": "custom.lineStyle", "value": {"dash": [10, 10], "fill": "dash"}}, {"id": "custom.fillOpacity", "value": 0}]
    if colour:
        properties.append({"id": "color", "value": {"fixedColor": colour, "mode": "fixed"}})
    return {"matcher": {"id": "byRegexp" if regex else "byName", "options": name}, "properties": properties}


def _targets(queries: Sequence[Query], instant: bool) -> List[Json]:
    out = []
    for i, q in enumerate(queries):
        t: Json = {
            "datasource": DS,
            "editorMode": "code",
            "expr": q.expr,
            "legendFormat": q.legend or "__auto",
            "range": not instant,
            "instant": instant,
            "refId": chr(ord("A") + i),
        }
        if instant:
            t["format"] = "table"
        out.append(t)
    return out


def threshold_steps(alert: Any, unit: str, title: str) -> List[Json]:
    """Grafana threshold steps from an alert's levels: green, then one colour per severity."""
    if alert.unit != unit:
        raise ValueError(
            f"panel {title!r} shows unit {unit!r} but the thresholds of {alert.key!r} "
            f"in config/alerting.yaml are in {alert.unit!r}"
        )
    for level in alert.levels:
        if level.severity not in SEVERITY_COLOURS:
            raise ValueError(f"{alert.key}: unknown severity {level.severity!r}")
    levels = sorted(alert.levels, key=lambda lv: lv.threshold)  # Grafana steps ascend
    colours = [SEVERITY_COLOURS[lv.severity] for lv in levels]
    if getattr(alert, "direction", "above") == "below":
        # Fires under the threshold: the lowest band is the most severe, green above all.
        colours = colours + [OK_COLOUR]
    else:
        colours = [OK_COLOUR] + colours
    values = [None] + [lv.threshold for lv in levels]
    return [{"color": c, "value": v} for c, v in zip(colours, values)]


def _field_defaults(unit: str, title: str, alert: Any, steps: Optional[List[Json]], lo: Optional[float], hi: Optional[float]) -> Json:
    if alert is not None:
        steps = threshold_steps(alert, unit, title)
    defaults: Json = {
        "unit": unit,
        "thresholds": {"mode": "absolute", "steps": steps or [{"color": OK_COLOUR, "value": None}]},
    }
    if lo is not None:
        defaults["min"] = lo
    if hi is not None:
        defaults["max"] = hi
    return defaults


def _panel(kind: str, title: str, description: str, w: int, h: int) -> Json:
    if not description:
        raise ValueError(f"panel {title!r} needs a description")
    return {"type": kind, "title": title, "description": description, "datasource": DS, "gridPos": {"h": h, "w": w}}


def timeseries(
    title: str,
    description: str,
    queries: Sequence[Query],
    unit: str,
    *,
    alert: Any = None,
    stack: bool = False,
    lo: Optional[float] = None,
    hi: Optional[float] = None,
    overrides: Sequence[Json] = (),
    w: int = 12,
    h: int = 8,
) -> Json:
    """A time series graph; with ``alert`` its warning/critical bands are shaded."""
    p = _panel("timeseries", title, description, w, h)
    defaults = _field_defaults(unit, title, alert, None, lo, hi)
    defaults["color"] = {"mode": "palette-classic"}
    defaults["custom"] = {
        "drawStyle": "line",
        "lineWidth": 1,
        "fillOpacity": 60 if stack else 10,
        "showPoints": "never",
        "spanNulls": False,
        "stacking": {"mode": "normal" if stack else "none", "group": "A"},
        "thresholdsStyle": {"mode": "line+area" if alert is not None else "off"},
    }
    p["fieldConfig"] = {"defaults": defaults, "overrides": list(overrides)}
    p["options"] = {
        "legend": {"displayMode": "table", "placement": "bottom", "showLegend": True, "calcs": ["mean", "max", "lastNotNull"]},
        "tooltip": {"mode": "multi", "sort": "desc"},
    }
    p["targets"] = _targets(queries, instant=False)
    return p


def _reduce() -> Json:
    return {"calcs": ["lastNotNull"], "fields": "", "values": False}


def stat(
    title: str,
    description: str,
    queries: Sequence[Query],
    unit: str,
    *,
    alert: Any = None,
    steps: Optional[List[Json]] = None,
    lo: Optional[float] = None,
    hi: Optional[float] = None,
    links: Sequence[Json] = (),
    mappings: Sequence[Json] = (),
    w: int = 4,
    h: int = 4,
) -> Json:
    """A single big number coloured by its thresholds, with a sparkline."""
    p = _panel("stat", title, description, w, h)
    defaults = _field_defaults(unit, title, alert, steps, lo, hi)
    if mappings:
        defaults["mappings"] = list(mappings)
    p["fieldConfig"] = {"defaults": defaults, "overrides": []}
    p["options"] = {
        "reduceOptions": _reduce(),
        "colorMode": "value" if (alert is not None or steps) else "none",
        "graphMode": "area",
        "justifyMode": "auto",
        "orientation": "auto",
        "textMode": "auto",
    }
    if links:
        p["links"] = list(links)
    p["targets"] = _targets(queries, instant=False)
    return p


def bargauge(
    title: str,
    description: str,
    queries: Sequence[Query],
    unit: str,
    *,
    alert: Any = None,
    lo: Optional[float] = None,
    hi: Optional[float] = None,
    w: int = 12,
    h: int = 8,
) -> Json:
    """Horizontal bars, one per series, coloured by thresholds (e.g. space per mount)."""
    p = _panel("bargauge", title, description, w, h)
    p["fieldConfig"] = {"defaults": _field_defaults(unit, title, alert, None, lo, hi), "overrides": []}
    p["options"] = {
        "reduceOptions": _reduce(),
        "displayMode": "gradient",
        "orientation": "horizontal",
        "showUnfilled": True,
        "valueMode": "color",
    }
    p["targets"] = _targets(queries, instant=True)
    return p


def table(
    title: str,
    description: str,
    queries: Sequence[Query],
    *,
    value_unit: Mapping[str, str],
    column_steps: Optional[Mapping[str, List[Json]]] = None,
    hide: Iterable[str] = ("Time", "__name__", "job"),
    rename: Optional[Mapping[str, str]] = None,
    sort_by: str = "",
    w: int = 12,
    h: int = 8,
) -> Json:
    """A table of instant series: one row per series, one column per label.

    ``value_unit`` maps each value column (``Value`` for one query,
    ``Value #A``... for several) to its unit; ``column_steps`` colours a
    column's text by threshold steps."""
    p = _panel("table", title, description, w, h)
    overrides = []
    for column, unit in value_unit.items():
        properties: List[Json] = [{"id": "unit", "value": unit}]
        steps = (column_steps or {}).get(column)
        if steps:
            properties.append({"id": "thresholds", "value": {"mode": "absolute", "steps": steps}})
            properties.append({"id": "custom.cellOptions", "value": {"type": "color-text"}})
        overrides.append({"matcher": {"id": "byName", "options": column}, "properties": properties})
    p["fieldConfig"] = {"defaults": {"thresholds": {"mode": "absolute", "steps": [{"color": OK_COLOUR, "value": None}]}}, "overrides": overrides}
    p["options"] = {"showHeader": True, "cellHeight": "sm", "footer": {"show": False, "reducer": ["sum"], "fields": ""}}
    if sort_by:
        p["options"]["sortBy"] = [{"displayName": (rename or {}).get(sort_by, sort_by), "desc": True}]
    transformations: List[Json] = []
    if len(queries) > 1:
        transformations.append({"id": "merge", "options": {}})
    transformations.append(
        {"id": "organize", "options": {"excludeByName": {name: True for name in hide}, "indexByName": {}, "renameByName": dict(rename or {})}}
    )
    p["transformations"] = transformations
    p["targets"] = _targets(queries, instant=True)
    return p


class Board:
    """The panels of one dashboard, in reading order (left to right, top to
    bottom). ``alert=`` names a key of config/alerting.yaml: its levels
    colour the panel, so it turns orange or red where that alert fires."""

    def __init__(self, thresholds: Mapping[str, Any], datasource: Json = DS, min_interval: str = ""):
        self.thresholds = thresholds
        self.panels: List[Json] = []
        self.variables: List[Json] = []  # after the host pickers
        # Where every panel asks, and the finest step it asks for ("" : the datasource's).
        self.datasource = datasource
        self.min_interval = min_interval

    def _add(self, panel: Json) -> None:
        if self.datasource != DS:
            panel["datasource"] = self.datasource
            for target in panel.get("targets", []):
                target["datasource"] = self.datasource
        if self.min_interval:
            panel["interval"] = self.min_interval
        self.panels.append(panel)

    def alert(self, key: Optional[str]) -> Any:
        """The thresholds of ``key`` (None for no key)."""
        if key is None:
            return None
        try:
            return self.thresholds[key]
        except KeyError:
            raise ValueError(f"config/alerting.yaml has no entry {key!r}, which the dashboards colour panels by") from None

    def row(self, title: str, repeat: str = "") -> None:
        self.panels.append(row(title, repeat))

    def variable(self, name: str, label: str, query: str, multi: bool = True) -> None:
        """A picker after the host pickers, its values from ``query``
        (``label_values(...)``); ``multi``: several at once and All, else one."""
        self.variables.append(_query_variable(name, label, query, multi))

    def stat(self, title: str, description: str, unit: Unit, *queries: Query, alert: Optional[str] = None, **options: Any) -> None:
        """A big number with a sparkline (``options``: steps, links, mappings, w, h)."""
        self._add(stat(title, description, queries, unit.name, alert=self.alert(alert), lo=unit.lo, hi=unit.hi, **options))

    def graph(self, title: str, description: str, unit: Unit, *queries: Query, alert: Optional[str] = None, **options: Any) -> None:
        """A time series graph; with ``alert`` its bands are shaded (``options``: stack, overrides, w, h)."""
        self._add(timeseries(title, description, queries, unit.name, alert=self.alert(alert), lo=unit.lo, hi=unit.hi, **options))

    def bars(self, title: str, description: str, unit: Unit, *queries: Query, alert: Optional[str] = None, **options: Any) -> None:
        """One bar per series of an instant query (``options``: w, h)."""
        self._add(bargauge(title, description, queries, unit.name, alert=self.alert(alert), lo=unit.lo, hi=unit.hi, **options))

    def table(self, title: str, description: str, *queries: Query, **options: Any) -> None:
        """A table of instant series; see :func:`table` for ``options``."""
        self._add(table(title, description, queries, **options))

    def dashboard(self, uid: str, title: str, description: str, **options: Any) -> Json:
        """The dashboard (``options``: pickers, time_from, annotations; see :func:`dashboard`)."""
        return dashboard(uid, title, description, self.panels, self.variables, **options)


def row(title: str, repeat: str = "") -> Json:
    """A row header; with ``repeat`` one copy per selected value of that variable."""
    p: Json = {"type": "row", "title": title, "collapsed": False, "panels": [], "gridPos": {"h": 1, "w": GRID_WIDTH}}
    if repeat:
        p["repeat"] = repeat
    return p


def layout(panels: Sequence[Json]) -> List[Json]:
    """Number the panels and place them left to right, wrapping at the grid width."""
    out: List[Json] = []
    x = y = line_height = 0
    for pid, panel in enumerate(panels, start=1):
        w, h = panel["gridPos"]["w"], panel["gridPos"]["h"]
        if panel["type"] == "row" or x + w > GRID_WIDTH:
            y += line_height
            x = line_height = 0
        placed = dict(panel, id=pid, gridPos={"h": h, "w": w, "x": x, "y": y})
        out.append(placed)
        x += w
        line_height = max(line_height, h)
        if panel["type"] == "row":
            y += h
            x = line_height = 0
    return out


class PanelQuery(NamedTuple):
    """One PromQL query of a dashboard and where it sits."""

    uid: str
    panel: str  # panel title, or "annotation: <name>"
    ref: str
    expr: str
    instant: bool
    datasource: str = DS["uid"]  # the uid the panel asks: ${datasource} (Prometheus) or the long-term store


def queries(board: Json) -> Iterator[PanelQuery]:
    """Every PromQL query of a dashboard: panel targets, then annotations."""
    for panel in board["panels"]:
        for t in panel.get("targets", []):
            yield PanelQuery(board["uid"], panel["title"], t["refId"], t["expr"], bool(t.get("instant")), t["datasource"]["uid"])
    for ann in board["annotations"]["list"]:
        if "expr" in ann:
            yield PanelQuery(board["uid"], f"annotation: {ann['name']}", "A", ann["expr"], False)


def dashboard_link(uid: str, title: str) -> Json:
    """A panel link to another dashboard, keeping the host selection and time range."""
    url = f"/d/{uid}?${{datasource:queryparam}}&${{job:queryparam}}&${{instance:queryparam}}&${{__url_time_range}}"
    return {"title": title, "url": url, "targetBlank": False}


def _query_variable(name: str, label: str, query: str, multi: bool = True, datasource: Json = DS) -> Json:
    return {
        "name": name,
        "label": label,
        "type": "query",
        "datasource": datasource,
        "definition": query,
        "query": {"query": query, "refId": f"{name}-variable"},
        "refresh": 2,  # on time range change, so new hosts appear
        "multi": multi,
        "includeAll": multi,
        # One value: Grafana picks the first it finds.
        "current": {"selected": True, "text": ["All"], "value": ["$__all"]} if multi else {},
        "options": [],
        "regex": "",
        "sort": 1,
        "hide": 0,
    }


def variables() -> List[Json]:
    """Datasource, job and instance pickers; instances are those of the chosen jobs."""
    datasource = {
        "name": "datasource",
        "label": "Data source",
        "type": "datasource",
        "query": "prometheus",
        "current": {"selected": False, "text": DATASOURCE_NAME, "value": DATASOURCE_UID},
        "options": [],
        "regex": "",
        "refresh": 1,
        "hide": 0,
    }
    return [
        datasource,
        _query_variable("job", "Job", "label_values(hostagent_build_info, job)"),
        # From up, not from an agent metric: a host whose agent stopped
        # answering stays selectable (and counted as down) however long ago.
        _query_variable("instance", "Host", 'label_values(up{job=~"$job"}, instance)'),
    ]


def longterm_variables(hosts_series: str, tiers: Sequence[str]) -> List[Json]:
    """Job and host pickers reading the long-term store (every host it holds,
    including those gone from Prometheus), and the tier picker: the first of
    ``tiers`` by default."""
    tier = {
        "name": "tier",
        "label": "Tier",
        "type": "custom",
        "query": ",".join(tiers),
        "current": {"selected": True, "text": tiers[0], "value": tiers[0]},
        "options": [{"selected": i == 0, "text": t, "value": t} for i, t in enumerate(tiers)],
        "multi": False,
        "includeAll": False,
        "hide": 0,
    }
    return [
        _query_variable("job", "Job", f"label_values({hosts_series}, job)", datasource=LONGTERM),
        _query_variable("instance", "Host", f'label_values({hosts_series}{{job=~"$job"}}, instance)', datasource=LONGTERM),
        tier,
    ]


def alerts_annotation() -> Json:
    """Marks on every graph where an alert about the selected hosts fired."""
    return {
        "name": "Firing alerts",
        "datasource": DS,
        "enable": True,
        "hide": False,
        "iconColor": "red",
        "expr": 'ALERTS{alertstate="firing",instance=~"$instance"}',
        "step": "60s",
        "titleFormat": "{{alertname}}",
        "textFormat": "{{severity}} on {{instance}}",
        "useValueForTime": False,
    }


def dashboard(
    uid: str,
    title: str,
    description: str,
    panels: Sequence[Json],
    extra_variables: Sequence[Json] = (),
    *,
    pickers: Optional[List[Json]] = None,
    time_from: str = "now-1h",
    time_options: Sequence[str] = TIME_OPTIONS,
    annotations: bool = True,
) -> Json:
    """A complete dashboard: host variables (``pickers``, by default the
    Prometheus datasource's), then ``extra_variables``, 10 s refresh, links to
    its siblings; firing alerts marked on its graphs when ``annotations``."""
    builtin = {
        "builtIn": 1,
        "datasource": {"type": "grafana", "uid": "-- Grafana --"},
        "enable": True,
        "hide": True,
        "iconColor": "rgba(0, 211, 255, 1)",
        "name": "Annotations & Alerts",
        "type": "dashboard",
    }
    return {
        "uid": uid,
        "title": title,
        "description": description,
        "tags": [TAG],
        "id": None,
        "version": 1,
        "schemaVersion": SCHEMA_VERSION,
        "editable": True,
        "graphTooltip": 1,  # shared crosshair across panels
        "timezone": "browser",
        "fiscalYearStartMonth": 0,
        "liveNow": False,
        "annotations": {"list": [builtin, alerts_annotation()] if annotations else [builtin]},
        "links": [
            {
                "title": "hostagent",
                "type": "dashboards",
                "tags": [TAG],
                "asDropdown": True,
                "includeVars": True,
                "keepTime": True,
                "icon": "external link",
                "targetBlank": False,
                "tooltip": "",
                "url": "",
            }
        ],
        "templating": {"list": (variables() if pickers is None else pickers) + list(extra_variables)},
        "time": {"from": time_from, "to": "now"},
        "timepicker": {
            "refresh_intervals": REFRESH_INTERVALS,
            "time_options": list(time_options),
            "quick_ranges": [{"display": f"Last {r}", "from": f"now-{r}", "to": "now"} for r in time_options],
        },
        "refresh": REFRESH,
        "panels": layout(panels),
    }
