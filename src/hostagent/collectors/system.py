"""Boot time, wall clock, OS identity, logged-in users, hwmon temperatures and fans.

Temperatures and fan speeds are read from ``<sysfs>/class/hwmon`` (the same
files psutil's ``sensors_temperatures`` reads) so a containerised agent can be
pointed at the host's /sys; on machines without such sensors the family is
not emitted.

    host_boot_time_seconds 1.795375066e+09
    host_time_seconds 1.795376012e+09
    host_os_info{hostname="web1",machine="x86_64",release="6.1.0-18-amd64",system="Linux"} 1.0
    host_users 2.0
    host_hwmon_temperature_celsius{chip="coretemp",sensor="Package id 0"} 48.0
    host_hwmon_fan_rpm{chip="nct6775",sensor="CPU fan"} 1024.0
"""

from __future__ import annotations

import glob
import os
import re
import time
from collections import Counter
from dataclasses import dataclass
from typing import Iterator, List, NamedTuple, Optional, Sequence, Tuple

import psutil
from ..promclient import Metric

from .base import BaseCollector, MetricSpec, register

BOOT_TIME = MetricSpec("host_boot_time_seconds", "gauge", "Time the host booted, in seconds since the Unix epoch.", (), "seconds")
TIME = MetricSpec(
    "host_time_seconds",
    "gauge",
    "The host's wall clock when the system collector's snapshot was taken, in seconds since the Unix epoch "
    "(not the time of the scrape: it lags it by up to the collector's interval).",
    (),
    "seconds",
)
OS_INFO = MetricSpec("host_os_info", "gauge", "Host name and operating system identity; always 1.", ("hostname", "system", "release", "machine"))
USERS = MetricSpec("host_users", "gauge", "Number of logged-in user sessions.", ())
TEMPERATURE = MetricSpec("host_hwmon_temperature_celsius", "gauge", "Temperature reported by a hardware monitoring sensor.", ("chip", "sensor"), "celsius")
FAN = MetricSpec("host_hwmon_fan_rpm", "gauge", "Fan speed reported by a hardware monitoring sensor, in revolutions per minute.", ("chip", "sensor"), "rpm")

# hwmon input kinds read: (file prefix, divisor from the sysfs value to the unit served).
KINDS: Tuple[Tuple[str, float], ...] = (("temp", 1000.0), ("fan", 1.0))


class Reading(NamedTuple):
    """One sensor input as found in sysfs, before naming."""

    hwmon: str  # directory name, e.g. hwmon2
    chip: str  # content of its name file, e.g. coretemp
    index: int  # N of tempN_input
    label: str  # content of tempN_label, or ""
    value: float  # degrees Celsius for temp, RPM for fan
    kind: str = "temp"  # the file prefix: temp or fan


@dataclass(frozen=True)
class Sensor:
    """A named sensor: (chip, sensor) is unique among a sample's sensors of one kind."""

    chip: str
    sensor: str
    value: float
    kind: str = "temp"


@dataclass(frozen=True)
class SystemSample:
    """Host identity and clock figures of one run."""

    boot_time: float
    time: float
    hostname: str
    system: str
    release: str
    machine: str
    users: int
    sensors: Tuple[Sensor, ...]


def _read_line(path: str) -> Optional[str]:
    try:
        with open(path) as f:
            return f.readline().strip()
    except OSError:
        return None


def _natural(name: str) -> Tuple[str, int]:
    match = re.match(r"(\D*)(\d*)", name)
    prefix, digits = match.groups() if match else (name, "")
    return prefix, int(digits) if digits else -1


def read_hwmon(hwmon_class: str) -> List[Reading]:
    """Every readable temperature and fan input under ``hwmon_class``
    (``<sysfs>/class/hwmon``)."""
    try:
        entries = sorted(os.listdir(hwmon_class), key=_natural)
    except FileNotFoundError:
        return []
    readings = []
    for hwmon in entries:
        root = os.path.join(hwmon_class, hwmon)
        # Some drivers keep their files one level down, in device/.
        chip = _read_line(os.path.join(root, "name")) or _read_line(os.path.join(root, "device", "name")) or hwmon
        for kind, divisor in KINDS:
            inputs = glob.glob(os.path.join(root, f"{kind}*_input")) or glob.glob(os.path.join(root, "device", f"{kind}*_input"))
            for path in sorted(inputs, key=lambda p: _natural(os.path.basename(p))):
                match = re.fullmatch(rf"{kind}(\d+)_input", os.path.basename(path))
                raw = _read_line(path)
                if match is None or raw is None:
                    continue  # a sensor that fails to read (EIO, ENODATA) is skipped, not fatal
                try:
                    value = int(raw)
                except ValueError:
                    continue
                label = _read_line(path[: -len("_input")] + "_label") or ""
                readings.append(Reading(hwmon, chip, int(match.group(1)), label, value / divisor, kind))
    return readings


def name_sensors(readings: Sequence[Reading]) -> Tuple[Sensor, ...]:
    """Give each reading a (chip, sensor) pair that is unique among the
    result's sensors of its kind.

    The chip is its driver name, suffixed with the hwmon directory when
    several directories share a name (two NVMe drives), the same for every
    kind. The sensor is its label, or ``<kind><N>`` (``temp1``, ``fan2``)
    when the label is empty or not unique in the chip."""
    dirs_per_chip = Counter(chip for chip, _ in {(r.chip, r.hwmon) for r in readings})
    chips = [r.chip if dirs_per_chip[r.chip] == 1 else f"{r.chip}_{r.hwmon}" for r in readings]
    index_names = [f"{r.kind}{r.index}" for r in readings]
    sensors = [r.label or name for r, name in zip(readings, index_names)]
    while True:
        keys = list(zip((r.kind for r in readings), chips, sensors))
        seen = Counter(keys)
        clashes = [i for i, key in enumerate(keys) if seen[key] > 1 and sensors[i] != index_names[i]]
        if not clashes:
            break
        # Each pass renames at least one sensor to its index name, so this ends.
        for i in clashes:
            sensors[i] = index_names[i]
    return tuple(Sensor(c, s, r.value, r.kind) for c, s, r in zip(chips, sensors, readings))


@register
class SystemCollector(BaseCollector):
    """Boot time, clock, OS identity, users, temperatures and fan speeds."""

    name = "system"
    help = "Boot time, wall clock, OS identity, logged-in users, hardware temperatures and fan speeds"
    metrics = (BOOT_TIME, TIME, OS_INFO, USERS, TEMPERATURE, FAN)

    def sample(self) -> SystemSample:
        """Read the clock, uname, utmp sessions and hwmon sensors."""
        uname = os.uname()
        return SystemSample(
            boot_time=psutil.boot_time(),
            time=time.time(),
            hostname=uname.nodename,
            system=uname.sysname,
            release=uname.release,
            machine=uname.machine,
            users=len(psutil.users()),
            sensors=name_sensors(read_hwmon(self.paths.sys("class", "hwmon"))),
        )

    def families(self, sample: SystemSample) -> Iterator[Metric]:
        """Metric families of one sample; sensor families only when there are any."""
        yield BOOT_TIME.single(sample.boot_time)
        yield TIME.single(sample.time)
        fam = OS_INFO.family()
        fam.add_metric([sample.hostname, sample.system, sample.release, sample.machine], 1)
        yield fam
        yield USERS.single(sample.users)
        for spec, kind in ((TEMPERATURE, "temp"), (FAN, "fan")):
            sensors = [s for s in sample.sensors if s.kind == kind]
            if sensors:
                fam = spec.family()
                for s in sensors:
                    fam.add_metric([s.chip, s.sensor], s.value)
                yield fam
