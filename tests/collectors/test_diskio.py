"""Tests of the diskio collector: conversion, device filtering and families."""

from __future__ import annotations

from pathlib import Path

import psutil
import pytest
from support import assert_well_formed, samples_of

from hostagent.collectors.base import NameFilter, Paths
from hostagent.collectors.diskio import DEFAULT_EXCLUDE, DiskCounters, DiskioCollector, parse_diskstats

FIXTURES = Path(__file__).parent / "fixtures" / "diskio"
KEEP_ALL = NameFilter()


def fixture(kernel: str) -> str:
    return (FIXTURES / kernel / "diskstats").read_text()


def test_kernel_before_4_18_eleven_counters_no_discards():
    (sda,) = [d for d in parse_diskstats(fixture("kernel-4.14"), KEEP_ALL) if d.device == "sda"]
    assert sda == DiskCounters(
        device="sda",
        read_bytes=4366514 * 512,
        written_bytes=5278408 * 512,
        reads=69013,
        writes=136275,
        read_seconds=41.065,
        write_seconds=40.454,
        io_seconds=15.904,
        io_weighted_seconds=87.923,
        in_progress=2,
        reads_merged=9701,
        writes_merged=62713,
        discards=None,
        discarded_bytes=None,
    )


def test_kernel_4_18_adds_discards():
    (nvme,) = [d for d in parse_diskstats(fixture("kernel-4.19"), KEEP_ALL) if d.device == "nvme0n1"]
    assert (nvme.reads, nvme.reads_merged, nvme.read_bytes, nvme.read_seconds) == (1000, 10, 80000 * 512, 0.5)
    assert (nvme.writes, nvme.writes_merged, nvme.written_bytes, nvme.write_seconds) == (2000, 20, 160000 * 512, 0.9)
    assert (nvme.in_progress, nvme.io_seconds, nvme.io_weighted_seconds) == (1, 1.2, 1.4)
    assert (nvme.discards, nvme.discarded_bytes) == (30, 4096 * 512)


def test_kernel_5_5_adds_flushes_which_are_not_read():
    (vda,) = [d for d in parse_diskstats(fixture("kernel-6.1"), KEEP_ALL) if d.device == "vda"]
    assert (vda.reads, vda.io_weighted_seconds, vda.in_progress) == (69013, 87.923, 0)
    assert (vda.discards, vda.discarded_bytes) == (51769, 2599120072 * 512)


def test_default_filter_keeps_whole_disks_sorted():
    assert [d.device for d in parse_diskstats(fixture("kernel-6.1"), NameFilter(None, DEFAULT_EXCLUDE))] == ["md127", "vda"]
    assert [d.device for d in parse_diskstats(fixture("kernel-4.14"), NameFilter(None, DEFAULT_EXCLUDE))] == ["dm-0", "sda"]


def test_short_partition_lines_of_old_kernels_are_skipped():
    text = "   3    0   hda 8 8 8 8 8 8 8 8 8 8 8\n   3    1   hda1 1 2 3 4\n"
    assert [d.device for d in parse_diskstats(text, KEEP_ALL)] == ["hda"]


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


def test_include_and_exclude_options(tmp_path):
    paths = Paths(procfs=str(FIXTURES / "kernel-4.19"))
    assert [d.device for d in DiskioCollector({"device_include": "^nvme"}, paths).sample()] == ["nvme0n1"]
    assert [d.device for d in DiskioCollector({"device_exclude": "^loop"}, paths).sample()] == ["nvme0n1", "nvme0n1p1"]


def test_families_from_the_fixture_tree():
    fams = list(DiskioCollector(paths=Paths(procfs=str(FIXTURES / "kernel-4.19"))).collect())
    assert [f.type for f in fams] == ["counter"] * 8 + ["gauge"] + ["counter"] * 4
    got = samples_of(fams)
    assert {name: value for (name, labels), value in got.items()} == {
        "host_disk_read_bytes_total": 80000 * 512,
        "host_disk_written_bytes_total": 160000 * 512,
        "host_disk_reads_completed_total": 1000,
        "host_disk_writes_completed_total": 2000,
        "host_disk_read_time_seconds_total": 0.5,
        "host_disk_write_time_seconds_total": 0.9,
        "host_disk_io_time_seconds_total": 1.2,
        "host_disk_io_time_weighted_seconds_total": 1.4,
        "host_disk_io_in_progress": 1,
        "host_disk_reads_merged_total": 10,
        "host_disk_writes_merged_total": 20,
        "host_disk_discards_completed_total": 30,
        "host_disk_discarded_bytes_total": 4096 * 512,
    }
    assert {labels for _, labels in got} == {(("device", "nvme0n1"),)}


def test_discard_families_absent_on_kernels_without_them():
    names = {f.name for f in DiskioCollector(paths=Paths(procfs=str(FIXTURES / "kernel-4.14"))).collect()}
    assert "host_disk_discards_completed" not in names and "host_disk_discarded_bytes" not in names
    assert "host_disk_io_time_weighted_seconds" in names


def test_empty_sample_gives_empty_families():
    fams = list(DiskioCollector().families(()))
    assert fams and all(not f.samples for f in fams)


def test_counter_that_went_backwards_is_emitted_raw(tmp_path):
    stats = tmp_path / "diskstats"
    stats.write_text(" 8 0 sda 100 0 20 900 50 0 10 400 0 1200 1300\n")
    collector = DiskioCollector(paths=Paths(procfs=str(tmp_path)))
    collector.collect()
    stats.write_text(" 8 0 sda 3 0 1 2 1 0 0 0 0 4 4\n")  # device re-added: counters restart
    got = samples_of(collector.collect())
    assert got[("host_disk_read_bytes_total", (("device", "sda"),))] == 512
    assert got[("host_disk_reads_completed_total", (("device", "sda"),))] == 3
    assert got[("host_disk_io_time_seconds_total", (("device", "sda"),))] == 0.004


def test_no_disks_at_all(tmp_path):
    (tmp_path / "diskstats").write_text("")
    assert DiskioCollector(paths=Paths(procfs=str(tmp_path))).sample() == ()


def test_missing_diskstats_is_a_failure(tmp_path):
    with pytest.raises(FileNotFoundError):
        DiskioCollector(paths=Paths(procfs=str(tmp_path))).sample()


def test_real_machine_agrees_with_psutil():
    collector = DiskioCollector()
    first = samples_of(collector.collect())
    raw = psutil.disk_io_counters(perdisk=True)
    second = samples_of(collector.collect())
    assert_well_formed(DiskioCollector, second)
    for (name, labels), value in second.items():
        if name.endswith("_total"):
            # Cumulative counters read twice in a row do not go down.
            assert value >= first.get((name, labels), 0)
    devices = {dict(labels)["device"] for _, labels in second}
    assert devices == {d for d in raw if NameFilter(None, DEFAULT_EXCLUDE)(d)}
    for dev in devices:
        label = (("device", dev),)
        for name, field in (("host_disk_reads_completed_total", "read_count"), ("host_disk_written_bytes_total", "write_bytes")):
            # Read in between: psutil's reading of the same file falls between ours.
            assert first[(name, label)] <= getattr(raw[dev], field) <= second[(name, label)], (dev, name)
