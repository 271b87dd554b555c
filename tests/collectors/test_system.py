"""Tests of the system collector: hwmon reading and naming, families."""

from __future__ import annotations

import dataclasses
import os
import time
from pathlib import Path
from typing import Dict, Optional

import psutil
import pytest
from support import assert_well_formed, samples_of

from hostagent.collectors.base import Paths
from hostagent.collectors.system import Reading, Sensor, SystemCollector, SystemSample, name_sensors, read_hwmon


def make_chip(sysfs: Path, hwmon: str, name: Optional[str], temps: Dict[int, tuple], subdir: str = "", fans: Optional[Dict[int, tuple]] = None) -> None:
    """A fake hwmon directory: temps (and fans) map N to (the input file's
    text, label or None)."""
    root = sysfs / "class" / "hwmon" / hwmon
    files = root / subdir if subdir else root
    files.mkdir(parents=True)
    if name is not None:
        (files / "name").write_text(name + "\n")
    for kind, inputs in (("temp", temps), ("fan", fans or {})):
        for index, (raw, label) in inputs.items():
            (files / f"{kind}{index}_input").write_text(raw + "\n")
            if label is not None:
                (files / f"{kind}{index}_label").write_text(label + "\n")


def hwmon(sysfs: Path) -> str:
    return str(sysfs / "class" / "hwmon")


def test_read_hwmon_reads_inputs_labels_and_names(tmp_path):
    make_chip(tmp_path, "hwmon0", "acpitz", {1: ("27800", None)})
    make_chip(tmp_path, "hwmon10", "nvme", {1: ("38850", "Composite")})
    make_chip(tmp_path, "hwmon2", "coretemp", {1: ("48000", "Package id 0"), 2: ("-5000", "Core 0")})
    make_chip(tmp_path, "hwmon3", "old", {1: ("30000", None)}, subdir="device")
    # An input that fails to parse is skipped, the rest of the chip is kept.
    (tmp_path / "class/hwmon/hwmon2/temp3_input").write_text("N/A\n")
    assert read_hwmon(hwmon(tmp_path)) == [
        Reading("hwmon0", "acpitz", 1, "", 27.8),
        Reading("hwmon2", "coretemp", 1, "Package id 0", 48.0),
        Reading("hwmon2", "coretemp", 2, "Core 0", -5.0),
        Reading("hwmon3", "old", 1, "", 30.0),
        Reading("hwmon10", "nvme", 1, "Composite", 38.85),
    ]


def test_read_hwmon_without_hwmon_class_is_empty(tmp_path):
    assert read_hwmon(hwmon(tmp_path)) == []


def test_read_hwmon_chip_without_name_uses_directory(tmp_path):
    make_chip(tmp_path, "hwmon4", None, {1: ("1000", None)})
    assert read_hwmon(hwmon(tmp_path)) == [Reading("hwmon4", "hwmon4", 1, "", 1.0)]


def test_read_hwmon_fans_beside_temperatures(tmp_path):
    # A Super I/O chip (nct6775) with labelled fans, a stopped one and one that
    # cannot be read; a laptop's fan under device/.
    make_chip(tmp_path, "hwmon1", "nct6775", {1: ("34000", "SYSTIN")}, fans={1: ("1024", "CPU fan"), 2: ("0", None), 10: ("812", None), 3: ("", None)})
    make_chip(tmp_path, "hwmon2", "thinkpad", {}, subdir="device", fans={1: ("2960", None)})
    assert read_hwmon(hwmon(tmp_path)) == [
        Reading("hwmon1", "nct6775", 1, "SYSTIN", 34.0, "temp"),
        Reading("hwmon1", "nct6775", 1, "CPU fan", 1024.0, "fan"),
        Reading("hwmon1", "nct6775", 2, "", 0.0, "fan"),
        Reading("hwmon1", "nct6775", 10, "", 812.0, "fan"),
        Reading("hwmon2", "thinkpad", 1, "", 2960.0, "fan"),
    ]
    s = SystemCollector(paths=Paths(sysfs=str(tmp_path))).sample()
    got = samples_of(SystemCollector().families(s))
    fans = {dict(labels)["chip"] + "/" + dict(labels)["sensor"]: v for (name, labels), v in got.items() if name == "host_hwmon_fan_rpm"}
    assert fans == {"nct6775/CPU fan": 1024.0, "nct6775/fan2": 0.0, "nct6775/fan10": 812.0, "thinkpad/fan1": 2960.0}
    assert got[("host_hwmon_temperature_celsius", (("chip", "nct6775"), ("sensor", "SYSTIN")))] == 34.0


def test_name_sensors_label_or_index():
    readings = [
        Reading("hwmon1", "coretemp", 1, "Package id 0", 50.0),
        Reading("hwmon1", "coretemp", 2, "", 40.0),
        Reading("hwmon1", "coretemp", 3, "Core", 41.0),
        Reading("hwmon1", "coretemp", 4, "Core", 42.0),
    ]
    assert name_sensors(readings) == (
        Sensor("coretemp", "Package id 0", 50.0),
        Sensor("coretemp", "temp2", 40.0),
        Sensor("coretemp", "temp3", 41.0),
        Sensor("coretemp", "temp4", 42.0),
    )


def test_name_sensors_label_clashing_with_an_index_name():
    readings = [Reading("hwmon1", "chip", 1, "temp2", 1.0), Reading("hwmon1", "chip", 2, "", 2.0)]
    assert name_sensors(readings) == (Sensor("chip", "temp1", 1.0), Sensor("chip", "temp2", 2.0))


def test_name_sensors_chips_sharing_a_name_get_their_directory():
    readings = [
        Reading("hwmon1", "nvme", 1, "Composite", 30.0),
        Reading("hwmon2", "nvme", 1, "Composite", 31.0),
        Reading("hwmon3", "acpitz", 1, "", 20.0),
    ]
    assert name_sensors(readings) == (
        Sensor("nvme_hwmon1", "Composite", 30.0),
        Sensor("nvme_hwmon2", "Composite", 31.0),
        Sensor("acpitz", "temp1", 20.0),
    )


def test_sample_reads_temperatures_from_configured_sysfs(tmp_path):
    make_chip(tmp_path, "hwmon0", "k10temp", {1: ("45125", "Tctl")})
    before = time.time()
    s = SystemCollector(paths=Paths(sysfs=str(tmp_path))).sample()
    assert s.sensors == (Sensor("k10temp", "Tctl", 45.125),)
    assert before <= s.time <= time.time()
    assert s.hostname == os.uname().nodename


def sample(**changes) -> SystemSample:
    base = SystemSample(
        boot_time=1700000000.0, time=1700003600.5, hostname="web1", system="Linux", release="6.1.0", machine="x86_64", users=2,
        sensors=(Sensor("coretemp", "Package id 0", 48.0), Sensor("nvme", "Composite", 38.85), Sensor("nvme", "fan1", 900.0, "fan")),
    )
    return dataclasses.replace(base, **changes)


def test_families_exact_output():
    assert samples_of(SystemCollector().families(sample())) == {
        ("host_boot_time_seconds", ()): 1700000000.0,
        ("host_time_seconds", ()): 1700003600.5,
        ("host_os_info", (("hostname", "web1"), ("machine", "x86_64"), ("release", "6.1.0"), ("system", "Linux"))): 1.0,
        ("host_users", ()): 2,
        ("host_hwmon_temperature_celsius", (("chip", "coretemp"), ("sensor", "Package id 0"))): 48.0,
        ("host_hwmon_temperature_celsius", (("chip", "nvme"), ("sensor", "Composite"))): 38.85,
        ("host_hwmon_fan_rpm", (("chip", "nvme"), ("sensor", "fan1"))): 900.0,
    }


def test_families_without_sensors_omit_the_sensor_families():
    names = [f.name for f in SystemCollector().families(sample(sensors=()))]
    assert names == ["host_boot_time_seconds", "host_time_seconds", "host_os_info", "host_users"]


def test_real_machine_output_is_well_formed():
    got = samples_of(SystemCollector().collect())
    assert {name for name, _ in got} >= {spec.name for spec in SystemCollector.metrics} - {"host_hwmon_temperature_celsius", "host_hwmon_fan_rpm"}
    assert_well_formed(SystemCollector, got, non_negative=False)
    info = [dict(labels) for name, labels in got if name == "host_os_info"]
    assert info == [{"hostname": os.uname().nodename, "system": "Linux", "release": os.uname().release, "machine": os.uname().machine}]
    assert got[("host_boot_time_seconds", ())] == pytest.approx(psutil.boot_time())
    assert got[("host_time_seconds", ())] == pytest.approx(time.time(), abs=60)
    assert got[("host_boot_time_seconds", ())] < got[("host_time_seconds", ())]
    assert got[("host_users", ())] == len(psutil.users())
    # This machine may have no sensors; then the family must be absent, not empty.
    kinds = {r.kind for r in read_hwmon("/sys/class/hwmon")}
    assert any(name == "host_hwmon_temperature_celsius" for name, _ in got) == ("temp" in kinds)
    assert any(name == "host_hwmon_fan_rpm" for name, _ in got) == ("fan" in kinds)


def test_name_sensors_one_chip_name_for_every_kind_and_clashes_within_a_kind():
    readings = [
        Reading("hwmon1", "nvme", 1, "Composite", 30.0),
        Reading("hwmon2", "nvme", 1, "Composite", 31.0),
        Reading("hwmon2", "nvme", 1, "Composite", 900.0, "fan"),
        Reading("hwmon2", "nvme", 2, "Pump", 700.0, "fan"),
        Reading("hwmon2", "nvme", 3, "Pump", 710.0, "fan"),
    ]
    assert name_sensors(readings) == (
        Sensor("nvme_hwmon1", "Composite", 30.0),
        Sensor("nvme_hwmon2", "Composite", 31.0),
        # A fan may share a temperature's label: they are different families.
        Sensor("nvme_hwmon2", "Composite", 900.0, "fan"),
        Sensor("nvme_hwmon2", "fan2", 700.0, "fan"),
        Sensor("nvme_hwmon2", "fan3", 710.0, "fan"),
    )
