"""Block device I/O counters per whole disk, read from ``<procfs>/diskstats``.

Counters go out raw, in bytes and seconds; a counter that went backwards (a
device removed and re-added) is passed through so Prometheus sees a reset.
Discard counters exist on kernels 4.18 and later (18 or 20 fields a line) and
are left out on older ones::

    # HELP host_disk_read_bytes_total Bytes read from the device.
    # TYPE host_disk_read_bytes_total counter
    host_disk_read_bytes_total{device="vda"} 1.097421824e+09
    # HELP host_disk_io_time_seconds_total Time the device spent doing I/O.
    # TYPE host_disk_io_time_seconds_total counter
    host_disk_io_time_seconds_total{device="vda"} 8.708
    host_disk_io_time_weighted_seconds_total{device="vda"} 87.923
    host_disk_io_in_progress{device="vda"} 0.0
"""

from __future__ import annotations

from typing import Iterator, NamedTuple, Optional, Tuple

from ..promclient import Metric

from .base import BaseCollector, MetricSpec, NameFilter, read_text, register

DEV = ("device",)
READ_BYTES = MetricSpec("host_disk_read_bytes_total", "counter", "Bytes read from the device.", DEV, "bytes")
WRITTEN_BYTES = MetricSpec("host_disk_written_bytes_total", "counter", "Bytes written to the device.", DEV, "bytes")
READS = MetricSpec("host_disk_reads_completed_total", "counter", "Reads completed by the device.", DEV)
WRITES = MetricSpec("host_disk_writes_completed_total", "counter", "Writes completed by the device.", DEV)
READ_TIME = MetricSpec("host_disk_read_time_seconds_total", "counter", "Time spent on reads, summed over all reads.", DEV, "seconds")
WRITE_TIME = MetricSpec("host_disk_write_time_seconds_total", "counter", "Time spent on writes, summed over all writes.", DEV, "seconds")
IO_TIME = MetricSpec("host_disk_io_time_seconds_total", "counter", "Time the device spent doing I/O.", DEV, "seconds")
IO_WEIGHTED = MetricSpec(
    "host_disk_io_time_weighted_seconds_total",
    "counter",
    "Time spent doing I/O weighted by the number of I/Os in progress; its rate is the average queue depth.",
    DEV,
    "seconds",
)
IN_PROGRESS = MetricSpec("host_disk_io_in_progress", "gauge", "I/Os issued to the device and not yet completed.", DEV)
READS_MERGED = MetricSpec("host_disk_reads_merged_total", "counter", "Adjacent reads merged into one before reaching the device.", DEV)
WRITES_MERGED = MetricSpec("host_disk_writes_merged_total", "counter", "Adjacent writes merged into one before reaching the device.", DEV)
DISCARDS = MetricSpec("host_disk_discards_completed_total", "counter", "Discards (TRIM) completed by the device; kernels 4.18 and later.", DEV)
DISCARDED_BYTES = MetricSpec("host_disk_discarded_bytes_total", "counter", "Bytes discarded (TRIM) on the device; kernels 4.18 and later.", DEV, "bytes")

# Partitions, loop, RAM and floppy devices: their I/O is counted on the whole
# disk already, or is not disk I/O at all.
DEFAULT_EXCLUDE = r"^(z?ram|loop|fd|(h|s|v|xv)d[a-z]|nvme\d+n\d+p)\d+$"

# /proc/diskstats counts sectors of 512 bytes whatever the device's own sector size.
SECTOR = 512


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
    io_weighted_seconds: float = 0.0
    in_progress: int = 0
    reads_merged: int = 0
    writes_merged: int = 0
    discards: Optional[int] = None  # None before kernel 4.18
    discarded_bytes: Optional[int] = None


def parse_line(fields: Tuple[str, ...]) -> DiskCounters:
    """One line of /proc/diskstats, split: major, minor, name and 11, 15 or
    17 counters (kernels before 4.18, from 4.18, from 5.5)."""
    n = [int(v) for v in fields[3:]]
    discards = discarded = None
    if len(n) >= 15:
        discards, discarded = n[11], n[13] * SECTOR
    return DiskCounters(
        device=fields[2],
        read_bytes=n[2] * SECTOR,
        written_bytes=n[6] * SECTOR,
        reads=n[0],
        writes=n[4],
        read_seconds=n[3] / 1000.0,
        write_seconds=n[7] / 1000.0,
        io_seconds=n[9] / 1000.0,
        io_weighted_seconds=n[10] / 1000.0,
        in_progress=n[8],
        reads_merged=n[1],
        writes_merged=n[5],
        discards=discards,
        discarded_bytes=discarded,
    )


def parse_diskstats(text: str, keep: NameFilter) -> Tuple[DiskCounters, ...]:
    """Counters of the devices ``keep`` accepts, ordered by device name.

    Lines of fewer than 14 fields (the partition lines of 2.6 kernels before
    2.6.25) are skipped."""
    out = []
    for line in text.splitlines():
        fields = tuple(line.split())
        if len(fields) >= 14 and keep(fields[2]):
            out.append(parse_line(fields))
    return tuple(sorted(out))


# (spec, DiskCounters field) in the order served.
FIELDS: Tuple[Tuple[MetricSpec, str], ...] = (
    (READ_BYTES, "read_bytes"),
    (WRITTEN_BYTES, "written_bytes"),
    (READS, "reads"),
    (WRITES, "writes"),
    (READ_TIME, "read_seconds"),
    (WRITE_TIME, "write_seconds"),
    (IO_TIME, "io_seconds"),
    (IO_WEIGHTED, "io_weighted_seconds"),
    (IN_PROGRESS, "in_progress"),
    (READS_MERGED, "reads_merged"),
    (WRITES_MERGED, "writes_merged"),
    (DISCARDS, "discards"),
    (DISCARDED_BYTES, "discarded_bytes"),
)


@register
class DiskioCollector(BaseCollector):
    """Reads, writes, bytes, merges, discards, queue and busy time of each whole block device."""

    name = "diskio"
    # Fresh enough for a 15 s scrape to get data at most 5 s old, and a
    # divisor of it, so successive scrapes see data exactly 15 s apart.
    default_interval = 5.0
    help = "Block device I/O counters (bytes, operations, merges, discards, time, queue depth)"
    options = NameFilter.options("device", "devices", DEFAULT_EXCLUDE, "the default drops partitions, loop and ram devices")
    metrics = tuple(spec for spec, _ in FIELDS)

    def sample(self) -> Tuple[DiskCounters, ...]:
        return parse_diskstats(read_text(self.paths.proc("diskstats")), NameFilter.from_config(self.config, "device"))

    def families(self, sample: Tuple[DiskCounters, ...]) -> Iterator[Metric]:
        for spec, field in FIELDS:
            fam = spec.family()
            for disk in sample:
                value = getattr(disk, field)
                if value is not None:
                    fam.add_metric([disk.device], value)
            if fam.samples or field not in ("discards", "discarded_bytes"):
                yield fam
