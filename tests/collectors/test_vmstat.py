"""Tests of the vmstat collector: /proc/vmstat parsing, units and families."""

from __future__ import annotations

from pathlib import Path

import pytest
from support import assert_well_formed, samples_of

from hostagent.collectors.base import Paths
from hostagent.collectors.vmstat import VmstatCollector, parse_vmstat

FIXTURE_PROC = Path(__file__).parent / "fixtures" / "vmstat" / "proc"


def test_parse_fixture_keeps_only_the_wanted_raw_fields():
    assert parse_vmstat((FIXTURE_PROC / "vmstat").read_text()) == {
        "oom_kill": 3, "pgfault": 5067661, "pgmajfault": 1127, "pgpgin": 1637861, "pgpgout": 1520076,
    }


def test_parse_kernel_before_oom_kill_counter():
    text = "nr_free_pages 100\npgpgin 2\npgpgout 4\npswpin 0\npgfault 10\npgmajfault 1\n"
    assert parse_vmstat(text) == {"pgpgin": 2, "pgpgout": 4, "pgfault": 10, "pgmajfault": 1}


@pytest.mark.parametrize("text, message", [
    ("nr_free_pages 100\n", "no pgfault, pgmajfault, pgpgin, pgpgout field: not a vmstat file"),
    ("pgpgin 2\npgpgout x\npgfault 10\npgmajfault 1\n", "pgpgout is not a whole number: 'x'"),
])
def test_parse_rejects_what_is_not_vmstat(text, message):
    with pytest.raises(ValueError, match=message):
        parse_vmstat(text)


def test_paged_bytes_are_kib_times_1024_and_faults_are_counts():
    fams = list(VmstatCollector().families((("oom_kill", 2), ("pgfault", 50), ("pgmajfault", 5), ("pgpgin", 3), ("pgpgout", 7))))
    assert [(f.name, f.type) for f in fams] == [
        ("host_oom_kills", "counter"),
        ("host_memory_page_faults", "counter"),
        ("host_memory_major_page_faults", "counter"),
        ("host_memory_paged_in_bytes", "counter"),
        ("host_memory_paged_out_bytes", "counter"),
    ]
    assert samples_of(fams) == {
        ("host_oom_kills_total", ()): 2,
        ("host_memory_page_faults_total", ()): 50,
        ("host_memory_major_page_faults_total", ()): 5,
        ("host_memory_paged_in_bytes_total", ()): 3 * 1024,
        ("host_memory_paged_out_bytes_total", ()): 7 * 1024,
    }


def test_no_oom_kill_field_means_no_oom_family():
    names = [f.name for f in VmstatCollector().families((("pgfault", 1), ("pgmajfault", 0), ("pgpgin", 0), ("pgpgout", 0)))]
    assert "host_oom_kills" not in names and len(names) == 4


def test_fixture_sample():
    collector = VmstatCollector(paths=Paths(procfs=str(FIXTURE_PROC)))
    got = samples_of(collector.collect())
    assert got[("host_oom_kills_total", ())] == 3
    assert got[("host_memory_paged_in_bytes_total", ())] == 1637861 * 1024
    assert got[("host_memory_paged_out_bytes_total", ())] == 1520076 * 1024


def test_missing_or_garbage_vmstat_is_a_failure_naming_it(tmp_path):
    collector = VmstatCollector(paths=Paths(procfs=str(tmp_path)))
    with pytest.raises(FileNotFoundError, match="vmstat"):
        collector.sample()
    (tmp_path / "vmstat").write_bytes(b"pgfault \xff\npgmajfault 1\npgpgin 1\npgpgout 1\n")
    with pytest.raises(ValueError, match=f"^{tmp_path / 'vmstat'}: pgfault is not a whole number"):
        collector.sample()


def test_live_sample_on_this_machine():
    collector = VmstatCollector()
    got = samples_of(collector.collect())
    assert_well_formed(VmstatCollector, got)
    assert got[("host_memory_page_faults_total", ())] >= got[("host_memory_major_page_faults_total", ())] > 0
    assert got[("host_memory_paged_in_bytes_total", ())] % 1024 == 0
