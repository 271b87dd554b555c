"""Every Prometheus rule hostagent ships, as data.

Three rule files, all written by ``hostagent rules`` (``generate.py``):

- ``hostagent-recording.rules.yml``: ``RECORDING``, the quantities of
  ``hostagent.promql`` that alerts and baselines read every evaluation;
- ``hostagent-alerts.rules.yml``: ``THRESHOLD_ALERTS``, one condition per key
  of config/alerting.yaml, which gives each its levels, ``for`` and texts;
- ``hostagent-trends.rules.yml``: ``trend_alerts()``, alerts that compare a
  host with its own past rather than with a fixed threshold.

Adding a threshold alert is a key in config/alerting.yaml plus its
condition here, in the group it belongs to::

    "hostagent-network": {
        ...
        "tcp_connections": when(q.tcp_connections(q.RULES, q.TCP_NOT_LISTEN)),
        "udp_sockets": when(f"sum without (kind, state) (host_network_connections{q.RULES.sel(q.UDP)})"),
    },

Adding a recording rule is a ``@recorded`` function in ``hostagent.promql``
and its name in a group of ``RECORDING``. A rule reads only what the agent
or another rule makes; tests/prometheus checks that.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Dict, List, Mapping, Optional, Sequence, Tuple, Union

from hostagent import promql as q
from hostagent.alerting.thresholds import AlertThreshold

# --------------------------------------------------------------------------
# Recording rules


@dataclass(frozen=True)
class RecordingGroup:
    """A group of recording rules, evaluated together every ``interval``
    (Prometheus' evaluation_interval when None)."""

    name: str
    rules: Tuple[q.Recorded, ...]
    interval: Optional[str] = None


RECORDING: Tuple[RecordingGroup, ...] = (
    RecordingGroup(
        "hostagent-recording",
        (
            q.cpu_utilisation,
            q.cpu_iowait,
            q.load5_per_cpu,
            q.memory_utilisation,
            q.swap_utilisation,
            q.memory_and_swap_available,
            # Space used is the agent's host_filesystem_usage_ratio, as df
            # shows it; it needs no rule.
            q.inodes_usage,
            q.disk_io_utilisation,
            q.disk_queue_depth,
            *q.pressure.values(),
            q.network_bytes["receive"],
            q.network_bytes["transmit"],
            q.packets_all["receive"],
            q.packets_failed["receive"],
            q.packets_all["transmit"],
            q.packets_failed["transmit"],
            q.tcp_retransmits,
            q.conntrack_usage,
            q.filefd_usage,
        ),
    ),
    # The day-long histories (see hostagent.promql): whether each mount was
    # writable, each interface up and each clock synchronised at any time in
    # each 5 minutes.
    RecordingGroup("hostagent-downsample", (q.readonly_5m, q.network_up_5m, q.time_sync_5m), interval="5m"),
    # The day's baselines and histories. Once a minute is plenty for alerts
    # with a `for` of 10 minutes, and reads a day 4 times less often than
    # the 15s evaluation would.
    RecordingGroup("hostagent-baselines", (*q.baselines.values(), q.readonly_1d, q.network_up_1d, q.time_sync_1d), interval="1m"),
)


# The long-term tiers (hostagent-tiers.rules.yml): every aggregate of
# ``hostagent.promql.TIER_AGGREGATES``, one group per tier evaluated at the
# tier's own period, each rule labelled with its tier. The `longterm` remote
# write of prometheus.yml sends these and nothing else (docs/deployment.md,
# "Retention tiers").
TIER_GROUP = "hostagent-tier-{tier}"


def tier_groups() -> List[Dict[str, object]]:
    """The groups of hostagent-tiers.rules.yml: the 5-minute tier, then the
    hourly one made from it."""
    return [
        group(
            TIER_GROUP.format(tier=tier),
            [{"record": a.name(tier), "expr": a.expr(tier), "labels": {"tier": tier}} for a in q.TIER_AGGREGATES],
            interval=tier,
        )
        for tier in q.TIERS
    ]


# --------------------------------------------------------------------------
# Threshold alerts: the PromQL of each key of config/alerting.yaml


@dataclass(frozen=True)
class Condition:
    """What an alert's thresholds apply to: ``value <op> <threshold>``
    (``>`` when the key's direction is above, ``<`` below), then ``guards``,
    lines that narrow it (``and ...``, ``unless ...``)."""

    value: str
    guards: Tuple[str, ...] = ()

    def expr(self, op: str, threshold: str) -> str:
        return "\n".join((f"{self.value} {op} {threshold}", *self.guards))


def when(value: str, *guards: str) -> Condition:
    """A threshold alert's condition: ``value`` compared with each level's threshold, then ``guards``."""
    return Condition(value, guards)


@dataclass(frozen=True)
class ConditionOf:
    """A condition made from the alert's own entry in config/alerting.yaml
    (the process groups of ``must_run_groups``); None turns the alert off."""

    make: Callable[[AlertThreshold], Optional[Condition]]


def resolved(conditions: Mapping[str, Union[Condition, ConditionOf]], alerts: Mapping[str, AlertThreshold]) -> Dict[str, Condition]:
    """The conditions of the keys ``alerts`` has, made from their entries
    where they depend on them; a key removed from the file, or whose entry
    turns its alert off, is left out."""
    out = {}
    for key, condition in conditions.items():
        if key not in alerts:
            continue  # removed from the file: the alert is off
        made = condition.make(alerts[key]) if isinstance(condition, ConditionOf) else condition
        if made is not None:
            out[key] = made
    return out


_COLLECTOR_ENABLED = "and hostagent_collector_enabled == 1"
# Longer than the 5 minutes of the host-wide OOM kill alert, which
# Alertmanager mutes while this one fires for the same host: this one
# outlasts it (docs/alerts.md, HostCgroupOomKillDetected).
OOM_WINDOW = "10m"
_LAST_SUCCESS_AGE = "time() - hostagent_collector_last_success_timestamp_seconds"
# Samples each host's last scrape exposed, as a share of its job's
# sample_limit (no series where no limit is set, or without Prometheus'
# extra-scrape-metrics feature). Past 1 the whole scrape is refused.
SAMPLES_OF_LIMIT = 'scrape_samples_scraped{job="hostagent"} / (scrape_sample_limit{job="hostagent"} > 0)'


# Rule groups in output order; each key needs an entry in
# config/alerting.yaml (or is left out when the file removes it).
THRESHOLD_ALERTS: Tuple[Tuple[str, Mapping[str, Union[Condition, ConditionOf]]], ...] = (
    (
        "hostagent-agent",
        {
            # Not while the host answers with more samples than the limit:
            # the scrape is refused (up 0) but the agent is up, and
            # HostScrapeSampleLimitExceeded says so. Alertmanager mutes every
            # other alert of a host while this one fires, so firing here
            # would hide the cause.
            "agent_down": when('up{job="hostagent"}', f"unless on (job, instance) ({SAMPLES_OF_LIMIT} > 1)"),
            "scrape_sample_limit": when(SAMPLES_OF_LIMIT),
            # 1 while the hostagent job has no target at all.
            "targets_missing": when('absent(up{job="hostagent"})'),
            # A collector self-monitoring switched off is down by design, not
            # failing: HostagentCollectorDisabled tells about it instead.
            "collector_failing": when("hostagent_collector_up", _COLLECTOR_ENABLED),
            "collector_disabled": when("hostagent_collector_enabled"),
            # Also older than 3 of the collector's own intervals, so slow
            # collectors are not stale between runs. A collector that never
            # succeeded reports 0; HostagentCollectorFailing covers it. A
            # switched-off collector stops succeeding by design.
            "collector_stale": when(
                _LAST_SUCCESS_AGE,
                f"and {_LAST_SUCCESS_AGE} > 3 * hostagent_collector_interval_seconds",
                "and hostagent_collector_last_success_timestamp_seconds > 0",
                _COLLECTOR_ENABLED,
            ),
        },
    ),
    (
        "hostagent-cpu",
        {
            "cpu_usage": when(q.cpu_utilisation.series()),
            "load_per_core": when(q.load5_per_cpu.series()),
            "cpu_iowait": when(q.cpu_iowait.series()),
            "cpu_pressure": when(q.pressure[("cpu", "waiting")].series()),
        },
    ),
    (
        "hostagent-memory",
        {
            "memory_usage": when(q.memory_utilisation.series()),
            "memory_available": when(q.memory_and_swap_available.series()),
            "swap_usage": when(q.swap_utilisation.series()),
            "memory_pressure": when(q.pressure[("memory", "stalled")].series()),
            # Counted exactly over 5 minutes: one kill is enough.
            "oom_kill": when("increase(host_oom_kills_total[5m])"),
            # Reading cold files through mmap faults too, at any rate, with
            # memory to spare: on hosts with PSI only faults that come with
            # memory stalls (refaults of the working set, swap-in) count.
            "memory_major_faults": when(
                q.major_page_faults(q.RULES),
                f"unless on (job, instance) {q.pressure[('memory', 'waiting')].series()} < 0.01",
            ),
        },
    ),
    (
        "hostagent-processes",
        {
            # Every kill a cgroup counts also raises the host's own count
            # (vmstat oom_kill). Asking for both keeps quiet a cgroup count
            # that rises without a kill: an agent restarted accounts its
            # cgroups anew, and a count summed while unnamed or in `other`
            # can come back higher. Hosts without the host's count (vmstat
            # collector off, kernels before 4.13) go by the cgroup's alone.
            "cgroup_oom_kill": when(
                q.cgroup_oom_kills(q.RULES, window=OOM_WINDOW),
                f"unless on (job, instance) increase(host_oom_kills_total[{OOM_WINDOW}]) == 0",
            ),
            # Only on hosts where the group ran in the last day; pinned, a
            # group is exported at 0 when none runs, also after a reboot.
            # No groups listed: the alert is off.
            "must_run_groups": ConditionOf(lambda alert: when(q.must_run_processes(q.RULES, alert.groups)) if alert.groups else None),
        },
    ),
    (
        "hostagent-filesystem",
        {
            "filesystem_usage": when(q.filesystem_usage(q.RULES), q.WRITABLE),
            "filesystem_inodes": when(q.inodes_usage.series(), q.WRITABLE),
            "filesystem_device_error": when("host_filesystem_device_error"),
            # Only mounts that were writable for at least half of the last
            # day: a mount read-only by design and made writable for an
            # update stays quiet, and a remount fires until read-only has
            # been the mount's state for half a day (about 12 hours after it).
            "filesystem_readonly": when("host_filesystem_readonly", f"and {q.readonly_1d.series()} <= 0.5"),
        },
    ),
    (
        "hostagent-disk",
        {
            "disk_io_utilisation": when(q.disk_io_utilisation.series()),
            # Requests queue: the saturation of which busy time is the
            # utilisation. Alertmanager mutes HostDiskIoSaturated for a disk
            # while this fires for it (docs/alerting.md, inhibition).
            "disk_io_saturation": when(q.disk_queue_depth.series()),
            "io_pressure": when(q.pressure[("io", "stalled")].series()),
            "raid_degraded": when(q.raid_disks_missing(q.RULES)),
            "raid_disk_failed": when(f"host_md_disks{q.RULES.sel(q.MD_FAILED)}"),
        },
    ),
    (
        "hostagent-network",
        {
            # Quiet interfaces (1 packet/s or less) are left out, where a few
            # stray drops would make a large share.
            "network_receive_errors": when(q.packets_failed["receive"].series(), f"and {q.packets_all['receive'].series()} > 1"),
            "network_transmit_errors": when(q.packets_failed["transmit"].series(), f"and {q.packets_all['transmit'].series()} > 1"),
            # Only interfaces seen up within the last day: unused ports never fire.
            "network_interface_down": when(f"host_network_up{q.RULES.sel(q.INTERFACES_WATCHED)}", f"and {q.network_up_1d.series()} == 1"),
            "tcp_time_wait": when(q.tcp_connections(q.RULES, q.TCP_TIME_WAIT)),
            "tcp_connections": when(q.tcp_connections(q.RULES, q.TCP_NOT_LISTEN)),
            "network_flapping": when(q.carrier_changes(q.RULES)),
            "tcp_listen_overflows": when(q.RULES.rate("host_tcp_listen_overflows_total")),
            # Hosts sending 100 segments/s or less are left out: a client
            # retrying a dead peer makes a large share there.
            "tcp_retransmits": when(
                q.tcp_retransmits.series(),
                f"and on (job, instance) {q.RULES.rate('host_tcp_segments_sent_total')} > 100",
            ),
            "conntrack": when(q.conntrack_usage.series()),
        },
    ),
    (
        "hostagent-system",
        {
            # The kernel's own offset from its reference, as the time daemon
            # last set it (kernel discipline: ntpd, systemd-timesyncd), and
            # not shrinking: the daemon is not pulling the clock back.
            "clock_offset": when(
                "abs(host_time_offset_seconds)",
                "and host_time_offset_seconds * deriv(host_time_offset_seconds[5m]) >= 0",
            ),
            # The host's clock minus the scrape's timestamp (Prometheus'
            # clock), either way: the signal for hosts with no time daemon.
            # Only while the reading moves: a system collector that is stuck
            # or failing leaves the value standing while scrapes go on,
            # which is not skew (HostagentCollectorStale and
            # HostagentCollectorFailing tell about it).
            "clock_vs_prometheus": when(f"abs({q.clock_vs_scrape(q.RULES)})", "and changes(host_time_seconds[5m]) > 0"),
            # As the kernel sees it: unsynchronised for 5 minutes and its
            # error bound at the 16 s that means unknown. Only on hosts whose
            # clock was synchronised some time in the last day: where no time
            # daemon ever ran (containers and VMs whose clock the hypervisor
            # keeps, hosts never set up), the kernel always says
            # unsynchronised and the clock may still be right.
            "clock_not_synchronising": when(
                "min_over_time(host_time_sync_status[5m])",
                "and host_time_max_error_seconds >= 16",
                f"and {q.time_sync_1d.series()} == 1",
            ),
            "filefd": when(q.filefd_usage.series()),
            "textfile_error": when("host_textfile_scrape_error"),
        },
    ),
)


def threshold_conditions() -> Dict[str, Union[Condition, ConditionOf]]:
    """Every threshold alert key and its condition."""
    return {key: condition for _, conditions in THRESHOLD_ALERTS for key, condition in conditions.items()}


# --------------------------------------------------------------------------
# Hand-written alerts: a host against its own past


@dataclass(frozen=True)
class Alert:
    """One alerting rule with its texts; ``runbook_url`` is added when the file is written."""

    name: str
    expr: str
    for_: str
    severity: str
    summary: str
    description: str
    labels: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class AlertGroup:
    name: str
    alerts: Tuple[Alert, ...]
    interval: Optional[str] = None


_FS = "Filesystem {{ $labels.mountpoint }}"
_ON = "on {{ $labels.instance }}"


def _avg_of(quantity: q.Recorded, humanize: str, unit: str = "") -> str:
    """A template that prints the day's mean of ``quantity`` for the alert's host."""
    avg = q.baselines[(quantity.name, "avg")].name
    return f'{{{{ with printf "{avg}{{instance=%q}}" $labels.instance | query }}}}{{{{ . | first | value | {humanize} }}}}{unit}{{{{ end }}}}'


def _network_anomaly(direction: str) -> Alert:
    quantity = q.network_bytes[direction]
    return Alert(
        "HostNetworkThroughputAnomaly",
        q.anomaly(quantity, "5242880"),  # 5 MiB/s, about 42 Mbit/s
        "10m",
        "warning",
        f"Network {direction} throughput {_ON} is unusual for this host",
        f"Network {direction} throughput {_ON} is {{{{ $value | humanize1024 }}}}B/s, more than 3 standard deviations "
        f"from its mean of the last day ({_avg_of(quantity, 'humanize1024', 'B/s')}) and beyond what it was around this time yesterday.",
        labels={"direction": direction},
    )


def trend_alerts() -> Tuple[AlertGroup, ...]:
    """The hand-written alerts of hostagent-trends.rules.yml."""
    fill = Alert(
        "HostFilesystemWillFillIn24Hours",
        # Linear trend of the last 6 hours reaches zero free space within
        # 24h. Only filesystems already over 60% used (as df counts it: a
        # young, fast-growing filesystem with room to spare is not urgent)
        # and writable ones. The trend is read in 5-minute steps (72 points
        # per mount instead of 1440 at a 15s scrape): plenty for a line over
        # 6 hours, and this runs at every evaluation for every mount.
        "\n".join(
            (
                f"{q.filesystem_usage(q.RULES)} > 0.6",
                "and predict_linear(host_filesystem_avail_bytes[6h:5m], 24 * 3600) < 0",
                q.WRITABLE,
            )
        ),
        "1h",
        "warning",
        f"{_FS} {_ON} will fill within 24 hours",
        f"{_FS} ({{{{ $labels.device }}}}) {_ON} is {{{{ $value | humanizePercentage }}}} full and, at the rate it filled "
        "over the last 6 hours, will be full within 24 hours.",
    )
    cpu_anomaly = Alert(
        "HostCpuUsageAnomaly",
        q.anomaly(q.cpu_utilisation, "0.25"),  # 25 percentage points
        "10m",
        "warning",
        f"CPU usage {_ON} is unusual for this host",
        f"CPU usage {_ON} is {{{{ $value | humanizePercentage }}}}, more than 3 standard deviations from its mean of the "
        f"last day ({_avg_of(q.cpu_utilisation, 'humanizePercentage')}) and beyond what it was around this time yesterday.",
    )
    fast_fill = Alert(
        "HostFilesystemWillFillIn24Hours",
        # A fast fill, which the 6-hour trend and its hour of `for` would
        # only see once the disk is full: the trend of the last 10 minutes
        # (40 raw points at a 15s scrape) reaches zero free space within an
        # hour, and free space is still shrinking (below what it was 2
        # minutes ago), so a fill that stopped is let go as soon as it
        # stops rather than when its slope leaves the window. No usage
        # floor: a disk that fills in an hour is urgent however empty it
        # is now. Critical: it mutes the warning of the same mount.
        "\n".join(
            (
                q.filesystem_usage(q.RULES),
                "and predict_linear(host_filesystem_avail_bytes[10m], 3600) < 0",
                "and host_filesystem_avail_bytes < host_filesystem_avail_bytes offset 2m",
                q.WRITABLE,
            )
        ),
        "5m",
        "critical",
        f"{_FS} {_ON} will fill within an hour",
        f"{_FS} ({{{{ $labels.device }}}}) {_ON} is {{{{ $value | humanizePercentage }}}} full and, at the rate it filled "
        "over the last 10 minutes, will be full within an hour.",
    )
    return (
        # Once a minute: a 6-hour trend per mount does not change in 15
        # seconds, and the slow level waits an hour (`for`) anyway.
        AlertGroup("hostagent-trends", (fill, fast_fill), interval="1m"),
        # Anomalies: see hostagent.promql.anomaly for what counts as one.
        AlertGroup("hostagent-anomalies", (cpu_anomaly, *(_network_anomaly(d) for d in q.DIRECTIONS))),
    )


def recording_rule(quantity: q.Recorded) -> Dict[str, str]:
    """A recording rule as Prometheus reads it."""
    return {"record": quantity.name, "expr": quantity.expr(q.RULES)}


# Threshold alert groups evaluated less often than every 15s: the must-run
# alert reads a day (in 5-minute steps) for every group it watches, and a
# minute is plenty for its `for` of 2 minutes and for the OOM kill alert,
# which counts kills over 10 minutes.
THRESHOLD_INTERVALS: Mapping[str, str] = {"hostagent-processes": "1m"}


def group(name: str, rules: Sequence[Dict[str, object]], interval: Optional[str] = None) -> Dict[str, object]:
    """A rule group as Prometheus reads it."""
    out: Dict[str, object] = {"name": name}
    if interval:
        out["interval"] = interval
    out["rules"] = list(rules)
    return out


def recording_groups() -> List[Dict[str, object]]:
    """The groups of hostagent-recording.rules.yml."""
    return [group(g.name, [recording_rule(r) for r in g.rules], g.interval) for g in RECORDING]
