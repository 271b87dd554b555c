"""The hostagent dashboards: what each panel asks Prometheus.

Every detail dashboard repeats one row per selected host, so stacked graphs
stay per host. Thresholds come from config/alerting.yaml (``thresholds``
argument, keyed like the file), so colours change where alerts fire.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, List, Mapping

from .grafana import (
    Json,
    Query,
    bargauge,
    dashboard,
    dashed,
    dashboard_link,
    rate,
    row,
    sel,
    series,
    stat,
    table,
    threshold_steps,
    timeseries,
)

Thresholds = Mapping[str, Any]  # key -> hostagent.alerting.thresholds.AlertThreshold

HOST = "$instance"
BY_HOST = "job,instance"  # a host is one (job, instance) pair
# Extra label matchers (kept out of f-strings: no backslashes there before 3.12).
NOT_LOOPBACK = 'device!="lo"'
# Interfaces the interface-down alert leaves out: loopback, and bridges that
# lose carrier whenever their last container or VM stops. A test keeps this
# equal to the alert's matcher.
NOT_DOWN_BY_DESIGN = 'device!~"lo|docker0|br-[0-9a-f]{12}|virbr[0-9]+"'
NOT_BUSY = 'mode=~"idle|iowait|steal"'
BUSY = 'mode!~"idle|iowait|steal"'
IOWAIT = 'mode="iowait"'
STEAL = 'mode="steal"'
ROOT_MOUNT = 'mountpoint="/"'
TCP = 'kind=~"tcp6?"'
UDP = 'kind=~"udp6?"'
UIDS = {
    "overview": "hostagent-overview",
    "cpu": "hostagent-cpu",
    "memory": "hostagent-memory",
    "disk": "hostagent-disk",
    "network": "hostagent-network",
    "processes": "hostagent-processes",
    "agent": "hostagent-agent",
}
FLAG_STEPS = [{"color": "green", "value": None}, {"color": "red", "value": 1}]  # 1 = bad
UP_DOWN = [{"type": "value", "options": {"0": {"text": "DOWN", "color": "red", "index": 0}, "1": {"text": "UP", "color": "green", "index": 1}}}]
ON_OFF = [{"type": "value", "options": {"0": {"text": "OFF", "color": "blue", "index": 0}, "1": {"text": "ON", "color": "green", "index": 1}}}]


def _alert(th: Thresholds, key: str) -> Any:
    try:
        return th[key]
    except KeyError:
        raise ValueError(f"config/alerting.yaml has no entry {key!r}, which the dashboards colour panels by") from None


def _link(name: str, title: str) -> Json:
    return dashboard_link(UIDS[name], title)


def _per_core(expr: str) -> str:
    """Divide a per-host expression by the host's core count."""
    return f"{expr} / on({BY_HOST}) group_left host_cpu_cores{sel()}"


# Thresholded panels show the quantity their alert compares (the recording
# rules in prometheus/rules/), computed over $__rate_interval instead of 5m.


def cpu_usage() -> str:
    """Share of all cores busy: not idle, waiting for I/O nor stolen."""
    return f'1 - avg by({BY_HOST})(sum by({BY_HOST},cpu)({rate("host_cpu_seconds_total", NOT_BUSY)}))'


def cpu_busy_by_mode() -> str:
    """Share of all cores' time per busy mode; the stack adds up to ``cpu_usage``."""
    return _per_core(f'sum by({BY_HOST},mode)({rate("host_cpu_seconds_total", BUSY)})')


def cpu_iowait() -> str:
    """Share of CPU time spent idle while waiting for disk I/O, averaged over cores."""
    return f'avg by({BY_HOST})({rate("host_cpu_seconds_total", IOWAIT)})'


def load_per_core(minutes: int) -> str:
    """Load average over ``minutes`` divided by the number of cores."""
    return _per_core(f"host_load{minutes}{sel()}")


def filesystem_used(*matchers: str) -> str:
    """Share of each filesystem used, as df shows it: used / (used + available to users)."""
    return f"host_filesystem_usage_ratio{sel(*matchers)}"


def memory_and_swap_available() -> str:
    """Memory and swap still available to new work, as a share of memory plus swap."""
    available = f"host_memory_available_bytes{sel()} + host_swap_free_bytes{sel()}"
    return f"({available}) / ((host_memory_total_bytes{sel()} + host_swap_total_bytes{sel()}) > 0)"


def packets_failed(direction: str) -> str:
    """Share of packets per interface that failed (errors + drops) of all packets seen."""
    failed = f'{rate(f"host_network_{direction}_errors_total")} + {rate(f"host_network_{direction}_drop_total")}'
    seen = f'{rate(f"host_network_{direction}_packets_total")} + {failed}'
    return f"({failed}) / (({seen}) > 0)"


def tcp_connections(state_matcher: str) -> str:
    """TCP and TCP6 connections per host in the states matched."""
    return f"sum by({BY_HOST})(host_network_connections{sel(TCP, state_matcher)})"


def inodes_used() -> str:
    """Share of inodes used per mount (filesystems without inodes left out)."""
    return f"1 - host_filesystem_files_free{sel()} / (host_filesystem_files{sel()} > 0)"


def overview(th: Thresholds) -> Json:
    """One row per host: CPU, memory, root filesystem, load, network, uptime, alerts."""
    panels: List[Json] = [
        row("Fleet"),
        stat("Hosts up", "Agents Prometheus scraped successfully in the last scrape.", [Query(f"sum(up{sel()})", "up")], "short", w=4),
        stat(
            "Hosts down",
            "Agents Prometheus could not scrape in the last scrape.",
            [Query(f"count(up{sel()} == 0) or vector(0)", "down")],
            "short",
            steps=FLAG_STEPS,
            w=4,
        ),
        table(
            "Alerts firing now",
            "Alerts about the selected hosts that are firing now (Prometheus' ALERTS series).",
            [Query('ALERTS{alertstate="firing",instance=~"$instance"}')],
            value_unit={},
            hide=("Time", "__name__", "alertstate", "Value"),
            w=16,
            h=6,
        ),
        row(HOST, repeat="instance"),
        stat(
            "CPU",
            "Share of all cores busy (not idle, iowait or steal).",
            [Query(cpu_usage(), "cpu")],
            "percentunit",
            alert=_alert(th, "cpu_usage"),
            lo=0,
            hi=1,
            links=[_link("cpu", "CPU details")],
            w=3,
        ),
        stat(
            "Memory",
            "Share of memory in use (total - available).",
            [Query(f"host_memory_usage_ratio{sel()}", "memory")],
            "percentunit",
            alert=_alert(th, "memory_usage"),
            lo=0,
            hi=1,
            links=[_link("memory", "Memory details")],
            w=3,
        ),
        stat(
            "Root filesystem",
            "Share of the root filesystem used, as df shows it.",
            [Query(filesystem_used(ROOT_MOUNT), "/")],
            "percentunit",
            alert=_alert(th, "filesystem_usage"),
            lo=0,
            hi=1,
            links=[_link("disk", "Disk details")],
            w=3,
        ),
        stat(
            "Load per core",
            "5-minute load average divided by the number of cores; above 1 means work is queuing.",
            [Query(load_per_core(5), "load5 / core")],
            "short",
            alert=_alert(th, "load_per_core"),
            links=[_link("cpu", "CPU details")],
            w=3,
        ),
        stat(
            "Network",
            "Bytes per second received and sent on all interfaces but loopback.",
            [
                Query(f'sum by({BY_HOST})({rate("host_network_receive_bytes_total", NOT_LOOPBACK)})', "in"),
                Query(f'sum by({BY_HOST})({rate("host_network_transmit_bytes_total", NOT_LOOPBACK)})', "out"),
            ],
            "Bps",
            links=[_link("network", "Network details")],
            w=6,
        ),
        stat("Uptime", "Time since the host booted.", [Query(f"host_time_seconds{sel()} - host_boot_time_seconds{sel()}", "uptime")], "s", w=3),
        stat(
            "Alerts firing",
            "Number of alerts firing now for this host.",
            [Query('count(ALERTS{alertstate="firing",instance=~"$instance"}) or vector(0)', "alerts")],
            "short",
            steps=FLAG_STEPS,
            w=3,
        ),
    ]
    return dashboard(UIDS["overview"], "hostagent / Overview", "Every host at a glance: CPU, memory, root filesystem, network, uptime and firing alerts.", panels)


def cpu(th: Thresholds) -> Json:
    """Usage by mode, per core, load against cores, context switches, iowait."""
    usage = _alert(th, "cpu_usage")
    panels: List[Json] = [
        row(HOST, repeat="instance"),
        stat("Cores", "Logical CPUs of the host.", [Query(f"host_cpu_cores{sel()}", "cores")], "short", w=4),
        stat("CPU usage", "Share of all cores busy (not idle, iowait or steal).", [Query(cpu_usage(), "usage")], "percentunit", alert=usage, lo=0, hi=1, w=4),
        stat("Load 1m", "1-minute load average.", [Query(f"host_load1{sel()}", "load1")], "short", w=4),
        stat("I/O wait", "Share of CPU time waiting for disk I/O.", [Query(cpu_iowait(), "iowait")], "percentunit", alert=_alert(th, "cpu_iowait"), lo=0, hi=1, w=4),
        stat("Context switches", "Context switches per second.", [Query(rate("host_context_switches_total"), "switches")], "cps", w=4),
        stat("Interrupts", "Interrupts per second.", [Query(rate("host_interrupts_total"), "interrupts")], "cps", w=4),
        timeseries(
            "CPU usage by mode",
            "Share of all cores' time per busy mode, stacked: the top of the stack is the usage the CPU alert watches. Bands: its thresholds.",
            [Query(cpu_busy_by_mode(), "{{mode}}")],
            "percentunit",
            alert=usage,
            stack=True,
            lo=0,
            hi=1,
        ),
        timeseries("CPU usage per core", "Share of each core busy (not idle, iowait nor steal), as the agent measured it.", [Query(f"host_cpu_core_usage_ratio{sel()}", "cpu {{cpu}}")], "percentunit", lo=0, hi=1),
        timeseries(
            "Load against cores",
            "Load averages next to the number of cores (dashed): load above the core count means runnable tasks wait.",
            series(("host_load1", "load1"), ("host_load5", "load5"), ("host_load15", "load15"), ("host_cpu_cores", "cores")),
            "short",
            lo=0,
            overrides=[dashed("cores", "red")],
        ),
        timeseries(
            "Load per core",
            "Load averages divided by the number of cores. Bands: load alert thresholds.",
            [Query(load_per_core(1), "load1"), Query(load_per_core(5), "load5"), Query(load_per_core(15), "load15")],
            "short",
            alert=_alert(th, "load_per_core"),
            lo=0,
        ),
        timeseries(
            "Context switches and interrupts",
            "Per second; a jump with flat CPU usage often means lock contention or a noisy device.",
            [Query(rate("host_context_switches_total"), "context switches"), Query(rate("host_interrupts_total"), "interrupts")],
            "cps",
            lo=0,
        ),
        timeseries(
            "I/O wait and steal",
            "I/O wait: CPUs idle while disk I/O is outstanding. Steal: time the hypervisor gave to other guests. Bands: iowait alert thresholds.",
            [Query(cpu_iowait(), "iowait"), Query(f'avg by({BY_HOST})({rate("host_cpu_seconds_total", STEAL)})', "steal")],
            "percentunit",
            alert=_alert(th, "cpu_iowait"),
            lo=0,
        ),
    ]
    return dashboard(UIDS["cpu"], "hostagent / CPU", "Where CPU time goes, per host: modes, cores, load, context switches and I/O wait.", panels)


def memory(th: Thresholds) -> Json:
    """Used, available, cached and buffers; swap and swap activity."""
    mem, swap = _alert(th, "memory_usage"), _alert(th, "swap_usage")
    panels: List[Json] = [
        row(HOST, repeat="instance"),
        stat("Total memory", "Physical memory of the host.", [Query(f"host_memory_total_bytes{sel()}", "total")], "bytes", w=5),
        stat(
            "Memory and swap available",
            "Memory and swap still available to new work, as a share of memory plus swap: what is left before the OOM killer. Colours: low-memory alert thresholds.",
            [Query(memory_and_swap_available(), "available")],
            "percentunit",
            alert=_alert(th, "memory_available"),
            lo=0,
            hi=1,
            w=5,
        ),
        stat("Memory usage", "Share of memory in use (total - available).", [Query(f"host_memory_usage_ratio{sel()}", "used")], "percentunit", alert=mem, lo=0, hi=1, w=5),
        stat("Swap total", "Swap space of the host.", [Query(f"host_swap_total_bytes{sel()}", "swap")], "bytes", w=4),
        stat("Swap usage", "Share of swap space in use; 0 when there is no swap.", [Query(f"host_swap_usage_ratio{sel()}", "swap used")], "percentunit", alert=swap, lo=0, hi=1, w=5),
        timeseries(
            "Memory",
            "Used and available memory, page cache and buffers; the dashed line is the total.",
            series(
                ("host_memory_used_bytes", "used"),
                ("host_memory_available_bytes", "available"),
                ("host_memory_cached_bytes", "cached"),
                ("host_memory_buffers_bytes", "buffers"),
                ("host_memory_free_bytes", "free"),
                ("host_memory_total_bytes", "total"),
            ),
            "bytes",
            lo=0,
            overrides=[dashed("total")],
        ),
        timeseries("Memory usage", "Share of memory in use. Bands: memory alert thresholds.", [Query(f"host_memory_usage_ratio{sel()}", "used")], "percentunit", alert=mem, lo=0, hi=1),
        timeseries(
            "Swap",
            "Swap space used and free.",
            series(("host_swap_used_bytes", "used"), ("host_swap_free_bytes", "free"), ("host_swap_total_bytes", "total")),
            "bytes",
            lo=0,
        ),
        timeseries("Swap usage", "Share of swap in use. Bands: swap alert thresholds.", [Query(f"host_swap_usage_ratio{sel()}", "used")], "percentunit", alert=swap, lo=0, hi=1),
        timeseries(
            "Swap activity",
            "Bytes per second moved between memory and swap; sustained swap-in means the working set does not fit.",
            [Query(rate("host_swap_in_bytes_total"), "swapped in"), Query(rate("host_swap_out_bytes_total"), "swapped out")],
            "binBps",
            lo=0,
            w=24,
        ),
    ]
    return dashboard(UIDS["memory"], "hostagent / Memory", "Memory and swap per host: what is used, what is cache, and whether the host swaps.", panels)


def _disk_pair(read_metric: str, write_metric: str) -> List[Query]:
    return [Query(rate(read_metric), "{{device}} read"), Query(rate(write_metric), "{{device}} write")]


def disk(th: Thresholds) -> Json:
    """Space and inodes per mount, time to full, throughput, IOPS, latency, utilisation."""
    space = _alert(th, "filesystem_usage")
    latency = [
        Query(f'{rate("host_disk_read_time_seconds_total")} / {rate("host_disk_reads_completed_total")}', "{{device}} read"),
        Query(f'{rate("host_disk_write_time_seconds_total")} / {rate("host_disk_writes_completed_total")}', "{{device}} write"),
    ]
    fill = f"(host_filesystem_avail_bytes{sel()} / -deriv(host_filesystem_avail_bytes{sel()}[6h])) > 0"
    panels: List[Json] = [
        row(HOST, repeat="instance"),
        bargauge("Space used per mount", "Share of each filesystem used, as df shows it. Colours: filesystem alert thresholds.", [Query(filesystem_used(), "{{mountpoint}}")], "percentunit", alert=space, lo=0, hi=1),
        bargauge("Inodes used per mount", "Share of each filesystem's inodes in use, as df -i shows it. Colours: inode alert thresholds.", [Query(inodes_used(), "{{mountpoint}}")], "percentunit", alert=_alert(th, "filesystem_inodes"), lo=0, hi=1),
        table(
            "Filesystems",
            "Size, available space, share used (as df shows it, like the bars and the alert) and state of every mounted filesystem.",
            series(
                ("host_filesystem_size_bytes", ""),
                ("host_filesystem_avail_bytes", ""),
                ("host_filesystem_usage_ratio", ""),
                ("host_filesystem_readonly", ""),
                ("host_filesystem_device_error", ""),
            ),
            value_unit={"Value #A": "bytes", "Value #B": "bytes", "Value #C": "percentunit", "Value #D": "short", "Value #E": "short"},
            column_steps={"Value #D": FLAG_STEPS, "Value #E": FLAG_STEPS},
            hide=("Time", "__name__", "job", "instance"),
            rename={"Value #A": "size", "Value #B": "available", "Value #C": "used", "Value #D": "read-only", "Value #E": "error"},
            sort_by="Value #C",
        ),
        bargauge(
            "Predicted time until full",
            "At the rate free space shrank over the last 6 h; only filesystems that are filling up are shown.",
            [Query(fill, "{{mountpoint}}")],
            "s",
        ),
        timeseries("Space used", "Share of each filesystem used, as df shows it, over time. Bands: filesystem alert thresholds.", [Query(filesystem_used(), "{{mountpoint}}")], "percentunit", alert=space, lo=0, hi=1),
        timeseries(
            "Disk utilisation",
            "Share of time each disk had I/O in flight (rate of io_time); near 100% the disk is saturated. Bands: disk alert thresholds.",
            [Query(rate("host_disk_io_time_seconds_total"), "{{device}}")],
            "percentunit",
            alert=_alert(th, "disk_io_utilisation"),
            lo=0,
            hi=1,
        ),
        timeseries("Disk throughput", "Bytes per second read and written per disk.", _disk_pair("host_disk_read_bytes_total", "host_disk_written_bytes_total"), "binBps", lo=0),
        timeseries("Disk IOPS", "Reads and writes completed per second per disk.", _disk_pair("host_disk_reads_completed_total", "host_disk_writes_completed_total"), "iops", lo=0),
        timeseries("Disk latency", "Average time per completed read and write: rate of time spent over rate of operations.", latency, "s", lo=0, w=24),
    ]
    return dashboard(UIDS["disk"], "hostagent / Disk", "Filesystems and block devices per host: space, inodes, time to full, throughput, IOPS, latency, utilisation.", panels)


def _net_pair(kind: str, unit: str, what: str) -> Json:
    return timeseries(
        f"Network {kind}",
        f"{what} per second received (in) and transmitted (out) per interface.",
        [
            Query(rate(f"host_network_receive_{kind}_total"), "{{device}} in"),
            Query(rate(f"host_network_transmit_{kind}_total"), "{{device}} out"),
        ],
        unit,
        lo=0,
    )


def _failed_packets(th: Thresholds, direction: str, verb: str) -> Json:
    return timeseries(
        f"Failed packets {verb}",
        f"Share of packets {verb} per interface that had errors or were dropped. Bands: {direction}-error alert thresholds.",
        [Query(packets_failed(direction), "{{device}}")],
        "percentunit",
        alert=_alert(th, f"network_{direction}_errors"),
        lo=0,
    )


def network(th: Thresholds) -> Json:
    """Throughput, packets, errors and drops per interface; connections by state."""
    panels: List[Json] = [
        row(HOST, repeat="instance"),
        stat(
            "TCP connections",
            "TCP connections not in LISTEN. Colours: connection-count alert thresholds.",
            [Query(tcp_connections('state!="LISTEN"'), "connections")],
            "short",
            alert=_alert(th, "tcp_connections"),
            w=6,
        ),
        stat(
            "TIME_WAIT",
            "TCP connections in TIME_WAIT. Colours: TIME_WAIT alert thresholds.",
            [Query(tcp_connections('state="TIME_WAIT"'), "time_wait")],
            "short",
            alert=_alert(th, "tcp_time_wait"),
            w=6,
        ),
        stat("Listening", "TCP sockets in LISTEN.", [Query(tcp_connections('state="LISTEN"'), "listen")], "short", w=6),
        stat(
            "Interfaces down",
            "Interfaces whose link is down that the interface-down alert watches: not loopback, not "
            "container or VM bridges, and up at some point in the last day. Red from one.",
            [Query(f'count by({BY_HOST})(host_network_up{sel(NOT_DOWN_BY_DESIGN)} == 0 and on(job,instance,device) '
                   f'instance_device:host_network_up:max_over_time_1d{sel()} == 1) or on() vector(0)', "down")],
            "short",
            steps=FLAG_STEPS,
            w=6,
        ),
        _net_pair("bytes", "Bps", "Bytes"),
        _net_pair("packets", "pps", "Packets"),
        _net_pair("errors", "pps", "Packets with errors"),
        _net_pair("drop", "pps", "Packets dropped"),
        _failed_packets(th, "receive", "received"),
        _failed_packets(th, "transmit", "sent"),
        timeseries(
            "TCP connections by state",
            "TCP and TCP6 sockets by state, stacked; many TIME_WAIT or CLOSE_WAIT points at connection churn or a stuck peer.",
            [Query(f'sum by({BY_HOST},state)(host_network_connections{sel(TCP)})', "{{state}}")],
            "short",
            stack=True,
            lo=0,
        ),
        timeseries(
            "UDP sockets",
            "Open UDP and UDP6 sockets.",
            [Query(f'sum by({BY_HOST},kind)(host_network_connections{sel(UDP)})', "{{kind}}")],
            "short",
            lo=0,
        ),
        table(
            "Interfaces",
            "State, link speed and MTU of every interface.",
            series(("host_network_up", ""), ("host_network_speed_bytes", ""), ("host_network_mtu_bytes", "")),
            value_unit={"Value #A": "short", "Value #B": "Bps", "Value #C": "bytes"},
            column_steps={"Value #A": threshold_steps(_alert(th, "network_interface_down"), "short", "Interfaces")},
            hide=("Time", "__name__", "job", "instance"),
            rename={"Value #A": "up", "Value #B": "speed", "Value #C": "MTU"},
            w=24,
        ),
    ]
    return dashboard(UIDS["network"], "hostagent / Network", "Interfaces and sockets per host: throughput, packets, errors, drops and connections by state.", panels)


def processes(th: Thresholds) -> Json:
    """Top processes by CPU and memory, counts by state, threads."""
    top_memory = f"topk(10, host_process_resident_memory_bytes{sel()})"
    panels: List[Json] = [
        row(HOST, repeat="instance"),
        table(
            "Top processes by CPU",
            "The busiest processes now, in cores (1 is one full core); needs collectors.processes.top_n above 0.",
            [Query(f"topk(10, host_process_cpu_usage_cores{sel()})")],
            value_unit={"Value": "short"},
            hide=("Time", "__name__", "job", "instance"),
            rename={"Value": "CPU"},
            sort_by="Value",
        ),
        table(
            "Top processes by memory",
            "The processes holding the most resident memory now, and their share of the host's memory.",
            [Query(top_memory), Query(f"host_process_memory_usage_ratio{sel()} and on({BY_HOST},pid) {top_memory}")],
            value_unit={"Value #A": "bytes", "Value #B": "percentunit"},
            hide=("Time", "__name__", "job", "instance"),
            rename={"Value #A": "resident", "Value #B": "share of memory"},
            sort_by="Value #A",
        ),
        timeseries(
            "Processes by state",
            "Number of processes in each state, stacked; a growing zombie count means a parent does not reap its children.",
            [Query(f"host_processes{sel()}", "{{state}}")],
            "short",
            stack=True,
            lo=0,
        ),
        timeseries("Threads", "Threads of all processes together.", [Query(f"host_processes_threads{sel()}", "threads")], "short", lo=0),
        timeseries(
            "Top processes by CPU over time",
            "The five busiest processes at each moment, in cores (1 is one full core).",
            [Query(f"topk(5, host_process_cpu_usage_cores{sel()})", "{{name}} ({{pid}})")],
            "short",
            lo=0,
        ),
        timeseries(
            "Top processes by memory over time",
            "The five processes holding the most resident memory at each moment.",
            [Query(f"topk(5, host_process_resident_memory_bytes{sel()})", "{{name}} ({{pid}})")],
            "bytes",
            lo=0,
        ),
    ]
    return dashboard(UIDS["processes"], "hostagent / Processes", "What runs on each host: the top processes by CPU and memory, process states and threads.", panels)


def _collector_state(title: str, description: str, metric: str, alert: Any, mappings: List[Json]) -> Json:
    """A half-width stat of one 0/1 gauge per collector, named by ``mappings``."""
    return stat(title, description, [Query(f"{metric}{sel()}", "{{collector}}")], "short", alert=alert, mappings=mappings, w=12)


def agent(th: Thresholds) -> Json:
    """The agent's own health: collectors, its CPU and memory, scrapes."""
    panels: List[Json] = [
        row("Agents"),
        table(
            "Agents",
            "Version of each agent and whether Prometheus reaches it.",
            [Query(f"hostagent_build_info{sel()}"), Query(f"up{sel()}")],
            value_unit={"Value #B": "short"},
            hide=("Time", "__name__", "Value #A"),
            rename={"Value #B": "up"},
            w=24,
            h=6,
        ),
        row(HOST, repeat="instance"),
        _collector_state(
            "Collectors up",
            "Whether each collector's last runs succeeded; a collector switched off is down too. Colours: collector alert thresholds.",
            "hostagent_collector_up",
            _alert(th, "collector_failing"),
            UP_DOWN,
        ),
        _collector_state(
            "Collectors enabled",
            "Whether each collector is scheduled; OFF once self-monitoring switched it off to keep the agent within its limits. Colours: switched-off alert thresholds.",
            "hostagent_collector_enabled",
            _alert(th, "collector_disabled"),
            ON_OFF,
        ),
        timeseries(
            "Time since last success",
            "Seconds since each collector last succeeded; it should stay near the collector's interval. Bands: stale-collector alert thresholds.",
            [Query(f"time() - (hostagent_collector_last_success_timestamp_seconds{sel()} > 0)", "{{collector}}")],
            "s",
            alert=_alert(th, "collector_stale"),
            lo=0,
        ),
        timeseries(
            "Collection duration",
            "How long each collector's last run took.",
            [Query(f"hostagent_collector_duration_seconds{sel()}", "{{collector}}")],
            "s",
            lo=0,
        ),
        timeseries(
            "Collector errors",
            "Failed collector runs in each interval.",
            [Query(rate("hostagent_collector_errors_total", fn="increase"), "{{collector}}")],
            "short",
            lo=0,
        ),
        timeseries(
            "Agent CPU",
            "CPU the agent process itself uses; 100% is one full core.",
            [Query(rate("process_cpu_seconds_total"), "agent")],
            "percentunit",
            lo=0,
        ),
        timeseries("Agent memory", "Resident memory of the agent process.", [Query(f"process_resident_memory_bytes{sel()}", "resident")], "bytes", lo=0),
        timeseries(
            "Scrape duration",
            "How long Prometheus took to scrape the agent; the scrape serves pre-rendered bytes, so this stays small.",
            [Query(f"scrape_duration_seconds{sel()}", "scrape")],
            "s",
            lo=0,
        ),
    ]
    return dashboard(UIDS["agent"], "hostagent / Agent health", "Is the monitoring itself healthy: collectors, the agent's own CPU and memory, scrape times.", panels)


BOARDS: Dict[str, Callable[[Thresholds], Json]] = {
    "overview": overview,
    "cpu": cpu,
    "memory": memory,
    "disk": disk,
    "network": network,
    "processes": processes,
    "agent": agent,
}


def build_all(th: Thresholds) -> Dict[str, Json]:
    """Every dashboard, keyed by its file stem."""
    return {name: build(th) for name, build in BOARDS.items()}
