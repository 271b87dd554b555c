"""Physical memory and swap: sizes, usage ratios, swap traffic and the kernel's
detail (slab, dirty, writeback, commit, huge pages).

Reads ``<procfs>/meminfo`` and the two swap lines of ``<procfs>/vmstat``
directly: one read each, every field from the same moment.

    host_memory_total_bytes 2.5276510208e+10
    host_memory_available_bytes 2.4884740096e+10
    host_memory_usage_ratio 0.0155
    host_memory_cached_bytes 7.78690560e+08
    host_memory_dirty_bytes 5.517312e+06
    host_memory_hugepages 0.0
    host_swap_total_bytes 0.0
    host_swap_usage_ratio 0.0
    host_swap_in_bytes_total 0.0
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Dict, Iterator, Mapping, Tuple

from ..promclient import Metric

from .base import BaseCollector, MetricSpec, fraction, read_text, register

PAGE_SIZE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096

# (spec, /proc/meminfo field) for the gauges that are one field each, in kB
# there and in bytes here, in the order they are served.
FIELD_GAUGES: Tuple[Tuple[MetricSpec, str], ...] = tuple(
    (MetricSpec(name, "gauge", text, (), "bytes"), field)
    for name, field, text in (
        ("host_memory_total_bytes", "MemTotal", "Total usable physical memory (MemTotal)."),
        ("host_memory_available_bytes", "MemAvailable", "Memory available for new work without swapping (MemAvailable)."),
        ("host_memory_free_bytes", "MemFree", "Memory not used at all (MemFree)."),
        ("host_memory_cached_bytes", "Cached", "Memory used by the page cache for files (Cached), without reclaimable slab."),
        ("host_memory_buffers_bytes", "Buffers", "Memory used by block device buffers (Buffers)."),
        ("host_memory_slab_reclaimable_bytes", "SReclaimable", "Kernel slab memory that can be reclaimed, such as dentry and inode caches (SReclaimable)."),
        ("host_memory_slab_unreclaimable_bytes", "SUnreclaim", "Kernel slab memory that cannot be reclaimed under pressure (SUnreclaim)."),
        ("host_memory_dirty_bytes", "Dirty", "Memory waiting to be written back to disk (Dirty)."),
        ("host_memory_writeback_bytes", "Writeback", "Memory being written back to disk right now (Writeback)."),
        ("host_memory_shared_bytes", "Shmem", "Shared memory and tmpfs contents (Shmem)."),
        ("host_memory_mapped_bytes", "Mapped", "Files mapped into memory, such as libraries (Mapped)."),
        ("host_memory_page_tables_bytes", "PageTables", "Memory used by page tables (PageTables)."),
        ("host_memory_committed_bytes", "Committed_AS", "Memory allocated by processes, whether used yet or not: what would be needed if they all used it (Committed_AS)."),
        ("host_memory_commit_limit_bytes", "CommitLimit", "Allocation limit under strict overcommit, vm.overcommit_memory=2 (CommitLimit)."),
        ("host_memory_hugepage_size_bytes", "Hugepagesize", "Size of a default huge page (Hugepagesize)."),
        ("host_swap_total_bytes", "SwapTotal", "Total swap space (SwapTotal)."),
        ("host_swap_free_bytes", "SwapFree", "Swap space free (SwapFree)."),
    )
)
# Counts of pages, not sizes: no unit conversion.
HUGEPAGES = MetricSpec("host_memory_hugepages", "gauge", "Huge pages in the pool, free or not (HugePages_Total).", ())
HUGEPAGES_FREE = MetricSpec("host_memory_hugepages_free", "gauge", "Huge pages in the pool not yet allocated (HugePages_Free).", ())
USED = MetricSpec("host_memory_used_bytes", "gauge", "Memory in use: total minus available.", (), "bytes")
SWAP_USED = MetricSpec("host_swap_used_bytes", "gauge", "Swap space in use: total minus free.", (), "bytes")
USAGE = MetricSpec("host_memory_usage_ratio", "gauge", "Share of memory in use: (total - available) / total.", (), "ratio")
SWAP_USAGE = MetricSpec("host_swap_usage_ratio", "gauge", "Share of swap space in use; 0 when there is no swap.", (), "ratio")
SWAP_IN = MetricSpec("host_swap_in_bytes_total", "counter", "Bytes swapped in from disk since boot (pswpin pages times the page size).", (), "bytes")
SWAP_OUT = MetricSpec("host_swap_out_bytes_total", "counter", "Bytes swapped out to disk since boot (pswpout pages times the page size).", (), "bytes")

# Fields every kernel this agent runs on has; the rest are served when present.
_REQUIRED = ("MemTotal", "MemFree")


def parse_meminfo(text: str) -> Dict[str, int]:
    """/proc/meminfo as {field: value}: sizes in bytes (the file says kB,
    meaning KiB), page counts (HugePages_*) as they are."""
    out: Dict[str, int] = {}
    for line in text.splitlines():
        key, _, rest = line.partition(":")
        fields = rest.split()
        if not fields:
            continue
        value = int(fields[0])
        out[key] = value * 1024 if len(fields) > 1 and fields[1] == "kB" else value
    missing = [key for key in _REQUIRED if key not in out]
    if missing:
        raise ValueError(f"not a /proc/meminfo text: no {', '.join(missing)}")
    return out


def parse_swap_pages(text: str) -> Tuple[int, int]:
    """(pswpin, pswpout) pages from the text of /proc/vmstat; 0 for a line
    the kernel does not print (no swap support built in)."""
    found = {"pswpin": 0, "pswpout": 0}
    for line in text.splitlines():
        key, _, value = line.partition(" ")
        if key in found:
            found[key] = int(value)
    return found["pswpin"], found["pswpout"]


@dataclass(frozen=True)
class MemorySample:
    """The meminfo fields in bytes (page counts for HugePages_*) and the swap
    traffic in bytes."""

    meminfo: Mapping[str, int]
    swap_in: int
    swap_out: int

    @property
    def available(self) -> int:
        # Kernels before 3.14 have no MemAvailable: free plus what the page
        # cache and buffers could give back is the nearest estimate.
        info = self.meminfo
        if "MemAvailable" in info:
            return info["MemAvailable"]
        return info["MemFree"] + info.get("Cached", 0) + info.get("Buffers", 0)


@register
class MemoryCollector(BaseCollector):
    """Memory and swap sizes, usage ratios, swap traffic and meminfo detail."""

    name = "memory"
    # Fresh enough for a 15 s scrape to get data at most 5 s old, and a
    # divisor of it, so successive scrapes see data exactly 15 s apart.
    default_interval = 5.0
    help = "Physical memory and swap: sizes, usage ratios, bytes swapped in and out, and the kernel's detail (slab, dirty, commit, huge pages)"
    metrics = tuple(spec for spec, _ in FIELD_GAUGES) + (HUGEPAGES, HUGEPAGES_FREE, USED, SWAP_USED, USAGE, SWAP_USAGE, SWAP_IN, SWAP_OUT)

    def sample(self) -> MemorySample:
        """Read /proc/meminfo and the swap counters of /proc/vmstat."""
        meminfo = parse_meminfo(read_text(self.paths.proc("meminfo")))
        swap_in, swap_out = parse_swap_pages(read_text(self.paths.proc("vmstat")))
        return MemorySample(meminfo, swap_in * PAGE_SIZE, swap_out * PAGE_SIZE)

    def families(self, sample: MemorySample) -> Iterator[Metric]:
        """Metric families of one sample; a field the kernel lacks is left out."""
        info = dict(sample.meminfo, MemAvailable=sample.available)
        for spec, field in FIELD_GAUGES:
            if field in info:
                yield spec.single(info[field])
        if "HugePages_Total" in info:
            yield HUGEPAGES.single(info["HugePages_Total"])
            yield HUGEPAGES_FREE.single(info.get("HugePages_Free", 0))
        total = info["MemTotal"]
        used = max(total - sample.available, 0)
        yield USED.single(used)
        yield USAGE.single(fraction(used, total))
        swap_total, swap_free = info.get("SwapTotal", 0), info.get("SwapFree", 0)
        swap_used = max(swap_total - swap_free, 0)
        yield SWAP_USED.single(swap_used)
        yield SWAP_USAGE.single(fraction(swap_used, swap_total))
        yield SWAP_IN.single(sample.swap_in)
        yield SWAP_OUT.single(sample.swap_out)
