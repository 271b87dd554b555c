"""Network interface counters and link state, via psutil and
``<sysfs>/class/net/<device>/{operstate,carrier_changes}``.

Counters go out raw; link speed is in bytes per second and omitted when the
driver does not know it (virtual interfaces)::

    # HELP host_network_receive_bytes_total Bytes received on the interface.
    # TYPE host_network_receive_bytes_total counter
    host_network_receive_bytes_total{device="eth0"} 1.1111815e+08
    host_network_up{device="eth0"} 1.0
    host_network_up{device="lo"} 1.0
    host_network_speed_bytes{device="eth0"} 1.25e+08
    host_network_carrier_changes_total{device="eth0"} 2.0
    host_network_info{device="eth0",duplex="full",operstate="up"} 1.0
    host_network_info{device="lo",duplex="unknown",operstate="unknown"} 1.0

``host_network_up`` is the kernel's IFF_RUNNING flag: the interface is
administratively up and its operational state (RFC 2863) is "up", or
"unknown" for drivers that report none (lo, tun, wireguard). An unplugged
cable reads 0, where IFF_UP alone would still read 1; lo reads 1, where a
test of operstate "up" alone would read 0 for lo and every tunnel. The exact
operational state is the ``operstate`` label of ``host_network_info``.
"""

from __future__ import annotations

import os
from typing import Any, Iterator, Mapping, NamedTuple, Optional, Tuple

import psutil
from ..promclient import Metric

from .base import BaseCollector, MetricSpec, NameFilter, read_text, register

DEV = ("device",)
COUNTERS = (
    # (spec, psutil snetio field)
    (MetricSpec("host_network_receive_bytes_total", "counter", "Bytes received on the interface.", DEV, "bytes"), "bytes_recv"),
    (MetricSpec("host_network_receive_packets_total", "counter", "Packets received on the interface.", DEV), "packets_recv"),
    (MetricSpec("host_network_receive_errors_total", "counter", "Receive errors on the interface.", DEV), "errin"),
    (MetricSpec("host_network_receive_drop_total", "counter", "Received packets dropped.", DEV), "dropin"),
    (MetricSpec("host_network_transmit_bytes_total", "counter", "Bytes sent on the interface.", DEV, "bytes"), "bytes_sent"),
    (MetricSpec("host_network_transmit_packets_total", "counter", "Packets sent on the interface.", DEV), "packets_sent"),
    (MetricSpec("host_network_transmit_errors_total", "counter", "Transmit errors on the interface.", DEV), "errout"),
    (MetricSpec("host_network_transmit_drop_total", "counter", "Outgoing packets dropped.", DEV), "dropout"),
)
UP = MetricSpec(
    "host_network_up",
    "gauge",
    "1 if the interface is running (IFF_RUNNING: administratively up, with operstate up, or unknown for drivers without one such as lo), else 0.",
    DEV,
)
SPEED = MetricSpec("host_network_speed_bytes", "gauge", "Link speed in bytes per second.", DEV, "bytes")
MTU = MetricSpec("host_network_mtu_bytes", "gauge", "Maximum transmission unit of the interface.", DEV, "bytes")
CARRIER_CHANGES = MetricSpec(
    "host_network_carrier_changes_total", "counter", "Times the link's carrier went up or down since the interface was created (link flapping).", DEV
)
INFO = MetricSpec(
    "host_network_info",
    "gauge",
    "Interface state in words; always 1. operstate is the kernel's RFC 2863 state (up, down, lowerlayerdown, dormant, unknown, ...), "
    "duplex full, half or unknown.",
    ("device", "operstate", "duplex"),
)

# Host-side ends of per-container, per-pod and per-VM links: veth pairs (Docker,
# Podman, LXC), Calico's cali*, Cilium's lxc<hash>, libvirt's vnetN. Each start
# makes a new name, so they churn series while their traffic also shows on the
# bridge or uplink, which stay reported.
DEFAULT_EXCLUDE = r"^(veth.*|cali.*|lxc[0-9a-f]{8,}|vnet\d+)$"

BYTES_PER_MBIT = 125_000

# psutil's duplex constants (NIC_DUPLEX_UNKNOWN, _HALF, _FULL) in words.
DUPLEX = {0: "unknown", 1: "half", 2: "full"}


class NicStatus(NamedTuple):
    """Link state of one interface."""

    up: bool
    speed_bytes: Optional[int]  # None when the driver reports no speed
    mtu: int
    duplex: str = "unknown"


class Link(NamedTuple):
    """What sysfs says of one interface; None for a file that cannot be read."""

    operstate: Optional[str]
    carrier_changes: Optional[int]


class NicSample(NamedTuple):
    """One interface: its counters and status, each absent when psutil's two
    calls disagree about which interfaces exist (one appeared in between)."""

    device: str
    counters: Optional[Tuple[int, ...]]  # in the order of COUNTERS
    status: Optional[NicStatus]
    link: Link = Link(None, None)


def speed_bytes(mbit: int) -> Optional[int]:
    """Link speed in bytes per second; None for psutil's 0 (unknown)."""
    return mbit * BYTES_PER_MBIT if mbit > 0 else None


def nic_status(raw: Any) -> NicStatus:
    """Convert psutil's snicstats to a NicStatus."""
    return NicStatus(bool(raw.isup), speed_bytes(raw.speed), raw.mtu, DUPLEX.get(int(raw.duplex), "unknown"))


def _read_or_none(path: str) -> Optional[str]:
    try:
        return read_text(path).strip()
    except OSError:  # gone meanwhile, or a driver refusing the attribute (EINVAL)
        return None


def read_link(directory: str) -> Link:
    """operstate and carrier_changes from an interface's sysfs directory."""
    operstate = _read_or_none(os.path.join(directory, "operstate"))
    changes = _read_or_none(os.path.join(directory, "carrier_changes"))
    return Link(operstate or None, int(changes) if changes and changes.isdigit() else None)


def merge_nics(io: Mapping[str, Any], stats: Mapping[str, Any], keep: NameFilter, links: Mapping[str, Link] = {}) -> Tuple[NicSample, ...]:
    """Join psutil's counters and stats and sysfs's link state per
    interface, filtered and sorted."""
    out = []
    for name in sorted(set(io) | set(stats)):
        if not keep(name):
            continue
        counters = tuple(getattr(io[name], field) for _, field in COUNTERS) if name in io else None
        status = nic_status(stats[name]) if name in stats else None
        out.append(NicSample(name, counters, status, links.get(name, Link(None, None))))
    return tuple(out)


@register
class NetworkCollector(BaseCollector):
    """Traffic, errors and drops per interface, with link state, speed and MTU."""

    name = "network"
    # Fresh enough for a 15 s scrape to get data at most 5 s old, and a
    # divisor of it, so successive scrapes see data exactly 15 s apart.
    default_interval = 5.0
    help = "Network interface traffic counters, link state, speed and MTU"
    options = NameFilter.options(
        "device",
        "interfaces",
        DEFAULT_EXCLUDE,
        "the default drops per-container and per-VM links (veth, cali, lxc<hash>, vnet) whose names churn with every start",
    )
    metrics = tuple(spec for spec, _ in COUNTERS) + (UP, SPEED, MTU, CARRIER_CHANGES, INFO)

    def sample(self) -> Tuple[NicSample, ...]:
        keep = NameFilter.from_config(self.config, "device")
        # nowrap=False: a counter reset must reach Prometheus raw, not be "fixed".
        io = psutil.net_io_counters(pernic=True, nowrap=False)
        stats = psutil.net_if_stats()
        links = {name: read_link(self.paths.sys("class", "net", name)) for name in set(io) | set(stats) if keep(name)}
        return merge_nics(io, stats, keep, links)

    def families(self, sample: Tuple[NicSample, ...]) -> Iterator[Metric]:
        for index, (spec, _) in enumerate(COUNTERS):
            fam = spec.family()
            for nic in sample:
                if nic.counters is not None:
                    fam.add_metric([nic.device], nic.counters[index])
            yield fam
        up, speed, mtu, changes, info = UP.family(), SPEED.family(), MTU.family(), CARRIER_CHANGES.family(), INFO.family()
        for nic in sample:
            if nic.link.carrier_changes is not None:
                changes.add_metric([nic.device], nic.link.carrier_changes)
            if nic.status is None:
                continue
            up.add_metric([nic.device], 1 if nic.status.up else 0)
            if nic.status.speed_bytes is not None:
                speed.add_metric([nic.device], nic.status.speed_bytes)
            mtu.add_metric([nic.device], nic.status.mtu)
            info.add_metric([nic.device, nic.link.operstate or "unknown", nic.status.duplex], 1)
        yield from (up, speed, mtu, changes, info)
