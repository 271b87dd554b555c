"""Tests of the network collector: merging psutil's calls, filtering, families."""

from __future__ import annotations

from collections import namedtuple
from pathlib import Path

import psutil
import pytest
from support import assert_well_formed, samples_of

from hostagent.collectors.base import NameFilter, Paths
from hostagent.collectors.network import (
    DEFAULT_EXCLUDE,
    Link,
    NetworkCollector,
    NicSample,
    NicStatus,
    merge_nics,
    nic_status,
    read_link,
    speed_bytes,
)

SYSFS = Path(__file__).parent / "fixtures" / "network" / "sys"

# Same fields as psutil's snetio and snicstats.
RawIO = namedtuple("RawIO", "bytes_sent bytes_recv packets_sent packets_recv errin errout dropin dropout")
RawStats = namedtuple("RawStats", "isup duplex speed mtu flags")

KEEP_ALL = NameFilter()


def io(n: int) -> RawIO:
    """Counters whose fields are n, n+1, ... so each is traceable."""
    return RawIO(*range(n, n + 8))


def test_speed_in_bytes_and_unknown_speed():
    assert speed_bytes(1000) == 125_000_000
    assert speed_bytes(10) == 1_250_000
    assert speed_bytes(0) is None
    assert speed_bytes(-1) is None


def test_nic_status_from_psutil_stats():
    assert nic_status(RawStats(True, 2, 10000, 9000, "up")) == NicStatus(True, 1_250_000_000, 9000, "full")
    assert nic_status(RawStats(True, 1, 10, 1500, "up")) == NicStatus(True, 1_250_000, 1500, "half")
    assert nic_status(RawStats(False, 0, 0, 1500, "")) == NicStatus(False, None, 1500, "unknown")


def test_read_link_from_the_fixture_sysfs():
    net = SYSFS / "class" / "net"
    assert read_link(str(net / "eth0")) == Link("up", 7)
    assert read_link(str(net / "lo")) == Link("unknown", 0)
    # A driver without carrier_changes, an empty one, an interface gone meanwhile.
    assert read_link(str(net / "wg0")) == Link("unknown", None)
    assert read_link(str(net / "ifb0")) == Link("lowerlayerdown", None)
    assert read_link(str(net / "gone0")) == Link(None, None)


def test_merge_maps_each_psutil_field_to_its_counter():
    (nic,) = merge_nics({"eth0": RawIO(1, 2, 3, 4, 5, 6, 7, 8)}, {}, KEEP_ALL)
    got = samples_of(NetworkCollector().families((nic,)))
    dev = (("device", "eth0"),)
    assert {name: value for (name, labels), value in got.items() if labels == dev} == {
        "host_network_receive_bytes_total": 2,
        "host_network_receive_packets_total": 4,
        "host_network_receive_errors_total": 5,
        "host_network_receive_drop_total": 7,
        "host_network_transmit_bytes_total": 1,
        "host_network_transmit_packets_total": 3,
        "host_network_transmit_errors_total": 6,
        "host_network_transmit_drop_total": 8,
    }


def test_interface_in_only_one_psutil_call_is_handled():
    got = merge_nics(
        {"eth0": io(1), "gone0": io(10)},
        {"eth0": RawStats(True, 2, 1000, 1500, ""), "new0": RawStats(False, 0, 0, 1400, "")},
        KEEP_ALL,
    )
    assert [n.device for n in got] == ["eth0", "gone0", "new0"]
    assert got[1].status is None and got[1].counters is not None
    assert got[2].counters is None and got[2].status == NicStatus(False, None, 1400)
    fams = samples_of(NetworkCollector().families(got))
    assert fams[("host_network_receive_bytes_total", (("device", "gone0"),))] == 11
    assert ("host_network_up", (("device", "gone0"),)) not in fams
    assert fams[("host_network_mtu_bytes", (("device", "new0"),))] == 1400
    assert ("host_network_receive_bytes_total", (("device", "new0"),)) not in fams


@pytest.mark.parametrize(
    "name, kept",
    [
        ("eth0", True),
        ("lo", True),
        ("enp3s0", True),
        ("docker0", True),
        ("br-1a2b3c4d5e6f", True),
        ("lxcbr0", True),
        ("wg0", True),
        ("tap0", True),
        ("veth1a2b3c4", False),
        ("vethXYZ@if5", False),
        ("cali0123456789a", False),
        ("lxc0a1b2c3d4e5f", False),
        ("lxc_health", True),
        ("vnet0", False),
        ("vnet12", False),
    ],
)
def test_default_exclude_drops_per_container_links(name, kept):
    assert NameFilter(None, DEFAULT_EXCLUDE)(name) is kept


def test_include_and_exclude_options(mocker):
    mocker.patch.object(psutil, "net_io_counters", return_value={"eth0": io(1), "eth1": io(2), "veth9": io(3), "lo": io(4)})
    mocker.patch.object(psutil, "net_if_stats", return_value={})
    assert [n.device for n in NetworkCollector().sample()] == ["eth0", "eth1", "lo"]
    with_links = NetworkCollector({"device_include": "^(eth0|lo)$"}, Paths(sysfs=str(SYSFS))).sample()
    assert [(n.device, n.link) for n in with_links] == [("eth0", Link("up", 7)), ("lo", Link("unknown", 0))]
    assert [n.device for n in NetworkCollector({"device_include": "^eth"}).sample()] == ["eth0", "eth1"]
    assert [n.device for n in NetworkCollector({"device_exclude": "^lo$"}).sample()] == ["eth0", "eth1", "veth9"]


def test_families_from_hand_made_sample():
    sample = (
        NicSample("eth0", tuple(range(100, 108)), NicStatus(True, 125_000_000, 1500, "full"), Link("up", 4)),
        NicSample("lo", tuple(range(8)), NicStatus(True, None, 65536), Link("unknown", 0)),
        NicSample("wlan0", tuple(range(8)), NicStatus(False, None, 1500), Link("dormant", None)),
    )
    fams = list(NetworkCollector().families(sample))
    assert [f.name for f in fams][-5:] == ["host_network_up", "host_network_speed_bytes", "host_network_mtu_bytes", "host_network_carrier_changes", "host_network_info"]
    assert [f.type for f in fams] == ["counter"] * 8 + ["gauge"] * 3 + ["counter", "gauge"]
    got = samples_of(fams)
    assert got[("host_network_receive_bytes_total", (("device", "eth0"),))] == 100
    assert got[("host_network_transmit_drop_total", (("device", "eth0"),))] == 107
    assert got[("host_network_up", (("device", "eth0"),))] == 1
    assert got[("host_network_up", (("device", "wlan0"),))] == 0
    assert got[("host_network_speed_bytes", (("device", "eth0"),))] == 125_000_000
    assert ("host_network_speed_bytes", (("device", "lo"),)) not in got  # unknown speed: no sample
    assert got[("host_network_mtu_bytes", (("device", "lo"),))] == 65536
    assert got[("host_network_carrier_changes_total", (("device", "eth0"),))] == 4
    assert ("host_network_carrier_changes_total", (("device", "wlan0"),)) not in got
    info = {labels for name, labels in got if name == "host_network_info"}
    assert info == {
        (("device", "eth0"), ("duplex", "full"), ("operstate", "up")),
        (("device", "lo"), ("duplex", "unknown"), ("operstate", "unknown")),
        (("device", "wlan0"), ("duplex", "unknown"), ("operstate", "dormant")),
    }
    assert len(got) == 3 * 8 + 3 + 1 + 3 + 2 + 3


def test_counter_that_went_backwards_is_emitted_raw(mocker):
    patched = mocker.patch.object(psutil, "net_io_counters", side_effect=[{"eth0": io(1000)}, {"eth0": io(2)}])
    mocker.patch.object(psutil, "net_if_stats", return_value={"eth0": RawStats(True, 2, 1000, 1500, "")})
    collector = NetworkCollector()
    collector.collect()
    got = samples_of(collector.collect())
    assert got[("host_network_transmit_bytes_total", (("device", "eth0"),))] == 2
    assert got[("host_network_receive_bytes_total", (("device", "eth0"),))] == 3
    patched.assert_called_with(pernic=True, nowrap=False)


def test_real_machine():
    collector = NetworkCollector()
    specs = {s.name: s for s in collector.metrics}
    fams = collector.collect()
    assert [f.name + ("_total" if f.type == "counter" else "") for f in fams] == list(specs)
    got = samples_of(fams)
    assert_well_formed(NetworkCollector, got)
    # Loopback exists, is up and has an MTU on any Linux machine; its
    # operstate is "unknown" (no driver state), which IFF_RUNNING counts as up.
    assert got[("host_network_up", (("device", "lo"),))] == 1
    assert (("device", "lo"), ("duplex", "unknown"), ("operstate", "unknown")) in {labels for name, labels in got if name == "host_network_info"}
    for (name, labels), value in got.items():
        if name == "host_network_info":
            state = dict(labels)["operstate"]
            # up reads 1 exactly for operstate up or unknown (the kernel's netif_oper_up)
            assert got[("host_network_up", (labels[0],))] == (state in ("up", "unknown")), labels
    assert got[("host_network_mtu_bytes", (("device", "lo"),))] > 0
    assert ("host_network_receive_bytes_total", (("device", "lo"),)) in got
