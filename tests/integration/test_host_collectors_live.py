"""The pressure, vmstat, netstat, sockstat, conntrack, timex, filefd, mdadm,
cpufreq and textfile collectors in the real agent: a linted scrape, "not
available" where this machine lacks the source, and textfiles end to end."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time

import requests
from prometheus_client.openmetrics.parser import text_string_to_metric_families as openmetrics_families

from support import REPO, agent_server, fast_agent_config, require_tool, wait_until
from textfile_writer import content

from hostagent.collectors import load_all

GOOD = """\
# HELP backup_last_success_timestamp_seconds When the last backup finished.
# TYPE backup_last_success_timestamp_seconds gauge
backup_last_success_timestamp_seconds{job="db"} 1.7e+09
# HELP backup_runs_total Backups run.
# TYPE backup_runs_total counter
backup_runs_total 12
# HELP backup_duration_seconds How long backups take.
# TYPE backup_duration_seconds histogram
backup_duration_seconds_bucket{le="60"} 3
backup_duration_seconds_bucket{le="+Inf"} 12
backup_duration_seconds_sum 900
backup_duration_seconds_count 12
"""

COLLECTORS = ("pressure", "vmstat", "netstat", "sockstat", "conntrack", "timex", "filefd", "mdadm", "cpufreq", "textfile")
# Where each collector's source lives on a host that has it.
SOURCES = {
    "pressure": "/proc/pressure",
    "conntrack": "/proc/sys/net/netfilter/nf_conntrack_count",
    "mdadm": "/proc/mdstat",
}


def has_source(name: str) -> bool:
    if name == "cpufreq":
        return any(os.path.isdir(f"/sys/devices/system/cpu/{cpu}/cpufreq") for cpu in os.listdir("/sys/devices/system/cpu") if re.fullmatch(r"cpu\d+", cpu))
    return os.path.exists(SOURCES[name]) if name in SOURCES else True


def config_with(directory, interval: float = 1) -> str:
    """Every collector each second, the textfile one reading ``directory``."""
    fast = fast_agent_config()
    line = "  textfile: {interval: 1}\n"
    assert line in fast
    return fast.replace(line, f"  textfile: {{interval: {interval}, directory: {str(directory)!r}}}\n")


def test_real_scrape_lints_and_every_collector_serves_or_says_why(tmp_path):
    promtool = require_tool("promtool")
    textfiles = tmp_path / "textfiles"
    textfiles.mkdir()
    (textfiles / "backup.prom").write_text(GOOD)
    (textfiles / "broken.prom").write_text('broken{x="1} 1\n')
    agent = agent_server(tmp_path, config_with(textfiles)).start()
    try:
        body = requests.get(agent.base_url + "/metrics", timeout=5).text
        openmetrics = requests.get(agent.base_url + "/metrics", headers={"Accept": "application/openmetrics-text; version=1.0.0"}, timeout=5).text
        landing = requests.get(agent.base_url + "/", timeout=5).text
        ready = requests.get(agent.base_url + "/-/ready", timeout=5).status_code
    finally:
        agent.stop()
    lint = subprocess.run([promtool, "check", "metrics"], input=body, capture_output=True, text=True, timeout=30)
    assert (lint.returncode, lint.stdout, lint.stderr) == (0, "", "")
    assert ready == 200
    registry = load_all()
    for name in COLLECTORS:
        served = [spec.name for spec in registry[name].metrics if re.search(rf"^{spec.name}[ {{]", body, re.M)]
        if has_source(name):
            assert f'hostagent_collector_up{{collector="{name}"}} 1.0' in body, name
            assert served, f"{name} serves none of its families"
        else:
            assert f'hostagent_collector_available{{collector="{name}"}} 0.0' in body, name
            assert not served, (name, served)
            assert re.search(rf"{name}.*not available on this host: no ", landing), name
    # The textfile's own families, their types and HELP, beside the refusal.
    assert "# TYPE backup_duration_seconds histogram\n" in body and "# HELP backup_runs_total Backups run.\n" in body
    assert 'backup_duration_seconds_bucket{le="+Inf"} 12.0' in body
    assert 'host_textfile_mtime_seconds{file="backup.prom"}' in body and 'file="broken.prom"' not in body
    assert "host_textfile_scrape_error 1.0" in body
    # The OpenMetrics variant (what Prometheus asks for) parses strictly, textfile families included.
    families = {f.name: f.type for f in openmetrics_families(openmetrics)}
    assert (families["backup_duration_seconds"], families["backup_runs"], families["host_memory_page_faults"]) == ("histogram", "counter", "counter")
    log = agent.log()
    assert f"textfile {textfiles / 'broken.prom'} refused: not valid text format: line 1: " in log
    assert log.count("broken.prom refused") == 1
    assert "Traceback" not in log


def test_the_agent_never_serves_a_half_written_textfile(tmp_path):
    lines, rounds = 30, 40
    textfiles = tmp_path / "textfiles"
    textfiles.mkdir()
    path = textfiles / "jobs.prom"
    path.write_bytes(content(0, lines))
    agent = agent_server(tmp_path, config_with(textfiles, interval=0.5)).start()
    writer = subprocess.Popen([sys.executable, str(REPO / "tests" / "textfile_writer.py"), str(path), str(rounds), str(lines)])
    whole = empty = 0
    try:
        deadline = time.monotonic() + 120
        while writer.poll() is None and time.monotonic() < deadline:
            body = requests.get(agent.base_url + "/metrics", timeout=5).text
            values = re.findall(r'^job_state\{job="j\d+"\} (\S+)$', body, re.M)
            if values:
                whole += 1
                assert len(values) == lines, f"a scrape served {len(values)} of the {lines} series"
                assert len(set(values)) == 1, f"a scrape served a mix of rounds: {sorted(set(values))}"
            else:
                empty += 1
                assert "host_textfile_scrape_error 1.0" in body
            time.sleep(0.01)
        assert writer.wait(60) == 0

        def last_round_served() -> bool:
            body = requests.get(agent.base_url + "/metrics", timeout=5).text
            return len(re.findall(rf'^job_state\{{job="j\d+"\}} {rounds}\.0$', body, re.M)) == lines

        wait_until(last_round_served, 30, "the writer's last round to be served")
    finally:
        writer.kill()
        writer.wait()
        agent.stop()
    assert whole > 0 and empty > 0, (whole, empty)
    # The refusals were logged, and the recoveries: once per change, not per run.
    log = agent.log()
    assert "jobs.prom is served again" in log
    assert 0 < log.count("jobs.prom refused") <= rounds
