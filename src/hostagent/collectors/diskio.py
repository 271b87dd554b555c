"""Block device I/O counters per whole disk, from /proc/diskstats via psutil.

Counters go out raw, in bytes and seconds; a counter that went backwards (a
device removed and re-added) is passed through so Prometheus sees a reset::

    # HELP host_disk_read_bytes_total Bytes read from the device.
    # TYPE host_disk_read_bytes_total counter
    host_disk_read_bytes_total{device="vda"} 1.097421824e+09
    # HELP host_disk_io_time_seconds_total Time the device spent doing I/O.
    # TYPE host_disk_io_time_seconds_total counter
    host_disk_io_time_seconds_total{device="vda"} 8.708
"""

from __future__ import annotations

from typing import Any, Iterator, Mapping, NamedTuple, Tuple

import psutil
from ..promclient import Metric

from .base import BaseCollector, MetricSpec, NameFilter, register

READ_BYTES = MetricSpec("host_disk_read_bytes_total", "counter", "Bytes read from the device.", ("device",), "bytes")
WRITTEN_BYTES = MetricSpec("host_disk_written_bytes_total", "counter", "Bytes written to the device.", ("device",), "bytes")
READS = MetricSpec("host_disk_reads_completed_total", "counter", "Reads completed by the device.", ("device",))
WRITES = MetricSpec("host_disk_writes_completed_total", "counter", "Writes completed by the device.", ("device",))
READ_TIME = MetricSpec(
    "host_disk_read_time_seconds_total", "counter", "Time spent on reads, summed over all reads.", ("device",), "seconds"
)
WRITE_TIME = MetricSpec(
    "host_disk_write_time_seconds_total", "counter", "Time spent on writes, summed over all writes.", ("device",), "seconds"
)
IO_TIME = MetricSpec("host_disk_io_time_seconds_total", "counter", "Time the device spent doing I/O.", ("device",), "seconds")

# Partitions, loop, RAM and floppy devices: their I/O is counted on the whole
# disk already, or is not disk I/O at all.
DEFAULT_EXCLUDE = r"^(z?ram|loop|fd|(h|s|v|xv)d[a-z]|nvme\d+n\d+p)\d+$"


class DiskCounters(NamedTuple):
    """Cumulative I/O counters of one block device, in bytes and seconds."""

    device: str
    read_bytes: int
    written_bytes: int
    reads: int
    writes: int
    read_seconds: float
    write_seconds: float
    io_seconds: float


def disk_counters(device: str, raw: Any) -> DiskCounters:
    """Convert psutil's per-disk tuple (times in milliseconds) to base units."""
    return DiskCounters(
        device=device,
        read_bytes=raw.read_bytes,
        written_bytes=raw.write_bytes,
        reads=raw.read_count,
        writes=raw.write_count,
        read_seconds=raw.read_time / 1000.0,
        write_seconds=raw.write_time / 1000.0,
        io_seconds=getattr(raw, "busy_time", 0) / 1000.0,
    )


def select_disks(per_disk: Mapping[str, Any], keep: NameFilter) -> Tuple[DiskCounters, ...]:
    """Counters of the devices ``keep`` accepts, ordered by device name."""
    return tuple(disk_counters(name, per_disk[name]) for name in sorted(per_disk) if keep(name))


@register
class DiskioCollector(BaseCollector):
    """Reads, writes, bytes and busy time of each whole block device."""

    name = "diskio"
    help = "Block device I/O counters (bytes, operations, time)"
    options = NameFilter.options("device", "devices", DEFAULT_EXCLUDE, "the default drops partitions, loop and ram devices")
    metrics = (READ_BYTES, WRITTEN_BYTES, READS, WRITES, READ_TIME, WRITE_TIME, IO_TIME)

    def sample(self) -> Tuple[DiskCounters, ...]:
        keep = NameFilter.from_config(self.config, "device")
        # nowrap=False: a counter reset must reach Prometheus raw, not be "fixed".
        per_disk = psutil.disk_io_counters(perdisk=True, nowrap=False) or {}
        return select_disks(per_disk, keep)

    def families(self, sample: Tuple[DiskCounters, ...]) -> Iterator[Metric]:
        fields = (
            (READ_BYTES, "read_bytes"),
            (WRITTEN_BYTES, "written_bytes"),
            (READS, "reads"),
            (WRITES, "writes"),
            (READ_TIME, "read_seconds"),
            (WRITE_TIME, "write_seconds"),
            (IO_TIME, "io_seconds"),
        )
        for spec, field in fields:
            fam = spec.family()
            for disk in sample:
                fam.add_metric([disk.device], getattr(disk, field))
            yield fam
