"""Tests of the timex collector: adjtimex(2) through ctypes, units and families."""

from __future__ import annotations

import ctypes
import errno

import pytest
from support import assert_well_formed, samples_of

from hostagent.collectors.base import NotAvailable
from hostagent.collectors.timex import STA_NANO, TIME_ERROR, Timex, TimexCollector, TimexSample, read_timex


def test_struct_matches_the_c_library_layout():
    # glibc's struct timex: 4-byte modes, then longs and ints with 11 reserved ints at the end.
    assert ctypes.sizeof(Timex) == (208 if ctypes.sizeof(ctypes.c_long) == 8 else 128)


def test_synchronised_clock_with_microsecond_offset():
    got = samples_of(TimexCollector().families(TimexSample(state=0, status=0x0001, offset=-2500, maxerror=10500, esterror=12)))
    assert got == {
        ("host_time_sync_status", ()): 1.0,
        ("host_time_offset_seconds", ()): -0.0025,
        ("host_time_max_error_seconds", ()): 0.0105,
        ("host_time_estimated_error_seconds", ()): 0.000012,
    }


def test_nanosecond_offset_when_sta_nano_is_set():
    sample = TimexSample(state=0, status=STA_NANO | 0x0001, offset=-2500, maxerror=16000000, esterror=16000000)
    got = samples_of(TimexCollector().families(sample))
    assert got[("host_time_offset_seconds", ())] == pytest.approx(-2.5e-06)
    # The error bounds stay in microseconds whatever STA_NANO says.
    assert got[("host_time_max_error_seconds", ())] == 16.0


def test_time_error_means_not_synchronised():
    fams = list(TimexCollector().families(TimexSample(state=TIME_ERROR, status=0x0040, offset=0, maxerror=16000000, esterror=16000000)))
    assert [(f.name, f.type) for f in fams] == [
        ("host_time_sync_status", "gauge"), ("host_time_offset_seconds", "gauge"),
        ("host_time_max_error_seconds", "gauge"), ("host_time_estimated_error_seconds", "gauge"),
    ]
    assert samples_of(fams)[("host_time_sync_status", ())] == 0.0


def _failing(code):
    def adjtimex(buf):
        ctypes.set_errno(code)
        return -1
    return adjtimex


def test_no_system_call_is_not_available_other_errors_fail():
    with pytest.raises(NotAvailable, match="no adjtimex"):
        read_timex(_failing(errno.ENOSYS))
    with pytest.raises(OSError, match="adjtimex\\(2\\) failed: Operation not permitted"):
        read_timex(_failing(errno.EPERM))


def test_read_fills_the_sample_from_the_struct():
    def adjtimex(ref):
        buf = ctypes.cast(ref, ctypes.POINTER(Timex)).contents
        assert buf.modes == 0, "the call must be read-only"
        buf.status, buf.offset, buf.maxerror, buf.esterror = 0x2001, 1234, 500, 40
        return 0
    assert read_timex(adjtimex) == TimexSample(0, 0x2001, 1234, 500, 40)


def test_live_sample_on_this_machine():
    collector = TimexCollector()
    sample = collector.sample()
    assert 0 <= sample.state <= TIME_ERROR
    got = samples_of(collector.families(sample))
    assert_well_formed(TimexCollector, got, non_negative=False)
    assert got[("host_time_sync_status", ())] in (0.0, 1.0)
    assert 0 <= got[("host_time_estimated_error_seconds", ())] <= got[("host_time_max_error_seconds", ())] <= 16.0
