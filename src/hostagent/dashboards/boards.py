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
    CELSIUS,
    CORES,
    COUNT,
    HERTZ,
    IOPS,
    NET_RATE,
    PACKETS_RATE,
    PER_SECOND,
    PERCENT,
    RPM,
    SECONDS,
    SHARE,
    LONGTERM,
    Board,
    Json,
    Query,
    Unit,
    dashboard_link,
    longterm_variables,
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
    "system": "hostagent-system",
    "agent": "hostagent-agent",
    "history": "hostagent-history",
}
# The overview's rankings: how many hosts each lists.
TOP_HOSTS = 10
FLAG_STEPS = [{"color": "green", "value": None}, {"color": "red", "value": 1}]  # 1 = bad
UP_DOWN = [{"type": "value", "options": {"0": {"text": "DOWN", "color": "red", "index": 0}, "1": {"text": "UP", "color": "green", "index": 1}}}]
ON_OFF = [{"type": "value", "options": {"0": {"text": "OFF", "color": "blue", "index": 0}, "1": {"text": "ON", "color": "green", "index": 1}}}]
YES_NO = [{"type": "value", "options": {"0": {"text": "NO", "color": "orange", "index": 0}, "1": {"text": "YES", "color": "green", "index": 1}}}]
AVAILABLE = [{"type": "value", "options": {"0": {"text": "NOT HERE", "color": "text", "index": 0}, "1": {"text": "YES", "color": "green", "index": 1}}}]
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


def pressure(resource: str, kind: str, legend: str) -> Query:
    """A PSI share of time (0..1) over Grafana's window."""
    return Query(q.pressure[(resource, kind)].expr(D), legend)


# The saturation stalls the alerts watch: (resource, PSI line, alert key, title, what).
STALLS = (
    ("cpu", "waiting", "cpu_pressure", "CPU pressure", "Share of time at least one runnable task waited for a CPU (PSI cpu some)."),
    ("memory", "stalled", "memory_pressure", "Memory pressure", "Share of time every task was stalled on memory at once, the host doing no work (PSI memory full)."),
    ("io", "stalled", "io_pressure", "I/O pressure", "Share of time every task waited for block I/O at once (PSI io full)."),
)


def some_and_full(b: Board, resource: str, title: str, what: str) -> None:
    """PSI's two lines of a resource, banded by its alert (which watches full)."""
    b.graph(
        title,
        f"Share of time at least one task (some) and every task (full) {what}. Bands: the {title} alert's thresholds, on full.",
        PERCENT,
        pressure(resource, "waiting", "some"),
        pressure(resource, "stalled", "full"),
        alert=f"{resource}_pressure",
    )


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
    b.row("Top hosts")
    top = (
        ("CPU", "Share of all cores busy.", q.cpu_utilisation.expr(D), "cpu_usage"),
        ("memory", "Share of memory in use (total - available).", f"host_memory_usage_ratio{D.sel()}", "memory_usage"),
        ("disk space", "Share used of each host's fullest writable filesystem, as df shows it.", q.fullest_filesystem(D), "filesystem_usage"),
        ("disk I/O", "Share of time each host's busiest disk had I/O in flight.", q.busiest_disk(D), "disk_io_utilisation"),
    )
    for what, description, expr, key in top:
        b.bars(f"Top hosts by {what}", f"{description} The {TOP_HOSTS} highest of the selected hosts, now.", SHARE, Query(q.top_hosts(TOP_HOSTS, expr), "{{instance}}"), alert=key, w=6)
    b.row("Saturation")
    for resource, kind, key, title, what in STALLS:
        b.graph(
            title,
            f"{what} One line per host; hosts without pressure stall information (kernels before 4.20) have none. Bands: its alert's thresholds.",
            PERCENT,
            pressure(resource, kind, "{{instance}}"),
            alert=key,
            w=8,
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
    return b.dashboard(
        UIDS["overview"],
        "hostagent / Overview",
        "Every host at a glance: CPU, memory and I/O pressure, CPU, memory, root filesystem, network, uptime and firing alerts.",
    )


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
    b.graph(
        "CPU pressure",
        "Share of time at least one runnable task waited for a CPU (PSI cpu some): busy CPUs hurt only when work waits. Bands: CPU pressure alert thresholds.",
        PERCENT,
        pressure("cpu", "waiting", "waiting"),
        alert="cpu_pressure",
        w=24,
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
    )
    some_and_full(b, "memory", "Memory pressure", "was stalled on memory: reclaim, refaulting evicted pages, swap-in")
    b.graph(
        "Kernel memory",
        "Slab caches the kernel can reclaim (dentries, inodes) and cannot, and page tables.",
        BYTES,
        metric("host_memory_slab_reclaimable_bytes", "slab reclaimable"),
        metric("host_memory_slab_unreclaimable_bytes", "slab unreclaimable"),
        metric("host_memory_page_tables_bytes", "page tables"),
    )
    b.graph(
        "Dirty and writeback",
        "Memory waiting to be written to disk (dirty) and being written now (writeback); a dirty pile that keeps growing means the disks cannot keep up with writes.",
        BYTES,
        metric("host_memory_dirty_bytes", "dirty"),
        metric("host_memory_writeback_bytes", "writeback"),
    )
    b.graph(
        "Shared and mapped",
        "Shared memory and tmpfs contents (shared), and files mapped into processes' memory such as libraries (mapped).",
        BYTES,
        metric("host_memory_shared_bytes", "shared"),
        metric("host_memory_mapped_bytes", "mapped"),
    )
    b.graph(
        "Committed memory",
        "Memory processes have allocated, used yet or not, against the limit that applies under strict overcommit (dashed; vm.overcommit_memory=2 only).",
        BYTES,
        metric("host_memory_committed_bytes", "committed"),
        metric("host_memory_commit_limit_bytes", "commit limit"),
        overrides=[dashed("commit limit")],
    )
    b.graph(
        "Huge pages",
        "Huge pages in the pool and how many are free; a pool reserved but unused is memory nothing else can have.",
        COUNT,
        metric("host_memory_hugepages", "pool"),
        metric("host_memory_hugepages_free", "free"),
    )
    b.graph(
        "Page faults",
        "Page faults per second: all (mostly minor, served from memory) and major (waited for a read from disk or swap).",
        PER_SECOND,
        rate("host_memory_page_faults_total", "all"),
        rate("host_memory_major_page_faults_total", "major"),
    )
    b.graph(
        "Major page faults",
        "Faults that waited for a read from disk or swap, per second. Bands: major fault alert thresholds (the alert also needs memory stalls where PSI exists).",
        PER_SECOND,
        Query(q.major_page_faults(D), "major"),
        alert="memory_major_faults",
    )
    b.graph(
        "Paging",
        "Bytes per second read from (paged in) and written to (paged out) block devices through the page cache: file reads and writes and swap alike.",
        BYTES_RATE,
        rate("host_memory_paged_in_bytes_total", "paged in"),
        rate("host_memory_paged_out_bytes_total", "paged out"),
    )
    b.graph(
        "OOM kills",
        "Processes the kernel's out-of-memory killer ended in each interval, container memory limits included; any is worth a look (HostOomKillDetected).",
        COUNT,
        Query(D.rate("host_oom_kills_total", fn="increase"), "killed"),
    )
    return b.dashboard(
        UIDS["memory"],
        "hostagent / Memory",
        "Memory and swap per host: what is used, what is cache, whether the host swaps or stalls on memory, page faults and OOM kills.",
    )


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
    )
    b.graph(
        "Disk queue depth",
        "Average I/Os in flight per disk, queued or being served (iostat's aqu-sz): requests wait behind one another. Bands: disk saturation alert thresholds.",
        COUNT,
        Query(q.disk_queue_depth.expr(D), "{{device}}"),
        alert="disk_io_saturation",
    )
    some_and_full(b, "io", "I/O pressure", "waited for block I/O")
    b.graph(
        "Merged requests",
        "Adjacent reads and writes merged into one request before reaching each disk, per second: sequential I/O merges well.",
        PER_SECOND,
        rate("host_disk_reads_merged_total", "{{device}} read"),
        rate("host_disk_writes_merged_total", "{{device}} write"),
    )
    b.graph(
        "Discards",
        "Discards (TRIM) completed per second per disk; kernels 4.18 and later.",
        IOPS,
        rate("host_disk_discards_completed_total", "{{device}}"),
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
        "State, link speed and MTU of every interface, with the kernel's operational state and duplex.",
        metric("host_network_up"),
        metric("host_network_speed_bytes"),
        metric("host_network_mtu_bytes"),
        metric("host_network_info"),
        value_unit={"Value #A": "short", "Value #B": "Bps", "Value #C": "bytes"},
        column_steps={"Value #A": threshold_steps(b.alert("network_interface_down"), "short", "Interfaces")},
        hide=(*HOST_COLUMNS, "Value #D"),
        rename={"Value #A": "up", "Value #B": "speed", "Value #C": "MTU"},
    )
    b.graph(
        "Link changes in 15 minutes",
        "Times each watched interface's link went up or down in the last 15 minutes, counted exactly (loopback and container or VM bridges left out). Bands: flapping alert thresholds.",
        COUNT,
        Query(q.carrier_changes(D), "{{device}}"),
        alert="network_flapping",
    )
    b.graph(
        "TCP retransmits",
        "Share of TCP segments sent that were retransmissions. Bands: retransmit alert thresholds (the alert leaves out hosts sending 100 segments/s or less).",
        PERCENT,
        Query(q.tcp_retransmits.expr(D), "retransmitted"),
        alert="tcp_retransmits",
    )
    b.graph(
        "Listen queue overflows and drops",
        "Connections dropped per second at listening sockets: because the accept queue was full (overflows), or for any reason (drops). Bands: listen overflow alert thresholds.",
        PER_SECOND,
        rate("host_tcp_listen_overflows_total", "overflows"),
        rate("host_tcp_listen_drops_total", "drops"),
        alert="tcp_listen_overflows",
    )
    b.graph(
        "TCP connections opened",
        "TCP connections this host opened (active) and accepted (passive) per second, and SYN retransmissions: attempts not answered in time.",
        PER_SECOND,
        rate("host_tcp_active_opens_total", "active"),
        rate("host_tcp_passive_opens_total", "passive"),
        rate("host_tcp_syn_retransmits_total", "SYN retransmits"),
    )
    b.graph(
        "TCP resets and errors",
        "TCP segments sent with RST (connections refused or aborted) and segments received in error, per second.",
        PER_SECOND,
        rate("host_tcp_resets_sent_total", "resets sent"),
        rate("host_tcp_receive_errors_total", "receive errors"),
    )
    b.graph(
        "TCP segments",
        "TCP segments received and sent per second (retransmissions not included in sent).",
        PER_SECOND,
        rate("host_tcp_segments_received_total", "received"),
        rate("host_tcp_segments_sent_total", "sent"),
    )
    b.graph(
        "UDP errors",
        "UDP datagrams per second lost to errors, to full receive or send buffers, and sent to ports nobody listens on (IPv4 and IPv6).",
        PER_SECOND,
        rate("host_udp_receive_errors_total", "receive errors"),
        rate("host_udp_receive_buffer_errors_total", "receive buffer full"),
        rate("host_udp_send_buffer_errors_total", "send buffer full"),
        rate("host_udp_no_ports_total", "no port"),
    )
    b.graph(
        "Sockets",
        "Sockets allocated of every kind, and TCP sockets no longer attached to a process but still closing (orphans).",
        COUNT,
        metric("host_sockets_used", "sockets"),
        metric("host_tcp_orphan_sockets", "TCP orphans"),
    )
    b.graph(
        "TCP buffer memory",
        "Memory in TCP socket buffers against the limit past which the kernel refuses new allocations (dashed).",
        BYTES,
        metric("host_tcp_memory_bytes", "used"),
        metric("host_tcp_memory_limit_bytes", "limit"),
        overrides=[dashed("limit", "red")],
    )
    b.graph(
        "Connection tracking",
        "Entries in the kernel's connection tracking table against its size (dashed); past it, new connections' packets are dropped. Hosts without nf_conntrack have none.",
        COUNT,
        metric("host_conntrack_entries", "entries"),
        metric("host_conntrack_entries_limit", "limit"),
        overrides=[dashed("limit", "red")],
    )
    b.graph(
        "Connection tracking used",
        "Share of the connection tracking table in use. Bands: conntrack alert thresholds.",
        SHARE,
        Query(q.conntrack_usage.expr(D), "used"),
        alert="conntrack",
    )
    return b.dashboard(
        UIDS["network"],
        "hostagent / Network",
        "Interfaces and sockets per host: throughput, packets, errors, drops, link changes, connections by state, TCP and UDP counters, sockets and connection tracking.",
    )


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
            f"Processes of each group config/alerting.yaml says must run ({', '.join(must_run.groups)}), on hosts where it ran in the last day; red at 0. "
            "No data: the group did not run here in the last day, or the agent does not export it (pin it in collectors.processes.pinned_groups).",
            COUNT,
            Query(q.must_run_processes(D, must_run.groups), "{{group}}"),
            alert="must_run_groups",
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


def system(th: Thresholds) -> Json:
    """The clock, file handles, tasks, RAID, CPU frequency, sensors and textfiles."""
    b = _host_board(th)
    b.stat("Clock synchronised", "Whether the kernel counts its clock as synchronised to a reference (a time daemon runs). Hosts whose clock the hypervisor keeps say NO and may still be right.", COUNT, metric("host_time_sync_status", "synchronised"), mappings=YES_NO)
    b.stat("Clock offset", "The time daemon's last measured offset from its reference, either way. Colours: clock skew alert thresholds.", SECONDS, Query(f"abs(host_time_offset_seconds{D.sel()})", "offset"), alert="clock_offset")
    b.stat(
        "Clock against Prometheus",
        "How far the host's clock is from Prometheus' at the scrape, either way; lags by up to the system collector's interval. Colours: its alert's thresholds.",
        SECONDS,
        Query(f"abs({q.clock_vs_scrape(D)})", "difference"),
        alert="clock_vs_prometheus",
    )
    b.stat("File handles used", "Share of the system-wide file handle limit (fs.file-max) allocated. Colours: file handle alert thresholds.", SHARE, Query(q.filefd_usage.expr(D), "used"), alert="filefd")
    b.stat("Running tasks", "Tasks running or waiting for a CPU right now (procs_running).", COUNT, metric("host_procs_running", "running"))
    b.stat("Textfile errors", "1 while a *.prom file of the textfile directory is refused (the agent's log says which and why); no value without a textfile directory.", COUNT, metric("host_textfile_scrape_error", "error"), steps=FLAG_STEPS)
    b.graph(
        "Clock offset and error",
        "The kernel's clock offset from its reference as the time daemon set it, its estimated error, and its maximum error (16 s means unknown: no daemon keeps it).",
        SECONDS,
        metric("host_time_offset_seconds", "offset"),
        metric("host_time_estimated_error_seconds", "estimated error"),
        metric("host_time_max_error_seconds", "maximum error"),
    )
    b.graph(
        "Clock against Prometheus",
        "The host's clock minus Prometheus' at each scrape (positive: ahead); up to the system collector's interval (15 s by default) of lag is normal.",
        SECONDS,
        Query(q.clock_vs_scrape(D), "host - Prometheus"),
    )
    b.graph("File handles", "File handles allocated system-wide.", COUNT, metric("host_filefd_allocated", "allocated"))
    b.graph("File handles used", "Share of fs.file-max allocated. Bands: file handle alert thresholds.", SHARE, Query(q.filefd_usage.expr(D), "used"), alert="filefd")
    b.graph("Forks", "Processes and threads created per second.", PER_SECOND, rate("host_forks_total", "forks"))
    b.graph(
        "Running and blocked tasks",
        "Tasks runnable now (running or waiting for a CPU) and blocked in uninterruptible sleep (D state, mostly waiting for I/O), next to the number of cores (dashed): the figures behind the load average.",
        COUNT,
        metric("host_procs_running", "running"),
        metric("host_procs_blocked", "blocked"),
        metric("host_cpu_cores", "cores"),
        overrides=[dashed("cores", "red")],
    )
    b.table(
        "RAID arrays",
        "Every md array: its state (active, inactive, or the sync running), disks it needs, disks in sync, failed and spare, and how many it lacks. Red from one failed or missing disk.",
        Query(f"host_md_state{D.sel()} == 1"),
        Query(f"host_md_disks_required{D.sel()}"),
        *(Query(f"sum without (state) (host_md_disks{D.sel(matcher)})") for matcher in (q.MD_ACTIVE, q.MD_FAILED, q.MD_SPARE)),
        Query(q.raid_disks_missing(D)),
        value_unit={f"Value #{r}": "short" for r in "BCDEF"},
        column_steps={"Value #D": FLAG_STEPS, "Value #F": FLAG_STEPS},
        hide=(*HOST_COLUMNS, "Value #A"),
        rename={"Value #B": "required", "Value #C": "active", "Value #D": "failed", "Value #E": "spare", "Value #F": "missing"},
    )
    b.graph("RAID sync progress", "Share of the running resync, recovery, check or reshape done, per array; no line while none runs.", SHARE, metric("host_md_blocks_synced_ratio", "{{device}}"))
    b.graph(
        "CPU frequency",
        "Current clock frequency of each CPU as the scaling driver reports it, and the highest any supports (dashed); hosts without a cpufreq driver (most VMs) have none.",
        HERTZ,
        metric("host_cpu_frequency_hertz", "cpu {{cpu}}"),
        Query(f"max without (cpu) (host_cpu_frequency_max_hertz{D.sel()})", "max"),
        overrides=[dashed("max", "red")],
    )
    b.graph("Temperatures", "Hardware monitoring sensors' temperatures; VMs usually have none.", CELSIUS, metric("host_hwmon_temperature_celsius", "{{chip}} {{sensor}}"))
    b.graph("Fan speeds", "Fan speeds from hardware monitoring sensors; VMs usually have none, and a fan at 0 may have stopped.", RPM, metric("host_hwmon_fan_rpm", "{{chip}} {{sensor}}"))
    b.table(
        "Textfiles",
        "Every *.prom file served from the textfile directory and how long ago it was written: a file that stops changing means its writer stopped.",
        Query(f"time() - host_textfile_mtime_seconds{D.sel()}"),
        value_unit={"Value": "s"},
        hide=HOST_COLUMNS,
        rename={"Value": "age"},
        sort_by="Value",
    )
    return b.dashboard(
        UIDS["system"],
        "hostagent / System",
        "The host itself: clock synchronisation, file handles, forks and tasks, software RAID, CPU frequency, temperatures and fans, textfiles.",
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
    b.stat(
        "Collectors available",
        "Whether each collector's source exists on this host; NOT HERE (no PSI, no conntrack module, no md arrays, no cpufreq driver, no textfile directory) is not a failure: such a collector serves nothing and holds nothing back.",
        COUNT,
        metric("hostagent_collector_available", "{{collector}}"),
        mappings=AVAILABLE,
        w=24,
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


def history(th: Thresholds) -> Json:
    """A year and more from the long-term store: the tier aggregates, one row per host."""
    b = Board(th, datasource=LONGTERM, min_interval=q.TIER_PICKED)
    b.row(HOST, repeat="instance")

    def both(key: str, what: str) -> tuple:
        """The average and the peak of an aggregate, as two lines."""
        return (Query(q.tier_history(f"{key}:avg"), f"{what} average"), Query(q.tier_history(f"{key}:max"), f"{what} peak"))

    tiers = "Each point combines the tier's samples over the step: averages of averages, peaks of peaks."
    b.graph("CPU usage", f"Share of all cores busy: the average, and the busiest minute. {tiers}", SHARE, *both("host_cpu_utilisation", "CPU"), alert="cpu_usage")
    b.graph("Memory usage", f"Share of memory not available to new work, average and peak. {tiers}", SHARE, *both("host_memory_utilisation", "memory"), alert="memory_usage")
    b.graph(
        "Filesystem usage",
        f"Share of each filesystem used, as df shows it, at its fullest in each step. {tiers}",
        SHARE,
        Query(q.tier_history("host_filesystem_usage:max"), "{{mountpoint}}"),
        alert="filesystem_usage",
    )
    b.graph("Free space", "Bytes available to users on each filesystem, the least in each step.", BYTES, Query(q.tier_history("host_filesystem_avail_bytes:min"), "{{mountpoint}}"))
    b.bars(
        f"Free space in {q.FORECAST_DAYS} days",
        f"Bytes each filesystem will have left {q.FORECAST_DAYS} days from the end of the range, at the linear trend of its least free space "
        f"over the last {q.FORECAST_DAYS} days; below zero it fills before then.",
        Unit(BYTES.name, None),
        Query(q.tier_forecast(), "{{mountpoint}}"),
    )
    b.graph(
        "Network",
        f"Bytes per second received and sent on all interfaces but loopback: the average, and the busiest minute. {tiers}",
        NET_RATE,
        *(Query(q.tier_history(f"host_network_{d}_bytes_excluding_lo:{op}"), f"{d} {label}") for d in q.DIRECTIONS for op, label in (("rate", "average"), ("max", "peak"))),
    )
    b.graph("Disk busy", f"Share of time each disk had I/O in flight, average and busiest minute. {tiers}", SHARE,
            Query(q.tier_history("host_disk_io_time_seconds:rate"), "{{device}} average"), Query(q.tier_history("host_disk_io_time_seconds:max"), "{{device}} peak"))
    b.graph("Availability", "Share of the host's scrapes that worked: below 100 % the agent or the host was down.", SHARE, Query(q.tier_history("host_up:avg"), "scraped"))
    return b.dashboard(
        UIDS["history"],
        "hostagent / History",
        "A year and more per host from the long-term store: CPU, memory, filesystems and their forecast, network, disks, availability. "
        "Tier 1h for months, 5m for days.",
        pickers=longterm_variables(q.TIER["host_up:avg"].name("5m"), ("1h", "5m")),
        time_from="now-1y",
        time_options=("7d", "30d", "90d", "180d", "1y", "2y"),
        annotations=False,
    )


BOARDS: Dict[str, Callable[[Thresholds], Json]] = {
    "overview": overview,
    "cpu": cpu,
    "memory": memory,
    "disk": disk,
    "network": network,
    "processes": processes,
    "system": system,
    "agent": agent,
    "history": history,
}


def build_all(th: Thresholds) -> Dict[str, Json]:
    """Every dashboard, keyed by its file stem."""
    return {name: build(th) for name, build in BOARDS.items()}
