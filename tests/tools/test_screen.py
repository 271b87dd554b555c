"""The top view's figures and colours from hand-made expositions (no agent needed)."""

from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Tuple

import pytest
from support import REPO

from hostagent import promql as q
from hostagent.alerting.thresholds import load_config
from hostagent.tools import screen, thresholdfile, top
from hostagent.tools.fleet import sort_hosts
from hostagent.tools.hostview import HostModel, parse_exposition

THRESHOLDS = load_config()


# Share of time per PSI figure, for the hand-made counters below.
PSI = {"cpu_waiting": 0.25, "io_stalled": 0.01}


def exposition(t: float, cpu_idle: float, group_cpu: float, avail: float, psi: Dict[str, float] = PSI) -> str:
    """An agent's answer at collector time ``t`` with PSI, per-pid series,
    process groups, services and a failing collector."""
    pressure = "".join(f"host_pressure_{key}_seconds_total {t * share}\n" for key, share in psi.items())
    return f"""\
# TYPE host_cpu_seconds_total counter
host_cpu_seconds_total{{cpu="0",mode="idle"}} {cpu_idle}
host_cpu_seconds_total{{cpu="0",mode="user"}} {t - cpu_idle}
host_cpu_usage_ratio 0.97
host_cpu_core_usage_ratio{{cpu="0"}} 0.97
host_cpu_cores 1
host_load1 3.5
host_load5 2.5
host_load15 1.0
host_memory_total_bytes 1000
host_memory_available_bytes 100
host_memory_used_bytes 880
host_memory_usage_ratio 0.9
host_swap_total_bytes 0
host_swap_used_bytes 0
host_filesystem_size_bytes{{device="/dev/sda1",fstype="ext4",mountpoint="/"}} 1000
host_filesystem_avail_bytes{{device="/dev/sda1",fstype="ext4",mountpoint="/"}} {avail}
host_filesystem_usage_ratio{{device="/dev/sda1",fstype="ext4",mountpoint="/"}} {1 - avail / 1000}
{pressure}host_process_group_cpu_seconds_total{{group="postgres",mode="user"}} {group_cpu}
host_process_group_cpu_seconds_total{{group="postgres",mode="system"}} {group_cpu / 2}
host_process_group_resident_memory_bytes{{group="postgres"}} 500
host_process_group_processes{{group="postgres"}} 12
host_process_group_threads{{group="postgres"}} 40
host_process_cpu_usage_cores{{name="x",pid="1",username="root"}} 0.5
host_process_resident_memory_bytes{{name="x",pid="1",username="root"}} 300
host_cgroup_cpu_seconds_total{{cgroup="docker/web",mode="user"}} {group_cpu * 2}
host_cgroup_cpu_seconds_total{{cgroup="docker/web",mode="system"}} {group_cpu}
host_cgroup_memory_bytes{{cgroup="docker/web"}} 700
host_cgroup_processes{{cgroup="docker/web"}} 3
host_cgroup_info{{cgroup="docker/web",kind="container",path="system.slice/docker-1.scope",runtime="docker"}} 1
hostagent_collector_up{{collector="cgroups"}} 1
hostagent_collector_last_success_timestamp_seconds{{collector="cgroups"}} {t}
host_network_connections{{kind="tcp",state="TIME_WAIT"}} 25000
host_network_connections{{kind="tcp6",state="ESTABLISHED"}} 3
hostagent_collector_up{{collector="cpu"}} 1
hostagent_collector_up{{collector="pressure"}} 1
hostagent_collector_up{{collector="process_groups"}} 1
hostagent_collector_up{{collector="filesystem"}} 0
hostagent_collector_errors_total{{collector="filesystem"}} 4
hostagent_collector_enabled{{collector="cpu"}} 1
hostagent_collector_last_success_timestamp_seconds{{collector="cpu"}} {t}
hostagent_collector_last_success_timestamp_seconds{{collector="pressure"}} {t}
hostagent_collector_last_success_timestamp_seconds{{collector="process_groups"}} {t}
hostagent_collector_last_success_timestamp_seconds{{collector="filesystem"}} 100
"""


def styles(lines: List[screen.Line]) -> Dict[str, str]:
    """Text of each styled segment -> its style (stripped)."""
    return {text.strip(): style for line in lines for text, style in line if text.strip()}


def test_rates_are_timed_by_the_collector_runs() -> None:
    model = HostModel()
    model.view(1000.5, parse_exposition(exposition(1000, 900, 10, 500)), "u")
    # A scrape between two runs: same collector time, so no rate yet.
    view = model.view(1001.0, parse_exposition(exposition(1000, 900, 10, 500)), "u")
    assert view["cpu"]["modes"] is None and view["pressure"]["cpu_waiting"] is None
    # The next run, 15 s of collector time later, whatever the scrape times were.
    view = model.view(1020.0, parse_exposition(exposition(1015, 903, 16, 500)), "u")
    assert view["cpu"]["modes"] == pytest.approx({"idle": 0.2, "user": 0.8})
    assert view["pressure"] == pytest.approx({"cpu_waiting": 0.25, "io_stalled": 0.01})
    tables = view["processes"]["tables"]
    assert list(tables) == ["processes", "groups", "services"]
    # Process groups: CPU summed over the modes, in cores; memory as a share of the host's.
    assert tables["groups"]["source"] == "host_process_group_*" and tables["groups"]["time"] == 1015
    assert tables["groups"]["rows"] == [{"name": "postgres", "processes": 12, "threads": 40, "cpu": pytest.approx(0.6), "rss": 500, "memory_ratio": 0.5}]
    assert tables["services"]["rows"] == [{"name": "docker/web", "processes": 3, "cpu": pytest.approx(1.2), "memory": 700, "memory_ratio": 0.7, "kind": "container", "runtime": "docker"}]
    # Without the live list, the processes table is the per-pid series.
    assert tables["processes"]["rows"] == [{"pid": 1, "user": "root", "state": None, "cpu": 0.5, "rss": 300, "memory_ratio": None, "name": "x"}]
    # A counter that went backwards (agent restart) has no rate rather than a negative one.
    view = model.view(1040.0, parse_exposition(exposition(1030, 1, 16, 500)), "u")
    assert view["cpu"]["modes"] is None


def test_colours_follow_the_alert_thresholds() -> None:
    model = HostModel()
    view = model.view(1000.0, parse_exposition(exposition(1000, 900, 10, 40)), "http://h:9100")
    ctx = screen.Context(width=100, height=30, thresholds=THRESHOLDS)
    lines = screen.host_lines(view, ctx)
    got = styles(lines)
    assert got["97.0%"] == "critical"  # CPU past 95 %
    assert got["90.0%"] == "warning"  # memory past 85 %, not 95 %
    assert got["96.0%"] == "critical"  # filesystem past 95 %
    assert got["2.50/core"] == "warning"  # load per core past 2
    assert got["25000"] == "warning"  # TIME_WAIT past 20,000
    assert got["filesystem DOWN (4 errors, last ok 15m ago)"] == "critical"
    assert got["4/5 up"] == "warning"
    text = screen.plain(lines)
    assert "PSI" in text and "PID" in text and "x" in text
    # Without thresholds: no colours claimed.
    plain_ctx = screen.Context(width=100, height=30)
    assert styles(screen.host_lines(view, plain_ctx))["97.0%"] == ""


def test_the_colour_keys_are_the_alerts_on_the_same_quantities() -> None:
    """Each figure top colours is compared by the rule of the key it is coloured by."""
    assert thresholdfile.alert_comparing(q.cpu_utilisation.series()) == "cpu_usage"
    assert thresholdfile.alert_comparing(q.memory_utilisation.series()) == "memory_usage"
    assert thresholdfile.alert_comparing(q.swap_utilisation.series()) == "swap_usage"
    assert thresholdfile.alert_comparing(q.load5_per_cpu.series()) == "load_per_core"
    assert thresholdfile.alert_comparing(q.filesystem_usage(q.RULES)) == "filesystem_usage"
    assert thresholdfile.alert_comparing(q.cpu_iowait.series()) == "cpu_iowait"
    assert thresholdfile.alert_comparing(q.disk_io_utilisation.series()) == "disk_io_utilisation"
    # PSI: the cpu alert on "some", memory and io on "full"; their "some" has no alert.
    pressure = {key: screen.pressure_alert(*key) for key in q.pressure}
    assert pressure == {
        ("cpu", "waiting"): "cpu_pressure",
        ("memory", "waiting"): None,
        ("memory", "stalled"): "memory_pressure",
        ("io", "waiting"): None,
        ("io", "stalled"): "io_pressure",
    }


def psi_segments(psi: Dict[str, float], thresholds: object) -> List[Tuple[str, str]]:
    """(label, style) of each PSI figure on the screen of an agent with these shares of time."""
    model = HostModel()
    model.view(1000.0, parse_exposition(exposition(1000, 900, 10, 500, psi)), "u")
    view = model.view(1015.0, parse_exposition(exposition(1015, 903, 16, 500, psi)), "u")
    line = next(line for line in screen.host_lines(view, screen.Context(width=100, height=30, thresholds=thresholds)) if line[0][0].startswith("PSI"))
    out, resource = [], ""
    for i, (text, style) in enumerate(line):
        if text.strip() in ("cpu", "memory", "io"):
            resource = text.strip()
        elif text.strip() in ("some", "full"):
            value = line[i + 1]
            assert value[0].endswith("%")
            out.append((f"{resource} {text.strip()} {value[0]}", value[1]))
    return out


def test_pressure_colours_follow_the_alert_on_each_figure(tmp_path: Path) -> None:
    # Past the memory and io alerts' thresholds on "some" too, where no alert looks.
    psi = {"cpu_waiting": 0.625, "memory_waiting": 0.5, "memory_stalled": 0.125, "io_waiting": 0.5, "io_stalled": 0.1875}
    assert psi_segments(psi, THRESHOLDS) == [
        ("cpu some 62.5%", "warning"),  # HostCpuPressure: warning past 50 %
        ("memory some 50.0%", ""),  # no alert on memory "some", though past both memory_pressure thresholds
        ("memory full 12.5%", "warning"),  # HostMemoryPressureStalled: warning past 5 %, critical past 20 %
        ("io some 50.0%", ""),
        ("io full 18.8%", "warning"),  # HostIoPressure: warning past 10 %
    ]
    calm = {"cpu_waiting": 0.25, "memory_waiting": 0.25, "memory_stalled": 0.25, "io_waiting": 0.0625, "io_stalled": 0.0625}
    assert psi_segments(calm, THRESHOLDS) == [("cpu some 25.0%", "ok"), ("memory some 25.0%", ""), ("memory full 25.0%", "critical"), ("io some 6.2%", ""), ("io full 6.2%", "ok")]
    # A thresholds file without the memory alert: memory full has no colour either.
    text = (REPO / "config" / "alerting.yaml").read_text()
    start = text.index("  memory_pressure:")
    end = text.index("\n  # ", start)
    (tmp_path / "alerting.yaml").write_text(text[:start] + text[end + 1 :])
    without = load_config(tmp_path / "alerting.yaml")
    assert "memory_pressure" not in without.alerts
    assert dict(psi_segments(psi, without))["memory full 12.5%"] == ""
    # The fleet's PSI column is cpu "some", coloured by the same alert.
    rows = [{"instance": "a", "up": True, "cpu": 0.1, "memory": 0.1, "disk": 0.1, "load5_per_core": 0.1, "pressure_cpu": 0.625, "receive": 0.0, "transmit": 0.0, "alerts": []}]
    lines = screen.fleet_lines({"source": "p", "hosts": rows, "alerts": [], "pressure": True}, screen.Context(width=80, height=24, thresholds=THRESHOLDS))
    assert styles(lines)["62.5%"] == "warning"


def test_the_table_key_goes_through_what_the_agent_has() -> None:
    model = HostModel()
    model.view(1000.0, parse_exposition(exposition(1000, 900, 10, 500)), "u")
    view = model.view(1015.0, parse_exposition(exposition(1015, 903, 16, 500)), "u")
    ctx = screen.Context(width=100, height=40)

    def table() -> str:
        text = screen.plain(screen.host_lines(view, ctx))
        head = next(line for line in text.splitlines() if line.startswith("Processes"))
        columns = text.splitlines()[text.splitlines().index(head) + 1]
        return f"{head.split(' · ')[1].split(' at ')[0]} | {columns.split()[0]} {columns.split()[-1]}"

    assert table() == "processes by cpu | PID NAME"
    shown = []
    for _ in range(3):
        assert top.handle_key("g", ctx, view)
        shown.append(table())
    assert shown == ["groups by cpu | PROCS GROUP", "services by cpu | PROCS CONTAINER", "processes by cpu | PID NAME"]
    assert "g procs/groups/svcs" in screen.plain(screen.host_lines(view, ctx)).splitlines()[-1]
    ctx.help = True
    assert any("g        the table: processes, process groups, services and containers" in line for line in screen.plain(screen.host_lines(view, ctx)).splitlines())
    ctx.help = False
    # A table asked for that this agent lacks: the first it has, and a word on why.
    text = "\n".join(line for line in exposition(1015, 903, 16, 500).splitlines() if "host_cgroup" not in line and "host_process_cpu" not in line and "host_process_resident" not in line) + "\n"
    fewer = HostModel().view(1015.0, parse_exposition(text), "u")
    ctx.table = "services"
    assert screen.tables_available(fewer) == ["groups"]
    head = next(line for line in screen.plain(screen.host_lines(fewer, ctx)).splitlines() if line.startswith("Processes"))
    assert "no services: groups by cpu at " in head
    assert top.handle_key("g", ctx, fewer) and ctx.table == "groups"
    # None at all: said so; the key changes nothing.
    bare = "\n".join(line for line in text.splitlines() if "host_process_group" not in line) + "\n"
    none = HostModel().view(1015.0, parse_exposition(bare), "u")
    assert "no per-process data from this agent" in screen.plain(screen.host_lines(none, ctx))
    assert top.handle_key("g", ctx, none) and ctx.table == "groups" and "serves no process list" in ctx.message
    # The fleet view has no table: the key does nothing there.
    assert top.handle_key("g", ctx, {"hosts": [], "alerts": []}) and ctx.table == "groups"


def test_process_rows_from_the_live_list() -> None:
    listed = {
        "source": "/api/v1/processes",
        "time": 1015.0,
        "total": 2,
        "rows": [
            {"pid": 7, "user": "postgres", "state": "disk-sleep", "cpu": 1.5, "rss": 400, "memory_ratio": 0.4, "threads": 3, "group": "postgres", "name": "postgres"},
            {"pid": 12, "user": "a-very-long-user-name", "state": "running", "cpu": 0.25, "rss": 600, "memory_ratio": 0.6, "threads": 1, "group": "java", "name": "java"},
        ],
    }
    view = HostModel().view(1015.0, parse_exposition(exposition(1015, 903, 16, 500)), "u", listed)
    assert view["processes"]["tables"]["processes"] is listed
    lines = screen.plain(screen.host_lines(view, screen.Context(width=100, height=40))).splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith("Processes"))
    assert lines[at + 1].split() == ["PID", "USER", "S", "%CPU", "%MEM", "RSS", "NAME"]
    # %CPU of one core, as top shows it; S the one-letter state of ps.
    assert lines[at + 2].split() == ["7", "postgres", "D", "150.0", "40.0", "400B", "postgres"]
    assert lines[at + 3].split() == ["12", "a-very-lo", "R", "25.0", "60.0", "600B", "java"]
    memory = screen.plain(screen.host_lines(view, screen.Context(width=100, height=40, sort="memory"))).splitlines()
    assert [line.split()[0] for line in memory[at + 2 : at + 4]] == ["12", "7"]


def test_without_newer_families_the_view_falls_back() -> None:
    text = "\n".join(line for line in exposition(1000, 900, 10, 500).splitlines() if "pressure" not in line and "process_group" not in line and "cgroup" not in line) + "\n"
    view = HostModel().view(1000.0, parse_exposition(text), "u")
    assert view["pressure"] is None and list(view["processes"]["tables"]) == ["processes"]
    assert view["processes"]["tables"]["processes"]["source"] == "host_process_* (the agent's top N)"
    lines = screen.plain(screen.host_lines(view, screen.Context(width=100, height=30)))
    assert "PSI" not in lines and "PID" in lines


def test_days_until_full_from_the_free_space_seen() -> None:
    model = HostModel()
    for k in range(5):  # 40 bytes less every minute
        view = model.view(1000.0 + 60 * k, parse_exposition(exposition(1000 + 60 * k, 900, 10, 500 - 40 * k)), "u")
    fs = view["filesystems"][0]
    assert fs["days_until_full"] == pytest.approx((340 / 40) * 60 / 86400)
    assert "<1d" in screen.plain(screen.host_lines(view, screen.Context(width=100, height=30)))


@pytest.mark.parametrize("width,height", [(80, 24), (60, 12), (132, 50), (40, 6)])
def test_every_size_fills_the_screen_exactly(width: int, height: int) -> None:
    view = HostModel().view(1000.0, parse_exposition(exposition(1000, 900, 10, 500)), "http://a-long-host-name.example.com:9100")
    for ctx in (screen.Context(width=width, height=height), screen.Context(width=width, height=height, help=True), screen.Context(width=width, height=height, error="no answer")):
        lines = screen.host_lines(view, ctx)
        assert len(lines) == height
        assert all(sum(len(t) for t, _ in line) <= width for line in lines)
        assert "q quit" in "".join(t for t, _ in lines[-1])


def test_fleet_rows_put_down_hosts_first_then_the_busiest() -> None:
    rows = [
        {"instance": "a", "up": True, "cpu": 0.2, "memory": 0.9, "disk": 0.1, "receive": 10.0, "transmit": 0.0, "alerts": []},
        {"instance": "b", "up": True, "cpu": 0.7, "memory": 0.1, "disk": 0.5, "receive": 1.0, "transmit": 1.0, "alerts": ["X"]},
        {"instance": "c", "up": False, "alerts": []},
    ]
    assert [r["instance"] for r in sort_hosts(rows, "cpu")] == ["c", "b", "a"]
    assert [r["instance"] for r in sort_hosts(rows, "memory")] == ["c", "a", "b"]
    assert [r["instance"] for r in sort_hosts(rows, "network")] == ["c", "a", "b"]
    view = {"source": "p", "hosts": rows, "alerts": [{"alertname": "X", "instance": "b", "severity": "warning"}], "pressure": False}
    lines = screen.fleet_lines(view, screen.Context(width=80, height=24, thresholds=THRESHOLDS))
    text = screen.plain(lines)
    assert "3 hosts" in text and "DOWN" in text and "Firing alerts" in text
    assert styles(lines)["90.0%"] == "warning"


def test_counts_of_one_are_singular() -> None:
    row = {"instance": "a", "up": True, "cpu": 0.1, "memory": 0.1, "disk": 0.1, "load5_per_core": 0.1, "pressure_cpu": None, "receive": 0.0, "transmit": 0.0, "alerts": ["X"]}
    alert = {"alertname": "X", "instance": "a", "severity": "warning", "summary": "s"}
    text = screen.plain(screen.fleet_lines({"source": "p", "hosts": [row], "alerts": [alert], "pressure": False}, screen.Context(width=80, height=24)))
    assert "1 host, 1 up, 0 down, 1 alert firing" in text, text
    text = screen.plain(screen.fleet_lines({"source": "p", "hosts": [row, {**row, "instance": "b"}], "alerts": [alert, alert], "pressure": False}, screen.Context(width=80, height=24)))
    assert "2 hosts, 2 up, 0 down, 2 alerts firing" in text, text
