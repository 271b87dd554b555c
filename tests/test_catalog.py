"""The metric catalog and the example config stay in step with the code."""

from __future__ import annotations

import math
import subprocess
import sys

from prometheus_client.parser import text_string_to_metric_families

from support import REPO

from hostagent import docsgen
from hostagent.collectors import load_all


def once_families():
    out = subprocess.run(
        [sys.executable, str(REPO / "run_agent.py"), "--config", str(REPO / "config" / "agent.yaml"), "--once"],
        capture_output=True, text=True, timeout=60, check=True,
    ).stdout
    return list(text_string_to_metric_families(out))


def test_generated_files_are_current():
    for path, text in docsgen.outputs().items():
        assert path.read_text() == text, f"{path} is out of date: run `hostagent docs`"


def test_docs_check_command_reports_staleness(tmp_path, monkeypatch, capsys):
    stale = tmp_path / "metrics.md"
    stale.write_text("old\n")
    monkeypatch.setattr(docsgen, "METRICS_DOC", stale)
    monkeypatch.setattr(docsgen, "EXAMPLE_CONFIG", tmp_path / "agent.example.yaml")
    assert docsgen.main(["--check"]) == 1
    err = capsys.readouterr().err
    assert f"hostagent docs: {stale} is out of date; run `hostagent docs`" in err
    assert f"hostagent docs: {tmp_path / 'agent.example.yaml'} is missing; run `hostagent docs`" in err
    assert docsgen.main([]) == 0
    assert docsgen.main(["--check"]) == 0
    assert stale.read_text() == docsgen.metrics_markdown()


def test_every_emitted_family_is_declared_and_documented():
    specs = docsgen.all_specs()
    client = {name for name, *_ in docsgen.CLIENT_METRICS}
    doc = docsgen.METRICS_DOC.read_text()
    seen = set()
    for fam in once_families():
        name = fam.name + "_total" if fam.type == "counter" else fam.name
        seen.add(name)
        assert name in specs or name in client, f"{name} is emitted but not declared"
        assert f"`{name}`" in doc, f"{name} missing from docs/metrics.md"
        assert fam.documentation, f"{name} has no HELP"
        if name in specs:
            spec = specs[name]
            assert fam.type == spec.type, name
            for sample in fam.samples:
                assert set(sample.labels) == set(spec.labels), (name, sample.labels)
                assert math.isfinite(sample.value), (name, sample)
        else:
            documented = {n: labels for n, _, labels, *_ in docsgen.CLIENT_METRICS}[name]
            for sample in fam.samples:
                assert set(sample.labels) == set(documented), (name, sample.labels)
    # The required families of the agent are all there on this machine.
    required = {
        "host_cpu_seconds_total", "host_cpu_usage_ratio", "host_cpu_core_usage_ratio", "host_load1", "host_load5", "host_load15",
        "host_context_switches_total", "host_interrupts_total", "host_memory_total_bytes", "host_memory_available_bytes",
        "host_memory_usage_ratio", "host_swap_total_bytes", "host_swap_in_bytes_total", "host_filesystem_size_bytes",
        "host_filesystem_usage_ratio", "host_filesystem_device_error", "host_filesystem_readonly", "host_disk_read_bytes_total",
        "host_disk_io_time_seconds_total", "host_network_receive_bytes_total", "host_network_up", "host_network_mtu_bytes",
        "host_network_connections", "host_processes", "host_processes_threads", "host_process_group_cpu_seconds_total",
        "host_process_group_processes", "host_process_group_resident_memory_bytes", "host_boot_time_seconds", "host_os_info",
        "host_users", "hostagent_collector_up", "hostagent_collector_errors_total", "hostagent_collector_duration_seconds",
        "hostagent_collector_last_success_timestamp_seconds", "hostagent_build_info", "process_cpu_seconds_total", "python_info",
    }
    assert required <= seen, sorted(required - seen)


def test_every_declared_family_is_in_the_catalog():
    doc = docsgen.METRICS_DOC.read_text()
    for name in docsgen.all_specs():
        assert f"| `{name}` |" in doc


def test_every_collector_declares_metrics_and_help():
    registry = load_all()
    # One file per collector, named after it (hostagent/collectors/<name>.py).
    assert registry and all(cls.__module__ == f"hostagent.collectors.{name}" for name, cls in registry.items())
    names = []
    for name, cls in registry.items():
        assert cls.help, name
        assert cls.metrics, name
        names += [spec.name for spec in cls.metrics]
    assert len(names) == len(set(names)), "two collectors declare the same family"
