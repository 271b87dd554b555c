"""Tests of the diskio collector: conversion, device filtering and families."""

from __future__ import annotations

from collections import namedtuple

import psutil
import pytest
from support import assert_well_formed, samples_of

from hostagent.collectors.base import NameFilter
from hostagent.collectors.diskio import DEFAULT_EXCLUDE, DiskCounters, DiskioCollector, disk_counters, select_disks

# Same fields as psutil's per-disk tuple on Linux.
RawDisk = namedtuple(
    "RawDisk",
    "read_count write_count read_bytes write_bytes read_time write_time read_merged_count write_merged_count busy_time",
)


def raw(n: int) -> RawDisk:
    """A per-disk tuple whose fields are n, n+1, ... so each is traceable."""
    return RawDisk(*range(n, n + 9))


def test_disk_counters_converts_milliseconds_to_seconds():
    got = disk_counters("sda", RawDisk(10, 20, 4096, 8192, 1500, 250, 1, 2, 3001))
    assert got == DiskCounters("sda", 4096, 8192, 10, 20, 1.5, 0.25, 3.001)


@pytest.mark.parametrize(
    "name, kept",
    [
        ("sda", True),
        ("sda1", False),
        ("vda", True),
        ("vdb3", False),
        ("xvda1", False),
        ("hdc2", False),
        ("nvme0n1", True),
        ("nvme0n1p2", False),
        ("nvme10n2p11", False),
        ("loop0", False),
        ("loop12", False),
        ("ram0", False),
        ("zram0", False),
        ("fd0", False),
        ("dm-0", True),
        ("md127", True),
        ("sr0", True),
        ("mmcblk0", True),
    ],
)
def test_default_exclude_drops_partitions_loop_and_ram(name, kept):
    assert NameFilter(None, DEFAULT_EXCLUDE)(name) is kept


def test_select_disks_filters_and_sorts():
    per_disk = {"vda": raw(1), "loop0": raw(0), "sda": raw(5), "sda1": raw(7)}
    got = select_disks(per_disk, NameFilter(None, DEFAULT_EXCLUDE))
    assert [d.device for d in got] == ["sda", "vda"]
    assert got[0].reads == 5 and got[1].reads == 1


def test_include_and_exclude_options(mocker):
    per_disk = {"sda": raw(1), "sdb": raw(2), "nvme0n1": raw(3), "sda1": raw(4)}
    mocker.patch.object(psutil, "disk_io_counters", return_value=per_disk)
    only_sd = DiskioCollector({"device_include": "^sd"}).sample()
    assert [d.device for d in only_sd] == ["sda", "sdb"]
    no_sdb_but_partitions = DiskioCollector({"device_exclude": "^sdb$"}).sample()
    assert [d.device for d in no_sdb_but_partitions] == ["nvme0n1", "sda", "sda1"]


def test_families_from_hand_made_sample():
    sample = (DiskCounters("sda", 1024, 2048, 3, 4, 0.5, 0.25, 1.75), DiskCounters("vda", 0, 0, 0, 0, 0.0, 0.0, 0.0))
    fams = list(DiskioCollector().families(sample))
    assert [f.type for f in fams] == ["counter"] * 7
    got = samples_of(fams)
    sda = (("device", "sda"),)
    assert {name: value for (name, labels), value in got.items() if labels == sda} == {
        "host_disk_read_bytes_total": 1024,
        "host_disk_written_bytes_total": 2048,
        "host_disk_reads_completed_total": 3,
        "host_disk_writes_completed_total": 4,
        "host_disk_read_time_seconds_total": 0.5,
        "host_disk_write_time_seconds_total": 0.25,
        "host_disk_io_time_seconds_total": 1.75,
    }
    assert len(got) == 14


def test_empty_sample_gives_empty_families():
    assert all(not f.samples for f in DiskioCollector().families(()))


def test_counter_that_went_backwards_is_emitted_raw(mocker):
    first = {"sda": RawDisk(100, 50, 10_000, 5_000, 900, 400, 0, 0, 1_200)}
    second = {"sda": RawDisk(3, 1, 512, 0, 2, 0, 0, 0, 4)}  # device re-added: counters restart
    patched = mocker.patch.object(psutil, "disk_io_counters", side_effect=[first, second])
    collector = DiskioCollector()
    collector.collect()
    got = samples_of(collector.collect())
    assert got[("host_disk_read_bytes_total", (("device", "sda"),))] == 512
    assert got[("host_disk_reads_completed_total", (("device", "sda"),))] == 3
    assert got[("host_disk_io_time_seconds_total", (("device", "sda"),))] == 0.004
    patched.assert_called_with(perdisk=True, nowrap=False)


def test_no_disks_at_all(mocker):
    mocker.patch.object(psutil, "disk_io_counters", return_value={})
    assert DiskioCollector().sample() == ()


def test_real_machine():
    collector = DiskioCollector()
    first = samples_of(collector.collect())
    second = samples_of(collector.collect())
    assert_well_formed(DiskioCollector, second)
    for (name, labels), value in second.items():
        # Cumulative counters read twice in a row do not go down.
        assert value >= first.get((name, labels), 0)
    devices = {dict(labels)["device"] for _, labels in second}
    expected = {d for d in psutil.disk_io_counters(perdisk=True) if NameFilter(None, DEFAULT_EXCLUDE)(d)}
    assert devices == expected
