"""Every dashboard query, run against a real agent scraped by a real Prometheus.

Template variables are substituted the way Grafana does for the Prometheus
datasource; each query must parse and, unless listed in MAY_BE_EMPTY with
the reason, return data for the agent's instance.
"""

from __future__ import annotations

import re
import time
from typing import Dict, Iterator, List, Sequence, Tuple

import pytest
import requests
from support import REPO, agent_server, fast_agent_config, prom_query, prometheus_server

from hostagent import promql
from hostagent.alerting import thresholds
from hostagent.dashboards import boards
from hostagent.dashboards.grafana import queries, variables

SCRAPE_SECONDS = 1
# Grafana's $__rate_interval: max(4 x scrape interval, $__interval + scrape interval).
RATE_INTERVAL = f"{4 * SCRAPE_SECONDS}s"
SCRAPE_FOR = 10.0  # seconds of data before querying: several rate windows
AGENT_CONFIG = fast_agent_config(top_n=5)
RECORDING_RULES = REPO / "prometheus" / "rules" / "hostagent-recording.rules.yml"
# Without a firing alert the ALERTS panels could only be checked for syntax;
# this rule fires for every scraped host from its first evaluation.
CANARY_RULES = """\
groups:
  - name: dashboard-canary
    rules:
      - alert: DashboardCanary
        expr: host_cpu_cores > 0
        labels: {severity: info}
"""

# (dashboard uid, panel title, query ref) -> why a fresh machine may have no data.
MAY_BE_EMPTY: Dict[Tuple[str, str, str], str] = {
    ("hostagent-disk", "Predicted time until full", "A"): "only filesystems whose free space shrinks get a prediction",
    ("hostagent-network", "Interfaces", "B"): "virtual interfaces report no link speed, so host_network_speed_bytes is absent",
}


def grafana_regex(values: Sequence[str]) -> str:
    """A multi-value variable as Grafana writes it into a PromQL regex matcher."""
    escaped = [re.sub(r"([\\^$.|?*+()\[\]{}])", r"\\\\\1", v) for v in values]
    return "(" + "|".join(escaped) + ")"


def substitute(expr: str, job: str, instance: str) -> str:
    """Replace Grafana's variables the way a panel with this host selected would."""
    out = expr
    for name, value in (
        ("$__rate_interval", RATE_INTERVAL),
        ("$__interval", f"{SCRAPE_SECONDS}s"),
        ("$__range", f"{int(SCRAPE_FOR)}s"),
        ("$instance", grafana_regex([instance])),
        ("$job", grafana_regex([job])),
    ):
        out = out.replace(name, value)
    assert "$" not in out, f"unsubstituted variable in {out!r}"
    return out


def prom_range(base_url: str, expr: str, start: float, end: float) -> List[dict]:
    """A range query at the scrape resolution; raise with Prometheus' message on error."""
    params = {"query": expr, "start": f"{start:.3f}", "end": f"{end:.3f}", "step": f"{SCRAPE_SECONDS}s"}
    resp = requests.get(base_url + "/api/v1/query_range", params=params, timeout=10)
    body = resp.json()
    if resp.status_code != 200 or body.get("status") != "success":
        raise AssertionError(f"query failed: {expr!r}: {body.get('error', resp.text)}")
    return body["data"]["result"]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tuple[str, str, float]]:
    """A scraped agent: (Prometheus URL, agent instance, time of the first scrape)."""
    tmp = tmp_path_factory.mktemp("dashboards-live")
    canary = tmp / "canary.rules.yml"
    canary.write_text(CANARY_RULES)
    with agent_server(tmp, AGENT_CONFIG).start() as agent:
        instance = agent.base_url.split("//", 1)[1]
        config = (
            f"global: {{scrape_interval: {SCRAPE_SECONDS}s, evaluation_interval: {SCRAPE_SECONDS}s}}\n"
            f"rule_files: ['{canary}', '{RECORDING_RULES}']\n"
            "scrape_configs:\n"
            "  - job_name: hostagent\n"
            f"    static_configs: [{{targets: ['{instance}']}}]\n"
        )
        with prometheus_server(tmp, config).start() as prom:
            deadline = time.time() + 20
            while not prom_query(prom.base_url, 'up{job="hostagent"} == 1'):
                assert time.time() < deadline, f"Prometheus never scraped the agent\n{prom.log()}"
                time.sleep(0.2)
            first = time.time()
            time.sleep(SCRAPE_FOR)
            while not prom_query(prom.base_url, 'ALERTS{alertname="DashboardCanary",alertstate="firing"}'):
                assert time.time() < deadline + SCRAPE_FOR, f"the canary alert never fired\n{prom.log()}"
                time.sleep(0.2)
            yield prom.base_url, instance, first


def all_queries():
    return [q for board in boards.build_all(thresholds.load()).values() for q in queries(board)]


def test_every_panel_query_parses_and_returns_data(stack: Tuple[str, str, float]) -> None:
    base, instance, first = stack
    now = time.time()
    failures, emptied = [], set()
    checked = all_queries()
    for q in checked:
        expr = substitute(q.expr, "hostagent", instance)
        where = f"{q.uid} / {q.panel} / {q.ref}: {expr}"
        try:
            result = prom_query(base, expr, now) if q.instant else prom_range(base, expr, first, now)
        except AssertionError as exc:
            failures.append(f"{where}\n    {exc}")
            continue
        key = (q.uid, q.panel, q.ref)
        if not result:
            emptied.add(key)
            if key not in MAY_BE_EMPTY:
                failures.append(f"{where}\n    returned no data")
        elif any(s["metric"].get("instance") not in (None, instance) for s in result):
            failures.append(f"{where}\n    returned series of another instance: {result[:2]}")
    assert len(checked) > 100, "the dashboards lost their queries"
    assert not failures, f"{len(failures)} of {len(checked)} queries failed:\n" + "\n".join(failures)
    unknown = set(MAY_BE_EMPTY) - {(q.uid, q.panel, q.ref) for q in checked}
    assert not unknown, f"MAY_BE_EMPTY names queries that no longer exist: {unknown}"


def test_host_variables_list_the_agent(stack: Tuple[str, str, float]) -> None:
    base, instance, _ = stack
    found = {}
    for var in variables():
        if var["type"] != "query":
            continue
        m = re.fullmatch(r"label_values\((.+), (\w+)\)", var["definition"])
        assert m, f"variable {var['name']}: unexpected query {var['definition']!r}"
        selector = substitute(m.group(1), "hostagent", instance)
        resp = requests.get(f"{base}/api/v1/label/{m.group(2)}/values", params={"match[]": selector}, timeout=10)
        assert resp.status_code == 200, resp.text
        found[var["name"]] = resp.json()["data"]
    assert found == {"job": ["hostagent"], "instance": [instance]}


# Dashboard expression -> the series its alert compares with the thresholds
# (a recording rule, or the agent's own metric). Evaluated over the rules' 5m
# window, both must agree exactly, so a panel changes colour where the alert
# condition holds. The recorded quantities are the promql module's formulas
# in the dashboard scope; the check is that a panel draws each of them.
SAME_AS_ALERT = {
    **{
        quantity.expr(promql.DASHBOARD): quantity.name
        for quantity in (
            promql.cpu_utilisation,
            promql.cpu_iowait,
            promql.load5_per_cpu,
            promql.memory_and_swap_available,
            promql.inodes_usage,
            promql.disk_io_utilisation,
            promql.packets_failed["receive"],
            promql.packets_failed["transmit"],
        )
    },
    'host_memory_usage_ratio{job=~"$job",instance=~"$instance"}': promql.memory_utilisation.name,
    promql.filesystem_usage(promql.DASHBOARD): "host_filesystem_usage_ratio",
}


def test_thresholded_panels_show_what_the_alerts_compare(stack: Tuple[str, str, float]) -> None:
    base, instance, _ = stack
    exprs = {q.expr for q in all_queries()}
    assert set(SAME_AS_ALERT) <= exprs, f"not in any dashboard: {set(SAME_AS_ALERT) - exprs}"
    for expr, recorded in SAME_AS_ALERT.items():
        ours = substitute(expr, "hostagent", instance).replace(RATE_INTERVAL, "5m")
        # At a rule evaluation's timestamp the query sees exactly what the rule saw.
        series = prom_query(base, f"timestamp({recorded})")
        assert series, f"{recorded} has not been recorded"
        at = float(series[0]["value"][1])
        theirs = {_key(s): float(s["value"][1]) for s in prom_query(base, recorded, at)}
        mine = {_key(s): float(s["value"][1]) for s in prom_query(base, ours, at)}
        assert mine.keys() == theirs.keys(), f"{expr}: series differ from {recorded}: {mine.keys() ^ theirs.keys()}"
        for k, v in mine.items():
            assert v == pytest.approx(theirs[k], rel=1e-9, abs=1e-12, nan_ok=True), f"{expr} != {recorded} for {k}"


def _key(series: dict) -> Tuple[Tuple[str, str], ...]:
    """Labels that tell series apart (names and job/instance aside)."""
    return tuple(sorted((k, v) for k, v in series["metric"].items() if k not in ("__name__", "job", "instance")))
