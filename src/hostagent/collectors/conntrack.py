"""Connection tracking table use, from ``<procfs>/sys/net/netfilter/nf_conntrack_{count,max}``.

When the table is full the kernel drops packets of new connections (``nf_conntrack:
table full, dropping packet`` in the kernel log), so the ratio of the two is
worth an alert. The files exist only while the ``nf_conntrack`` module is
loaded (a firewall, NAT or Docker loads it); without them the collector is
not available on the host::

    host_conntrack_entries 12.0
    host_conntrack_entries_limit 262144.0
"""

from __future__ import annotations

from typing import Iterator, Tuple

from ..promclient import Metric

from ._procfs import read_int
from .base import BaseCollector, MetricSpec, register

ENTRIES = MetricSpec("host_conntrack_entries", "gauge", "Connections in the kernel's connection tracking table (nf_conntrack_count).", ())
LIMIT = MetricSpec("host_conntrack_entries_limit", "gauge", "Size of the connection tracking table: past it new connections' packets are dropped (nf_conntrack_max).", ())

# (entries, limit)
ConntrackSample = Tuple[int, int]

ABSENT = "the nf_conntrack module is not loaded"


@register
class ConntrackCollector(BaseCollector):
    """Connection tracking entries and the table's size."""

    name = "conntrack"
    help = "Connection tracking table entries and limit, where the nf_conntrack module is loaded (2 series)"
    metrics = (ENTRIES, LIMIT)

    def sample(self) -> ConntrackSample:
        count = read_int(self.paths.proc("sys", "net", "netfilter", "nf_conntrack_count"), ABSENT)
        return count, read_int(self.paths.proc("sys", "net", "netfilter", "nf_conntrack_max"), ABSENT)

    def families(self, sample: ConntrackSample) -> Iterator[Metric]:
        yield ENTRIES.single(sample[0])
        yield LIMIT.single(sample[1])
