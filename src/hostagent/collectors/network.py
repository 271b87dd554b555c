"""Network interface counters and link state, via psutil.

Counters go out raw; link speed is in bytes per second and omitted when the
driver does not know it (virtual interfaces)::

    # HELP host_network_receive_bytes_total Bytes received on the interface.
    # TYPE host_network_receive_bytes_total counter
    host_network_receive_bytes_total{device="eth0"} 1.1111815e+08
    # HELP host_network_up Whether the interface is up (1) or down (0).
    # TYPE host_network_up gauge
    host_network_up{device="eth0"} 1.0
    # HELP host_network_speed_bytes Link speed in bytes per second.
    # TYPE host_network_speed_bytes gauge
    host_network_speed_bytes{device="eth0"} 1.25e+08
"""

from __future__ import annotations

from typing import Any, Iterator, Mapping, NamedTuple, Optional, Tuple

import psutil
from ..promclient import Metric

from .base import BaseCollector, MetricSpec, NameFilter, register

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
UP = MetricSpec("host_network_up", "gauge", "Whether the interface is up (1) or down (0).", DEV)
SPEED = MetricSpec("host_network_speed_bytes", "gauge", "Link speed in bytes per second.", DEV, "bytes")
MTU = MetricSpec("host_network_mtu_bytes", "gauge", "Maximum transmission unit of the interface.", DEV, "bytes")

# Host-side ends of per-container, per-pod and per-VM links: veth pairs (Docker,
# Podman, LXC), Calico's cali*, Cilium's lxc<hash>, libvirt's vnetN. Each start
# makes a new name, so they churn series while their traffic also shows on the
# bridge or uplink, which stay reported.
DEFAULT_EXCLUDE = r"^(veth.*|cali.*|lxc[0-9a-f]{8,}|vnet\d+)$"

BYTES_PER_MBIT = 125_000


class NicStatus(NamedTuple):
    """Link state of one interface."""

    up: bool
    speed_bytes: Optional[int]  # None when the driver reports no speed
    mtu: int


class NicSample(NamedTuple):
    """One interface: its counters and status, each absent when psutil's two
    calls disagree about which interfaces exist (one appeared in between)."""

    device: str
    counters: Optional[Tuple[int, ...]]  # in the order of COUNTERS
    status: Optional[NicStatus]


def speed_bytes(mbit: int) -> Optional[int]:
    """Link speed in bytes per second; None for psutil's 0 (unknown)."""
    return mbit * BYTES_PER_MBIT if mbit > 0 else None


def nic_status(raw: Any) -> NicStatus:
    """Convert psutil's snicstats to a NicStatus."""
    return NicStatus(bool(raw.isup), speed_bytes(raw.speed), raw.mtu)


def merge_nics(io: Mapping[str, Any], stats: Mapping[str, Any], keep: NameFilter) -> Tuple[NicSample, ...]:
    """Join psutil's counters and stats per interface, filtered and sorted."""
    out = []
    for name in sorted(set(io) | set(stats)):
        if not keep(name):
            continue
        counters = tuple(getattr(io[name], field) for _, field in COUNTERS) if name in io else None
        status = nic_status(stats[name]) if name in stats else None
        out.append(NicSample(name, counters, status))
    return tuple(out)


@register
class NetworkCollector(BaseCollector):
    """Traffic, errors and drops per interface, with link state, speed and MTU."""

    name = "network"
    help = "Network interface traffic counters, link state, speed and MTU"
    options = NameFilter.options(
        "device",
        "interfaces",
        DEFAULT_EXCLUDE,
        "the default drops per-container and per-VM links (veth, cali, lxc<hash>, vnet) whose names churn with every start",
    )
    metrics = tuple(spec for spec, _ in COUNTERS) + (UP, SPEED, MTU)

    def sample(self) -> Tuple[NicSample, ...]:
        keep = NameFilter.from_config(self.config, "device")
        # nowrap=False: a counter reset must reach Prometheus raw, not be "fixed".
        io = psutil.net_io_counters(pernic=True, nowrap=False)
        stats = psutil.net_if_stats()
        return merge_nics(io, stats, keep)

    def families(self, sample: Tuple[NicSample, ...]) -> Iterator[Metric]:
        for index, (spec, _) in enumerate(COUNTERS):
            fam = spec.family()
            for nic in sample:
                if nic.counters is not None:
                    fam.add_metric([nic.device], nic.counters[index])
            yield fam
        up, speed, mtu = UP.family(), SPEED.family(), MTU.family()
        for nic in sample:
            if nic.status is None:
                continue
            up.add_metric([nic.device], 1 if nic.status.up else 0)
            if nic.status.speed_bytes is not None:
                speed.add_metric([nic.device], nic.status.speed_bytes)
            mtu.add_metric([nic.device], nic.status.mtu)
        yield from (up, speed, mtu)
