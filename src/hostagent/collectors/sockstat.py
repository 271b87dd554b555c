"""Socket usage from ``<procfs>/net/sockstat``, and TCP's memory limit from ``sys/net/ipv4/tcp_mem``.

``sockets: used`` counts every socket of every family; the kernel keeps one
orphan count and one memory pool for TCP over IPv4 and IPv6, so
``sockstat6`` (IPv6 in-use counts alone) adds nothing to these families.
TCP memory is counted in pages and served in bytes. ``tcp_mem`` holds the
min, pressure and max thresholds in pages; the max is the limit past which
TCP refuses to allocate, and is left out when the file cannot be read (a
container without that sysctl)::

    host_sockets_used 17.0
    host_tcp_orphan_sockets 0.0
    host_tcp_memory_bytes 16384.0
    host_tcp_memory_limit_bytes 2.358460416e+09
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Iterator, Optional

from ..promclient import Metric

from ._procfs import PAGE_SIZE, parse_file, parse_int
from .base import BaseCollector, MetricSpec, register

SOCKETS_USED = MetricSpec("host_sockets_used", "gauge", "Sockets allocated, of every protocol family (sockstat 'sockets: used').", ())
TCP_ORPHANS = MetricSpec("host_tcp_orphan_sockets", "gauge", "TCP sockets no longer attached to a process but still closing (sockstat TCP orphan).", ())
TCP_MEMORY = MetricSpec("host_tcp_memory_bytes", "gauge", "Memory allocated to TCP socket buffers (sockstat TCP mem, pages times the page size).", (), "bytes")
TCP_MEMORY_LIMIT = MetricSpec("host_tcp_memory_limit_bytes", "gauge", "TCP buffer memory past which the kernel refuses new allocations (the max of net.ipv4.tcp_mem, in bytes).", (), "bytes")


@dataclass(frozen=True)
class SockstatSample:
    """Counts from sockstat, memory in pages, and the page size to convert them."""

    sockets_used: int
    tcp_orphans: int
    tcp_memory_pages: int
    tcp_memory_limit_pages: Optional[int]
    page_size: int = PAGE_SIZE


def parse_sockstat(text: str) -> Dict[str, Dict[str, int]]:
    """``{"sockets": {"used": 17}, "TCP": {"inuse": 1, "orphan": 0, ...}, ...}``
    from the text of /proc/net/sockstat (lines of ``Proto: key value ...``)."""
    out: Dict[str, Dict[str, int]] = {}
    for line in text.splitlines():
        if not line.strip():
            continue
        proto, sep, rest = line.partition(":")
        fields = rest.split()
        if not sep or len(fields) % 2:
            raise ValueError(f"not a 'protocol: key value ...' line: {line!r}")
        out[proto] = {key: parse_int(value, f"{proto} {key}") for key, value in zip(fields[::2], fields[1::2])}
    for proto, key in (("sockets", "used"), ("TCP", "orphan"), ("TCP", "mem")):
        if key not in out.get(proto, {}):
            raise ValueError(f"no '{proto}: ... {key}' figure: not a sockstat file")
    return out


def parse_tcp_mem(text: str) -> int:
    """The max (third) value of net.ipv4.tcp_mem, in pages."""
    fields = text.split()
    if len(fields) != 3:
        raise ValueError(f"expected three page counts (min pressure max), got {text.strip()!r}")
    return parse_int(fields[2], "tcp_mem max")


@register
class SockstatCollector(BaseCollector):
    """Sockets in use, orphaned TCP sockets, TCP buffer memory and its limit."""

    name = "sockstat"
    help = "Sockets in use, orphaned TCP sockets, TCP buffer memory and its limit (4 series)"
    metrics = (SOCKETS_USED, TCP_ORPHANS, TCP_MEMORY, TCP_MEMORY_LIMIT)

    def sample(self) -> SockstatSample:
        stat = parse_file(self.paths.proc("net", "sockstat"), parse_sockstat)
        try:
            limit: Optional[int] = parse_file(self.paths.proc("sys", "net", "ipv4", "tcp_mem"), parse_tcp_mem)
        except (FileNotFoundError, PermissionError):
            limit = None
        return SockstatSample(stat["sockets"]["used"], stat["TCP"]["orphan"], stat["TCP"]["mem"], limit)

    def families(self, sample: SockstatSample) -> Iterator[Metric]:
        yield SOCKETS_USED.single(sample.sockets_used)
        yield TCP_ORPHANS.single(sample.tcp_orphans)
        yield TCP_MEMORY.single(sample.tcp_memory_pages * sample.page_size)
        if sample.tcp_memory_limit_pages is not None:
            yield TCP_MEMORY_LIMIT.single(sample.tcp_memory_limit_pages * sample.page_size)
