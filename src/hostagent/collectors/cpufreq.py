"""CPU clock frequencies from ``<sysfs>/devices/system/cpu/cpu<N>/cpufreq``.

``scaling_cur_freq`` is the frequency the scaling driver last saw or set
(readable by anyone, unlike ``cpuinfo_cur_freq``, which is read instead only
where the first is missing), ``cpuinfo_max_freq`` the hardware maximum; both
in kHz, served in hertz. Virtual machines and some ARM boards have no
cpufreq driver, and then the collector is not available::

    host_cpu_frequency_hertz{cpu="0"} 2.2e+09
    host_cpu_frequency_max_hertz{cpu="0"} 3.5e+09
"""

from __future__ import annotations

import os
import re
from typing import Iterator, Optional, Tuple

from ..promclient import Metric

from ._procfs import read_int
from .base import BaseCollector, MetricSpec, NotAvailable, register

FREQUENCY = MetricSpec("host_cpu_frequency_hertz", "gauge", "Current clock frequency of the CPU as the scaling driver reports it (scaling_cur_freq).", ("cpu",), "hertz")
MAX_FREQUENCY = MetricSpec("host_cpu_frequency_max_hertz", "gauge", "Highest clock frequency the CPU supports (cpuinfo_max_freq).", ("cpu",), "hertz")

KHZ = 1000
_CPU_DIR = re.compile(r"cpu(\d+)")

# (cpu number, current kHz or None, maximum kHz or None), by cpu number.
CpufreqSample = Tuple[Tuple[str, Optional[int], Optional[int]], ...]


def read_khz(directory: str, *names: str) -> Optional[int]:
    """The first of ``names`` present in ``directory``, or None when none is."""
    for name in names:
        try:
            return read_int(os.path.join(directory, name))
        except FileNotFoundError:
            continue
    return None


@register
class CpufreqCollector(BaseCollector):
    """Current and maximum clock frequency per CPU."""

    name = "cpufreq"
    help = "CPU clock frequency per core, current and maximum, where a cpufreq driver runs (2 series per core)"
    metrics = (FREQUENCY, MAX_FREQUENCY)

    def sample(self) -> CpufreqSample:
        base = self.paths.sys("devices", "system", "cpu")
        try:
            entries = os.listdir(base)
        except FileNotFoundError:
            entries = []
        cpus = sorted(int(m.group(1)) for m in map(_CPU_DIR.fullmatch, entries) if m)
        dirs = [(str(n), os.path.join(base, f"cpu{n}", "cpufreq")) for n in cpus]
        dirs = [(cpu, d) for cpu, d in dirs if os.path.isdir(d)]
        if not dirs:
            raise NotAvailable(f"no cpu*/cpufreq directory in {base}: no CPU frequency scaling driver (common in virtual machines)")
        # An offline CPU keeps its directory but may lose the files: None.
        return tuple((cpu, read_khz(d, "scaling_cur_freq", "cpuinfo_cur_freq"), read_khz(d, "cpuinfo_max_freq")) for cpu, d in dirs)

    def families(self, sample: CpufreqSample) -> Iterator[Metric]:
        current, maximum = FREQUENCY.family(), MAX_FREQUENCY.family()
        for cpu, cur_khz, max_khz in sample:
            if cur_khz is not None:
                current.add_metric([cpu], cur_khz * KHZ)
            if max_khz is not None:
                maximum.add_metric([cpu], max_khz * KHZ)
        yield from (fam for fam in (current, maximum) if fam.samples)
