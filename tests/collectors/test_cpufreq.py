"""Tests of the cpufreq collector on a fixture sysfs tree."""

from __future__ import annotations

import glob
from pathlib import Path

import pytest
from support import assert_well_formed, samples_of

from hostagent.collectors.base import NotAvailable, Paths
from hostagent.collectors.cpufreq import CpufreqCollector

FIXTURE_SYS = Path(__file__).parent / "fixtures" / "cpufreq" / "sys"


def test_fixture_tree_in_cpu_number_order_with_fallback_and_offline_cpu():
    sample = CpufreqCollector(paths=Paths(sysfs=str(FIXTURE_SYS))).sample()
    # cpu1 has no scaling_cur_freq: cpuinfo_cur_freq stands in; cpu2's files are gone (offline);
    # cpu3 has no cpufreq directory at all.
    assert sample == (("0", 2200000, 3500000), ("1", 1800000, 3500000), ("2", None, None), ("10", 1200000, 2400000))


def test_families_in_hertz():
    collector = CpufreqCollector(paths=Paths(sysfs=str(FIXTURE_SYS)))
    fams = list(collector.families(collector.sample()))
    assert [(f.name, f.type) for f in fams] == [("host_cpu_frequency_hertz", "gauge"), ("host_cpu_frequency_max_hertz", "gauge")]
    assert samples_of(fams) == {
        ("host_cpu_frequency_hertz", (("cpu", "0"),)): 2.2e9,
        ("host_cpu_frequency_hertz", (("cpu", "1"),)): 1.8e9,
        ("host_cpu_frequency_hertz", (("cpu", "10"),)): 1.2e9,
        ("host_cpu_frequency_max_hertz", (("cpu", "0"),)): 3.5e9,
        ("host_cpu_frequency_max_hertz", (("cpu", "1"),)): 3.5e9,
        ("host_cpu_frequency_max_hertz", (("cpu", "10"),)): 2.4e9,
    }


def test_families_from_hand_made_sample():
    got = samples_of(CpufreqCollector().families((("3", 800000, None),)))
    assert got == {("host_cpu_frequency_hertz", (("cpu", "3"),)): 8e8}
    assert list(CpufreqCollector().families((("3", None, None),))) == []


def test_no_cpufreq_directory_is_not_available(tmp_path):
    (tmp_path / "devices" / "system" / "cpu" / "cpu0").mkdir(parents=True)
    with pytest.raises(NotAvailable, match="no cpu\\*/cpufreq directory in .*: no CPU frequency scaling driver"):
        CpufreqCollector(paths=Paths(sysfs=str(tmp_path))).sample()
    with pytest.raises(NotAvailable):
        CpufreqCollector(paths=Paths(sysfs=str(tmp_path / "nothing"))).sample()


def test_garbage_frequency_is_a_failure_naming_the_file(tmp_path):
    d = tmp_path / "devices" / "system" / "cpu" / "cpu0" / "cpufreq"
    d.mkdir(parents=True)
    (d / "scaling_cur_freq").write_text("<unknown>\n")
    with pytest.raises(ValueError, match=f"^{d / 'scaling_cur_freq'}: the value is not a whole number"):
        CpufreqCollector(paths=Paths(sysfs=str(tmp_path))).sample()


def test_live_sample_on_this_machine():
    """Served where the host has a frequency driver; not available, with the
    reason, where it has none (this test machine, a VM, has none)."""
    if not glob.glob("/sys/devices/system/cpu/cpu[0-9]*/cpufreq"):
        with pytest.raises(NotAvailable, match="cpufreq"):
            CpufreqCollector().sample()
        return
    got = samples_of(CpufreqCollector().collect())
    assert_well_formed(CpufreqCollector, got)
