"""Tests of the memory collector: /proc/meminfo and vmstat parsing on fixture
files, ratios and families."""

from __future__ import annotations

from pathlib import Path

import psutil
import pytest
from support import assert_well_formed, samples_of

from hostagent.collectors.base import Paths, fraction
from hostagent.collectors.memory import PAGE_SIZE, MemoryCollector, MemorySample, parse_meminfo, parse_swap_pages

FIXTURES = Path(__file__).parent / "fixtures" / "memory"
KIB = 1024


def test_fraction():
    assert fraction(1, 4) == 0.25
    assert fraction(0, 0) == 0.0
    assert fraction(5, -1) == 0.0
    assert fraction(-1, 4) == 0.0
    assert fraction(5, 4) == 1.0


def test_parse_meminfo_sizes_in_bytes_and_page_counts_as_they_are():
    info = parse_meminfo((FIXTURES / "proc" / "meminfo").read_text())
    assert info["MemTotal"] == 24683652 * KIB
    assert info["Cached"] == 760440 * KIB
    assert info["Committed_AS"] == 507880 * KIB
    assert info["Active(anon)"] == 1588 * KIB
    assert info["HugePages_Total"] == 64 and info["HugePages_Free"] == 60
    assert info["Hugepagesize"] == 2048 * KIB


def test_parse_meminfo_rejects_other_text():
    with pytest.raises(ValueError, match="not a /proc/meminfo text: no MemTotal, MemFree"):
        parse_meminfo("cpu  1 2 3\n")


def test_parse_swap_pages():
    assert parse_swap_pages((FIXTURES / "proc" / "vmstat").read_text()) == (25, 1024)
    # A kernel built without swap prints neither line.
    assert parse_swap_pages((FIXTURES / "old-kernel" / "vmstat").read_text()) == (0, 0)


def test_families_from_the_fixture_tree():
    got = samples_of(MemoryCollector(paths=Paths(procfs=str(FIXTURES / "proc"))).collect())
    gauges = {name: value for (name, _), value in got.items()}
    assert gauges == {
        "host_memory_total_bytes": 24683652 * KIB,
        "host_memory_available_bytes": 23878096 * KIB,
        "host_memory_free_bytes": 23228160 * KIB,
        # The page cache alone: Cached, not Cached + SReclaimable (760440 + 145880).
        "host_memory_cached_bytes": 760440 * KIB,
        "host_memory_buffers_bytes": 35760 * KIB,
        "host_memory_slab_reclaimable_bytes": 145880 * KIB,
        "host_memory_slab_unreclaimable_bytes": 29552 * KIB,
        "host_memory_dirty_bytes": 5388 * KIB,
        "host_memory_writeback_bytes": 16 * KIB,
        "host_memory_shared_bytes": 8956 * KIB,
        "host_memory_mapped_bytes": 54016 * KIB,
        "host_memory_page_tables_bytes": 3368 * KIB,
        "host_memory_committed_bytes": 507880 * KIB,
        "host_memory_commit_limit_bytes": 12341824 * KIB,
        "host_memory_hugepage_size_bytes": 2048 * KIB,
        "host_memory_hugepages": 64,
        "host_memory_hugepages_free": 60,
        "host_memory_used_bytes": (24683652 - 23878096) * KIB,
        "host_memory_usage_ratio": pytest.approx((24683652 - 23878096) / 24683652),
        "host_swap_total_bytes": 4194300 * KIB,
        "host_swap_free_bytes": 4190204 * KIB,
        "host_swap_used_bytes": 4096 * KIB,
        "host_swap_usage_ratio": pytest.approx(4096 / 4194300),
        "host_swap_in_bytes_total": 25 * PAGE_SIZE,
        "host_swap_out_bytes_total": 1024 * PAGE_SIZE,
    }
    assert set(gauges) == {spec.name for spec in MemoryCollector.metrics}


def test_old_kernel_without_memavailable_or_huge_pages():
    got = samples_of(MemoryCollector(paths=Paths(procfs=str(FIXTURES / "old-kernel"))).collect())
    names = {name for name, _ in got}
    # Estimated: free + cached + buffers.
    assert got[("host_memory_available_bytes", ())] == (101216 + 500000 + 20468) * KIB
    assert got[("host_memory_usage_ratio", ())] == pytest.approx(1 - (101216 + 500000 + 20468) / 1016476)
    # Fields the kernel does not print are left out, not served as 0.
    assert not names & {"host_memory_hugepages", "host_memory_hugepages_free", "host_memory_hugepage_size_bytes"}
    assert got[("host_swap_usage_ratio", ())] == 0.0 and got[("host_swap_in_bytes_total", ())] == 0


def test_families_types_follow_the_specs():
    sample = MemorySample(parse_meminfo((FIXTURES / "proc" / "meminfo").read_text()), 0, 0)
    types = {f.name: f.type for f in MemoryCollector().families(sample)}
    assert types["host_swap_in_bytes"] == types["host_swap_out_bytes"] == "counter"
    assert types == {spec.name.removesuffix("_total"): spec.type for spec in MemoryCollector.metrics}


def test_missing_procfs_is_a_failure(tmp_path):
    with pytest.raises(FileNotFoundError):
        MemoryCollector(paths=Paths(procfs=str(tmp_path))).sample()


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
