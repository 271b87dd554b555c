"""Open file handles of the whole system, from ``<procfs>/sys/fs/file-nr``.

The file holds three numbers: handles allocated, allocated but unused (0
since Linux 2.6), and the system-wide maximum (``fs.file-max``). Past the
maximum every ``open()`` fails with ENFILE::

    host_filefd_allocated 766.0
    host_filefd_maximum 9.223372036854776e+18
"""

from __future__ import annotations

from typing import Iterator, Tuple

from ..promclient import Metric

from ._procfs import parse_file, parse_int
from .base import BaseCollector, MetricSpec, register

ALLOCATED = MetricSpec("host_filefd_allocated", "gauge", "File handles allocated system-wide (first figure of fs.file-nr).", ())
MAXIMUM = MetricSpec("host_filefd_maximum", "gauge", "Most file handles the kernel will allocate system-wide (fs.file-max).", ())

# (allocated, maximum)
FilefdSample = Tuple[int, int]


def parse_file_nr(text: str) -> FilefdSample:
    """(allocated, maximum) from the text of /proc/sys/fs/file-nr."""
    fields = text.split()
    if len(fields) != 3:
        raise ValueError(f"expected three numbers (allocated, unused, maximum), got {text.strip()!r}")
    return parse_int(fields[0], "allocated"), parse_int(fields[2], "maximum")


@register
class FilefdCollector(BaseCollector):
    """System-wide file handles: allocated and maximum."""

    name = "filefd"
    help = "System-wide file handles allocated and the maximum (2 series)"
    metrics = (ALLOCATED, MAXIMUM)

    def sample(self) -> FilefdSample:
        return parse_file(self.paths.proc("sys", "fs", "file-nr"), parse_file_nr)

    def families(self, sample: FilefdSample) -> Iterator[Metric]:
        yield ALLOCATED.single(sample[0])
        yield MAXIMUM.single(sample[1])
