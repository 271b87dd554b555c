"""Every dashboard query, run against real agents scraped by a real Prometheus.

Two agents: one reads this machine, with a textfile directory holding a good
and a bad file, and with a cgroup tree in place of its own: this machine runs
no systemd services or containers, so that agent reads a copy of the v2
fixture tree (``cgroupfeed``) whose counters the test moves while it runs.
The other reads fixture trees (``paths.procfs`` and ``paths.sysfs``) with
software RAID arrays, cpufreq and hwmon sensors, which this machine lacks.
Template variables are substituted the way Grafana does for the Prometheus
datasource, with both hosts selected; each query must parse and return data
for this machine's agent, or, where listed in FIXTURE_FED, for the fixture
agent, or be listed in MAY_BE_EMPTY with the reason.
"""

from __future__ import annotations

import inspect
import re
import shutil
import time
from pathlib import Path
from typing import Dict, Iterator, List, NamedTuple, Sequence, Tuple

import pytest
import requests
from cgroupfeed import CounterFeed, FedSysfs, fed_sysfs
from support import REPO, agent_server, collector_names, fast_agent_config, prom_query, prometheus_server

from hostagent import promql
from hostagent.alerting import thresholds
from hostagent.dashboards import boards
from hostagent.dashboards.grafana import LONGTERM_UID, queries, variables

SCRAPE_SECONDS = 1
# Grafana's $__rate_interval: max(4 x scrape interval, $__interval + scrape interval).
RATE_INTERVAL = f"{4 * SCRAPE_SECONDS}s"
SCRAPE_FOR = 10.0  # seconds of data before querying: several rate windows
FIXTURES = REPO / "tests" / "collectors" / "fixtures"
# The fixture agent runs only the collectors whose sources this machine lacks.
FIXTURE_COLLECTORS = ("mdadm", "cpufreq", "system")
# The service or container the processes dashboard's drill-down shows, and
# the kinds its picker lists them by (Grafana's variables $cgroup and $kind).
CHOSEN_CGROUP = "docker/web-1"
CGROUP_KINDS = ("container", "service", "user")
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
    ("hostagent-processes", "Must-run groups", "A"): "only groups that ran on the host in the last day: sshd may not run where the tests do",
    ("hostagent-system", "RAID sync progress", "A"): "",  # fed by the fixture agent: see FIXTURE_FED
    ("hostagent-disk", "Discards", "A"): "kernels before 4.18 and disks without TRIM count no discards; a rate needs a change",
}
# Queries only the fixture agent answers: this machine has no md arrays, no
# cpufreq driver and no hwmon sensors. Each must get data from it.
FIXTURE_FED = {
    ("hostagent-system", "RAID arrays", ref) for ref in "ABCDEF"
} | {
    ("hostagent-system", "RAID sync progress", "A"),
    ("hostagent-system", "CPU frequency", "A"),
    ("hostagent-system", "CPU frequency", "B"),
    ("hostagent-system", "Temperatures", "A"),
    ("hostagent-system", "Fan speeds", "A"),
}
del MAY_BE_EMPTY[("hostagent-system", "RAID sync progress", "A")]
FLAP_WINDOW = inspect.signature(promql.carrier_changes).parameters["window"].default
SHORT_OFFSET = f"{int(SCRAPE_FOR) // 2}s"
GOOD_TEXTFILE = "# TYPE dashboard_test_jobs_total counter\ndashboard_test_jobs_total 3\n"
BAD_TEXTFILE = "this is not the exposition format\n"


def agent_config(textfile_dir: Path, fed: FedSysfs) -> str:
    """Every collector each second, a textfile directory, and the fed cgroup
    tree (with docker's container names) in place of this machine's."""
    text = fast_agent_config(top_n=5)
    for name, extra in (("textfile", f"directory: '{textfile_dir}'"), ("cgroups", f"docker_root: '{fed.docker_root}'")):
        assert f"  {name}: {{interval: 1}}" in text
        text = text.replace(f"  {name}: {{interval: 1}}", f"  {name}: {{interval: 1, {extra}}}")
    return f"paths: {{sysfs: '{fed.sysfs}'}}\n" + text


def fixture_tree(tmp: Path) -> Tuple[Path, Path]:
    """procfs and sysfs trees for the fixture agent: /proc/mdstat with a
    resync, a recovery, a check and a degraded RAID5 with a failed disk;
    cpufreq from the collector's fixtures; one hwmon chip with a fan and a
    temperature."""
    proc, sys = tmp / "proc", tmp / "sys"
    proc.mkdir()
    shutil.copy("/proc/stat", proc / "stat")  # the agent checks procfs holds a stat file
    resync = (FIXTURES / "mdadm" / "resync" / "mdstat").read_text().replace("unused devices: <none>\n", "")
    degraded = (FIXTURES / "mdadm" / "raid5_degraded" / "mdstat").read_text().split("\n", 1)[1]
    (proc / "mdstat").write_text(resync + degraded)
    shutil.copytree(FIXTURES / "cpufreq" / "sys", sys, symlinks=True)
    hwmon = sys / "class" / "hwmon" / "hwmon0"
    hwmon.mkdir(parents=True)
    for name, text in (("name", "nct6775"), ("fan1_input", "1024"), ("temp1_input", "48000")):
        (hwmon / name).write_text(text + "\n")
    return proc, sys


def fixture_config(proc: Path, sys: Path) -> str:
    lines = [f"paths: {{procfs: '{proc}', sysfs: '{sys}'}}", "collectors:"]
    for name in collector_names():
        lines.append(f"  {name}: {{interval: 1}}" if name in FIXTURE_COLLECTORS else f"  {name}: {{enabled: false}}")
    return "\n".join(lines) + "\n"



def grafana_regex(values: Sequence[str]) -> str:
    """A multi-value variable as Grafana writes it into a PromQL regex matcher."""
    escaped = [re.sub(r"([\\^$.|?*+()\[\]{}])", r"\\\\\1", v) for v in values]
    return "(" + "|".join(escaped) + ")"


def substitute(expr: str, job: str, *instances: str) -> str:
    """Replace Grafana's variables the way a panel with these hosts selected would."""
    out = expr
    for name, value in (
        ("$__rate_interval", RATE_INTERVAL),
        ("$__interval", f"{SCRAPE_SECONDS}s"),
        ("$__range", f"{int(SCRAPE_FOR)}s"),
        ("$instance", grafana_regex(list(instances))),
        ("$job", grafana_regex([job])),
        ("$kind", grafana_regex(CGROUP_KINDS)),
        ("$cgroup", CHOSEN_CGROUP),  # one value, no regex: the picker takes one
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


class Stack(NamedTuple):
    base: str  # Prometheus URL
    instance: str  # the agent reading this machine
    fixture: str  # the agent reading the fixture trees
    first: float  # time of the first scrape


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """Two scraped agents, this machine's and the fixture trees'."""
    tmp = tmp_path_factory.mktemp("dashboards-live")
    canary = tmp / "canary.rules.yml"
    canary.write_text(CANARY_RULES)
    textfiles = tmp / "textfile"
    textfiles.mkdir()
    (textfiles / "good.prom").write_text(GOOD_TEXTFILE)
    (textfiles / "bad.prom").write_text(BAD_TEXTFILE)
    fed = fed_sysfs(tmp)
    (tmp / "fixture").mkdir()
    proc, sys = fixture_tree(tmp / "fixture")
    with CounterFeed(fed.cgroup), agent_server(tmp, agent_config(textfiles, fed)).start() as agent, agent_server(tmp / "fixture", fixture_config(proc, sys)).start() as fixture:
        instance, fixture_instance = (a.base_url.split("//", 1)[1] for a in (agent, fixture))
        config = (
            f"global: {{scrape_interval: {SCRAPE_SECONDS}s, evaluation_interval: {SCRAPE_SECONDS}s}}\n"
            f"rule_files: ['{canary}', '{RECORDING_RULES}']\n"
            "scrape_configs:\n"
            "  - job_name: hostagent\n"
            f"    static_configs: [{{targets: ['{instance}', '{fixture_instance}']}}]\n"
        )
        with prometheus_server(tmp, config).start() as prom:
            deadline = time.time() + 20
            while len(prom_query(prom.base_url, 'up{job="hostagent"} == 1')) < 2:
                assert time.time() < deadline, f"Prometheus never scraped both agents\n{prom.log()}"
                time.sleep(0.2)
            first = time.time()
            time.sleep(SCRAPE_FOR)
            while not prom_query(prom.base_url, 'ALERTS{alertname="DashboardCanary",alertstate="firing"}'):
                assert time.time() < deadline + SCRAPE_FOR, f"the canary alert never fired\n{prom.log()}"
                time.sleep(0.2)
            yield Stack(prom.base_url, instance, fixture_instance, first)


def all_queries():
    """Every query that asks Prometheus (the long-term panels are run against
    VictoriaMetrics in tests/storage/test_longterm.py)."""
    return [q for board in boards.build_all(thresholds.load()).values() for q in queries(board) if q.datasource != LONGTERM_UID]


def test_every_panel_query_parses_and_returns_data(stack: Stack) -> None:
    now = time.time()
    failures = []
    checked = all_queries()
    for q in checked:
        expr = substitute(q.expr, "hostagent", stack.instance, stack.fixture)
        # A window longer than this Prometheus' history (the link changes of
        # the last 15 minutes) is shortened to what it holds.
        expr = expr.replace(f"offset {FLAP_WINDOW}", f"offset {SHORT_OFFSET}")
        where = f"{q.uid} / {q.panel} / {q.ref}: {expr}"
        try:
            result = prom_query(stack.base, expr, now) if q.instant else prom_range(stack.base, expr, stack.first, now)
        except AssertionError as exc:
            failures.append(f"{where}\n    {exc}")
            continue
        key = (q.uid, q.panel, q.ref)
        answered = {s["metric"].get("instance") for s in result}
        # Series without an instance label (sums over hosts, vector(0)) count for this machine.
        wanted = stack.fixture if key in FIXTURE_FED else stack.instance
        if answered - {None, stack.instance, stack.fixture}:
            failures.append(f"{where}\n    returned series of another instance: {result[:2]}")
        elif not answered & {wanted, None} and key not in MAY_BE_EMPTY:
            failures.append(f"{where}\n    returned no data for {wanted} (got {sorted(map(str, answered))})")
    assert len(checked) > 150, "the dashboards lost their queries"
    assert not failures, f"{len(failures)} of {len(checked)} queries failed:\n" + "\n".join(failures)
    keys = {(q.uid, q.panel, q.ref) for q in checked}
    assert not set(MAY_BE_EMPTY) - keys, f"MAY_BE_EMPTY names queries that no longer exist: {set(MAY_BE_EMPTY) - keys}"
    assert not FIXTURE_FED - keys, f"FIXTURE_FED names queries that no longer exist: {FIXTURE_FED - keys}"


def test_fixture_fed_panels_show_the_fixture_values(stack: Stack) -> None:
    """The RAID, frequency and sensor panels show what the fixture files say."""
    fx = f'instance="{stack.fixture}"'
    missing = {s["metric"]["device"]: float(s["value"][1]) for s in prom_query(stack.base, substitute(promql.raid_disks_missing(promql.DASHBOARD), "hostagent", stack.fixture))}
    # md1 recovers onto a new disk (3 of 4 in sync), md127 lost a disk (3 of 4), md126 runs on 2 of 3.
    assert {d: v for d, v in missing.items() if v > 0} == {"md1": 1.0, "md127": 1.0, "md126": 1.0}
    failed = prom_query(stack.base, f'host_md_disks{{{fx},state="failed"}} > 0')
    assert [s["metric"]["device"] for s in failed] == ["md127"]
    synced = {s["metric"]["device"]: float(s["value"][1]) for s in prom_query(stack.base, f"host_md_blocks_synced_ratio{{{fx}}}")}
    assert synced["md0"] == pytest.approx(711304320 / 1953382464, rel=1e-3)
    fans = prom_query(stack.base, f"host_hwmon_fan_rpm{{{fx}}}")
    assert [(s["metric"]["chip"], float(s["value"][1])) for s in fans] == [("nct6775", 1024.0)]
    freq = {s["metric"]["cpu"]: float(s["value"][1]) for s in prom_query(stack.base, f"host_cpu_frequency_hertz{{{fx}}}")}
    assert freq["0"] == 2.2e9


def test_textfile_panels_show_the_refused_file_and_the_served_one(stack: Stack) -> None:
    sel = f'instance="{stack.instance}"'
    assert [float(s["value"][1]) for s in prom_query(stack.base, f"host_textfile_scrape_error{{{sel}}}")] == [1.0]
    served = prom_query(stack.base, f"host_textfile_mtime_seconds{{{sel}}}")
    assert [s["metric"]["file"].rsplit("/", 1)[-1] for s in served] == ["good.prom"]


def test_host_variables_list_the_agents(stack: Stack) -> None:
    base, instance = stack.base, stack.instance
    found = {}
    for var in variables():
        if var["type"] != "query":
            continue
        m = re.fullmatch(r"label_values\((.+), (\w+)\)", var["definition"])
        assert m, f"variable {var['name']}: unexpected query {var['definition']!r}"
        selector = substitute(m.group(1), "hostagent", instance, stack.fixture)
        resp = requests.get(f"{base}/api/v1/label/{m.group(2)}/values", params={"match[]": selector}, timeout=10)
        assert resp.status_code == 200, resp.text
        found[var["name"]] = resp.json()["data"]
    assert found == {"job": ["hostagent"], "instance": sorted([instance, stack.fixture])}


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
            promql.disk_queue_depth,
            promql.packets_failed["receive"],
            promql.packets_failed["transmit"],
            promql.tcp_retransmits,
            promql.conntrack_usage,
            promql.filefd_usage,
            *promql.pressure.values(),
        )
    },
    'host_memory_usage_ratio{job=~"$job",instance=~"$instance"}': promql.memory_utilisation.name,
    promql.filesystem_usage(promql.DASHBOARD): "host_filesystem_usage_ratio",
}


def test_thresholded_panels_show_what_the_alerts_compare(stack: Stack) -> None:
    base, instance = stack.base, stack.instance
    exprs = {q.expr for q in all_queries()}
    assert set(SAME_AS_ALERT) <= exprs, f"not in any dashboard: {set(SAME_AS_ALERT) - exprs}"
    for expr, recorded in SAME_AS_ALERT.items():
        ours = substitute(expr, "hostagent", instance).replace(RATE_INTERVAL, "5m")
        # At a rule evaluation's timestamp the query sees exactly what the rule saw.
        ours_recorded = f'{recorded}{{instance="{instance}"}}'
        series = prom_query(base, f"timestamp({ours_recorded})")
        assert series, f"{recorded} has not been recorded"
        at = float(series[0]["value"][1])
        theirs = {_key(s): float(s["value"][1]) for s in prom_query(base, ours_recorded, at)}
        mine = {_key(s): float(s["value"][1]) for s in prom_query(base, ours, at)}
        assert mine.keys() == theirs.keys(), f"{expr}: series differ from {recorded}: {mine.keys() ^ theirs.keys()}"
        for k, v in mine.items():
            assert v == pytest.approx(theirs[k], rel=1e-9, abs=1e-12, nan_ok=True), f"{expr} != {recorded} for {k}"


def _key(series: dict) -> Tuple[Tuple[str, str], ...]:
    """Labels that tell series apart (names and job/instance aside)."""
    return tuple(sorted((k, v) for k, v in series["metric"].items() if k not in ("__name__", "job", "instance")))


# --------------------------------------------------------------------------
# The processes dashboard: groups from this machine, cgroups from the fed tree


def _panel_values(base: str, instance: str, uid: str, title: str) -> Dict[str, float]:
    """The legend -> value of an instant panel query, as the dashboard shows it."""
    (q,) = [q for q in all_queries() if q.uid == uid and q.panel == title]
    assert q.instant, title
    legend = next(t["legendFormat"] for b in boards.build_all(thresholds.load()).values() if b["uid"] == uid for p in b["panels"] if p["title"] == title for t in p["targets"])
    label = re.fullmatch(r"\{\{(\w+)\}\}", legend).group(1)
    return {s["metric"][label]: float(s["value"][1]) for s in prom_query(base, substitute(q.expr, "hostagent", instance))}


def test_processes_dashboard_shows_the_fed_services_and_containers(stack: Stack) -> None:
    base, instance = stack.base, stack.instance
    board = "hostagent-processes"
    cpu = _panel_values(base, instance, board, "Top services and containers by CPU time over the range")
    # nginx.service burns half a core, docker/web-1 a quarter, the others 2%.
    assert sorted(cpu, key=cpu.get, reverse=True)[:2] == ["nginx.service", "docker/web-1"], cpu
    assert 0.3 * SCRAPE_FOR < cpu["nginx.service"] < 0.8 * SCRAPE_FOR, cpu
    kills = _panel_values(base, instance, board, "OOM kills over the range")
    assert set(kills) == {CHOSEN_CGROUP} and kills[CHOSEN_CGROUP] >= 1, kills
    peak = _panel_values(base, instance, board, "Top services and containers by peak memory over the range")
    assert 150_000_000 < peak[CHOSEN_CGROUP] <= 200_000_000, peak
    # The drill-down's memory against the 512 MiB limit.
    (share,) = prom_query(base, substitute(promql.cgroup_memory_of_limit(promql.DASHBOARD, 'cgroup="$cgroup"'), "hostagent", instance))
    assert 150_000_000 / 536_870_912 <= float(share["value"][1]) <= 200_000_000 / 536_870_912
    # Process groups from this machine.
    groups = _panel_values(base, instance, board, "Top groups by CPU time over the range")
    assert groups and all(v >= 0 for v in groups.values()), groups
    # Must-run groups: those the agent exports with a process (it pins none
    # here, and all ran within the day the stack has lived), at their count.
    must_run = thresholds.load()["must_run_groups"].groups
    shown = {s["metric"]["group"]: float(s["value"][1]) for s in prom_query(base, substitute(promql.must_run_processes(promql.DASHBOARD, must_run), "hostagent", instance))}
    exported = {s["metric"]["group"]: float(s["value"][1]) for s in prom_query(base, f'host_process_group_processes{{instance="{instance}"}}')}
    assert shown == {g: n for g, n in exported.items() if g in must_run and n > 0}, (shown, exported)


def test_processes_dashboard_pickers_list_cgroups_by_kind(stack: Stack) -> None:
    base, instance = stack.base, stack.instance
    board = next(b for b in boards.build_all(thresholds.load()).values() if b["uid"] == "hostagent-processes")
    picker = {v["name"]: v for v in board["templating"]["list"]}
    assert not picker["cgroup"]["multi"] and picker["kind"]["multi"]
    listed = {}
    for kinds in (("container",), ("service",), CGROUP_KINDS):
        m = re.fullmatch(r"label_values\((.+), cgroup\)", picker["cgroup"]["definition"])
        selector = substitute(m.group(1), "hostagent", instance).replace(grafana_regex(CGROUP_KINDS), grafana_regex(kinds))
        resp = requests.get(f"{base}/api/v1/label/cgroup/values", params={"match[]": selector}, timeout=10)
        listed[kinds] = set(resp.json()["data"])
    assert listed[("container",)] == {"docker/web-1", "docker/9abcdef01234", "podman/c0ffee000000"}
    assert listed[("service",)] == {"nginx.service", "docker.service", "containerd.service", "sshd.service", "getty@tty1.service"}
    assert listed[CGROUP_KINDS] == listed[("container",)] | listed[("service",)] | {"user-1000.slice"}
