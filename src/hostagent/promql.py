"""The PromQL of hostagent: named selectors and expressions that the alert
rules, the recording rules and the dashboards all read, so each quantity is
written once.

An expression is a function of a :class:`Scope`, which says where it runs:

- ``RULES``: every host, rates over 5 minutes, and a quantity that a
  recording rule stores is read from its recorded series;
- ``DASHBOARD``: the hosts picked in Grafana (``$job``, ``$instance``), rates
  over ``$__rate_interval``, everything computed afresh;
- ``RANGE``: the same hosts, counters summed over the whole time range
  picked in Grafana (``$__range``), for panels that rank what used the most
  over it.

So the CPU usage a panel draws is the formula of the recording rule the CPU
alert compares, only over Grafana's window::

    >>> cpu_utilisation.expr(RULES)
    '1 - avg without (cpu) (sum without (mode) (rate(host_cpu_seconds_total{mode=~"idle|iowait|steal"}[5m])))'
    >>> cpu_utilisation.series(DASHBOARD)
    'instance:host_cpu_utilisation:rate5m{job=~"$job",instance=~"$instance"}'

A quantity that a recording rule stores is a :class:`Recorded`: its series
name (``level:metric:operations``, where the level names the labels kept:
``instance`` per host, ``instance_device`` / ``instance_mountpoint`` per host
and disk, interface or mount) and its formula. Aggregations use ``without``,
so the labels a target carries (``job``, ``instance``, a ``role`` from the
targets file) stay on every result.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable, Sequence, Tuple

# --------------------------------------------------------------------------
# Where an expression runs


@dataclass(frozen=True)
class Scope:
    """The hosts an expression reads, the window its rates span, and whether
    it may read recorded series in place of their formulas."""

    hosts: Tuple[str, ...]
    window: str
    recorded: bool

    def sel(self, *matchers: str) -> str:
        """A series selector's braces: the scope's host matchers, then ``matchers``."""
        both = self.hosts + matchers
        return "{" + ",".join(both) + "}" if both else ""

    def rate(self, metric: str, *matchers: str, fn: str = "rate") -> str:
        """``rate(metric{...}[window])`` (or ``irate``, ``increase``)."""
        return f"{fn}({metric}{self.sel(*matchers)}[{self.window}])"

    def of(self, quantity: "Recorded") -> str:
        """A recorded quantity inside a larger expression: its series where
        recorded series may be read, its formula in parentheses elsewhere."""
        return quantity.series(self) if self.recorded else f"({quantity.expr(self)})"

    def lines(self, *parts: str) -> str:
        """Parts of one expression: a line each in rule files, one line on dashboards."""
        return ("\n" if self.recorded else " ").join(parts)


RULES = Scope(hosts=(), window="5m", recorded=True)
DASHBOARD = Scope(hosts=('job=~"$job"', 'instance=~"$instance"'), window="$__rate_interval", recorded=False)
RANGE = Scope(hosts=DASHBOARD.hosts, window="$__range", recorded=False)


@dataclass(frozen=True)
class Recorded:
    """A quantity a recording rule stores as ``name``; ``formula`` computes it
    in any scope. Its docstring is what the quantity means."""

    name: str
    formula: Callable[[Scope], str]

    def expr(self, scope: Scope = RULES) -> str:
        """The formula, for the recording rule (RULES) or a panel (DASHBOARD)."""
        return self.formula(scope)

    def series(self, scope: Scope = RULES) -> str:
        """The recorded series, restricted to the scope's hosts."""
        return self.name + scope.sel()

    @property
    def help(self) -> str:
        return " ".join((self.formula.__doc__ or "").split())


def recorded(name: str) -> Callable[[Callable[[Scope], str]], Recorded]:
    """Decorator: the function is the formula of the quantity recorded as ``name``."""
    return lambda formula: Recorded(name, formula)


# --------------------------------------------------------------------------
# Selectors: label matchers with a meaning

# The CPU was free to run something else: iowait and steal count as idle.
CPU_IDLE = 'mode=~"idle|iowait|steal"'
CPU_BUSY = 'mode!~"idle|iowait|steal"'
CPU_IOWAIT = 'mode="iowait"'
CPU_STEAL = 'mode="steal"'
NOT_LOOPBACK = 'device!="lo"'
# Interfaces whose link going down is a fault: not loopback, and not the
# virtual bridges that lose carrier whenever their last container or VM
# stops (Docker's docker0 and br-<network id>, libvirt's virbr<N>). A host
# bridge such as br0 is watched.
INTERFACES_WATCHED = 'device!~"lo|docker0|br-[0-9a-f]{12}|virbr[0-9]+"'
ROOT_MOUNT = 'mountpoint="/"'
TCP = 'kind=~"tcp6?"'
UDP = 'kind=~"udp6?"'
TCP_TIME_WAIT = 'state="TIME_WAIT"'
TCP_LISTEN = 'state="LISTEN"'
TCP_NOT_LISTEN = 'state!="LISTEN"'
DIRECTIONS = ("receive", "transmit")
MD_ACTIVE = 'state="active"'
MD_FAILED = 'state="failed"'
MD_SPARE = 'state="spare"'

# --------------------------------------------------------------------------
# CPU


@recorded("instance:host_cpu_utilisation:rate5m")
def cpu_utilisation(s: Scope) -> str:
    """Share of CPU time doing work, all cores averaged (0..1). iowait and
    steal count as idle: the CPU was free to run something else."""
    return f"1 - avg without (cpu) (sum without (mode) ({s.rate('host_cpu_seconds_total', CPU_IDLE)}))"


def cpu_busy_by_mode(s: Scope) -> str:
    """Share of all cores' time per busy mode; the modes add up to cpu_utilisation."""
    return f"sum without (cpu) ({s.rate('host_cpu_seconds_total', CPU_BUSY)}) / ignoring (mode) group_left host_cpu_cores{s.sel()}"


def cpu_mode_share(s: Scope, mode: str) -> str:
    """Share of CPU time in one mode (a ``mode=...`` matcher), all cores averaged (0..1)."""
    return f"avg without (cpu, mode) ({s.rate('host_cpu_seconds_total', mode)})"


@recorded("instance:host_cpu_iowait:rate5m")
def cpu_iowait(s: Scope) -> str:
    """Share of CPU time idle while waiting for disk I/O, all cores averaged (0..1)."""
    return cpu_mode_share(s, CPU_IOWAIT)


def load_per_core(s: Scope, minutes: int) -> str:
    """The load average over ``minutes`` (1, 5 or 15) per logical CPU."""
    return f"host_load{minutes}{s.sel()} / host_cpu_cores{s.sel()}"


@recorded("instance:host_load5_per_cpu:ratio")
def load5_per_cpu(s: Scope) -> str:
    """The 5-minute load average per logical CPU: above 1, runnable tasks wait."""
    return load_per_core(s, 5)


# --------------------------------------------------------------------------
# Pressure stall information (PSI): the share of time tasks lost waiting
# for a resource. "waiting" is PSI's "some" (at least one task stalled),
# "stalled" its "full" (every non-idle task stalled at once: the host did no
# work). Hosts without PSI (kernels before 4.20, psi=0) have no series.

PRESSURE_KINDS = (
    ("cpu", "waiting", "at least one runnable task waited for a CPU"),
    ("memory", "waiting", "at least one task was stalled on memory (reclaim, refaults, swap-in)"),
    ("memory", "stalled", "every non-idle task was stalled on memory at once"),
    ("io", "waiting", "at least one task waited for block I/O"),
    ("io", "stalled", "every non-idle task waited for block I/O at once"),
)


def _pressure(resource: str, kind: str, what: str) -> Recorded:
    metric = f"host_pressure_{resource}_{kind}_seconds_total"

    def formula(s: Scope) -> str:
        return s.rate(metric)

    formula.__doc__ = f"Share of time {what} (0..1), from PSI."
    return Recorded(f"instance:host_pressure_{resource}_{kind}_seconds:rate5m", formula)


pressure = {(resource, kind): _pressure(resource, kind, what) for resource, kind, what in PRESSURE_KINDS}


# --------------------------------------------------------------------------
# Memory


@recorded("instance:host_memory_utilisation:ratio")
def memory_utilisation(s: Scope) -> str:
    """Memory not available to new work, as a share of all memory (0..1)."""
    return f"1 - host_memory_available_bytes{s.sel()} / host_memory_total_bytes{s.sel()}"


@recorded("instance:host_swap_utilisation:ratio")
def swap_utilisation(s: Scope) -> str:
    """Share of swap in use (0..1); hosts without swap have no series rather than 0/0."""
    return f"host_swap_used_bytes{s.sel()} / (host_swap_total_bytes{s.sel()} > 0)"


@recorded("instance:host_memory_and_swap_available:ratio")
def memory_and_swap_available(s: Scope) -> str:
    """Memory and swap still available to new work, as a share of memory plus
    swap (0..1): what is left before the OOM killer acts. Without swap it is
    available / total."""
    available = f"(host_memory_available_bytes{s.sel()} + host_swap_free_bytes{s.sel()})"
    return s.lines(available, f"/ ((host_memory_total_bytes{s.sel()} + host_swap_total_bytes{s.sel()}) > 0)")


def major_page_faults(s: Scope) -> str:
    """Major page faults per second: faults that waited for a read from disk."""
    return s.rate("host_memory_major_page_faults_total")


# --------------------------------------------------------------------------
# Filesystems and disks


def filesystem_usage(s: Scope, *matchers: str) -> str:
    """Share of each filesystem used as df shows it, used / (used + available
    to users): the agent's own ratio, so alerts, panels and df agree (a share
    computed as 1 - avail / size would count root's reserved blocks as used)."""
    return f"host_filesystem_usage_ratio{s.sel(*matchers)}"


# Read-only mounts (images, snaps) are full by design: space and inode
# alerts leave them out.
WRITABLE = "unless host_filesystem_readonly == 1"


@recorded("instance_mountpoint:host_filesystem_inodes_usage:ratio")
def inodes_usage(s: Scope) -> str:
    """Inodes used as `df -i` shows them (IUse%); filesystems without an inode
    limit (btrfs reports 0) have no series."""
    return f"1 - host_filesystem_files_free{s.sel()} / (host_filesystem_files{s.sel()} > 0)"


def time_until_full(s: Scope) -> str:
    """Seconds until each filesystem is full at the rate its free space shrank
    over the last 6 hours; only filesystems that are filling."""
    return f"(host_filesystem_avail_bytes{s.sel()} / -deriv(host_filesystem_avail_bytes{s.sel()}[6h])) > 0"


@recorded("instance_device:host_disk_io_time_seconds:rate5m")
def disk_io_utilisation(s: Scope) -> str:
    """Share of time each disk had I/O in flight (0..1)."""
    return s.rate("host_disk_io_time_seconds_total")


@recorded("instance_device:host_disk_io_time_weighted_seconds:rate5m")
def disk_queue_depth(s: Scope) -> str:
    """Average number of I/Os in flight on each disk, queued or being served
    (iostat's aqu-sz): the rate of the time spent on I/O weighted by how
    many were in progress."""
    return s.rate("host_disk_io_time_weighted_seconds_total")


def raid_disks_missing(s: Scope) -> str:
    """Disks each md array lacks to be complete: required minus active (in sync)."""
    return f"host_md_disks_required{s.sel()} - ignoring (state) host_md_disks{s.sel(MD_ACTIVE)}"


def disk_latency(s: Scope, operation: str) -> str:
    """Average seconds per completed ``read`` or ``write``: time spent over operations."""
    return f"{s.rate(f'host_disk_{operation}_time_seconds_total')} / {s.rate(f'host_disk_{operation}s_completed_total')}"


# --------------------------------------------------------------------------
# Network


def _network_bytes(direction: str) -> Recorded:
    def formula(s: Scope) -> str:
        return f"sum without (device) ({s.rate(f'host_network_{direction}_bytes_total', NOT_LOOPBACK)})"

    formula.__doc__ = f"Bytes per second {direction}d over all interfaces but loopback, per host."
    return Recorded(f"instance:host_network_{direction}_bytes_excluding_lo:rate5m", formula)


network_bytes = {d: _network_bytes(d) for d in DIRECTIONS}


def _packets_all(direction: str) -> Recorded:
    def formula(s: Scope) -> str:
        kinds = ("packets", "errors", "drop")
        first, *rest = (s.rate(f"host_network_{direction}_{kind}_total") for kind in kinds)
        return s.lines(first, *(f"+ {r}" for r in rest))

    formula.__doc__ = (
        f"Packets {direction}d per second per interface, good or not: the kernel counts "
        "failed packets (errors, drops) apart from good ones, so the sum is every packet seen."
    )
    return Recorded(f"instance_device:host_network_{direction}_packets_all:rate5m", formula)


packets_all = {d: _packets_all(d) for d in DIRECTIONS}


def _packets_failed(direction: str) -> Recorded:
    def formula(s: Scope) -> str:
        failed = f"{s.rate(f'host_network_{direction}_errors_total')} + {s.rate(f'host_network_{direction}_drop_total')}"
        return s.lines(f"({failed})", f"/ ({s.of(packets_all[direction])} > 0)")

    formula.__doc__ = f"Share of the packets {direction}d per interface that failed (errors + drops) (0..1)."
    return Recorded(f"instance_device:host_network_{direction}_failed:ratio_rate5m", formula)


packets_failed = {d: _packets_failed(d) for d in DIRECTIONS}


@recorded("instance:host_tcp_retransmitted_segments:ratio_rate5m")
def tcp_retransmits(s: Scope) -> str:
    """Share of TCP segments sent that were retransmissions (0..1):
    retransmitted over all sent (the kernel counts sent segments without
    retransmissions); no series while nothing is sent."""
    retransmitted = s.rate("host_tcp_retransmitted_segments_total")
    return s.lines(retransmitted, f"/ (({s.rate('host_tcp_segments_sent_total')} + {retransmitted}) > 0)")


@recorded("instance:host_conntrack_entries:ratio")
def conntrack_usage(s: Scope) -> str:
    """Share of the connection tracking table in use (0..1); when it is full,
    packets of new connections are dropped. No series without nf_conntrack."""
    return f"host_conntrack_entries{s.sel()} / (host_conntrack_entries_limit{s.sel()} > 0)"


def carrier_changes(s: Scope, window: str = "15m") -> str:
    """Times each watched interface's link went up or down over ``window``,
    counted exactly (the counter now minus the counter then, no
    extrapolation); an interface that did not exist then has no value."""
    sel = s.sel(INTERFACES_WATCHED)
    return f"host_network_carrier_changes_total{sel} - host_network_carrier_changes_total{sel} offset {window}"


def tcp_connections(s: Scope, *matchers: str) -> str:
    """TCP and TCP6 sockets per host in the states ``matchers`` pick."""
    return f"sum without (kind, state) (host_network_connections{s.sel(TCP, *matchers)})"


# --------------------------------------------------------------------------
# The system: file handles and the clock


@recorded("instance:host_filefd_allocated:ratio")
def filefd_usage(s: Scope) -> str:
    """Share of the system-wide file handle limit (fs.file-max) allocated (0..1)."""
    return f"host_filefd_allocated{s.sel()} / (host_filefd_maximum{s.sel()} > 0)"


def clock_vs_scrape(s: Scope) -> str:
    """The host's wall clock minus the time Prometheus scraped it (positive:
    the host is ahead); it lags by up to the system collector's interval."""
    return f"host_time_seconds{s.sel()} - timestamp(host_time_seconds{s.sel()})"


# --------------------------------------------------------------------------
# Day-long history, for the anomaly alerts and the state alerts
# HostFilesystemRemountedReadOnly, HostNetworkInterfaceDown and
# HostClockNotSynchronising.
#
# A day read at full resolution is 5760 points per series at a 15s scrape,
# and reading it at every 15s evaluation multiplies that by every host,
# mount and interface. So the day is read from 5-minute points, once a
# minute (docs/alerts.md, "Cost of the day-long windows", has the
# measurements):
# - per mount and per interface (many series), a 5-minute minimum or maximum
#   is recorded every 5 minutes, and the day is taken over those 288 points,
#   one series at a time;
# - per host (few series), the baselines read the day in 5-minute steps with
#   a subquery.


@recorded("instance_mountpoint:host_filesystem_readonly:min_over_time_5m")
def readonly_5m(s: Scope) -> str:
    """Whether each mount was writable (0) at any time in the last 5 minutes."""
    return f"min_over_time(host_filesystem_readonly{s.sel()}[5m])"


@recorded("instance_device:host_network_up:max_over_time_5m")
def network_up_5m(s: Scope) -> str:
    """Whether each interface was up (1) at any time in the last 5 minutes."""
    return f"max_over_time(host_network_up{s.sel(NOT_LOOPBACK)}[5m])"


@recorded("instance:host_time_sync_status:max_over_time_5m")
def time_sync_5m(s: Scope) -> str:
    """Whether the kernel counted its clock synchronised (1) at any time in the last 5 minutes."""
    return f"max_over_time(host_time_sync_status{s.sel()}[5m])"


@recorded("instance_mountpoint:host_filesystem_readonly:avg_over_time_1d")
def readonly_1d(s: Scope) -> str:
    """Share of the last day each mount spent read-only; a 5-minute step
    counts as writable if the mount was writable at any moment in it."""
    return f"avg_over_time({readonly_5m.series(s)}[1d])"


@recorded("instance_device:host_network_up:max_over_time_1d")
def network_up_1d(s: Scope) -> str:
    """Whether each interface was up at any time in the last day."""
    return f"max_over_time({network_up_5m.series(s)}[1d])"


@recorded("instance:host_time_sync_status:max_over_time_1d")
def time_sync_1d(s: Scope) -> str:
    """Whether the kernel counted its clock synchronised at any time in the
    last day: a time daemon runs, or ran, on the host."""
    return f"max_over_time({time_sync_5m.series(s)}[1d])"


def baseline(quantity: Recorded, stat: str) -> Recorded:
    """The ``stat`` (avg or stddev) of a per-host quantity over the last day,
    read in 5-minute steps: a 5-minute rate sampled every 5 minutes covers
    the day without gaps.

    Long routine peaks (business hours) widen the band; a short one does
    not: a nightly 30-minute job is 2% of the day and stays far outside 3
    standard deviations every night, so the anomaly alerts also compare with
    the same hour yesterday. A sudden change stays outside the band for
    about two hours before it becomes the new normal."""

    def formula(s: Scope) -> str:
        return f"{stat}_over_time({quantity.series(s)}[1d:5m])"

    formula.__doc__ = f"The {stat} of {quantity.name} over the last day."
    return Recorded(f"{quantity.name}_{stat}_over_time_1d", formula)


BASELINED = (cpu_utilisation, network_bytes["receive"], network_bytes["transmit"])
baselines = {(q.name, stat): baseline(q, stat) for q in BASELINED for stat in ("avg", "stddev")}


def anomaly(quantity: Recorded, minimum: str) -> str:
    """``quantity`` is far from its own day: beyond 3 standard deviations
    from the day's mean, at least ``minimum`` away from it, and beyond what
    it did in the hour around the same time yesterday (above its maximum
    there for a rise, below its minimum for a drop).

    The minimum keeps a flat line (standard deviation near 0) from alerting
    on noise. The band alone does not absorb a short daily job: 30 minutes
    are 2% of the day and barely widen it, so the job would stand out every
    day; the look at yesterday keeps it quiet from its second day on. A host
    with no data a day ago is judged by the band alone. A baseline of B
    minutes keeps a step change beyond 3 deviations for about B/9 minutes,
    so a host with less than an hour and a half of history cannot hold an
    anomaly for 10 minutes. Yesterday's hour is read raw: per host, 240
    points at a 15s scrape."""
    x = quantity.name
    avg, dev = baselines[(x, "avg")].name, baselines[(x, "stddev")].name
    return (
        f"(\n"
        f"  {x}\n"
        f"    > {avg} + 3 * {dev}\n"
        f"  and {x} > {avg} + {minimum}\n"
        f"  unless {x} <= max_over_time({x}[1h] offset 23h30m)\n"
        f")\n"
        f"or\n"
        f"(\n"
        f"  {x}\n"
        f"    < {avg} - 3 * {dev}\n"
        f"  and {x} < {avg} - {minimum}\n"
        f"  unless {x} >= min_over_time({x}[1h] offset 23h30m)\n"
        f")"
    )


# --------------------------------------------------------------------------
# Dashboard-only views of the same data


def interfaces_down(s: Scope) -> str:
    """How many interfaces the interface-down alert watches are down: not
    loopback nor a container or VM bridge, and up at some point in the last
    day (0 when none)."""
    down = f"host_network_up{s.sel(INTERFACES_WATCHED)} == 0 and on (job, instance, device) {network_up_1d.series(s)} == 1"
    return f"count without (device) ({down}) or on () vector(0)"


# --------------------------------------------------------------------------
# Process groups, services and containers
#
# Two accountings of who used the host, each with labels bounded by the
# agent's configuration: process groups (label ``group``, summed from /proc
# per command name) and cgroups (label ``cgroup``: systemd services, user
# slices and containers, as the kernel accounted them). In both, whatever is
# beyond the top ones is summed under ``other``.


@dataclass(frozen=True)
class Accounting:
    """The series of one accounting of use: who (``label``) used how much CPU,
    memory and storage I/O."""

    label: str
    cpu: str
    memory: str
    read: str
    written: str


PROCESS_GROUPS = Accounting(
    "group",
    "host_process_group_cpu_seconds_total",
    "host_process_group_resident_memory_bytes",
    "host_process_group_read_bytes_total",
    "host_process_group_written_bytes_total",
)
CGROUPS = Accounting("cgroup", "host_cgroup_cpu_seconds_total", "host_cgroup_memory_bytes", "host_cgroup_io_read_bytes_total", "host_cgroup_io_written_bytes_total")
# The process group that sums every group without series of its own.
OTHER_GROUP = 'group="other"'


def used_cpu(s: Scope, a: Accounting, *matchers: str, fn: str = "rate") -> str:
    """CPU each group or cgroup used, user and system together: in cores with
    ``rate``, in CPU seconds with ``increase`` (in RANGE: over the whole range)."""
    return f"sum without (mode) ({s.rate(a.cpu, *matchers, fn=fn)})"


def used_io(s: Scope, a: Accounting, *matchers: str, fn: str = "rate") -> str:
    """Bytes each group or cgroup read and wrote from storage, together: per
    second with ``rate``, in all with ``increase``."""
    return f"{s.rate(a.read, *matchers, fn=fn)} + {s.rate(a.written, *matchers, fn=fn)}"


def peak_memory(s: Scope, a: Accounting) -> str:
    """The most memory each group or cgroup held at any sample of the scope's
    window (in RANGE: the whole range)."""
    return f"max_over_time({a.memory}{s.sel()}[{s.window}])"


def top(k: int, expr: str) -> str:
    """The ``k`` largest series of ``expr`` on each host: with several hosts
    picked, each keeps its own top."""
    return f"topk by (job, instance) ({k}, {expr})"


def other_cpu_share(s: Scope) -> str:
    """Share of the CPU all process groups used that went to the groups summed
    into ``other`` (0..1): how much of the CPU has no name of its own."""
    part, whole = (s.rate(PROCESS_GROUPS.cpu, *m) for m in ((OTHER_GROUP,), ()))
    return f"sum without (group, mode) ({part}) / sum without (group, mode) ({whole})"


def other_memory_share(s: Scope) -> str:
    """Share of the resident memory of all process groups held by the groups
    summed into ``other`` (0..1)."""
    part, whole = (f"{PROCESS_GROUPS.memory}{s.sel(*m)}" for m in ((OTHER_GROUP,), ()))
    return f"sum without (group) ({part}) / sum without (group) ({whole})"


def cgroup_memory_of_limit(s: Scope, *matchers: str) -> str:
    """Memory each cgroup uses as a share of its limit (0..1); cgroups without
    a limit have no series."""
    return f"host_cgroup_memory_bytes{s.sel(*matchers)} / host_cgroup_memory_limit_bytes{s.sel(*matchers)}"


def cgroup_oom_kills(s: Scope, *matchers: str, window: str = "") -> str:
    """Processes of each service, user slice or container that the OOM killer
    ended within ``window`` (the scope's own when empty), whether the cgroup
    hit its own limit or the whole host ran out: v2 memory.events counts the
    cgroup and those below it, v1 memory.oom_control its own processes."""
    return f"increase(host_cgroup_oom_kills_total{s.sel(*matchers)}[{window or s.window}])"


def _alternatives(names: Sequence[str]) -> str:
    """A regex matching exactly ``names``, as a PromQL string holds it: group
    names are letters, digits and ``_.:@+-``, of which ``.`` and ``+`` mean
    something in a regex."""
    return "|".join(re.sub(r"([.+])", r"\\\\\1", name) for name in names)


# How far back a must-run group must have run on a host for its absence to
# count as a stop: a day spans a reboot (the host's agent starts afresh and
# its pinned groups are exported again at 0 right away) and any weekend-less
# restart schedule; a group that has not run for a whole day is taken as one
# this host does not have, and the alert resolves.
MUST_RUN_SEEN = "1d"


def must_run_processes(s: Scope, groups: Sequence[str]) -> str:
    """Processes of each must-run process group, on the hosts where the group
    ran (had a process) at some sample of the last ``MUST_RUN_SEEN``: a host
    that never had the group (a container without sshd) has no series here.
    A group has a series with 0 processes only while its agent pins it
    (``collectors.processes.pinned_groups``), or until the agent restarts
    after its last process exited; an unpinned group that no longer runs,
    or that ranks below the agent's top groups, has no series at all and
    cannot be told from one still running under ``other``."""
    if not groups:
        raise ValueError("must_run_processes needs at least one group")
    listed = "host_process_group_processes" + s.sel('group=~"' + _alternatives(groups) + '"')
    # The day at full resolution (5760 points at a 15s scrape), read once a
    # minute (the rules' group interval), for the must-run groups' series
    # only, one or two a host: in 5-minute steps a group that ran for a few
    # minutes between two steps, or since Prometheus started, would be missed.
    return "(" + s.lines(listed, f"and on (job, instance, group) max_over_time({listed}[{MUST_RUN_SEEN}]) > 0") + ")"


# --------------------------------------------------------------------------
# The long-term tiers: 5-minute and 1-hour aggregates
#
# What the dashboards and `hostagent report` read, kept for a year in the
# long-term store (docs/deployment.md, "Retention tiers"). Each aggregate is
# a series ``level:metric:operation_<tier>``; a rule group evaluated every 5
# minutes computes the 5-minute tier from the raw data, and one evaluated
# every hour computes the 1-hour tier from the 5-minute one (twelve points,
# not 240 raw ones): the average of the averages, the maximum of the maxima,
# the minimum of the minima, and a counter's rate over the hour as the
# average of its 5-minute rates. Each holds because the 5-minute samples
# tile the hour.

TIERS = ("5m", "1h")
# The finer tier's own window, over which the coarser one aggregates it.
TIER_SOURCE = "5m"
# The short rates whose highest value in a tier is its peak: a 5-minute
# average smooths away the minute a host was saturated. Over 1 minute, so a
# scrape interval of at most 30 s gives each rate two samples or more.
PEAK = Scope(hosts=(), window="1m", recorded=False)


@dataclass(frozen=True)
class Aggregate:
    """A quantity the long-term tiers keep: ``operation`` is avg, max or min
    of a gauge, or the rate of a counter; ``source`` computes its 5-minute
    tier from raw (or recorded) data; ``help`` says what it means."""

    level: str
    metric: str
    operation: str
    source: str
    help: str

    def name(self, tier: str) -> str:
        return f"{self.level}:{self.metric}:{self.operation}_{tier}"

    def expr(self, tier: str) -> str:
        """The tier's expression: ``source`` for the finer tier, the finer
        tier aggregated over the coarser one's period otherwise."""
        if tier == TIER_SOURCE:
            return self.source
        over = "avg" if self.operation == "rate" else self.operation
        return f"{over}_over_time({self.name(TIER_SOURCE)}[{tier}])"

    def series(self, tier: str, scope: Scope = RULES) -> str:
        """The tier's series, restricted to the scope's hosts."""
        return self.name(tier) + scope.sel()


def _over(operation: str, series: str, level: str, metric: str, what: str) -> Aggregate:
    """The ``operation`` (avg, max, min) of a gauge over each 5 minutes."""
    return Aggregate(level, metric, operation, f"{operation}_over_time({series}[{TIER_SOURCE}])", f"The {operation} over the period of {what}")


def _gauge(quantity: Recorded, metric: str, what: str, operations: Sequence[str] = ("avg", "max")) -> Tuple[Aggregate, ...]:
    """avg and max of a recorded per-host ratio."""
    level = quantity.name.split(":")[0]
    return tuple(_over(op, quantity.series(), level, metric, what) for op in operations)


def _rate(quantity: Recorded, level: str, metric: str, operation: str = "rate") -> Aggregate:
    """A 5-minute rate: the average over the 5 minutes of what it measures."""
    return Aggregate(level, metric, operation, quantity.expr(RULES), f"The average over the period of: {quantity.help}")


def _peak(quantity: Recorded, level: str, metric: str) -> Aggregate:
    """The highest 1-minute value within each 5 minutes of a rate-based quantity."""
    source = f"max_over_time(({quantity.expr(PEAK)})[{TIER_SOURCE}:{PEAK.window}])"
    return Aggregate(level, metric, "max", source, f"The highest 1-minute value in the period of: {quantity.help}")


def _failed_packets(direction: str) -> Recorded:
    def formula(s: Scope) -> str:
        failed = f"{s.rate(f'host_network_{direction}_errors_total', NOT_LOOPBACK)} + {s.rate(f'host_network_{direction}_drop_total', NOT_LOOPBACK)}"
        return f"sum without (device) ({failed})"

    formula.__doc__ = f"Packets per second {direction}d that failed (errors and drops) over all interfaces but loopback, per host."
    return Recorded(f"instance:host_network_{direction}_failed_packets:rate5m", formula)


failed_packets = {d: _failed_packets(d) for d in DIRECTIONS}


def _source(metric: str, what: str) -> Recorded:
    """A raw counter's rate as a formula, for the tiers alone (no rule records it)."""

    def formula(s: Scope) -> str:
        return s.rate(metric)

    formula.__doc__ = what
    return Recorded(metric, formula)


_READ = _source("host_disk_read_bytes_total", "Bytes per second read from each disk.")
_WRITTEN = _source("host_disk_written_bytes_total", "Bytes per second written to each disk.")

TIER_AGGREGATES: Tuple[Aggregate, ...] = (
    # CPU: the average is the 5-minute rate itself; the peak its busiest minute.
    _rate(cpu_utilisation, "instance", "host_cpu_utilisation", "avg"),
    _peak(cpu_utilisation, "instance", "host_cpu_utilisation"),
    _rate(cpu_iowait, "instance", "host_cpu_iowait", "avg"),
    *_gauge(load5_per_cpu, "host_load5_per_cpu", "the 5-minute load average per logical CPU"),
    _over("max", "host_cpu_cores", "instance", "host_cpu_cores", "the host's logical CPUs"),
    # Memory.
    *_gauge(memory_utilisation, "host_memory_utilisation", "the share of memory not available to new work (0..1)"),
    *_gauge(swap_utilisation, "host_swap_utilisation", "the share of swap in use (0..1)"),
    _over("max", "host_memory_total_bytes", "instance", "host_memory_total_bytes", "the host's memory, in bytes"),
    # Filesystems: the fullest moment, and the least space left (for the forecast).
    _over("max", filesystem_usage(RULES), "instance_mountpoint", "host_filesystem_usage", "the share of each filesystem used, as df shows it (0..1)"),
    _over("min", "host_filesystem_avail_bytes", "instance_mountpoint", "host_filesystem_avail_bytes", "the bytes available to users on each filesystem"),
    # Disks.
    _rate(disk_io_utilisation, "instance_device", "host_disk_io_time_seconds"),
    _peak(disk_io_utilisation, "instance_device", "host_disk_io_time_seconds"),
    _rate(_READ, "instance_device", "host_disk_read_bytes"),
    _rate(_WRITTEN, "instance_device", "host_disk_written_bytes"),
    # Network, per host.
    *(_rate(network_bytes[d], "instance", f"host_network_{d}_bytes_excluding_lo") for d in DIRECTIONS),
    *(_peak(network_bytes[d], "instance", f"host_network_{d}_bytes_excluding_lo") for d in DIRECTIONS),
    *(_rate(failed_packets[d], "instance", f"host_network_{d}_failed_packets") for d in DIRECTIONS),
    # Pressure stall information (hosts without PSI have no series).
    *(_rate(p, "instance", p.name.split(":")[1]) for p in pressure.values()),
    # Whether the host answered: the share of its scrapes that worked.
    _over("avg", 'up{job="hostagent"}', "instance", "host_up", "whether each host's agent was scraped (1) or not (0)"),
)
# The aggregates by ``metric:operation``, for the long-term panels.
TIER = {f"{a.metric}:{a.operation}": a for a in TIER_AGGREGATES}

# Panels over the long-term store: the hosts picked in Grafana, each tier
# sample read over Grafana's step (``$__interval``, never finer than the
# tier: the panels' minimum interval is ``$tier``) from the tier picked.
LONGTERM = Scope(hosts=DASHBOARD.hosts, window="$__interval", recorded=True)
TIER_PICKED = "$tier"
FORECAST_DAYS = 30


def tier_history(key: str, s: Scope = LONGTERM, tier: str = TIER_PICKED) -> str:
    """The aggregate ``key`` (``metric:operation``) of the tier ``tier``,
    combined over each step of the panel as the 1-hour tier combines the
    5-minute one: average of averages and rates, maximum of maxima, minimum
    of minima."""
    a = TIER[key]
    over = "avg" if a.operation == "rate" else a.operation
    return f"{over}_over_time({a.name(tier)}{s.sel()}[{s.window}])"


def tier_forecast(s: Scope = LONGTERM, tier: str = TIER_PICKED, days: int = FORECAST_DAYS) -> str:
    """Bytes each filesystem will have left in ``days`` days, at the linear
    trend of its least free space over the last ``days`` days (negative: it
    will have filled)."""
    a = TIER["host_filesystem_avail_bytes:min"]
    return f"predict_linear({a.name(tier)}{s.sel()}[{days}d], {days} * 86400)"


def top_hosts(k: int, expr: str) -> str:
    """The ``k`` hosts with the largest value of a per-host ``expr``."""
    return f"topk({k}, {expr})"


def fullest_filesystem(s: Scope) -> str:
    """Share used of each host's fullest writable filesystem, as df shows it (0..1)."""
    return f"max without (device, fstype, mountpoint) ({filesystem_usage(s)} unless host_filesystem_readonly{s.sel()} == 1)"


def busiest_disk(s: Scope) -> str:
    """Share of time each host's busiest disk had I/O in flight (0..1)."""
    return f"max without (device) ({disk_io_utilisation.expr(s)})"
