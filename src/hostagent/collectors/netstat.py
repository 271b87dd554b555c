"""TCP and UDP protocol counters from ``<procfs>/net/snmp``, ``net/netstat`` and ``net/snmp6``.

The kernel keeps one TCP MIB for IPv4 and IPv6 alike, so the ``Tcp:`` and
``TcpExt:`` counters already cover both; UDP has one MIB per IP version, so
each UDP family is ``Udp`` plus ``Udp6`` (from ``snmp6``, absent when IPv6
is disabled). All are raw counters since boot::

    host_tcp_active_opens_total 5123.0
    host_tcp_retransmitted_segments_total 88.0
    host_tcp_listen_overflows_total 0.0
    host_udp_receive_buffer_errors_total 0.0
"""

from __future__ import annotations

from typing import Dict, Iterator, Tuple

from ..promclient import Metric

from ._procfs import parse_file, parse_int
from .base import BaseCollector, MetricSpec, register


def _counter(name: str, help_: str) -> MetricSpec:
    return MetricSpec(name, "counter", help_, ())


# (family, the MIB counters summed into it as "Table.Field")
FAMILIES: Tuple[Tuple[MetricSpec, Tuple[str, ...]], ...] = (
    (_counter("host_tcp_active_opens_total", "TCP connections this host opened, IPv4 and IPv6 (Tcp ActiveOpens)."), ("Tcp.ActiveOpens",)),
    (_counter("host_tcp_passive_opens_total", "TCP connections accepted from peers, IPv4 and IPv6 (Tcp PassiveOpens)."), ("Tcp.PassiveOpens",)),
    (_counter("host_tcp_segments_received_total", "TCP segments received, those in error included (Tcp InSegs)."), ("Tcp.InSegs",)),
    (_counter("host_tcp_segments_sent_total", "TCP segments sent, retransmissions excluded (Tcp OutSegs)."), ("Tcp.OutSegs",)),
    (_counter("host_tcp_retransmitted_segments_total", "TCP segments retransmitted (Tcp RetransSegs)."), ("Tcp.RetransSegs",)),
    (_counter("host_tcp_syn_retransmits_total", "SYN and SYN-ACK retransmissions: connection attempts not answered in time (TcpExt TCPSynRetrans)."), ("TcpExt.TCPSynRetrans",)),
    (_counter("host_tcp_listen_overflows_total", "Connections dropped because a listening socket's accept queue was full (TcpExt ListenOverflows)."), ("TcpExt.ListenOverflows",)),
    (_counter("host_tcp_listen_drops_total", "Connection requests dropped at a listening socket for any reason, overflows included (TcpExt ListenDrops)."), ("TcpExt.ListenDrops",)),
    (_counter("host_tcp_receive_errors_total", "TCP segments received in error, such as bad checksums (Tcp InErrs)."), ("Tcp.InErrs",)),
    (_counter("host_tcp_resets_sent_total", "TCP segments sent with the RST flag (Tcp OutRsts)."), ("Tcp.OutRsts",)),
    (_counter("host_udp_receive_errors_total", "UDP datagrams received but not delivered, for any reason but a missing listener, IPv4 and IPv6 (Udp and Udp6 InErrors)."), ("Udp.InErrors", "Udp6.InErrors")),
    (_counter("host_udp_receive_buffer_errors_total", "UDP datagrams dropped because a socket's receive buffer was full, IPv4 and IPv6 (RcvbufErrors)."), ("Udp.RcvbufErrors", "Udp6.RcvbufErrors")),
    (_counter("host_udp_send_buffer_errors_total", "UDP datagrams not sent because a socket's send buffer was full, IPv4 and IPv6 (SndbufErrors)."), ("Udp.SndbufErrors", "Udp6.SndbufErrors")),
    (_counter("host_udp_no_ports_total", "UDP datagrams received for a port nobody listens on, IPv4 and IPv6 (NoPorts)."), ("Udp.NoPorts", "Udp6.NoPorts")),
)
WANTED = frozenset(key for _, keys in FAMILIES for key in keys)
# snmp6 names its counters "Udp6InErrors": table prefix glued to the field.
SNMP6_TABLES = ("UdpLite6", "Udp6", "Icmp6", "Ip6")

# The wanted counters read, as ("Table.Field", value), sorted.
NetstatSample = Tuple[Tuple[str, int], ...]


def parse_table_pairs(text: str) -> Dict[str, int]:
    """Counters of /proc/net/snmp or /proc/net/netstat as {"Table.Field": value}.

    Each table is a line of field names followed by a line of values, both
    starting with the table name (``Tcp: ActiveOpens ...`` / ``Tcp: 12 ...``)."""
    out: Dict[str, int] = {}
    lines = [line.split() for line in text.splitlines() if line.strip()]
    if len(lines) % 2:
        raise ValueError("odd number of lines: a table's header or values line is missing")
    for header, values in zip(lines[::2], lines[1::2]):
        table = header[0]
        if not table.endswith(":") or values[0] != table or len(header) != len(values):
            raise ValueError(f"the {table.rstrip(':')} table's values line does not match its header line")
        for field, value in zip(header[1:], values[1:]):
            out[f"{table[:-1]}.{field}"] = parse_int(value, f"{table[:-1]} {field}")
    return out


def parse_snmp6(text: str) -> Dict[str, int]:
    """Counters of /proc/net/snmp6 (``Udp6InErrors  0`` lines) as {"Udp6.InErrors": value}."""
    out: Dict[str, int] = {}
    for line in text.splitlines():
        fields = line.split()
        if len(fields) != 2:
            continue
        table = next((t for t in SNMP6_TABLES if fields[0].startswith(t)), None)
        if table is not None:
            out[f"{table}.{fields[0][len(table):]}"] = parse_int(fields[1], fields[0])
    return out


@register
class NetstatCollector(BaseCollector):
    """TCP and UDP counters: opens, segments, retransmits, listen queue overflows, errors."""

    name = "netstat"
    help = "TCP and UDP protocol counters: connection opens, segments, retransmits, listen queue overflows and drops, resets, UDP errors (14 series)"
    metrics = tuple(spec for spec, _ in FAMILIES)

    def sample(self) -> NetstatSample:
        values = parse_file(self.paths.proc("net", "snmp"), parse_table_pairs)
        values.update(parse_file(self.paths.proc("net", "netstat"), parse_table_pairs))
        try:
            values.update(parse_file(self.paths.proc("net", "snmp6"), parse_snmp6))
        except FileNotFoundError:
            pass  # IPv6 disabled: the UDP families count IPv4 alone
        return tuple(sorted((key, value) for key, value in values.items() if key in WANTED))

    def families(self, sample: NetstatSample) -> Iterator[Metric]:
        """Each family whose first (IPv4 or shared) counter the kernel has,
        plus the IPv6 counter where there is one."""
        values = dict(sample)
        for spec, keys in FAMILIES:
            if keys[0] in values:
                yield spec.single(sum(values.get(key, 0) for key in keys))
