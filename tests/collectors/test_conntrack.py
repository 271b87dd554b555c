"""Tests of the conntrack collector."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from support import assert_well_formed, samples_of

from hostagent.collectors.base import NotAvailable, Paths
from hostagent.collectors.conntrack import ConntrackCollector

FIXTURE_PROC = Path(__file__).parent / "fixtures" / "conntrack" / "proc"


def test_fixture_sample_and_families():
    collector = ConntrackCollector(paths=Paths(procfs=str(FIXTURE_PROC)))
    assert collector.sample() == (1234, 262144)
    fams = list(collector.families(collector.sample()))
    assert [(f.name, f.type) for f in fams] == [("host_conntrack_entries", "gauge"), ("host_conntrack_entries_limit", "gauge")]


def test_families_from_hand_made_sample():
    assert samples_of(ConntrackCollector().families((7, 65536))) == {
        ("host_conntrack_entries", ()): 7,
        ("host_conntrack_entries_limit", ()): 65536,
    }


def test_module_not_loaded_is_not_available(tmp_path):
    (tmp_path / "sys" / "net").mkdir(parents=True)
    with pytest.raises(NotAvailable, match="nf_conntrack_count: the nf_conntrack module is not loaded"):
        ConntrackCollector(paths=Paths(procfs=str(tmp_path))).sample()


def test_garbage_is_a_failure_naming_the_file(tmp_path):
    base = tmp_path / "sys" / "net" / "netfilter"
    base.mkdir(parents=True)
    (base / "nf_conntrack_count").write_text("12\n")
    (base / "nf_conntrack_max").write_text("lots\n")
    with pytest.raises(ValueError, match=f"^{base / 'nf_conntrack_max'}: the value is not a whole number: 'lots'"):
        ConntrackCollector(paths=Paths(procfs=str(tmp_path))).sample()


@pytest.mark.skipif(not os.path.exists("/proc/sys/net/netfilter/nf_conntrack_count"), reason="nf_conntrack is not loaded here")
def test_live_sample_on_this_machine():
    got = samples_of(ConntrackCollector().collect())
    assert_well_formed(ConntrackCollector, got)
    assert 0 <= got[("host_conntrack_entries", ())] <= got[("host_conntrack_entries_limit", ())]
    assert got[("host_conntrack_entries_limit", ())] > 0


def test_unreadable_source_is_a_failure_naming_the_file(tmp_path):
    base = tmp_path / "sys" / "net" / "netfilter"
    (base / "nf_conntrack_count").mkdir(parents=True)  # read() of a directory fails with EISDIR
    with pytest.raises(IsADirectoryError, match=f"Is a directory: '{base / 'nf_conntrack_count'}'"):
        ConntrackCollector(paths=Paths(procfs=str(tmp_path))).sample()
