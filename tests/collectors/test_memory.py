"""Tests of the memory collector: ratios, psutil figures to sample, families."""

from __future__ import annotations

from collections import namedtuple

import psutil
import pytest
from support import assert_well_formed, samples_of

from hostagent.collectors.memory import MemoryCollector, MemorySample, fraction

VM = namedtuple("VM", "total available percent used free active inactive buffers cached shared slab")
SWAP = namedtuple("SWAP", "total used free percent sin sout")
GIB = 1 << 30


def test_fraction():
    assert fraction(1, 4) == 0.25
    assert fraction(0, 0) == 0.0
    assert fraction(5, -1) == 0.0
    assert fraction(-1, 4) == 0.0
    assert fraction(5, 4) == 1.0


def test_sample_from_psutil_figures(mocker):
    # "used" as psutil reports it is ignored: the sample defines it as total - available.
    mocker.patch("psutil.virtual_memory", return_value=VM(8 * GIB, 6 * GIB, 25.0, 999, 3 * GIB, 0, 0, 100, 2 * GIB, 0, 0))
    mocker.patch("psutil.swap_memory", return_value=SWAP(4 * GIB, GIB, 3 * GIB, 25.0, 4096, 8192))
    s = MemoryCollector().sample()
    assert s == MemorySample(
        total=8 * GIB, available=6 * GIB, used=2 * GIB, free=3 * GIB, cached=2 * GIB, buffers=100, usage_ratio=0.25,
        swap_total=4 * GIB, swap_used=GIB, swap_free=3 * GIB, swap_in=4096, swap_out=8192, swap_usage_ratio=0.25,
    )


def test_sample_without_swap_has_zero_swap_ratio(mocker):
    mocker.patch("psutil.virtual_memory", return_value=VM(GIB, GIB, 0.0, 0, GIB, 0, 0, 0, 0, 0, 0))
    mocker.patch("psutil.swap_memory", return_value=SWAP(0, 0, 0, 0.0, 0, 0))
    s = MemoryCollector().sample()
    assert s.swap_usage_ratio == 0.0
    assert s.usage_ratio == 0.0


def test_families_exact_output():
    sample = MemorySample(
        total=1000, available=600, used=400, free=300, cached=200, buffers=50, usage_ratio=0.4,
        swap_total=100, swap_used=10, swap_free=90, swap_in=4096, swap_out=8192, swap_usage_ratio=0.1,
    )
    assert samples_of(MemoryCollector().families(sample)) == {
        ("host_memory_total_bytes", ()): 1000,
        ("host_memory_available_bytes", ()): 600,
        ("host_memory_used_bytes", ()): 400,
        ("host_memory_free_bytes", ()): 300,
        ("host_memory_cached_bytes", ()): 200,
        ("host_memory_buffers_bytes", ()): 50,
        ("host_memory_usage_ratio", ()): 0.4,
        ("host_swap_total_bytes", ()): 100,
        ("host_swap_used_bytes", ()): 10,
        ("host_swap_free_bytes", ()): 90,
        ("host_swap_usage_ratio", ()): 0.1,
        ("host_swap_in_bytes_total", ()): 4096,
        ("host_swap_out_bytes_total", ()): 8192,
    }


def test_families_types_follow_the_specs():
    types = {f.name: f.type for f in MemoryCollector().families(MemoryCollector().sample())}
    assert types["host_swap_in_bytes"] == types["host_swap_out_bytes"] == "counter"
    assert types == {spec.name.removesuffix("_total"): spec.type for spec in MemoryCollector.metrics}


def test_real_machine_output_is_well_formed():
    got = samples_of(MemoryCollector().collect())
    assert {name for name, _ in got} == {spec.name for spec in MemoryCollector.metrics}
    assert_well_formed(MemoryCollector, got)
    for (name, labels), value in got.items():
        if name.endswith("_ratio"):
            assert value <= 1, (name, value)
    total = got[("host_memory_total_bytes", ())]
    assert total == psutil.virtual_memory().total
    assert got[("host_memory_available_bytes", ())] <= total
    assert got[("host_memory_usage_ratio", ())] == pytest.approx(got[("host_memory_used_bytes", ())] / total)
