"""Tests of the pressure collector: PSI file parsing and families."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from support import assert_well_formed, samples_of

from hostagent.collectors.base import NotAvailable, Paths
from hostagent.collectors.pressure import PressureCollector, parse_pressure

FIXTURE_PROC = Path(__file__).parent / "fixtures" / "pressure" / "proc"


def test_parse_fixture_files_in_seconds():
    assert parse_pressure((FIXTURE_PROC / "pressure" / "cpu").read_text()) == {"some": 44.93001, "full": 0.0}
    assert parse_pressure((FIXTURE_PROC / "pressure" / "io").read_text()) == {"some": 12.5, "full": 9.750001}


def test_parse_old_kernel_cpu_file_without_full_line():
    assert parse_pressure("some avg10=0.00 avg60=0.00 avg300=0.00 total=1000000\n") == {"some": 1.0}


@pytest.mark.parametrize("text, message", [
    ("", "no 'some' line"),
    ("full avg10=0.00 total=5\n", "no 'some' line"),
    ("some avg10=0.00 avg60=0.00 avg300=0.00\n", "no total= field in the some line"),
    ("some avg10=0.00 total=12x\n", "some total is not a whole number: '12x'"),
])
def test_parse_rejects_what_is_not_psi(text, message):
    with pytest.raises(ValueError, match=message):
        parse_pressure(text)


def test_fixture_sample_and_families():
    collector = PressureCollector(paths=Paths(procfs=str(FIXTURE_PROC)))
    got = samples_of(collector.families(collector.sample()))
    assert got == {
        ("host_pressure_cpu_waiting_seconds_total", ()): 44.93001,
        ("host_pressure_memory_waiting_seconds_total", ()): 2.830317,
        ("host_pressure_memory_stalled_seconds_total", ()): 2.565566,
        ("host_pressure_io_waiting_seconds_total", ()): 12.5,
        ("host_pressure_io_stalled_seconds_total", ()): 9.750001,
    }


def test_families_from_hand_made_sample_keep_declaration_order_and_skip_cpu_full():
    sample = (("cpu", "full", 9.0), ("cpu", "some", 1.5), ("memory", "some", 2.0), ("io", "full", 0.25), ("io", "some", 0.5))
    fams = list(PressureCollector().families(sample))
    assert [(f.name, f.type) for f in fams] == [
        ("host_pressure_cpu_waiting_seconds", "counter"),
        ("host_pressure_memory_waiting_seconds", "counter"),
        ("host_pressure_io_waiting_seconds", "counter"),
        ("host_pressure_io_stalled_seconds", "counter"),
    ]
    assert samples_of(fams) == {
        ("host_pressure_cpu_waiting_seconds_total", ()): 1.5,
        ("host_pressure_memory_waiting_seconds_total", ()): 2.0,
        ("host_pressure_io_waiting_seconds_total", ()): 0.5,
        ("host_pressure_io_stalled_seconds_total", ()): 0.25,
    }


def test_no_pressure_directory_is_not_available(tmp_path):
    with pytest.raises(NotAvailable, match=r"no .*/pressure: kernel without PSI \(CONFIG_PSI\) or booted with psi=0"):
        PressureCollector(paths=Paths(procfs=str(tmp_path))).sample()


def test_garbage_or_missing_file_is_a_failure_naming_it(tmp_path):
    root = tmp_path / "pressure"
    root.mkdir()
    for name in ("cpu", "memory"):
        (root / name).write_text((FIXTURE_PROC / "pressure" / name).read_text())
    collector = PressureCollector(paths=Paths(procfs=str(tmp_path)))
    with pytest.raises(FileNotFoundError, match="pressure/io"):
        collector.sample()
    (root / "io").write_text("some avg10=oops\n")
    with pytest.raises(ValueError, match=f"^{root / 'io'}: no total= field"):
        collector.sample()


@pytest.mark.skipif(not os.path.isdir("/proc/pressure"), reason="this kernel has no PSI")
def test_live_sample_on_this_machine():
    collector = PressureCollector()
    first = samples_of(collector.collect())
    assert_well_formed(PressureCollector, first)
    assert {name for name, _ in first} == {spec.name for spec in PressureCollector.metrics}
    second = samples_of(collector.collect())
    assert all(second[key] >= value for key, value in first.items()), "a PSI counter went backwards"
