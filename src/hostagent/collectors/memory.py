"""Physical memory and swap: sizes, usage ratios and swap traffic.

    host_memory_total_bytes 2.5276510208e+10
    host_memory_available_bytes 2.4884740096e+10
    host_memory_usage_ratio 0.0155
    host_swap_total_bytes 0.0
    host_swap_usage_ratio 0.0
    host_swap_in_bytes_total 0.0
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import psutil
from ..promclient import Metric

from .base import BaseCollector, MetricSpec, register


def fraction(part: float, whole: float) -> float:
    """``part / whole`` clamped to 0..1; 0 when ``whole`` is not positive."""
    if whole <= 0:
        return 0.0
    return min(max(part / whole, 0.0), 1.0)


@dataclass(frozen=True)
class MemorySample:
    """Memory and swap figures in bytes, and the derived usage ratios."""

    total: int
    available: int
    used: int
    free: int
    cached: int
    buffers: int
    usage_ratio: float
    swap_total: int
    swap_used: int
    swap_free: int
    swap_in: int
    swap_out: int
    swap_usage_ratio: float


# (metric name, MemorySample field, HELP) for the plain byte gauges.
_BYTE_GAUGES = (
    ("host_memory_total_bytes", "total", "Total usable physical memory."),
    ("host_memory_available_bytes", "available", "Memory available for new work without swapping (MemAvailable)."),
    ("host_memory_used_bytes", "used", "Memory in use: total minus available."),
    ("host_memory_free_bytes", "free", "Memory not used at all (MemFree)."),
    ("host_memory_cached_bytes", "cached", "Memory used by the page cache."),
    ("host_memory_buffers_bytes", "buffers", "Memory used by kernel buffers."),
    ("host_swap_total_bytes", "swap_total", "Total swap space."),
    ("host_swap_used_bytes", "swap_used", "Swap space in use."),
    ("host_swap_free_bytes", "swap_free", "Swap space free."),
)


@register
class MemoryCollector(BaseCollector):
    """Memory and swap sizes, usage ratios and swap traffic counters."""

    name = "memory"
    help = "Physical memory and swap: sizes, usage ratios and bytes swapped in and out"
    metrics = tuple(MetricSpec(name, "gauge", text, (), "bytes") for name, _, text in _BYTE_GAUGES) + (
        MetricSpec("host_memory_usage_ratio", "gauge", "Share of memory in use: (total - available) / total.", (), "ratio"),
        MetricSpec("host_swap_usage_ratio", "gauge", "Share of swap space in use; 0 when there is no swap.", (), "ratio"),
        MetricSpec("host_swap_in_bytes_total", "counter", "Bytes swapped in from disk since boot.", (), "bytes"),
        MetricSpec("host_swap_out_bytes_total", "counter", "Bytes swapped out to disk since boot.", (), "bytes"),
    )

    def sample(self) -> MemorySample:
        """Read memory and swap figures through psutil."""
        vm = psutil.virtual_memory()
        sw = psutil.swap_memory()
        return MemorySample(
            total=vm.total,
            available=vm.available,
            # Computed here: older psutil releases define "used" differently.
            used=max(vm.total - vm.available, 0),
            free=vm.free,
            cached=vm.cached,
            buffers=vm.buffers,
            usage_ratio=fraction(vm.total - vm.available, vm.total),
            swap_total=sw.total,
            swap_used=sw.used,
            swap_free=sw.free,
            swap_in=sw.sin,
            swap_out=sw.sout,
            swap_usage_ratio=fraction(sw.used, sw.total),
        )

    def families(self, sample: MemorySample) -> Iterator[Metric]:
        """Metric families of one sample, in declaration order."""
        for spec, (_, field_name, _) in zip(self.metrics, _BYTE_GAUGES):
            yield spec.single(getattr(sample, field_name))
        usage, swap_usage, swap_in, swap_out = self.metrics[len(_BYTE_GAUGES):]
        yield usage.single(sample.usage_ratio)
        yield swap_usage.single(sample.swap_usage_ratio)
        yield swap_in.single(sample.swap_in)
        yield swap_out.single(sample.swap_out)
