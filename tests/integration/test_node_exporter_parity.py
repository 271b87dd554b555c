"""The agent and node_exporter 1.5 agree on the values they both serve.

Both run on this machine, each reading /proc itself. One comparison is:
read node_exporter (before), wait until the agent serves a snapshot whose
run started after that read ended, scrape the agent, read node_exporter
again (after). Every row of ROWS then says how the two must relate:

- ``counter``: before <= ours <= after. Counters only grow and the agent's
  read happened between the two others, so no tolerance is needed.
- ``gauge``: ours lies in [min(before, after), max(before, after)], widened
  by the row's tolerance. A gauge that moved monotonically between the
  reads stays in that band; one that went up and down (sockets, open files
  and tracked connections churn with whatever else runs on the machine) can
  leave it, so a gauge row gets several comparisons and passes when one of
  them agrees.
- ``same``: ours == before == after (limits and flags that do not move).

A row may sum several node_exporter series (UDP counts IPv4 plus IPv6), scale
them (KiB to bytes), and map labels for families with several series
(``labels=(("device", "device"),)``): each of our series is compared with
the node_exporter series whose mapped labels match. Rows whose source this
machine lacks are left out (see ``available``), and named in the skip
reason when all are.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Dict, FrozenSet, Iterable, List, Optional, Sequence, Set, Tuple

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from support import Server, agent_server, free_port, require_tool

from hostagent.collectors import load_all
from hostagent.collectors.base import NotAvailable

KIB = 1024.0
INTERVAL = 0.25  # seconds between the compared collectors' runs in the agent
GAUGE_ATTEMPTS = 15


@dataclass(frozen=True)
class Row:
    """One family the agent and node_exporter both serve, and how they relate."""

    ours: str  # sample name the agent serves
    theirs: Tuple[Tuple[str, float], ...]  # node_exporter sample names, each times its factor, summed
    kind: str  # "counter", "gauge" or "same"
    agent: str  # the agent collector serving it
    exporter: str  # the node_exporter collector serving it
    labels: Tuple[Tuple[str, str], ...] = ()  # our label -> node_exporter's label
    tolerance: float = 0.0  # gauges: widens the band on both sides


def row(ours: str, theirs, kind: str, agent: str, exporter: str, **kw) -> Row:
    terms = ((theirs, 1.0),) if isinstance(theirs, str) else tuple(theirs)
    return Row(ours, terms, kind, agent, exporter, **kw)


def netstat(ours: str, *fields: str) -> Row:
    return row(ours, [(f"node_netstat_{field}", 1.0) for field in fields], "counter", "netstat", "netstat")


def meminfo(ours: str, field: str, kind: str = "gauge", **kw) -> Row:
    return row(ours, f"node_memory_{field}", kind, "memory", "meminfo", **kw)


def disk(ours: str, theirs, kind: str = "counter") -> Row:
    return row(ours, theirs, kind, "diskio", "diskstats", labels=(("device", "device"),))


ROWS: Tuple[Row, ...] = (
    row("host_pressure_cpu_waiting_seconds_total", "node_pressure_cpu_waiting_seconds_total", "counter", "pressure", "pressure"),
    row("host_pressure_memory_waiting_seconds_total", "node_pressure_memory_waiting_seconds_total", "counter", "pressure", "pressure"),
    row("host_pressure_memory_stalled_seconds_total", "node_pressure_memory_stalled_seconds_total", "counter", "pressure", "pressure"),
    row("host_pressure_io_waiting_seconds_total", "node_pressure_io_waiting_seconds_total", "counter", "pressure", "pressure"),
    row("host_pressure_io_stalled_seconds_total", "node_pressure_io_stalled_seconds_total", "counter", "pressure", "pressure"),
    row("host_oom_kills_total", "node_vmstat_oom_kill", "counter", "vmstat", "vmstat"),
    row("host_memory_page_faults_total", "node_vmstat_pgfault", "counter", "vmstat", "vmstat"),
    row("host_memory_major_page_faults_total", "node_vmstat_pgmajfault", "counter", "vmstat", "vmstat"),
    # vmstat counts paging in KiB.
    row("host_memory_paged_in_bytes_total", [("node_vmstat_pgpgin", KIB)], "counter", "vmstat", "vmstat"),
    row("host_memory_paged_out_bytes_total", [("node_vmstat_pgpgout", KIB)], "counter", "vmstat", "vmstat"),
    netstat("host_tcp_active_opens_total", "Tcp_ActiveOpens"),
    netstat("host_tcp_passive_opens_total", "Tcp_PassiveOpens"),
    netstat("host_tcp_segments_received_total", "Tcp_InSegs"),
    netstat("host_tcp_segments_sent_total", "Tcp_OutSegs"),
    netstat("host_tcp_retransmitted_segments_total", "Tcp_RetransSegs"),
    netstat("host_tcp_syn_retransmits_total", "TcpExt_TCPSynRetrans"),
    netstat("host_tcp_listen_overflows_total", "TcpExt_ListenOverflows"),
    netstat("host_tcp_listen_drops_total", "TcpExt_ListenDrops"),
    netstat("host_tcp_receive_errors_total", "Tcp_InErrs"),
    netstat("host_tcp_resets_sent_total", "Tcp_OutRsts"),
    netstat("host_udp_receive_errors_total", "Udp_InErrors", "Udp6_InErrors"),
    netstat("host_udp_receive_buffer_errors_total", "Udp_RcvbufErrors", "Udp6_RcvbufErrors"),
    netstat("host_udp_send_buffer_errors_total", "Udp_SndbufErrors", "Udp6_SndbufErrors"),
    netstat("host_udp_no_ports_total", "Udp_NoPorts", "Udp6_NoPorts"),
    # Each reader's own scrape connection (a server and a client socket) may
    # be open while either one reads: 2 sockets either way.
    row("host_sockets_used", "node_sockstat_sockets_used", "gauge", "sockstat", "sockstat", tolerance=2),
    row("host_tcp_orphan_sockets", "node_sockstat_TCP_orphan", "gauge", "sockstat", "sockstat"),
    row("host_tcp_memory_bytes", "node_sockstat_TCP_mem_bytes", "gauge", "sockstat", "sockstat"),
    row("host_conntrack_entries", "node_nf_conntrack_entries", "gauge", "conntrack", "conntrack"),
    row("host_conntrack_entries_limit", "node_nf_conntrack_entries_limit", "same", "conntrack", "conntrack"),
    # Every reader holds the file it reads open (node_exporter reads its
    # collectors in parallel): a few handles either way.
    row("host_filefd_allocated", "node_filefd_allocated", "gauge", "filefd", "filefd", tolerance=8),
    row("host_filefd_maximum", "node_filefd_maximum", "same", "filefd", "filefd"),
    row("host_time_sync_status", "node_timex_sync_status", "same", "timex", "timex"),
    row("host_time_offset_seconds", "node_timex_offset_seconds", "gauge", "timex", "timex"),
    # maxerror grows by 500 microseconds a second while no daemon resets it: inside the band.
    row("host_time_max_error_seconds", "node_timex_maxerror_seconds", "gauge", "timex", "timex"),
    row("host_time_estimated_error_seconds", "node_timex_estimated_error_seconds", "gauge", "timex", "timex"),
    # /proc/meminfo, in bytes on both sides. Sizes that do not move are
    # "same"; the rest move with whatever else runs.
    meminfo("host_memory_total_bytes", "MemTotal_bytes", "same"),
    meminfo("host_memory_available_bytes", "MemAvailable_bytes"),
    meminfo("host_memory_free_bytes", "MemFree_bytes"),
    meminfo("host_memory_cached_bytes", "Cached_bytes"),  # the page cache alone since 0.2.0
    meminfo("host_memory_buffers_bytes", "Buffers_bytes"),
    meminfo("host_memory_slab_reclaimable_bytes", "SReclaimable_bytes"),
    meminfo("host_memory_slab_unreclaimable_bytes", "SUnreclaim_bytes"),
    meminfo("host_memory_dirty_bytes", "Dirty_bytes"),
    meminfo("host_memory_writeback_bytes", "Writeback_bytes"),
    meminfo("host_memory_shared_bytes", "Shmem_bytes"),
    meminfo("host_memory_mapped_bytes", "Mapped_bytes"),
    meminfo("host_memory_page_tables_bytes", "PageTables_bytes"),
    meminfo("host_memory_committed_bytes", "Committed_AS_bytes"),
    meminfo("host_memory_commit_limit_bytes", "CommitLimit_bytes", "same"),
    meminfo("host_memory_hugepage_size_bytes", "Hugepagesize_bytes", "same"),
    meminfo("host_memory_hugepages", "HugePages_Total", "same"),
    meminfo("host_memory_hugepages_free", "HugePages_Free"),
    meminfo("host_swap_total_bytes", "SwapTotal_bytes", "same"),
    meminfo("host_swap_free_bytes", "SwapFree_bytes"),
    # /proc/diskstats per device: both leave out partitions, loop and RAM disks.
    disk("host_disk_read_bytes_total", "node_disk_read_bytes_total"),
    disk("host_disk_written_bytes_total", "node_disk_written_bytes_total"),
    disk("host_disk_reads_completed_total", "node_disk_reads_completed_total"),
    disk("host_disk_writes_completed_total", "node_disk_writes_completed_total"),
    disk("host_disk_read_time_seconds_total", "node_disk_read_time_seconds_total"),
    disk("host_disk_write_time_seconds_total", "node_disk_write_time_seconds_total"),
    disk("host_disk_io_time_seconds_total", "node_disk_io_time_seconds_total"),
    disk("host_disk_io_time_weighted_seconds_total", "node_disk_io_time_weighted_seconds_total"),
    disk("host_disk_io_in_progress", "node_disk_io_now", "gauge"),
    disk("host_disk_reads_merged_total", "node_disk_reads_merged_total"),
    disk("host_disk_writes_merged_total", "node_disk_writes_merged_total"),
    disk("host_disk_discards_completed_total", "node_disk_discards_completed_total"),
    disk("host_disk_discarded_bytes_total", [("node_disk_discarded_sectors_total", 512.0)]),
    # /sys/class/net/<device>/carrier_changes.
    row("host_network_carrier_changes_total", "node_network_carrier_changes_total", "counter", "network", "netclass", labels=(("device", "device"),)),
    # /proc/stat. Each reader is itself a running task while it reads.
    row("host_forks_total", "node_forks_total", "counter", "cpu", "stat"),
    row("host_procs_running", "node_procs_running", "gauge", "cpu", "stat", tolerance=4),
    row("host_procs_blocked", "node_procs_blocked", "gauge", "cpu", "stat", tolerance=2),
)

# node_exporter flags a row's collector needs beyond --collector.<name>.
EXPORTER_FLAGS: Dict[str, Tuple[str, ...]] = {
    "netstat": ("--collector.netstat.fields=^(Tcp|TcpExt|Udp|Udp6)_.*",),
}

Labels = FrozenSet[Tuple[str, str]]
Scrape = Dict[Tuple[str, Labels], float]


def parse(text: str) -> Scrape:
    out: Scrape = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def scrape(url: str) -> Scrape:
    resp = requests.get(url, timeout=10)
    resp.raise_for_status()
    return parse(resp.text)


def available(rows: Sequence[Row]) -> Tuple[List[Row], List[str]]:
    """The rows whose agent collector has its source here, and the reasons of those that do not."""
    registry = load_all()
    absent: Dict[str, str] = {}
    for name in sorted({r.agent for r in rows}):
        try:
            registry[name]().sample()
        except NotAvailable as exc:
            absent[name] = f"{name}: {exc}"
    return [r for r in rows if r.agent not in absent], list(absent.values())


def theirs_value(r: Row, ne: Scrape, ours_labels: Labels) -> Optional[float]:
    """node_exporter's value for one of our series: its terms summed, or None when one is missing."""
    want = {(theirs, value) for ours, value in ours_labels for o, theirs in r.labels if o == ours}
    total = 0.0
    for name, factor in r.theirs:
        matches = [v for (n, labels), v in ne.items() if n == name and want <= labels]
        if len(matches) != 1:
            return None
        total += factor * matches[0]
    return total


def close_le(a: float, b: float) -> bool:
    """a <= b, forgiving the last bits of a float (seconds made from microseconds)."""
    return a <= b + 1e-9 * max(1.0, abs(b))


def compare(r: Row, ours: float, before: float, after: float) -> bool:
    if r.kind == "counter":
        return close_le(before, ours) and close_le(ours, after)
    if r.kind == "same":
        return ours == before == after
    low, high = min(before, after) - r.tolerance, max(before, after) + r.tolerance
    return close_le(low, ours) and close_le(ours, high)


def our_series(r: Row, agent: Scrape) -> Dict[Labels, float]:
    return {labels: v for (name, labels), v in agent.items() if name == r.ours}


class Agent:
    """The agent server, and a way to wait for snapshots taken after a moment."""

    def __init__(self, server: Server, collectors: Iterable[str]):
        self.server = server
        self.collectors = sorted(set(collectors))

    def _runs(self, body: Scrape) -> Dict[str, Tuple[float, float]]:
        """collector -> (start, end) of its last successful run, wall clock."""
        out = {}
        for name in self.collectors:
            key = frozenset({("collector", name)})
            end = body.get(("hostagent_collector_last_success_timestamp_seconds", key), 0.0)
            out[name] = (end - body.get(("hostagent_collector_duration_seconds", key), 0.0), end)
        return out

    def scrape_after(self, moment: float, timeout: float = 30.0) -> Scrape:
        """A scrape whose snapshots of every compared collector come from runs
        that started after ``moment``.

        A render can show a run's health figures beside the snapshot of the
        run before (the run ended while the render was under way), so this
        waits for the run after the first one that started after ``moment``:
        whichever of the two the snapshot is from, it started after it."""
        deadline = time.monotonic() + timeout
        first: Dict[str, float] = {}
        while time.monotonic() < deadline:
            body = scrape(self.server.base_url + "/metrics")
            runs = self._runs(body)
            for name, (start, end) in runs.items():
                if name not in first and start - 0.01 >= moment:
                    first[name] = end
            if len(first) == len(runs) and all(runs[n][1] > first[n] for n in runs):
                return body
            time.sleep(INTERVAL / 5)
        raise AssertionError(f"the agent did not run {self.collectors} twice after {moment} within {timeout}s: {self._runs(body)}")


@pytest.fixture(scope="module")
def servers(tmp_path_factory):
    exe = require_tool("node_exporter")
    rows, absent = available(ROWS)
    if not rows:
        pytest.skip("no compared source on this machine: " + "; ".join(absent))
    tmp = tmp_path_factory.mktemp("parity")
    port = free_port()
    flags = ["--collector.disable-defaults", f"--web.listen-address=127.0.0.1:{port}"]
    for name in sorted({r.exporter for r in rows}):
        flags += [f"--collector.{name}", *EXPORTER_FLAGS.get(name, ())]
    exporter = Server([exe, *flags], f"http://127.0.0.1:{port}", "/metrics", tmp / "node_exporter.log")
    wanted = {r.agent for r in rows}
    # Only the compared collectors run (the others would only add load), each
    # four times a second so a fresh snapshot is never far off.
    config = "collectors:\n" + "".join(
        f"  {name}: {{interval: {INTERVAL}}}\n" if name in wanted else f"  {name}: {{enabled: false}}\n" for name in load_all()
    )
    agent = agent_server(tmp, config)
    exporter.start()
    try:
        agent.start()
    except BaseException:
        exporter.stop()
        raise
    try:
        yield rows, Agent(agent, wanted), exporter
    finally:
        agent.stop()
        exporter.stop()
    assert "Traceback" not in agent.log()


def test_shared_values_agree_with_node_exporter(servers):
    rows, agent, exporter = servers
    pending = {r.ours: r for r in rows}
    failures: Dict[str, List[str]] = {}
    compared: Set[str] = set()
    for attempt in range(GAUGE_ATTEMPTS):
        before = scrape(exporter.base_url + "/metrics")
        moment = time.time()
        ours = agent.scrape_after(moment)
        after = scrape(exporter.base_url + "/metrics")
        for name, r in list(pending.items()):
            series = our_series(r, ours)
            assert series, f"the agent serves no {r.ours}"
            agree = True
            for labels, value in series.items():
                b, a = theirs_value(r, before, labels), theirs_value(r, after, labels)
                assert b is not None and a is not None, f"node_exporter serves no {r.theirs} for {dict(labels)}"
                if not compare(r, value, b, a):
                    agree = False
                    failures.setdefault(name, []).append(f"{dict(labels)} ours {value!r}, node_exporter before {b!r} after {a!r}")
            compared.add(name)
            # Counters and constants must agree on every comparison; gauges on one.
            if agree or r.kind != "gauge":
                del pending[name]
                if agree:
                    failures.pop(name, None)
        if not pending:
            break
    assert compared == {r.ours for r in rows}
    assert not failures, "\n".join(f"{name} ({next(r.kind for r in rows if r.ours == name)}): " + "; ".join(lines) for name, lines in sorted(failures.items()))


def test_rows_name_families_both_sides_declare():
    """Every row's agent family is declared by the named collector (so a row
    cannot silently compare nothing), and each family is compared once."""
    registry = load_all()
    names = [r.ours for r in ROWS]
    assert len(names) == len(set(names))
    for r in ROWS:
        assert r.kind in ("counter", "gauge", "same")
        assert r.ours in {spec.name for spec in registry[r.agent].metrics}, r.ours
        assert {o for o, _ in r.labels} <= set(next(s for s in registry[r.agent].metrics if s.name == r.ours).labels)
