"""The light prometheus-client loading and the text renderer."""

from __future__ import annotations

import subprocess
import sys

import pytest
from prometheus_client.exposition import generate_latest

from support import REPO, agent_server

from hostagent.agent import Agent, Runner
from hostagent.collectors import load_all
from hostagent.exposition import build_registry
from hostagent.promclient import CounterMetricFamily, GaugeMetricFamily, families_of, generate_openmetrics, generate_text
from prometheus_client.metrics_core import HistogramMetricFamily, InfoMetricFamily
from prometheus_client.openmetrics.exposition import generate_latest as library_openmetrics


def run_python(code: str) -> str:
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=REPO, env={"PYTHONPATH": str(REPO / "src")})
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def test_text_renderer_matches_prometheus_client_byte_for_byte():
    agent = Agent([Runner(name, cls(), 15.0) for name, cls in load_all().items()])
    agent.run_once()
    # Collectors whose source this host lacks have no snapshot.
    families = [fam for runner in agent.runners if runner.snapshot is not None for fam in runner.snapshot.families]
    odd = GaugeMetricFamily("host_test_odd", 'help with \\ backslash\nand newline', labels=["v"])
    odd.add_metric(['quote " back \\ nl \n é'], float("nan"))
    odd.add_metric(["inf"], float("inf"))
    odd.add_metric(["ts"], -1.5e-7, timestamp=1700000000.123)
    created = CounterMetricFamily("host_test_created", "with created", labels=["a"], created=1700000000.0)
    created.add_metric(["x"], 3, created=1700000001.5)
    families += [odd, created]
    assert generate_text(families_of(families)) == generate_latest(families_of(families))
    registry = build_registry(agent)  # process and platform collectors
    assert generate_text(registry).split(b"\n# HELP process_cpu")[0] == generate_latest(registry).split(b"\n# HELP process_cpu")[0]


def test_openmetrics_renderer_matches_prometheus_client_byte_for_byte():
    agent = Agent([Runner(name, cls(), 15.0) for name, cls in load_all().items()])
    agent.run_once()
    families = [fam for runner in agent.runners if runner.snapshot is not None for fam in runner.snapshot.families]
    odd = GaugeMetricFamily("host_test_odd", 'help with \\ backslash, "quotes"\nand newline', labels=["v"], unit="bytes")
    odd.add_metric(['quote " back \\ nl \n é'], float("nan"))
    odd.add_metric(["inf"], float("-inf"))
    odd.add_metric(["ts"], -1.5e-7, timestamp=1700000000.123)
    created = CounterMetricFamily("host_test_created", "with created", labels=["a"], created=1700000000.0)
    created.add_metric(["x"], 3, created=1700000001.5)
    info = InfoMetricFamily("host_test_build", "an info family", value={"version": "1"})
    # Not a plain family: left to the library, in its place among the others.
    histogram = HistogramMetricFamily("host_test_latency_seconds", "a histogram", buckets=[("0.1", 2), ("+Inf", 3)], sum_value=0.4)
    families += [odd, created, info, histogram, GaugeMetricFamily("host_test_empty", "no samples")]
    assert generate_openmetrics(families_of(families)) == library_openmetrics(families_of(families))
    assert generate_openmetrics(families_of(families), eof=False) + b"# EOF\n" == library_openmetrics(families_of(families))
    registry = build_registry(agent)  # agent health, process and platform collectors
    assert generate_openmetrics(registry).split(b"\n# HELP process_cpu")[0] == library_openmetrics(registry).split(b"\n# HELP process_cpu")[0]


def test_agent_modules_do_not_load_the_http_side_of_prometheus_client():
    loaded = run_python(
        "import sys; import hostagent.exposition, hostagent.collectors as c; c.load_all();"
        "print(sorted(m for m in ('http.server', 'urllib.request', 'email', 'ssl', 'prometheus_client.exposition') if m in sys.modules))"
    )
    assert loaded == "[]"


def test_the_full_package_is_still_there_for_anyone_who_asks():
    out = run_python(
        "import hostagent.promclient as p, prometheus_client as pc\n"
        "from prometheus_client import CollectorRegistry, generate_latest\n"
        "from prometheus_client.registry import CollectorRegistry as R\n"
        "from prometheus_client.core import GaugeMetricFamily as G\n"
        "import sys\n"
        "print(CollectorRegistry is R is p.CollectorRegistry, G is p.GaugeMetricFamily, callable(pc.start_http_server), sys.modules['prometheus_client'].__name__)"
    )
    assert out == "True True True prometheus_client"


def maps_of(pid: int) -> str:
    with open(f"/proc/{pid}/maps") as handle:
        return handle.read()


def test_plain_http_agent_never_maps_openssl(tmp_path):
    with agent_server(tmp_path, "collectors: {processes: {enabled: false}}\n").start() as agent:
        assert "libssl" not in maps_of(agent.proc.pid)
        body = __import__("requests").get(agent.base_url + "/metrics", timeout=5).text
        assert "host_cpu_seconds_total" in body


@pytest.mark.parametrize("variant", ["gzip", "openmetrics"])
def test_variants_work_without_openssl(tmp_path, variant):
    import gzip as gz

    import requests

    headers = {"Accept-Encoding": "gzip"} if variant == "gzip" else {"Accept": "application/openmetrics-text; version=1.0.0", "Accept-Encoding": "identity"}
    with agent_server(tmp_path, "collectors: {processes: {enabled: false}}\n").start() as agent:
        resp = requests.get(agent.base_url + "/metrics", headers=headers, timeout=5, stream=True)
        raw = resp.raw.read(decode_content=False)
        text = gz.decompress(raw).decode() if variant == "gzip" else raw.decode()
        assert "host_memory_total_bytes" in text
        assert "libssl" not in maps_of(agent.proc.pid)


def test_heavy_submodules_import_cleanly_after_the_light_ones():
    # prometheus_client.core runs `from . import values` and friends while the
    # placeholder stands for the package.
    out = run_python(
        "import hostagent.promclient\n"
        "from prometheus_client.core import GaugeMetricFamily, Counter\n"
        "from prometheus_client import Gauge, CollectorRegistry\n"
        "r = CollectorRegistry(); Gauge('g', 'h', registry=r).set(2)\n"
        "from prometheus_client import generate_latest\n"
        "print(b'g 2.0' in generate_latest(r))"
    )
    assert out == "True"


def test_the_package_becomes_whole_in_place_with_its_submodules():
    out = run_python(
        "import hostagent.promclient, sys\n"
        "import prometheus_client as pc\n"
        "pc.Gauge\n"
        "import prometheus_client.openmetrics.exposition\n"
        "print(pc is sys.modules['prometheus_client'], callable(prometheus_client.openmetrics.exposition.generate_latest),"
        " all(hasattr(pc, m) for m in ('openmetrics', 'utils', 'samples', 'validation', 'registry')), hasattr(pc, 'twisted'))"
    )
    assert out == "True True True False"


def test_a_release_with_other_modules_is_imported_the_ordinary_way():
    out = run_python(
        "import hostagent.promclient as p, sys\n"
        "p._PARTS = p._PARTS + ('no_such_module.py',)\n"
        "del sys.modules['prometheus_client']\n"
        "p._install_placeholder()\n"
        "print('prometheus_client' in sys.modules)"
    )
    assert out == "False"  # no placeholder: the next import runs the real package
