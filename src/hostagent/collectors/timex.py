"""The kernel clock's synchronisation state, from adjtimex(2).

The call is made read-only (``modes = 0``, allowed without privileges)
through ctypes. NTP and PTP daemons (chrony, ntpd, systemd-timesyncd,
ptp4l) feed the kernel clock discipline, and what they set is what this
reads: whether the clock counts as synchronised, the remaining offset, and
the error bounds. ``host_time_sync_status`` is 0 when the call returns
TIME_ERROR, which is the case whenever the kernel's STA_UNSYNC flag is set
(no daemon has told the kernel the clock is good, or its last update is
older than the kernel allows) and also on a clock hardware or PPS signal
fault. The offset is in microseconds, or nanoseconds when STA_NANO is set;
the error bounds are always in microseconds. All are served in seconds::

    host_time_sync_status 1.0
    host_time_offset_seconds -2.4e-05
    host_time_max_error_seconds 0.0105
    host_time_estimated_error_seconds 1.2e-05
"""

from __future__ import annotations

import ctypes
import errno
import os
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Optional

from ..promclient import Metric

from .base import BaseCollector, MetricSpec, NotAvailable, register

SYNC_STATUS = MetricSpec("host_time_sync_status", "gauge", "1 when the kernel counts its clock as synchronised to a reference (adjtimex(2) does not return TIME_ERROR: STA_UNSYNC clear), else 0.", ())
OFFSET = MetricSpec("host_time_offset_seconds", "gauge", "Offset between the kernel clock and the reference, as last set by the time daemon (adjtimex offset).", (), "seconds")
MAX_ERROR = MetricSpec("host_time_max_error_seconds", "gauge", "Upper bound of the clock's error; grows while no daemon updates it, and 16 s means unknown (adjtimex maxerror).", (), "seconds")
EST_ERROR = MetricSpec("host_time_estimated_error_seconds", "gauge", "Estimated error of the clock (adjtimex esterror).", (), "seconds")

# Kernel constants from include/uapi/linux/timex.h.
TIME_ERROR = 5  # adjtimex's return value when the clock is not synchronised
STA_NANO = 0x2000  # offset in nanoseconds rather than microseconds

_long = ctypes.c_long


class Timex(ctypes.Structure):
    """The C library's ``struct timex`` (sys/timex.h): longs and ints, then padding."""

    _fields_ = [
        ("modes", ctypes.c_uint),
        ("offset", _long),
        ("freq", _long),
        ("maxerror", _long),
        ("esterror", _long),
        ("status", ctypes.c_int),
        ("constant", _long),
        ("precision", _long),
        ("tolerance", _long),
        ("time_sec", _long),
        ("time_usec", _long),
        ("tick", _long),
        ("ppsfreq", _long),
        ("jitter", _long),
        ("shift", ctypes.c_int),
        ("stabil", _long),
        ("jitcnt", _long),
        ("calcnt", _long),
        ("errcnt", _long),
        ("stbcnt", _long),
        ("tai", ctypes.c_int),
        ("_reserved", ctypes.c_int * 11),
    ]


@dataclass(frozen=True)
class TimexSample:
    """adjtimex's return value and the raw fields this collector serves."""

    state: int  # TIME_OK, TIME_INS, ..., TIME_ERROR
    status: int  # STA_* flags
    offset: int  # microseconds, or nanoseconds with STA_NANO
    maxerror: int  # microseconds
    esterror: int  # microseconds

    @property
    def synchronised(self) -> bool:
        return self.state != TIME_ERROR

    @property
    def offset_seconds(self) -> float:
        return self.offset / (1e9 if self.status & STA_NANO else 1e6)


def libc_adjtimex() -> Callable[[Any], int]:
    """The C library's adjtimex, or NotAvailable where there is none."""
    try:
        func = ctypes.CDLL(None, use_errno=True).adjtimex
    except (OSError, AttributeError):
        raise NotAvailable("the C library has no adjtimex(2) (not Linux?)") from None
    func.argtypes = [ctypes.POINTER(Timex)]
    func.restype = ctypes.c_int
    return func


def read_timex(adjtimex: Callable[[Any], int]) -> TimexSample:
    """One read-only adjtimex call (modes = 0: nothing is changed)."""
    buf = Timex()
    state = adjtimex(ctypes.byref(buf))
    if state < 0:
        err = ctypes.get_errno()
        if err == errno.ENOSYS:
            raise NotAvailable("the kernel has no adjtimex(2) system call")
        raise OSError(err, f"adjtimex(2) failed: {os.strerror(err)}")
    return TimexSample(state, buf.status, buf.offset, buf.maxerror, buf.esterror)


@register
class TimexCollector(BaseCollector):
    """Clock synchronisation status, offset and error bounds from adjtimex(2)."""

    name = "timex"
    help = "Kernel clock synchronisation from adjtimex(2): synchronised or not, offset, maximum and estimated error (4 series)"
    metrics = (SYNC_STATUS, OFFSET, MAX_ERROR, EST_ERROR)

    _adjtimex: Optional[Callable[[Any], int]] = None

    def sample(self) -> TimexSample:
        if self._adjtimex is None:
            self._adjtimex = libc_adjtimex()
        return read_timex(self._adjtimex)

    def families(self, sample: TimexSample) -> Iterator[Metric]:
        yield SYNC_STATUS.single(1.0 if sample.synchronised else 0.0)
        yield OFFSET.single(sample.offset_seconds)
        yield MAX_ERROR.single(sample.maxerror / 1e6)
        yield EST_ERROR.single(sample.esterror / 1e6)
