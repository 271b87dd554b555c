"""Tests of the connections collector: /proc/net table parsing and families."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from support import samples_of

from hostagent.collectors.base import Paths
from hostagent.collectors.connections import (
    TCP_STATES,
    ConnectionsCollector,
    KindCounts,
    count_states,
    read_table,
    state_name,
)

FIXTURE_PROC = Path(__file__).parent / "fixtures" / "connections" / "proc"
METRIC = "host_network_connections"


def test_state_names_for_tcp_and_udp():
    assert state_name("tcp", "0A") == "LISTEN"
    assert state_name("tcp6", "0c") == "NEW_SYN_RECV"
    assert state_name("tcp", "0D") == "UNKNOWN"
    assert state_name("udp", "01") == "ESTABLISHED"
    assert state_name("udp6", "07") == "NONE"


def test_count_states_of_fixture_tcp_table():
    counts = dict(read_table(str(FIXTURE_PROC / "net" / "tcp"), "tcp").counts)
    expected = dict.fromkeys(TCP_STATES.values(), 0)
    expected.update(LISTEN=2, ESTABLISHED=3, TIME_WAIT=1, CLOSE_WAIT=1, SYN_SENT=1, NEW_SYN_RECV=1)
    assert counts == expected


def test_count_states_keeps_kernel_order_and_counts_unknown_states():
    table = read_table(str(FIXTURE_PROC / "net" / "tcp6"), "tcp6")
    states = [state for state, _ in table.counts]
    assert states == list(TCP_STATES.values()) + ["UNKNOWN"]
    assert dict(table.counts)["LISTEN"] == 1 and dict(table.counts)["UNKNOWN"] == 1


def test_count_states_of_udp_table():
    assert read_table(str(FIXTURE_PROC / "net" / "udp"), "udp") == KindCounts("udp", (("ESTABLISHED", 1), ("NONE", 2)))


def test_empty_table_still_has_every_state():
    table = count_states("tcp", ["  sl  local_address rem_address   st tx_queue\n", "\n"])
    assert dict(table.counts) == dict.fromkeys(TCP_STATES.values(), 0)


def test_missing_table_is_skipped(tmp_path):
    assert read_table(str(tmp_path / "udp6"), "udp6") is None


def test_no_table_at_all_is_a_failure_not_zero_sockets(tmp_path):
    (tmp_path / "net").mkdir()
    collector = ConnectionsCollector(paths=Paths(procfs=str(tmp_path)))
    with pytest.raises(FileNotFoundError, match="none of the socket tables tcp, tcp6, udp, udp6 in"):
        collector.sample()


def test_fixture_proc_sample_and_exposition():
    collector = ConnectionsCollector(paths=Paths(procfs=str(FIXTURE_PROC)))
    sample = collector.sample()
    assert [t.kind for t in sample] == ["tcp", "tcp6", "udp"]  # no udp6 file: skipped
    got = samples_of(collector.families(sample))
    assert got[(METRIC, (("kind", "tcp"), ("state", "ESTABLISHED")))] == 3
    assert got[(METRIC, (("kind", "tcp"), ("state", "CLOSING")))] == 0
    assert got[(METRIC, (("kind", "tcp6"), ("state", "UNKNOWN")))] == 1
    assert got[(METRIC, (("kind", "udp"), ("state", "NONE")))] == 2
    assert not any(dict(labels)["kind"] == "udp6" for _, labels in got)
    assert len(got) == 12 + 13 + 2


def test_families_from_hand_made_sample():
    sample = (KindCounts("tcp", (("ESTABLISHED", 4), ("LISTEN", 2))), KindCounts("udp6", (("NONE", 1),)))
    fams = list(ConnectionsCollector().families(sample))
    assert [f.name for f in fams] == [METRIC]
    assert fams[0].type == "gauge"
    assert samples_of(fams) == {
        (METRIC, (("kind", "tcp"), ("state", "ESTABLISHED"))): 4,
        (METRIC, (("kind", "tcp"), ("state", "LISTEN"))): 2,
        (METRIC, (("kind", "udp6"), ("state", "NONE"))): 1,
    }


def test_real_machine_sees_our_own_sockets():
    collector = ConnectionsCollector()
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        with socket.create_connection(server.getsockname()):
            peer, _ = server.accept()
            with peer:
                fams = list(collector.collect())
    spec = ConnectionsCollector.metrics[0]
    got = samples_of(fams)
    assert {f.name for f in fams} == {spec.name}
    for (name, labels), value in got.items():
        assert tuple(k for k, _ in labels) == tuple(sorted(spec.labels))
        assert value >= 0 and value == int(value)
    assert got[(METRIC, (("kind", "tcp"), ("state", "LISTEN")))] >= 1
    # Both ends of the loopback connection are in the table.
    assert got[(METRIC, (("kind", "tcp"), ("state", "ESTABLISHED")))] >= 2
    for state in TCP_STATES.values():
        assert (METRIC, (("kind", "tcp"), ("state", state))) in got
