"""Boot time, wall clock, OS identity, logged-in users and hwmon temperatures.

Temperatures are read from ``<sysfs>/class/hwmon`` (the same files psutil's
``sensors_temperatures`` reads) so a containerised agent can be pointed at
the host's /sys; on machines without sensors the family is not emitted.

    host_boot_time_seconds 1.795375066e+09
    host_time_seconds 1.795376012e+09
    host_os_info{hostname="web1",machine="x86_64",release="6.1.0-18-amd64",system="Linux"} 1.0
    host_users 2.0
    host_hwmon_temperature_celsius{chip="coretemp",sensor="Package id 0"} 48.0
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


class Reading(NamedTuple):
    """One temperature input as found in sysfs, before naming."""

    hwmon: str  # directory name, e.g. hwmon2
    chip: str  # content of its name file, e.g. coretemp
    index: int  # N of tempN_input
    label: str  # content of tempN_label, or ""
    celsius: float


@dataclass(frozen=True)
class Temperature:
    """A named temperature sensor: (chip, sensor) is unique in a sample."""

    chip: str
    sensor: str
    celsius: float


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
    temperatures: Tuple[Temperature, ...]


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


def read_hwmon(sysfs: str) -> List[Reading]:
    """Every readable temperature input under <sysfs>/class/hwmon."""
    base = os.path.join(sysfs, "class", "hwmon")
    try:
        entries = sorted(os.listdir(base), key=_natural)
    except FileNotFoundError:
        return []
    readings = []
    for hwmon in entries:
        root = os.path.join(base, hwmon)
        # Some drivers keep their files one level down, in device/.
        chip = _read_line(os.path.join(root, "name")) or _read_line(os.path.join(root, "device", "name")) or hwmon
        inputs = glob.glob(os.path.join(root, "temp*_input")) or glob.glob(os.path.join(root, "device", "temp*_input"))
        for path in sorted(inputs):
            match = re.fullmatch(r"temp(\d+)_input", os.path.basename(path))
            raw = _read_line(path)
            if match is None or raw is None:
                continue  # a sensor that fails to read (EIO, ENODAT) is skipped, not fatal
            try:
                millidegrees = int(raw)
            except ValueError:
                continue
            label = _read_line(path[: -len("_input")] + "_label") or ""
            readings.append(Reading(hwmon, chip, int(match.group(1)), label, millidegrees / 1000.0))
    return readings


def name_temperatures(readings: Sequence[Reading]) -> Tuple[Temperature, ...]:
    """Give each reading a (chip, sensor) pair that is unique in the result.

    The chip is its driver name, suffixed with the hwmon directory when
    several directories share a name (two NVMe drives). The sensor is its
    label, or ``temp<N>`` when the label is empty or not unique in the chip."""
    dirs_per_chip = Counter(chip for chip, _ in {(r.chip, r.hwmon) for r in readings})
    chips = [r.chip if dirs_per_chip[r.chip] == 1 else f"{r.chip}_{r.hwmon}" for r in readings]
    sensors = [r.label or f"temp{r.index}" for r in readings]
    while True:
        seen = Counter(zip(chips, sensors))
        clashes = [i for i, key in enumerate(zip(chips, sensors)) if seen[key] > 1 and sensors[i] != f"temp{readings[i].index}"]
        if not clashes:
            break
        # Each pass renames at least one sensor to its index name, so this ends.
        for i in clashes:
            sensors[i] = f"temp{readings[i].index}"
    return tuple(Temperature(c, s, r.celsius) for c, s, r in zip(chips, sensors, readings))


@register
class SystemCollector(BaseCollector):
    """Boot time, clock, OS identity, users and temperatures."""

    name = "system"
    help = "Boot time, wall clock, OS identity, logged-in users and hardware temperatures"
    metrics = (
        MetricSpec("host_boot_time_seconds", "gauge", "Time the host booted, in seconds since the Unix epoch.", (), "seconds"),
        MetricSpec("host_time_seconds", "gauge", "The host's wall clock, in seconds since the Unix epoch.", (), "seconds"),
        MetricSpec("host_os_info", "gauge", "Host name and operating system identity; always 1.", ("hostname", "system", "release", "machine")),
        MetricSpec("host_users", "gauge", "Number of logged-in user sessions.", ()),
        MetricSpec("host_hwmon_temperature_celsius", "gauge", "Temperature reported by a hardware monitoring sensor.", ("chip", "sensor"), "celsius"),
    )

    def sample(self) -> SystemSample:
        """Read the clock, uname, utmp sessions and hwmon temperatures."""
        uname = os.uname()
        return SystemSample(
            boot_time=psutil.boot_time(),
            time=time.time(),
            hostname=uname.nodename,
            system=uname.sysname,
            release=uname.release,
            machine=uname.machine,
            users=len(psutil.users()),
            temperatures=name_temperatures(read_hwmon(self.paths.sysfs)),
        )

    def families(self, sample: SystemSample) -> Iterator[Metric]:
        """Metric families of one sample; temperatures only when there are any."""
        boot, now, info, users, temperature = self.metrics
        yield boot.single(sample.boot_time)
        yield now.single(sample.time)
        fam = info.family()
        fam.add_metric([sample.hostname, sample.system, sample.release, sample.machine], 1)
        yield fam
        yield users.single(sample.users)
        if sample.temperatures:
            fam = temperature.family()
            for t in sample.temperatures:
                fam.add_metric([t.chip, t.sensor], t.celsius)
            yield fam
