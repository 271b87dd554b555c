"""Tests of the sockstat collector."""

from __future__ import annotations

from pathlib import Path

import pytest
from support import assert_well_formed, samples_of

from hostagent.collectors.base import Paths
from hostagent.collectors.sockstat import SockstatCollector, SockstatSample, parse_sockstat, parse_tcp_mem

FIXTURE_PROC = Path(__file__).parent / "fixtures" / "sockstat" / "proc"


def test_parse_fixture():
    stat = parse_sockstat((FIXTURE_PROC / "net" / "sockstat").read_text())
    assert stat["sockets"] == {"used": 231}
    assert stat["TCP"] == {"inuse": 19, "orphan": 2, "tw": 321, "alloc": 25, "mem": 7}
    assert stat["FRAG"] == {"inuse": 0, "memory": 0}
    assert parse_tcp_mem((FIXTURE_PROC / "sys" / "net" / "ipv4" / "tcp_mem").read_text()) == 575796


@pytest.mark.parametrize("text, message", [
    ("TCP: inuse 1 orphan 0 tw 0 alloc 1 mem 0\n", "no 'sockets: ... used' figure"),
    ("sockets: used 3\nTCP: inuse 1 orphan\n", "not a 'protocol: key value ...' line"),
    ("sockets used 3\n", "not a 'protocol: key value ...' line"),
    ("sockets: used 3\nTCP: inuse 1 orphan 0 mem x\n", "TCP mem is not a whole number"),
])
def test_parse_rejects_garbage(text, message):
    with pytest.raises(ValueError, match=message):
        parse_sockstat(text)


def test_tcp_mem_needs_three_values():
    with pytest.raises(ValueError, match="expected three page counts"):
        parse_tcp_mem("1 2\n")


def test_fixture_sample_converts_pages_to_bytes():
    collector = SockstatCollector(paths=Paths(procfs=str(FIXTURE_PROC)))
    sample = collector.sample()
    assert (sample.sockets_used, sample.tcp_orphans, sample.tcp_memory_pages, sample.tcp_memory_limit_pages) == (231, 2, 7, 575796)
    got = samples_of(collector.families(sample))
    assert got == {
        ("host_sockets_used", ()): 231,
        ("host_tcp_orphan_sockets", ()): 2,
        ("host_tcp_memory_bytes", ()): 7 * sample.page_size,
        ("host_tcp_memory_limit_bytes", ()): 575796 * sample.page_size,
    }


def test_families_from_hand_made_sample_with_and_without_limit():
    fams = list(SockstatCollector().families(SockstatSample(5, 1, 3, 100, page_size=16384)))
    assert [(f.name, f.type) for f in fams] == [
        ("host_sockets_used", "gauge"), ("host_tcp_orphan_sockets", "gauge"),
        ("host_tcp_memory_bytes", "gauge"), ("host_tcp_memory_limit_bytes", "gauge"),
    ]
    assert samples_of(fams)[("host_tcp_memory_limit_bytes", ())] == 100 * 16384
    assert samples_of(fams)[("host_tcp_memory_bytes", ())] == 3 * 16384
    names = {f.name for f in SockstatCollector().families(SockstatSample(5, 1, 3, None))}
    assert "host_tcp_memory_limit_bytes" not in names and len(names) == 3


def test_unreadable_tcp_mem_leaves_the_limit_out(tmp_path):
    (tmp_path / "net").mkdir()
    (tmp_path / "net" / "sockstat").write_text((FIXTURE_PROC / "net" / "sockstat").read_text())
    sample = SockstatCollector(paths=Paths(procfs=str(tmp_path))).sample()
    assert sample.tcp_memory_limit_pages is None and sample.sockets_used == 231


def test_missing_sockstat_is_a_failure_naming_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="net/sockstat"):
        SockstatCollector(paths=Paths(procfs=str(tmp_path))).sample()


def test_live_sample_on_this_machine():
    got = samples_of(SockstatCollector().collect())
    assert_well_formed(SockstatCollector, got)
    assert got[("host_sockets_used", ())] > 0
    assert got[("host_tcp_memory_limit_bytes", ())] > 0
