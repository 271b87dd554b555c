"""The dashboards without servers: variables, refresh, units, queries, thresholds."""

from __future__ import annotations

import re
from typing import Dict, List, Optional, Set

import pytest
import yaml
from support import REPO

from hostagent import promql
from hostagent.alerting import thresholds
from hostagent.collectors import load_all
from hostagent.dashboards import boards
from hostagent.dashboards.grafana import DATASOURCE_UID, DS, LONGTERM, LONGTERM_UID, PanelQuery, queries, threshold_steps
from hostagent.exposition import AGENT_METRICS

BOARDS = boards.build_all(thresholds.load())
# The dashboard of the long-term store; every other asks Prometheus.
HISTORY = "history"
LIVE_BOARDS = sorted(set(BOARDS) - {HISTORY})


def tier_expanded(q: PanelQuery) -> List[PanelQuery]:
    """A query as it runs: with each value of the tier picker on the long-term dashboard."""
    if promql.TIER_PICKED not in q.expr:
        return [q]
    return [q._replace(expr=q.expr.replace(promql.TIER_PICKED, tier), ref=f"{q.ref}@{tier}") for tier in promql.TIERS]


ALL_QUERIES = [e for board in BOARDS.values() for q in queries(board) for e in tier_expanded(q)]
# Series Prometheus makes itself, and prometheus-client's process metrics.
PROMETHEUS_SERIES = {"up", "scrape_duration_seconds", "scrape_samples_scraped", "ALERTS"}
CLIENT_SERIES = {"process_cpu_seconds_total", "process_resident_memory_bytes", "process_virtual_memory_bytes", "process_open_fds"}
KEYWORDS = {"and", "or", "unless", "bool", "offset", "inf", "nan"}
RATE_FUNCTIONS = ("rate", "irate", "increase")
UNITS = {"percentunit", "bytes", "Bps", "binBps", "s", "short", "cps", "pps", "iops", "hertz", "rotrpm", "celsius"}


def recorded_series() -> Set[str]:
    """The series the shipped recording rules record."""
    doc = yaml.safe_load((REPO / "prometheus" / "rules" / "hostagent-recording.rules.yml").read_text())
    return {rule["record"] for group in doc["groups"] for rule in group["rules"] if "record" in rule}


def tier_series() -> Set[str]:
    """The series the shipped tier rules record."""
    doc = yaml.safe_load((REPO / "prometheus" / "rules" / "hostagent-tiers.rules.yml").read_text())
    return {rule["record"] for group in doc["groups"] for rule in group["rules"]}


def known_metrics() -> Set[str]:
    """Every series name the agent, Prometheus or the recording rules can produce."""
    specs = [spec for cls in load_all().values() for spec in cls.metrics] + list(AGENT_METRICS)
    return {spec.name for spec in specs} | PROMETHEUS_SERIES | CLIENT_SERIES | recorded_series() | tier_series()


def _strip(expr: str) -> str:
    """The expression without strings, matchers, ranges and grouping labels."""
    out = re.sub(r'"(?:\\.|[^"\\])*"', '""', expr)
    out = re.sub(r"\{[^}]*\}", "", out)
    out = re.sub(r"\[[^\]]*\]", "", out)
    return re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", out)


def metric_names(expr: str) -> List[str]:
    """Series names a PromQL expression selects (functions and keywords left out)."""
    words = re.finditer(r"(?<![\w.$])([a-zA-Z_:][a-zA-Z0-9_:]*)(?![\w:])(?!\s*\()", _strip(expr))
    return [m.group(1) for m in words if m.group(1) not in KEYWORDS and m.group(1) not in ("group_left", "group_right")]


def selectors(expr: str, name: str) -> List[Optional[str]]:
    """The matcher text of every use of ``name`` in ``expr`` (None when it has none)."""
    return [m.group(1) for m in re.finditer(rf"(?<![\w:]){re.escape(name)}(?![\w:])(\{{[^}}]*\}})?", expr)]


def test_there_are_nine_dashboards_with_stable_uids() -> None:
    assert sorted(BOARDS) == sorted(["overview", "cpu", "memory", "disk", "network", "processes", "system", "agent", "history"])
    uids = [b["uid"] for b in BOARDS.values()]
    assert uids == [f"hostagent-{name}" for name in BOARDS]
    assert all(len(uid) <= 40 for uid in uids)  # Grafana's limit


@pytest.mark.parametrize("name", LIVE_BOARDS)
def test_dashboard_options(name: str) -> None:
    board = BOARDS[name]
    assert board["refresh"] == "10s"
    assert "10s" in board["timepicker"]["refresh_intervals"]
    options = board["timepicker"]["time_options"]
    assert options[0] == "1h" and options[-1] == "30d"
    assert [r["from"] for r in board["timepicker"]["quick_ranges"]] == [f"now-{o}" for o in options]
    assert board["time"] == {"from": "now-1h", "to": "now"}
    assert board["tags"] == ["hostagent"]
    assert board["links"][0]["type"] == "dashboards" and board["links"][0]["tags"] == ["hostagent"]
    assert board["links"][0]["includeVars"] and board["links"][0]["keepTime"]


def test_the_history_dashboard_reads_the_long_term_store_over_a_year() -> None:
    board = BOARDS[HISTORY]
    assert board["time"] == {"from": "now-1y", "to": "now"}
    assert board["timepicker"]["time_options"][-2:] == ["1y", "2y"]
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert list(variables) == ["job", "instance", "tier"]
    # Hosts from the long-term store itself: a host retired months ago is still listed.
    assert all(variables[v]["datasource"] == LONGTERM for v in ("job", "instance"))
    assert variables["instance"]["definition"] == 'label_values(instance:host_up:avg_5m{job=~"$job"}, instance)'
    assert [o["value"] for o in variables["tier"]["options"]] == ["1h", "5m"] and variables["tier"]["current"]["value"] == "1h"
    # Alerts are not in the long-term store: no annotation asks for them.
    assert [a["name"] for a in board["annotations"]["list"]] == ["Annotations & Alerts"]
    panels = _panels(board)
    assert all(p["datasource"] == LONGTERM and p["interval"] == "$tier" for p in panels)
    assert all(t["datasource"]["uid"] == LONGTERM_UID for p in panels for t in p["targets"])
    assert {"CPU usage", "Memory usage", "Filesystem usage", "Free space in 30 days", "Network"} <= {p["title"] for p in panels}


@pytest.mark.parametrize("name", LIVE_BOARDS)
def test_host_variables(name: str) -> None:
    variables = {v["name"]: v for v in BOARDS[name]["templating"]["list"]}
    assert list(variables)[:3] == ["datasource", "job", "instance"]
    ds = variables["datasource"]
    assert ds["type"] == "datasource" and ds["query"] == "prometheus"
    assert ds["current"]["value"] == DATASOURCE_UID
    for var in ("job", "instance"):
        v = variables[var]
        assert v["type"] == "query" and v["multi"] and v["includeAll"], var
        assert v["datasource"]["uid"] == "${datasource}"
        assert v["current"]["value"] == ["$__all"]
    # Instances come from the chosen jobs, not from a fixed list.
    assert '{job=~"$job"}' in variables["instance"]["definition"]
    # Hosts come from up, which a target keeps while down; an agent metric
    # would drop a dead host from the list (and from "Hosts down").
    assert variables["instance"]["definition"] == 'label_values(up{job=~"$job"}, instance)'
    assert not variables["instance"]["options"]


def test_no_hard_coded_hosts() -> None:
    text = "\n".join(q.expr for q in ALL_QUERIES)
    assert "localhost" not in text and ":9100" not in text
    assert not re.search(r'instance(=|!=|=~|!~)"(?!\$instance")', text)
    assert not re.search(r'job(=|!=|=~|!~)"(?!\$job")', text)


@pytest.mark.parametrize("q", ALL_QUERIES, ids=lambda q: f"{q.uid}/{q.panel}/{q.ref}")
def test_every_selector_filters_by_the_chosen_hosts(q: PanelQuery) -> None:
    names = metric_names(q.expr)
    assert names, f"no series in {q.expr!r}"
    for name in set(names):
        for matchers in selectors(q.expr, name):
            assert matchers is not None, f"{name} without matchers in {q.expr!r}"
            assert 'instance=~"$instance"' in matchers, f"{name}{matchers} ignores $instance"
            if name != "ALERTS":  # an alert's labels are what its rule kept: maybe no job
                assert 'job=~"$job"' in matchers, f"{name}{matchers} ignores $job"


@pytest.mark.parametrize("q", ALL_QUERIES, ids=lambda q: f"{q.uid}/{q.panel}/{q.ref}")
def test_every_rate_uses_rate_interval(q: PanelQuery) -> None:
    """Rates span $__rate_interval; an increase may span the whole range
    ($__range), in an instant query: what each used over the range."""
    for m in re.finditer(rf"\b({'|'.join(RATE_FUNCTIONS)})\(", q.expr):
        depth, i = 1, m.end()
        while depth:
            depth += {"(": 1, ")": -1}.get(q.expr[i], 0)
            i += 1
        argument = q.expr[m.end() : i - 1]
        ranges = re.findall(r"\[([^\]]*)\]", argument)
        over_range = m.group(1) == "increase" and q.instant and ranges == ["$__range"]
        assert ranges == ["$__rate_interval"] or over_range, f"{m.group(1)}() over {ranges} in {q.expr!r}"


@pytest.mark.parametrize("q", ALL_QUERIES, ids=lambda q: f"{q.uid}/{q.panel}/{q.ref}")
def test_the_whole_range_is_read_by_instant_queries_only(q: PanelQuery) -> None:
    """A window of $__range at every step of a graph would read twice the range."""
    assert "[$__range]" not in q.expr or q.instant, q.expr


def test_every_metric_exists() -> None:
    known = known_metrics()
    used = {name for q in ALL_QUERIES for name in metric_names(q.expr)}
    assert used - known == set()
    # The check has teeth: most of the catalog is on some dashboard.
    assert len(used) > 60


def test_metric_name_extraction() -> None:
    expr = 'sum by(job,instance,mode)(rate(a_total{mode!~"idle|x"}[$__rate_interval])) / on(job,instance) group_left b{x="1e-9"} > 0 or on() vector(0)'
    assert metric_names(expr) == ["a_total", "b"]
    assert selectors(expr, "b") == ['{x="1e-9"}']
    assert metric_names("time() - (last_success{x=\"y\"} > 0)") == ["last_success"]


def tier_unit(name: str) -> Optional[Set[str]]:
    """The unit of a tier series, from its metric (None: not a tier series)."""
    parts = name.split(":")
    if len(parts) != 3 or not parts[2].endswith(tuple(f"_{t}" for t in promql.TIERS)):
        return None
    metric = parts[1]
    if "network" in metric and "bytes" in metric:
        return {"Bps", "binBps"}
    if "bytes" in metric:
        return {"bytes", "Bps", "binBps"} if parts[2].startswith("rate") else {"bytes"}
    if metric.endswith(("_cores", "_per_cpu", "_failed_packets")):
        return {"short", "pps"}
    return {"percentunit"}  # utilisation, usage, busy time, pressure, availability: shares


def expected_units(expr: str) -> Optional[Set[str]]:
    """The unit(s) an expression's result is in, where it is plain to tell."""
    expr = re.split(r"\s(?:and|unless)\s", expr)[0]  # the left side gives the values
    names = metric_names(expr)
    tiers = {frozenset(u) for u in map(tier_unit, names) if u is not None}
    if names and len(tiers) == 1 and all(tier_unit(n) for n in names):
        return set(next(iter(tiers)))
    rated = re.search(r"\b(rate|irate)\(", expr) is not None
    bare = _strip(expr).replace("$__rate_interval", "")
    divided = "/" in bare
    arithmetic = re.search(r"[-+*/]", bare) is not None

    def all_end(*suffixes: str) -> bool:
        return all(n.endswith(suffixes) for n in names)

    if re.match(r"1 - \w+\(?", expr) or (divided and rated and all_end("_seconds_total", "host_cpu_cores")):
        return {"percentunit"}  # 1 - part/whole; CPU seconds per second per core
    if rated and divided and all_end("_packets_total", "_errors_total", "_drop_total"):
        return {"percentunit"}  # failed packets over all packets
    if rated and divided and all_end("_seconds_total", "_completed_total"):
        return {"s"}  # time per operation
    if divided and any(n.startswith("host_load") for n in names):
        return {"short"}  # load per core
    if arithmetic and all_end("_seconds") and not divided:
        return {"s"}  # a difference of two times
    if arithmetic:
        return None
    if rated and all_end("_bytes_total"):
        return {"Bps", "binBps"}
    if rated and all(n.startswith(("host_tcp_", "host_udp_")) for n in names):
        return {"pps", "cps"}  # segments and datagrams: packets, or events, per second
    if rated and all_end("_packets_total", "_errors_total", "_drop_total"):
        return {"pps"}
    if rated and all_end("_completed_total"):
        return {"iops"}
    if rated and all_end("_weighted_seconds_total"):
        return {"short"}  # seconds weighted by I/Os in flight, per second: a queue depth
    if rated and all_end("_seconds_total"):
        return {"percentunit"}  # seconds per second: a share of time
    if rated:
        return {"cps", "ops"}  # other events per second
    for suffix, unit in (("_hertz", "hertz"), ("_rpm", "rotrpm"), ("_celsius", "celsius")):
        if all_end(suffix):
            return {unit}
    if all_end("_speed_bytes"):
        return {"Bps", "binBps"}  # link speed: bytes per second
    if all_end("_ratio"):
        return {"percentunit"}
    if all_end("_usage_cores"):
        return {"percentunit"}  # CPU used, in cores, drawn as CORES: 100 % is one full core
    if all_end("_bytes"):
        return {"bytes"}
    if all_end("_seconds"):
        return {"s"}
    if re.search(r"\bincrease\(", expr) and all_end("_seconds_total"):
        return {"s"}  # time used over a window
    if re.search(r"\bincrease\(", expr) or not any(n.endswith(("_total", "_info")) for n in names):
        return {"short"}  # counts of things
    return None


def _units_by_query(board: Dict) -> Dict[str, Dict[str, str]]:
    """Panel title -> refId -> unit shown for that query."""
    out: Dict[str, Dict[str, str]] = {}
    for panel in board["panels"]:
        refs = [t["refId"] for t in panel.get("targets", [])]
        if panel["type"] == "table":
            overrides = {o["matcher"]["options"]: o["properties"] for o in panel["fieldConfig"]["overrides"]}
            columns = ["Value"] if len(refs) == 1 else [f"Value #{r}" for r in refs]
            out[panel["title"]] = {
                r: next(p["value"] for p in overrides[c] if p["id"] == "unit") for r, c in zip(refs, columns) if c in overrides
            }
        elif refs:
            unit = panel["fieldConfig"]["defaults"]["unit"]
            assert unit in UNITS, f"{panel['title']}: unit {unit!r}"
            out[panel["title"]] = {r: unit for r in refs}
    return out


def test_units_match_what_queries_return() -> None:
    judged = 0
    for board in BOARDS.values():
        units = _units_by_query(board)
        for q in (e for q in queries(board) for e in tier_expanded(q)):
            want = expected_units(q.expr)
            q = q._replace(ref=q.ref.split("@")[0])
            if want is None or q.ref not in units.get(q.panel, {}):
                continue  # annotations and label-only table columns have no unit
            judged += 1
            assert units[q.panel][q.ref] in want, f"{q.uid}/{q.panel}/{q.ref}: unit {units[q.panel][q.ref]} for {q.expr!r}"
    assert judged > len(ALL_QUERIES) // 2, f"only {judged} of {len(ALL_QUERIES)} queries had a unit judged"


def test_expected_units_rules() -> None:
    assert expected_units('rate(host_disk_read_bytes_total{a="b"}[$__rate_interval])') == {"Bps", "binBps"}
    assert expected_units('rate(x_seconds_total{}[$__rate_interval]) / rate(x_completed_total{}[$__rate_interval])') == {"s"}
    assert expected_units("host_memory_used_bytes{}") == {"bytes"}
    assert expected_units("1 - host_memory_available_bytes{} / host_memory_total_bytes{}") == {"percentunit"}
    assert expected_units("host_load5{} / on(job,instance) group_left host_cpu_cores{}") == {"short"}
    assert expected_units("host_memory_total_bytes{} * 2") is None


def _panels(board: Dict) -> List[Dict]:
    return [p for p in board["panels"] if p["type"] != "row"]


@pytest.mark.parametrize("name", sorted(BOARDS))
def test_panels_are_complete_and_do_not_overlap(name: str) -> None:
    board = BOARDS[name]
    ids = [p["id"] for p in board["panels"]]
    assert len(ids) == len(set(ids))
    cells = set()
    for p in board["panels"]:
        g = p["gridPos"]
        assert g["x"] + g["w"] <= 24, p["title"]
        mine = {(x, y) for x in range(g["x"], g["x"] + g["w"]) for y in range(g["y"], g["y"] + g["h"])}
        assert not cells & mine, f"{p['title']} overlaps another panel"
        cells |= mine
    for p in _panels(board):
        assert p["description"], p["title"]
        assert p["datasource"] == (LONGTERM if name == HISTORY else DS)
        assert p["targets"], p["title"]


def test_detail_dashboards_repeat_a_row_per_host() -> None:
    for name, board in BOARDS.items():
        repeated = [p for p in board["panels"] if p["type"] == "row" and p.get("repeat")]
        assert [r["repeat"] for r in repeated] == ["instance"], name
        assert repeated[0]["title"] == "$instance"


def test_dashboard_links_point_at_dashboards() -> None:
    uids = {b["uid"] for b in BOARDS.values()}
    links = [link for b in BOARDS.values() for p in b["panels"] for link in p.get("links", [])]
    assert len(links) >= 4
    for link in links:
        target = re.match(r"/d/([\w-]+)\?", link["url"]).group(1)
        assert target in uids, link
        for var in ("datasource", "job", "instance"):
            assert f"${{{var}:queryparam}}" in link["url"]


def _thresholded(board: Dict) -> Dict[str, List[Dict]]:
    return {p["title"]: p["fieldConfig"]["defaults"]["thresholds"]["steps"] for p in _panels(board) if len(p["fieldConfig"].get("defaults", {}).get("thresholds", {}).get("steps", [])) > 1}


def test_threshold_colours_follow_alert_levels() -> None:
    cpu = _thresholded(BOARDS["cpu"])
    levels = thresholds.load()["cpu_usage"].levels
    assert cpu["CPU usage by mode"] == [{"color": "green", "value": None}] + [
        {"color": {"warning": "orange", "critical": "red"}[lv.severity], "value": lv.threshold} for lv in levels
    ]
    assert BOARDS["cpu"]["panels"][7]["fieldConfig"]["defaults"]["custom"]["thresholdsStyle"]["mode"] == "line+area"
    # An alert that fires below its threshold: red under it, green from it up.
    up = _thresholded(BOARDS["agent"])["Collectors up"]
    assert up == [{"color": "orange", "value": None}, {"color": "green", "value": 1.0}]
    # An info alert: blue, not orange, while a collector is switched off.
    enabled = _thresholded(BOARDS["agent"])["Collectors enabled"]
    assert enabled == [{"color": "blue", "value": None}, {"color": "green", "value": 1.0}]


# One filesystem byte count over another: a share of space computed anew.
SHARE_OF_BYTES = r"host_filesystem_\w+_bytes(?:\{[^}]*\})?\s*/\s*\(*\s*host_filesystem_\w+_bytes"


def test_filesystem_usage_has_one_definition_on_every_dashboard() -> None:
    """Space used is the agent's df-style ratio, as the alert compares it: no
    panel derives its own share from the byte counts, and the Filesystems
    table's "used" column is the same series as the bars and the graph."""
    exprs = [q.expr for q in ALL_QUERIES]
    for expr in exprs:
        assert not re.search(SHARE_OF_BYTES, expr), expr
    used = {q.panel: q.expr for q in ALL_QUERIES if q.expr.startswith("host_filesystem_usage_ratio")}
    assert set(used) == {"Root filesystem", "Space used per mount", "Filesystems", "Space used"}
    assert used["Space used"] == used["Space used per mount"] == used["Filesystems"] == promql.filesystem_usage(promql.DASHBOARD)
    disk = {p["title"]: p for p in BOARDS["disk"]["panels"]}
    renamed = disk["Filesystems"]["transformations"]
    assert '"Value #C": "used"' in str(renamed).replace("'", '"')
    alert_expr = yaml.safe_load((REPO / "prometheus" / "rules" / "hostagent-alerts.rules.yml").read_text())
    fs_rules = [r["expr"] for g in alert_expr["groups"] for r in g["rules"] if r.get("alert") == "HostFilesystemAlmostFull"]
    assert fs_rules and all(e.startswith("host_filesystem_usage_ratio ") for e in fs_rules)


def test_network_throughput_is_decimal_and_disk_throughput_binary() -> None:
    """As docs/dashboards.md says: network rates in SI bytes/s, disk and swap in IEC."""
    units = {}
    for board in BOARDS.values():
        for title, refs in _units_by_query(board).items():
            units.update({(board["uid"], title, ref): unit for ref, unit in refs.items()})
    network = {k: u for k, u in units.items() if k[0] == "hostagent-network" and k[1] in ("Network bytes", "Interfaces")}
    assert network[("hostagent-network", "Network bytes", "A")] == "Bps"
    assert network[("hostagent-network", "Interfaces", "B")] == "Bps"
    assert units[("hostagent-overview", "Network", "A")] == "Bps"
    assert units[("hostagent-disk", "Disk throughput", "A")] == "binBps"
    assert units[("hostagent-memory", "Swap activity", "A")] == "binBps"
    # No other throughput unit anywhere.
    assert {u for u in units.values() if u.endswith("Bps")} == {"Bps", "binBps"}


def test_editing_alerting_yaml_changes_the_dashboards(tmp_path) -> None:
    doc = yaml.safe_load((REPO / "config" / "alerting.yaml").read_text())
    doc["alerts"]["memory_usage"]["levels"] = [
        {"severity": "info", "threshold": 0.5, "for": "1m"},
        {"severity": "critical", "threshold": 0.7, "for": "1m"},
    ]
    path = tmp_path / "alerting.yaml"
    path.write_text(yaml.safe_dump(doc))
    memory = _thresholded(boards.memory(thresholds.load(path)))
    expected = [{"color": "green", "value": None}, {"color": "blue", "value": 0.5}, {"color": "red", "value": 0.7}]
    assert memory["Memory usage"] == expected
    assert memory["Memory and swap available"] != expected  # other alerts keep theirs


def test_every_required_threshold_colours_a_panel() -> None:
    text = "\n".join(str(_thresholded(b)) for b in BOARDS.values())
    th = thresholds.load()
    for key in thresholds.REQUIRED_KEYS:
        first = th[key].levels[0].threshold
        assert f"'value': {first}" in text, f"{key} colours no panel"


class _Alert:
    key, unit, direction = "cpu_usage", "percentunit", "above"
    levels = (thresholds.Level("warning", 0.8, "5m"),)


def test_threshold_unit_mismatch_is_an_error() -> None:
    with pytest.raises(ValueError, match=r"panel 'Load' shows unit 'short' but the thresholds of 'cpu_usage' .* 'percentunit'"):
        threshold_steps(_Alert(), "short", "Load")


def test_missing_alert_key_is_an_error() -> None:
    th = dict(thresholds.load())
    del th["swap_usage"]
    with pytest.raises(ValueError, match="config/alerting.yaml has no entry 'swap_usage'"):
        boards.memory(th)
