"""Tests of the netstat collector: /proc/net/snmp, netstat and snmp6 parsing and families."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from support import assert_well_formed, samples_of

from hostagent.collectors.base import Paths
from hostagent.collectors.netstat import FAMILIES, NetstatCollector, parse_snmp6, parse_table_pairs

FIXTURE_PROC = Path(__file__).parent / "fixtures" / "netstat" / "proc"
NET = FIXTURE_PROC / "net"

EXPECTED = {
    "host_tcp_active_opens_total": 5123,
    "host_tcp_passive_opens_total": 4211,
    "host_tcp_segments_received_total": 987654,
    "host_tcp_segments_sent_total": 876543,
    "host_tcp_retransmitted_segments_total": 321,
    "host_tcp_syn_retransmits_total": 13,
    "host_tcp_listen_overflows_total": 7,
    "host_tcp_listen_drops_total": 9,
    "host_tcp_receive_errors_total": 4,
    "host_tcp_resets_sent_total": 77,
    # IPv4 + IPv6
    "host_udp_receive_errors_total": 5 + 50,
    "host_udp_receive_buffer_errors_total": 2 + 20,
    "host_udp_send_buffer_errors_total": 1 + 10,
    "host_udp_no_ports_total": 6 + 60,
}


def test_parse_snmp_fixture_pairs_headers_with_values():
    values = parse_table_pairs((NET / "snmp").read_text())
    assert values["Tcp.ActiveOpens"] == 5123 and values["Tcp.MaxConn"] == -1
    assert values["Udp.RcvbufErrors"] == 2 and values["IcmpMsg.InType3"] == 1
    assert values["Ip.Forwarding"] == 2


def test_parse_netstat_fixture():
    values = parse_table_pairs((NET / "netstat").read_text())
    assert (values["TcpExt.ListenOverflows"], values["TcpExt.ListenDrops"], values["TcpExt.TCPSynRetrans"]) == (7, 9, 13)
    assert "IpExt.InOctets" in values


def test_parse_snmp6_fixture_splits_table_and_field():
    values = parse_snmp6((NET / "snmp6").read_text())
    assert values["Udp6.InErrors"] == 50 and values["Udp6.NoPorts"] == 60
    assert "Ip6.InReceives" in values and "Icmp6.InMsgs" in values
    assert "UdpLite6.InErrors" in values and "Udp6.InErrors" in values


@pytest.mark.parametrize("text, message", [
    ("Tcp: ActiveOpens PassiveOpens\n", "odd number of lines"),
    ("Tcp: ActiveOpens PassiveOpens\nTcp: 1\n", "the Tcp table's values line does not match its header line"),
    ("Tcp: ActiveOpens\nUdp: 1\n", "the Tcp table's values line"),
    ("Tcp: ActiveOpens\nTcp: x\n", "Tcp ActiveOpens is not a whole number"),
])
def test_parse_rejects_mismatched_tables(text, message):
    with pytest.raises(ValueError, match=message):
        parse_table_pairs(text)


def test_fixture_sample_and_families_sum_udp_over_both_ip_versions():
    collector = NetstatCollector(paths=Paths(procfs=str(FIXTURE_PROC)))
    fams = list(collector.families(collector.sample()))
    assert [f.name + "_total" for f in fams] == list(EXPECTED)
    assert all(f.type == "counter" for f in fams)
    assert samples_of(fams) == {(name, ()): value for name, value in EXPECTED.items()}


def test_without_ipv6_udp_counts_ipv4_alone(tmp_path):
    (tmp_path / "net").mkdir()
    for name in ("snmp", "netstat"):
        shutil.copy(NET / name, tmp_path / "net" / name)
    got = samples_of(NetstatCollector(paths=Paths(procfs=str(tmp_path))).collect())
    assert got[("host_udp_receive_errors_total", ())] == 5
    assert got[("host_udp_no_ports_total", ())] == 6
    assert got[("host_tcp_listen_drops_total", ())] == 9


def test_families_from_hand_made_sample_leave_out_counters_the_kernel_lacks():
    sample = (("Tcp.ActiveOpens", 3), ("Udp.InErrors", 1), ("Udp6.InErrors", 2), ("Udp6.NoPorts", 9))
    assert samples_of(NetstatCollector().families(sample)) == {
        ("host_tcp_active_opens_total", ()): 3,
        ("host_udp_receive_errors_total", ()): 3,
    }


def test_missing_netstat_file_is_a_failure_naming_it(tmp_path):
    (tmp_path / "net").mkdir()
    shutil.copy(NET / "snmp", tmp_path / "net" / "snmp")
    with pytest.raises(FileNotFoundError, match="net/netstat"):
        NetstatCollector(paths=Paths(procfs=str(tmp_path))).sample()


def test_every_family_is_declared_once():
    assert len(NetstatCollector.metrics) == 14 == len({spec.name for spec, _ in FAMILIES})


def test_live_sample_on_this_machine():
    got = samples_of(NetstatCollector().collect())
    assert_well_formed(NetstatCollector, got)
    assert {name for name, _ in got} == set(EXPECTED)
    assert got[("host_tcp_segments_received_total", ())] > 0
