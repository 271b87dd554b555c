"""The hostagent dashboards: what each panel asks Prometheus.

Every detail dashboard repeats one row per selected host, so stacked graphs
stay per host. The PromQL comes from ``hostagent.promql`` in the DASHBOARD
scope: a panel that carries an alert's thresholds computes the quantity the
alert's recording rule stores, over ``$__rate_interval`` instead of 5
minutes. Thresholds come from config/alerting.yaml (``alert=`` names the
key), so colours change where alerts fire.

Adding a panel is one line in its dashboard's function::

    b.graph("Forks", "Processes created per second.", PER_SECOND, Query(D.rate("host_forks_total"), "forks"))
"""

from __future__ import annotations

from typing import Any, Callable, Dict, Mapping

from hostagent import promql as q
from hostagent.promql import DASHBOARD as D

from .grafana import (
    BYTES,
    BYTES_RATE,
    CORES,
    COUNT,
    IOPS,
    NET_RATE,
    PACKETS_RATE,
    PER_SECOND,
    PERCENT,
    SECONDS,
    SHARE,
    Board,
    Json,
    Query,
    dashboard_link,
    dashed,
    threshold_steps,
)

Thresholds = Mapping[str, Any]  # key -> hostagent.alerting.thresholds.AlertThreshold

HOST = "$instance"
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
FIRING = 'ALERTS{alertstate="firing",instance=~"$instance"}'
# Table columns that only repeat the host.
HOST_COLUMNS = ("Time", "__name__", "job", "instance")


def metric(name: str, legend: str = "", *matchers: str) -> Query:
    """A metric of the chosen hosts, as it is."""
    return Query(f"{name}{D.sel(*matchers)}", legend)


def rate(name: str, legend: str = "", *matchers: str) -> Query:
    """A counter's per-second rate over ``$__rate_interval``."""
    return Query(D.rate(name, *matchers), legend)


def link(name: str, title: str) -> Json:
    return dashboard_link(UIDS[name], title)


def _host_board(th: Thresholds) -> Board:
    """A board whose panels repeat in one row per selected host."""
    b = Board(th)
    b.row(HOST, repeat="instance")
    return b


def overview(th: Thresholds) -> Json:
    """One row per host: CPU, memory, root filesystem, load, network, uptime, alerts."""
    b = Board(th)
    b.row("Fleet")
    b.stat("Hosts up", "Agents Prometheus scraped successfully in the last scrape.", COUNT, Query(f"sum(up{D.sel()})", "up"), w=4)
    b.stat("Hosts down", "Agents Prometheus could not scrape in the last scrape.", COUNT, Query(f"count(up{D.sel()} == 0) or vector(0)", "down"), steps=FLAG_STEPS, w=4)
    b.table(
        "Alerts firing now",
        "Alerts about the selected hosts that are firing now (Prometheus' ALERTS series).",
        Query(FIRING),
        value_unit={},
        hide=("Time", "__name__", "alertstate", "Value"),
        w=16,
        h=6,
    )
    b.row(HOST, repeat="instance")
    b.stat("CPU", "Share of all cores busy (not idle, iowait or steal).", SHARE, Query(q.cpu_utilisation.expr(D), "cpu"), alert="cpu_usage", links=[link("cpu", "CPU details")], w=3)
    b.stat("Memory", "Share of memory in use (total - available).", SHARE, metric("host_memory_usage_ratio", "memory"), alert="memory_usage", links=[link("memory", "Memory details")], w=3)
    b.stat(
        "Root filesystem",
        "Share of the root filesystem used, as df shows it.",
        SHARE,
        Query(q.filesystem_usage(D, q.ROOT_MOUNT), "/"),
        alert="filesystem_usage",
        links=[link("disk", "Disk details")],
        w=3,
    )
    b.stat(
        "Load per core",
        "5-minute load average divided by the number of cores; above 1 means work is queuing.",
        COUNT,
        Query(q.load5_per_cpu.expr(D), "load5 / core"),
        alert="load_per_core",
        links=[link("cpu", "CPU details")],
        w=3,
    )
    b.stat(
        "Network",
        "Bytes per second received and sent on all interfaces but loopback.",
        NET_RATE,
        Query(q.network_bytes["receive"].expr(D), "in"),
        Query(q.network_bytes["transmit"].expr(D), "out"),
        links=[link("network", "Network details")],
        w=6,
    )
    b.stat("Uptime", "Time since the host booted.", SECONDS, Query(f"host_time_seconds{D.sel()} - host_boot_time_seconds{D.sel()}", "uptime"), w=3)
    b.stat("Alerts firing", "Number of alerts firing now for this host.", COUNT, Query(f"count({FIRING}) or vector(0)", "alerts"), steps=FLAG_STEPS, w=3)
    return b.dashboard(UIDS["overview"], "hostagent / Overview", "Every host at a glance: CPU, memory, root filesystem, network, uptime and firing alerts.")


def cpu(th: Thresholds) -> Json:
    """Usage by mode, per core, load against cores, context switches, iowait."""
    b = _host_board(th)
    b.stat("Cores", "Logical CPUs of the host.", COUNT, metric("host_cpu_cores", "cores"))
    b.stat("CPU usage", "Share of all cores busy (not idle, iowait or steal).", SHARE, Query(q.cpu_utilisation.expr(D), "usage"), alert="cpu_usage")
    b.stat("Load 1m", "1-minute load average.", COUNT, metric("host_load1", "load1"))
    b.stat("I/O wait", "Share of CPU time waiting for disk I/O.", SHARE, Query(q.cpu_iowait.expr(D), "iowait"), alert="cpu_iowait")
    b.stat("Context switches", "Context switches per second.", PER_SECOND, rate("host_context_switches_total", "switches"))
    b.stat("Interrupts", "Interrupts per second.", PER_SECOND, rate("host_interrupts_total", "interrupts"))
    b.graph(
        "CPU usage by mode",
        "Share of all cores' time per busy mode, stacked: the top of the stack is the usage the CPU alert watches. Bands: its thresholds.",
        SHARE,
        Query(q.cpu_busy_by_mode(D), "{{mode}}"),
        alert="cpu_usage",
        stack=True,
    )
    b.graph("CPU usage per core", "Share of each core busy (not idle, iowait nor steal), as the agent measured it.", SHARE, metric("host_cpu_core_usage_ratio", "cpu {{cpu}}"))
    b.graph(
        "Load against cores",
        "Load averages next to the number of cores (dashed): load above the core count means runnable tasks wait.",
        COUNT,
        metric("host_load1", "load1"),
        metric("host_load5", "load5"),
        metric("host_load15", "load15"),
        metric("host_cpu_cores", "cores"),
        overrides=[dashed("cores", "red")],
    )
    b.graph(
        "Load per core",
        "Load averages divided by the number of cores. Bands: load alert thresholds.",
        COUNT,
        *(Query(q.load_per_core(D, m), f"load{m}") for m in (1, 5, 15)),
        alert="load_per_core",
    )
    b.graph(
        "Context switches and interrupts",
        "Per second; a jump with flat CPU usage often means lock contention or a noisy device.",
        PER_SECOND,
        rate("host_context_switches_total", "context switches"),
        rate("host_interrupts_total", "interrupts"),
    )
    b.graph(
        "I/O wait and steal",
        "I/O wait: CPUs idle while disk I/O is outstanding. Steal: time the hypervisor gave to other guests. Bands: iowait alert thresholds.",
        PERCENT,
        Query(q.cpu_iowait.expr(D), "iowait"),
        Query(q.cpu_mode_share(D, q.CPU_STEAL), "steal"),
        alert="cpu_iowait",
    )
    return b.dashboard(UIDS["cpu"], "hostagent / CPU", "Where CPU time goes, per host: modes, cores, load, context switches and I/O wait.")


def memory(th: Thresholds) -> Json:
    """Used, available, cached and buffers; swap and swap activity."""
    b = _host_board(th)
    b.stat("Total memory", "Physical memory of the host.", BYTES, metric("host_memory_total_bytes", "total"), w=5)
    b.stat(
        "Memory and swap available",
        "Memory and swap still available to new work, as a share of memory plus swap: what is left before the OOM killer. Colours: low-memory alert thresholds.",
        SHARE,
        Query(q.memory_and_swap_available.expr(D), "available"),
        alert="memory_available",
        w=5,
    )
    b.stat("Memory usage", "Share of memory in use (total - available).", SHARE, metric("host_memory_usage_ratio", "used"), alert="memory_usage", w=5)
    b.stat("Swap total", "Swap space of the host.", BYTES, metric("host_swap_total_bytes", "swap"), w=4)
    b.stat("Swap usage", "Share of swap space in use; 0 when there is no swap.", SHARE, metric("host_swap_usage_ratio", "swap used"), alert="swap_usage", w=5)
    b.graph(
        "Memory",
        "Used and available memory, page cache and buffers; the dashed line is the total.",
        BYTES,
        *(metric(f"host_memory_{kind}_bytes", kind) for kind in ("used", "available", "cached", "buffers", "free", "total")),
        overrides=[dashed("total")],
    )
    b.graph("Memory usage", "Share of memory in use. Bands: memory alert thresholds.", SHARE, metric("host_memory_usage_ratio", "used"), alert="memory_usage")
    b.graph("Swap", "Swap space used and free.", BYTES, *(metric(f"host_swap_{kind}_bytes", kind) for kind in ("used", "free", "total")))
    b.graph("Swap usage", "Share of swap in use. Bands: swap alert thresholds.", SHARE, metric("host_swap_usage_ratio", "used"), alert="swap_usage")
    b.graph(
        "Swap activity",
        "Bytes per second moved between memory and swap; sustained swap-in means the working set does not fit.",
        BYTES_RATE,
        rate("host_swap_in_bytes_total", "swapped in"),
        rate("host_swap_out_bytes_total", "swapped out"),
        w=24,
    )
    return b.dashboard(UIDS["memory"], "hostagent / Memory", "Memory and swap per host: what is used, what is cache, and whether the host swaps.")


def disk(th: Thresholds) -> Json:
    """Space and inodes per mount, time to full, throughput, IOPS, latency, utilisation."""
    b = _host_board(th)
    used = Query(q.filesystem_usage(D), "{{mountpoint}}")
    b.bars("Space used per mount", "Share of each filesystem used, as df shows it. Colours: filesystem alert thresholds.", SHARE, used, alert="filesystem_usage")
    b.bars(
        "Inodes used per mount",
        "Share of each filesystem's inodes in use, as df -i shows it. Colours: inode alert thresholds.",
        SHARE,
        Query(q.inodes_usage.expr(D), "{{mountpoint}}"),
        alert="filesystem_inodes",
    )
    # Query A.. E of the table: (metric, unit of its value column, column name).
    columns = (
        ("host_filesystem_size_bytes", "bytes", "size"),
        ("host_filesystem_avail_bytes", "bytes", "available"),
        ("host_filesystem_usage_ratio", "percentunit", "used"),
        ("host_filesystem_readonly", "short", "read-only"),
        ("host_filesystem_device_error", "short", "error"),
    )
    value = [f"Value #{chr(ord('A') + i)}" for i in range(len(columns))]
    b.table(
        "Filesystems",
        "Size, available space, share used (as df shows it, like the bars and the alert) and state of every mounted filesystem.",
        *(metric(name) for name, _, _ in columns),
        value_unit={v: unit for v, (_, unit, _) in zip(value, columns)},
        column_steps={value[3]: FLAG_STEPS, value[4]: FLAG_STEPS},
        hide=HOST_COLUMNS,
        rename={v: title for v, (_, _, title) in zip(value, columns)},
        sort_by=value[2],
    )
    b.bars("Predicted time until full", "At the rate free space shrank over the last 6 h; only filesystems that are filling up are shown.", SECONDS, Query(q.time_until_full(D), "{{mountpoint}}"))
    b.graph("Space used", "Share of each filesystem used, as df shows it, over time. Bands: filesystem alert thresholds.", SHARE, used, alert="filesystem_usage")
    b.graph(
        "Disk utilisation",
        "Share of time each disk had I/O in flight (rate of io_time); near 100% the disk is saturated. Bands: disk alert thresholds.",
        SHARE,
        Query(q.disk_io_utilisation.expr(D), "{{device}}"),
        alert="disk_io_utilisation",
    )
    b.graph("Disk throughput", "Bytes per second read and written per disk.", BYTES_RATE, rate("host_disk_read_bytes_total", "{{device}} read"), rate("host_disk_written_bytes_total", "{{device}} write"))
    b.graph("Disk IOPS", "Reads and writes completed per second per disk.", IOPS, rate("host_disk_reads_completed_total", "{{device}} read"), rate("host_disk_writes_completed_total", "{{device}} write"))
    b.graph(
        "Disk latency",
        "Average time per completed read and write: rate of time spent over rate of operations.",
        SECONDS,
        *(Query(q.disk_latency(D, op), f"{{{{device}}}} {op}") for op in ("read", "write")),
        w=24,
    )
    return b.dashboard(UIDS["disk"], "hostagent / Disk", "Filesystems and block devices per host: space, inodes, time to full, throughput, IOPS, latency, utilisation.")


def network(th: Thresholds) -> Json:
    """Throughput, packets, errors and drops per interface; connections by state."""
    b = _host_board(th)
    b.stat(
        "TCP connections",
        "TCP connections not in LISTEN. Colours: connection-count alert thresholds.",
        COUNT,
        Query(q.tcp_connections(D, q.TCP_NOT_LISTEN), "connections"),
        alert="tcp_connections",
        w=6,
    )
    b.stat("TIME_WAIT", "TCP connections in TIME_WAIT. Colours: TIME_WAIT alert thresholds.", COUNT, Query(q.tcp_connections(D, q.TCP_TIME_WAIT), "time_wait"), alert="tcp_time_wait", w=6)
    b.stat("Listening", "TCP sockets in LISTEN.", COUNT, Query(q.tcp_connections(D, q.TCP_LISTEN), "listen"), w=6)
    b.stat(
        "Interfaces down",
        "Interfaces whose link is down that the interface-down alert watches: not loopback, not "
        "container or VM bridges, and up at some point in the last day. Red from one.",
        COUNT,
        Query(q.interfaces_down(D), "down"),
        steps=FLAG_STEPS,
        w=6,
    )
    for kind, unit, what in (("bytes", NET_RATE, "Bytes"), ("packets", PACKETS_RATE, "Packets"), ("errors", PACKETS_RATE, "Packets with errors"), ("drop", PACKETS_RATE, "Packets dropped")):
        b.graph(
            f"Network {kind}",
            f"{what} per second received (in) and transmitted (out) per interface.",
            unit,
            rate(f"host_network_receive_{kind}_total", "{{device}} in"),
            rate(f"host_network_transmit_{kind}_total", "{{device}} out"),
        )
    for direction, verb in (("receive", "received"), ("transmit", "sent")):
        b.graph(
            f"Failed packets {verb}",
            f"Share of packets {verb} per interface that had errors or were dropped. Bands: {direction}-error alert thresholds.",
            PERCENT,
            Query(q.packets_failed[direction].expr(D), "{{device}}"),
            alert=f"network_{direction}_errors",
        )
    b.graph(
        "TCP connections by state",
        "TCP and TCP6 sockets by state, stacked; many TIME_WAIT or CLOSE_WAIT points at connection churn or a stuck peer.",
        COUNT,
        Query(f"sum without (kind) (host_network_connections{D.sel(q.TCP)})", "{{state}}"),
        stack=True,
    )
    b.graph("UDP sockets", "Open UDP and UDP6 sockets.", COUNT, Query(f"sum without (state) (host_network_connections{D.sel(q.UDP)})", "{{kind}}"))
    b.table(
        "Interfaces",
        "State, link speed and MTU of every interface.",
        metric("host_network_up"),
        metric("host_network_speed_bytes"),
        metric("host_network_mtu_bytes"),
        value_unit={"Value #A": "short", "Value #B": "Bps", "Value #C": "bytes"},
        column_steps={"Value #A": threshold_steps(b.alert("network_interface_down"), "short", "Interfaces")},
        hide=HOST_COLUMNS,
        rename={"Value #A": "up", "Value #B": "speed", "Value #C": "MTU"},
        w=24,
    )
    return b.dashboard(UIDS["network"], "hostagent / Network", "Interfaces and sockets per host: throughput, packets, errors, drops and connections by state.")


def processes(th: Thresholds) -> Json:
    """Who used the host: process groups, services and containers over the
    chosen range and over time, one service or container in detail, and the
    opt-in per-process series."""
    b = _host_board(th)
    groups, cgroups, over_range = q.PROCESS_GROUPS, q.CGROUPS, q.RANGE
    chosen = 'cgroup="$cgroup"'
    b.variable("kind", "Kind", f"label_values(host_cgroup_info{D.sel()}, kind)")
    picked_kinds = 'kind=~"$kind"'
    b.variable("cgroup", "Service or container", f"label_values(host_cgroup_info{D.sel(picked_kinds)}, cgroup)", multi=False)
    must_run = th.get("must_run_groups")
    wide = 4 if must_run is not None and must_run.groups else 5
    b.stat("Processes", "Processes on the host, in every state.", COUNT, Query(f"sum without (state) (host_processes{D.sel()})", "processes"), w=wide)
    b.stat(
        "Groups in other",
        "Process groups without series of their own, summed into the group other: beyond the agent's max_groups, or waiting for its hourly budget of new groups.",
        COUNT,
        metric("host_process_groups_other", "in other"),
        w=wide,
    )
    b.stat(
        "CPU in other",
        "Share of the process groups' CPU used by the groups summed into other: CPU with no name of its own. High: raise max_groups, or group processes with matchers.",
        SHARE,
        Query(q.other_cpu_share(D), "other"),
        w=wide,
    )
    b.stat("Memory in other", "Share of the process groups' resident memory held by the groups summed into other.", SHARE, Query(q.other_memory_share(D), "other"), w=wide)
    if must_run is not None and must_run.groups:
        b.stat(
            "Must-run groups",
            f"Processes of each group config/alerting.yaml says must run ({', '.join(must_run.groups)}); red at 0. NOT WATCHED: the agent exports no such group, so it cannot tell: pin it in collectors.processes.pinned_groups.",
            COUNT,
            Query(q.must_run_processes(D, must_run.groups), "{{group}}"),
            alert="must_run_groups",
            mappings=[{"type": "value", "options": {"-1": {"text": "NOT WATCHED", "color": "red", "index": 0}}}],
            w=wide,
        )
    b.stat(
        "Services and containers",
        "Services, user slices and containers with series of their own (host_cgroup_info); the rest is summed into the cgroup other.",
        COUNT,
        Query(f"count without (cgroup, kind, runtime, path) (host_cgroup_info{D.sel()})", "cgroups"),
        w=wide,
    )
    # Who used the most over the chosen range: (title, unit, quantity, description).
    rankings = (
        ("CPU time", SECONDS, lambda a: q.used_cpu(over_range, a, fn="increase"), "CPU seconds (user and system) each used over the time range; 3600 s is one core for an hour."),
        ("peak memory", BYTES, lambda a: q.peak_memory(over_range, a), "The most memory each held at any sample of the time range{memory}."),
        ("disk I/O", BYTES, lambda a: q.used_io(over_range, a, fn="increase"), "Bytes each read and wrote together over the time range{io}."),
    )
    notes = {
        groups.label: {"memory": " (resident; a page shared by several processes counts in each)", "io": " (/proc/PID/io, where the agent may read it)"},
        cgroups.label: {"memory": " (page cache included)", "io": " (block I/O the kernel accounted to the cgroup)"},
    }
    for title, unit, quantity, text in rankings:
        for what, acct in (("groups", groups), ("services and containers", cgroups)):
            b.bars(
                f"Top {what} by {title} over the range",
                f"The ten {what} with the most. " + text.format(**notes[acct.label]),
                unit,
                Query(q.top(10, quantity(acct)), f"{{{{{acct.label}}}}}"),
            )
    b.graph(
        "CPU by group",
        "CPU each process group used, stacked, 100% = one core; the band named other is every group without series of its own.",
        CORES,
        Query(q.used_cpu(D, groups), "{{group}}"),
        stack=True,
    )
    b.graph(
        "CPU by service and container",
        "CPU each service, user slice and container used, 100% = one core. Not stacked: a rootless container is counted in its user's slice too.",
        CORES,
        Query(q.used_cpu(D, cgroups), "{{cgroup}}"),
    )
    b.graph("Memory by group", "Resident memory of each process group; a page shared by several processes counts in each.", BYTES, Query(f"{groups.memory}{D.sel()}", "{{group}}"))
    b.graph("Memory by service and container", "Memory each service, user slice and container uses, page cache included.", BYTES, Query(f"{cgroups.memory}{D.sel()}", "{{cgroup}}"))
    b.graph("Disk I/O by group", "Bytes per second each process group read and wrote together (where the agent may read /proc/PID/io).", BYTES_RATE, Query(q.used_io(D, groups), "{{group}}"))
    b.graph("Disk I/O by service and container", "Block I/O bytes per second each service, user slice and container read and wrote together.", BYTES_RATE, Query(q.used_io(D, cgroups), "{{cgroup}}"))
    b.graph("Processes by group", "Processes in each process group; a pinned group shows 0 when none runs.", COUNT, metric("host_process_group_processes", "{{group}}"))
    b.bars(
        "OOM kills over the range",
        "Processes of each service, user slice or container the OOM killer ended during the time range; empty when there were none (HostCgroupOomKillDetected fires for each).",
        COUNT,
        Query(f"{q.cgroup_oom_kills(over_range)} > 0", "{{cgroup}}"),
    )
    b.graph(
        "Processes by state",
        "Number of processes in each state, stacked; a growing zombie count means a parent does not reap its children.",
        COUNT,
        metric("host_processes", "{{state}}"),
        stack=True,
    )
    b.graph("Threads", "Threads of all processes together.", COUNT, metric("host_processes_threads", "threads"))

    b.row("Service or container: $cgroup")
    b.stat(
        "Memory of its limit",
        "Memory the chosen service or container uses as a share of its memory limit, per host; empty where it has no limit.",
        SHARE,
        Query(q.cgroup_memory_of_limit(D, chosen), "{{instance}}"),
        w=6,
        h=8,
    )
    b.graph("CPU by mode", "CPU the chosen service or container used, by mode, 100% = one core; every task counts, however short-lived.", CORES, rate(cgroups.cpu, "{{instance}} {{mode}}", chosen), stack=True, w=9)
    b.graph(
        "Memory against its limit",
        "Memory in use (page cache included) and, dashed, the limit where one is set.",
        BYTES,
        metric(cgroups.memory, "{{instance}} used", chosen),
        metric("host_cgroup_memory_limit_bytes", "{{instance}} limit", chosen),
        overrides=[dashed(".* limit", "red", regex=True)],
        w=9,
    )
    b.graph(
        "Disk I/O",
        "Block I/O bytes per second the chosen service or container read and wrote.",
        BYTES_RATE,
        rate(cgroups.read, "{{instance}} read", chosen),
        rate(cgroups.written, "{{instance}} write", chosen),
        w=6,
    )
    b.graph("Processes", "Processes in the chosen service or container and the cgroups below it.", COUNT, metric("host_cgroup_processes", "{{instance}}", chosen), w=6)
    b.graph(
        "OOM kills",
        "Processes of the chosen service or container the OOM killer ended, per interval.",
        COUNT,
        Query(q.cgroup_oom_kills(D, chosen), "{{instance}}"),
        w=6,
    )
    b.graph(
        "Pressure",
        "Share of time the chosen cgroup's tasks waited for a CPU, for memory and for I/O (waiting: at least one task; stalled: all at once), from its PSI files. "
        "Only on cgroup v2 and hybrid hosts with pressure stall information; empty elsewhere.",
        SHARE,
        *(
            rate(f"host_cgroup_pressure_{resource}_{kind}_seconds_total", f"{{{{instance}}}} {resource} {kind}", chosen)
            for resource in ("cpu", "memory", "io")
            for kind in ("waiting", "stalled")
        ),
        w=6,
    )

    b.row("Per-process series (opt-in: collectors.processes.top_n)")
    opt_in = (
        " Empty unless the agent runs with collectors.processes.top_n above 0 (0 by default: every process that enters the top makes 3 new series)."
        " For the live list at no cost in Prometheus, use `hostagent top` or the agent's /api/v1/processes."
    )
    top_memory = f"topk(10, host_process_resident_memory_bytes{D.sel()})"
    b.table(
        "Top processes by CPU",
        "The busiest processes now; 100% is one full core." + opt_in,
        Query(f"topk(10, host_process_cpu_usage_cores{D.sel()})"),
        value_unit={"Value": "percentunit"},
        hide=("Time", "__name__", "job"),
        rename={"Value": "CPU"},
        sort_by="Value",
    )
    b.table(
        "Top processes by memory",
        "The processes holding the most resident memory now, and their share of the host's memory." + opt_in,
        Query(top_memory),
        Query(f"host_process_memory_usage_ratio{D.sel()} and on (job, instance, pid) {top_memory}"),
        value_unit={"Value #A": "bytes", "Value #B": "percentunit"},
        hide=("Time", "__name__", "job"),
        rename={"Value #A": "resident", "Value #B": "share of memory"},
        sort_by="Value #A",
    )
    b.graph("Top processes by CPU over time", "The five busiest processes at each moment; 100% is one full core." + opt_in, CORES, Query(f"topk(5, host_process_cpu_usage_cores{D.sel()})", "{{instance}} {{name}} ({{pid}})"))
    b.graph(
        "Top processes by memory over time",
        "The five processes holding the most resident memory at each moment." + opt_in,
        BYTES,
        Query(f"topk(5, host_process_resident_memory_bytes{D.sel()})", "{{instance}} {{name}} ({{pid}})"),
    )
    return b.dashboard(
        UIDS["processes"],
        "hostagent / Processes",
        "Who used each host: process groups, services and containers over the chosen range and over time, one service or container in detail, and the opt-in per-process series.",
    )


def agent(th: Thresholds) -> Json:
    """The agent's own health: collectors, its CPU and memory, scrapes."""
    b = Board(th)
    b.row("Agents")
    b.table(
        "Agents",
        "Version of each agent and whether Prometheus reaches it.",
        metric("hostagent_build_info"),
        metric("up"),
        value_unit={"Value #B": "short"},
        hide=("Time", "__name__", "Value #A"),
        rename={"Value #B": "up"},
        w=24,
        h=6,
    )
    b.row(HOST, repeat="instance")
    # Half-width stats of one 0/1 gauge per collector, named by their mappings.
    b.stat(
        "Collectors up",
        "Whether each collector's last runs succeeded; a collector switched off is down too. Colours: collector alert thresholds.",
        COUNT,
        metric("hostagent_collector_up", "{{collector}}"),
        alert="collector_failing",
        mappings=UP_DOWN,
        w=12,
    )
    b.stat(
        "Collectors enabled",
        "Whether each collector is scheduled; OFF once self-monitoring switched it off to keep the agent within its limits. Colours: switched-off alert thresholds.",
        COUNT,
        metric("hostagent_collector_enabled", "{{collector}}"),
        alert="collector_disabled",
        mappings=ON_OFF,
        w=12,
    )
    b.graph(
        "Time since last success",
        "Seconds since each collector last succeeded; it should stay near the collector's interval. Bands: stale-collector alert thresholds.",
        SECONDS,
        Query(f"time() - (hostagent_collector_last_success_timestamp_seconds{D.sel()} > 0)", "{{collector}}"),
        alert="collector_stale",
    )
    b.graph("Collection duration", "How long each collector's last run took.", SECONDS, metric("hostagent_collector_duration_seconds", "{{collector}}"))
    b.graph("Collector errors", "Failed collector runs in each interval.", COUNT, Query(D.rate("hostagent_collector_errors_total", fn="increase"), "{{collector}}"))
    b.graph("Agent CPU", "CPU the agent process itself uses; 100% is one full core.", CORES, rate("process_cpu_seconds_total", "agent"))
    b.graph("Agent memory", "Resident memory of the agent process.", BYTES, metric("process_resident_memory_bytes", "resident"))
    b.graph(
        "Scrape duration",
        "How long Prometheus took to scrape the agent; the scrape serves pre-rendered bytes, so this stays small.",
        SECONDS,
        metric("scrape_duration_seconds", "scrape"),
    )
    return b.dashboard(UIDS["agent"], "hostagent / Agent health", "Is the monitoring itself healthy: collectors, the agent's own CPU and memory, scrape times.")


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
