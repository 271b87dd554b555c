"""Socket counts by protocol and state, read from /proc/net/{tcp,tcp6,udp,udp6}.

Reading the kernel's socket tables directly costs one file read per protocol,
where walking every process's file descriptors costs one syscall per socket::

    # HELP host_network_connections Sockets by protocol and state.
    # TYPE host_network_connections gauge
    host_network_connections{kind="tcp",state="ESTABLISHED"} 12.0
    host_network_connections{kind="tcp",state="LISTEN"} 5.0
    host_network_connections{kind="tcp",state="TIME_WAIT"} 0.0
    host_network_connections{kind="udp",state="NONE"} 3.0
"""

from __future__ import annotations

from typing import Dict, Iterable, Iterator, NamedTuple, Optional, Tuple

from ..promclient import Metric

from .base import BaseCollector, MetricSpec, register

# Kernel TCP state numbers (include/net/tcp_states.h), as hex in the "st" column.
TCP_STATES: Dict[str, str] = {
    "01": "ESTABLISHED",
    "02": "SYN_SENT",
    "03": "SYN_RECV",
    "04": "FIN_WAIT1",
    "05": "FIN_WAIT2",
    "06": "TIME_WAIT",
    "07": "CLOSE",
    "08": "CLOSE_WAIT",
    "09": "LAST_ACK",
    "0A": "LISTEN",
    "0B": "CLOSING",
    "0C": "NEW_SYN_RECV",
}
# A connected UDP socket carries TCP_ESTABLISHED; every other one is unconnected.
UDP_STATES: Tuple[str, ...] = ("ESTABLISHED", "NONE")
KINDS: Tuple[str, ...] = ("tcp", "tcp6", "udp", "udp6")
UNKNOWN = "UNKNOWN"

CONNECTIONS = MetricSpec(
    "host_network_connections",
    "gauge",
    "Sockets by protocol and state.",
    ("kind", "state"),
)


class KindCounts(NamedTuple):
    """Socket counts of one protocol table, by state, in a stable order."""

    kind: str
    counts: Tuple[Tuple[str, int], ...]


def state_name(kind: str, code: str) -> str:
    """The state label for a hex state code of a ``kind`` table."""
    code = code.upper()
    if kind.startswith("udp"):
        return "ESTABLISHED" if code == "01" else "NONE"
    # A state a newer kernel adds is still counted, not silently dropped.
    return TCP_STATES.get(code, UNKNOWN)


def count_states(kind: str, lines: Iterable[str]) -> KindCounts:
    """Count sockets by state from the lines of a /proc/net/<kind> table.

    Every known state is present (0 when none) so alert expressions always
    have a series to compare; the header line and blank lines are skipped."""
    names = UDP_STATES if kind.startswith("udp") else tuple(TCP_STATES.values())
    counts: Dict[str, int] = dict.fromkeys(names, 0)
    for line in lines:
        fields = line.split(None, 4)
        if len(fields) < 4 or not fields[0].endswith(":"):
            continue  # header ("sl local_address ...") or a blank line
        name = state_name(kind, fields[3])
        counts[name] = counts.get(name, 0) + 1
    return KindCounts(kind, tuple(counts.items()))


def read_table(path: str, kind: str) -> Optional[KindCounts]:
    """Counts for one table file, or None when the kernel lacks it (no IPv6)."""
    try:
        with open(path, encoding="ascii", errors="replace") as table:
            return count_states(kind, table)
    except FileNotFoundError:
        return None


@register
class ConnectionsCollector(BaseCollector):
    """Counts TCP and UDP sockets (IPv4 and IPv6) by state."""

    name = "connections"
    # The kernel walks its whole socket hash table for /proc/net/tcp (several
    # ms even with few sockets); connection counts change slowly enough for 30 s.
    default_interval = 30.0
    help = "TCP and UDP socket counts by state, from /proc/net"
    metrics = (CONNECTIONS,)

    def sample(self) -> Tuple[KindCounts, ...]:
        tables = tuple(t for t in (read_table(self.paths.proc("net", kind), kind) for kind in KINDS) if t is not None)
        if not tables:
            # Some tables may be absent (no IPv6), never all of them: that is
            # a procfs without network, and a failure to report, not zero sockets.
            raise FileNotFoundError(f"none of the socket tables {', '.join(KINDS)} in {self.paths.proc('net')}")
        return tables

    def families(self, sample: Tuple[KindCounts, ...]) -> Iterator[Metric]:
        fam = CONNECTIONS.family()
        for table in sample:
            for state, count in table.counts:
                fam.add_metric([table.kind, state], count)
        yield fam
