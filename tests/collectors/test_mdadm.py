"""Tests of the mdadm collector: /proc/mdstat parsing on fixture files, and families."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from support import assert_well_formed, samples_of

from hostagent.collectors.base import NotAvailable, Paths
from hostagent.collectors.mdadm import STATES, MdadmCollector, MdArray, parse_mdstat

FIXTURES = Path(__file__).parent / "fixtures" / "mdadm"


def arrays(case):
    return MdadmCollector(paths=Paths(procfs=str(FIXTURES / case))).sample()


def test_healthy_raid1_with_a_spare_and_a_read_only_array():
    assert arrays("raid1_healthy") == (
        MdArray("md0", "active", active=2, failed=0, spare=0, required=2, synced_ratio=None),
        MdArray("md1", "active", active=2, failed=0, spare=1, required=2, synced_ratio=None),
    )


def test_degraded_raid5_with_a_failed_disk_and_one_with_a_disk_gone():
    assert arrays("raid5_degraded") == (
        MdArray("md127", "active", active=3, failed=1, spare=0, required=4, synced_ratio=None),
        MdArray("md126", "active", active=2, failed=0, spare=0, required=3, synced_ratio=None),
    )


def test_sync_actions_in_progress_and_delayed():
    got = {a.device: a for a in arrays("resync")}
    assert (got["md0"].state, got["md0"].synced_ratio) == ("resync", 711304320 / 1953382464)
    # The disk being rebuilt is neither in sync nor a spare.
    assert got["md1"] == MdArray("md1", "recovering", active=3, failed=0, spare=0, required=4, synced_ratio=123124736 / 976628736)
    assert (got["md2"].state, got["md2"].synced_ratio, got["md2"].active) == ("check", 2201600 / 104791040, 4)
    assert (got["md3"].state, got["md3"].synced_ratio) == ("resync", 0.0)


def test_raid0_and_linear_need_every_member_and_inactive_array_says_nothing_of_it():
    assert arrays("raid0") == (
        MdArray("md0", "active", active=3, failed=0, spare=0, required=3, synced_ratio=None),
        MdArray("md1", "active", active=2, failed=0, spare=0, required=2, synced_ratio=None),
        MdArray("md127", "inactive", active=0, failed=0, spare=1, required=None, synced_ratio=None),
    )


def test_no_arrays_is_an_empty_sample_and_no_series():
    collector = MdadmCollector(paths=Paths(procfs=str(FIXTURES / "no_arrays")))
    assert collector.sample() == ()
    assert list(collector.families(())) == []


def test_reshape_line():
    text = ("Personalities : [raid5]\nmd5 : active raid5 sdd[3] sdc[2] sdb[1] sda[0]\n"
            "      2096128 blocks super 1.2 level 5, 512k chunk, algorithm 2 [4/4] [UUUU]\n"
            "      [====>................]  reshape = 22.5% (236032/1048064) finish=2.6min speed=5146K/sec\n\nunused devices: <none>\n")
    (array,) = parse_mdstat(text)
    assert (array.state, array.synced_ratio) == ("reshape", 236032 / 1048064)


def test_families_from_hand_made_sample():
    sample = (
        MdArray("md0", "recovering", active=1, failed=1, spare=1, required=2, synced_ratio=0.25),
        MdArray("md9", "inactive", active=0, failed=0, spare=2, required=None, synced_ratio=None),
    )
    fams = list(MdadmCollector().families(sample))
    assert [(f.name, f.type) for f in fams] == [
        ("host_md_state", "gauge"), ("host_md_disks", "gauge"), ("host_md_disks_required", "gauge"), ("host_md_blocks_synced_ratio", "gauge"),
    ]
    got = samples_of(fams)
    for device, current in (("md0", "recovering"), ("md9", "inactive")):
        for state in STATES:
            assert got[("host_md_state", (("device", device), ("state", state)))] == (1.0 if state == current else 0.0)
    assert got[("host_md_disks", (("device", "md0"), ("state", "active")))] == 1
    assert got[("host_md_disks", (("device", "md0"), ("state", "failed")))] == 1
    assert got[("host_md_disks", (("device", "md9"), ("state", "spare")))] == 2
    assert got[("host_md_disks_required", (("device", "md0"),))] == 2
    assert ("host_md_disks_required", (("device", "md9"),)) not in got
    assert got[("host_md_blocks_synced_ratio", (("device", "md0"),))] == 0.25
    assert len(got) == 2 * (len(STATES) + 3) + 1 + 1


def test_series_per_array_as_the_help_says():
    got = samples_of(MdadmCollector(paths=Paths(procfs=str(FIXTURES / "resync"))).collect())
    assert_well_formed(MdadmCollector, got)
    assert len(got) == 4 * 11 and "11 series per array" in MdadmCollector.help
    got = samples_of(MdadmCollector(paths=Paths(procfs=str(FIXTURES / "raid1_healthy"))).collect())
    assert len(got) == 2 * 10 and "10 when no sync runs" in MdadmCollector.help


def test_no_mdstat_is_not_available(tmp_path):
    with pytest.raises(NotAvailable, match="mdstat: the md \\(software RAID\\) driver is not loaded"):
        MdadmCollector(paths=Paths(procfs=str(tmp_path))).sample()


@pytest.mark.parametrize("text, message", [
    ("md0 : active raid1 sda[0]\n", "does not start with 'Personalities': not an mdstat file"),
    ("Personalities : [raid1]\nmd0 : broken raid1 sda[0]\n", "not an array line: 'md0 : broken raid1 sda\\[0\\]'"),
])
def test_garbage_mdstat_is_a_failure_naming_the_file(tmp_path, text, message):
    (tmp_path / "mdstat").write_text(text)
    with pytest.raises(ValueError, match=f"^{tmp_path / 'mdstat'}: {message}"):
        MdadmCollector(paths=Paths(procfs=str(tmp_path))).sample()


def test_live_sample_on_this_machine():
    """Served where the md driver is loaded; not available, with the reason,
    where it is not (this test machine has none)."""
    if not os.path.exists("/proc/mdstat"):
        with pytest.raises(NotAvailable, match="/proc/mdstat"):
            MdadmCollector().sample()
        return
    collector = MdadmCollector()
    sample = collector.sample()
    got = samples_of(collector.families(sample))
    assert len(got) >= 10 * len(sample)
    if sample:
        assert_well_formed(MdadmCollector, got)
