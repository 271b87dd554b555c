"""The top view's figures and colours from hand-made expositions (no agent needed)."""

from __future__ import annotations

from typing import Dict, List

import pytest

from hostagent.alerting.thresholds import load_config
from hostagent.tools import screen
from hostagent.tools.fleet import sort_hosts
from hostagent.tools.hostview import HostModel, parse_exposition

THRESHOLDS = load_config()


def exposition(t: float, cpu_idle: float, group_cpu: float, avail: float) -> str:
    """An agent's answer at collector time ``t`` with PSI, process groups and a failing collector."""
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
host_pressure_cpu_waiting_seconds_total {t * 0.25}
host_pressure_io_stalled_seconds_total {t * 0.01}
host_process_group_cpu_seconds_total{{group="postgres",mode="user"}} {group_cpu}
host_process_group_cpu_seconds_total{{group="postgres",mode="system"}} {group_cpu / 2}
host_process_group_resident_memory_bytes{{group="postgres"}} 500
host_process_group_processes{{group="postgres"}} 12
host_process_cpu_usage_cores{{name="x",pid="1",username="root"}} 0.5
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
    group = view["processes"]["rows"][0]
    assert view["processes"]["kind"] == "groups"  # groups win over per-pid series
    assert group == {"name": "postgres", "cpu": pytest.approx(0.6), "rss": 500, "members": 12, "memory_ratio": 0.5}
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
    assert got["3/4 up"] == "warning"
    text = screen.plain(lines)
    assert "PSI" in text and "GROUP" in text and "postgres" in text and "PID" not in text
    # Without thresholds: no colours claimed.
    plain_ctx = screen.Context(width=100, height=30)
    assert styles(screen.host_lines(view, plain_ctx))["97.0%"] == ""


def test_without_newer_families_the_view_falls_back() -> None:
    text = "\n".join(line for line in exposition(1000, 900, 10, 500).splitlines() if "pressure" not in line and "process_group" not in line) + "\n"
    view = HostModel().view(1000.0, parse_exposition(text), "u")
    assert view["pressure"] is None and view["processes"]["kind"] == "processes"
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
