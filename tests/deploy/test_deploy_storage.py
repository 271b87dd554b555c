"""docker-compose.storage.yml (the long-term store and the site forwarder),
checked by docker-compose itself, against the files it mounts, and against
the configuration of the rest of the stack."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path
from typing import Any, Dict, List, Sequence

import pytest
import yaml
from support import REPO, require_tool

BASE = REPO / "docker-compose.yml"
STORAGE = REPO / "docker-compose.storage.yml"
PROMETHEUS = yaml.safe_load((REPO / "prometheus" / "prometheus.yml").read_text())
FORWARDER = yaml.safe_load((REPO / "prometheus" / "forwarder" / "scrape.yml").read_text())


def compose(files: Sequence[Path], env_extra: Dict[str, str], *args: str) -> subprocess.CompletedProcess:
    exe = require_tool("docker-compose")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GF_", "PROMETHEUS_", "LONGTERM_", "FORWARDER_", "CENTRAL_"))}
    env.update({"GF_ADMIN_PASSWORD": "not-a-real-password", **env_extra})
    argv = [exe] + [a for f in files for a in ("-f", str(f))] + list(args) + ["config"]
    return subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True, timeout=60)


def resolved(env_extra: Dict[str, str] = {}, *args: str) -> Dict[str, Any]:  # noqa: B006 - never mutated
    done = compose([BASE, STORAGE], env_extra, *args)
    assert done.returncode == 0, done.stderr
    return yaml.safe_load(done.stdout)


@pytest.fixture(scope="module")
def stack() -> Dict[str, Any]:
    """Both files as docker-compose resolves them, the site profile on."""
    return resolved({}, "--profile", "site")


def flag(service: Dict[str, Any], name: str) -> str:
    values = [a.split("=", 1)[1] for a in service["command"] if a.startswith(f"-{name}=")]
    assert len(values) == 1, f"-{name} given {len(values)} times"
    return values[0]


def mounts(service: Dict[str, Any]) -> Dict[str, Dict[str, Any]]:
    out = {}
    for v in service.get("volumes", []):
        source, target, *mode = v.split(":")
        out[target] = {"source": source, "read_only": mode == ["ro"]}
    return out


def days(retention: str) -> float:
    """VictoriaMetrics' -retentionPeriod in days (a bare number counts months)."""
    match = re.fullmatch(r"(\d+)([hdwy]?)", retention)
    assert match, retention
    return int(match.group(1)) * {"h": 1 / 24, "d": 1, "w": 7, "y": 365, "": 31}[match.group(2)]


def test_the_stack_gains_the_long_term_store_and_the_forwarder(stack: Dict[str, Any]) -> None:
    assert set(stack["services"]) == {"agent", "prometheus", "alertmanager", "grafana", "longterm", "forwarder"}
    # A site component: `up` starts it only with --profile site (config lists it either way).
    assert stack["services"]["forwarder"]["profiles"] == ["site"] and "profiles" not in stack["services"]["longterm"]
    alone = compose([STORAGE], {}, "--profile", "site")  # what a site runs
    assert alone.returncode == 0, alone.stderr
    for name in ("longterm", "forwarder"):
        svc = stack["services"][name]
        assert svc["network_mode"] == "host" and svc["restart"] == "unless-stopped" and "ports" not in svc, name


def test_images_are_the_tested_version(stack: Dict[str, Any]) -> None:
    tags = {name: stack["services"][name]["image"] for name in ("longterm", "forwarder")}
    assert tags == {"longterm": tags["longterm"], "forwarder": tags["forwarder"]}
    versions = {re.fullmatch(r"victoriametrics/(?:victoria-metrics|vmagent):v(\d+\.\d+\.\d+)", t).group(1) for t in tags.values()}  # type: ignore[union-attr]
    assert len(versions) == 1
    dpkg = subprocess.run(["dpkg-query", "-W", "-f=${Version}", "victoria-metrics"], capture_output=True, text=True)
    if dpkg.returncode == 0:  # the version the suite's VictoriaMetrics tests run
        assert dpkg.stdout.startswith(versions.pop() + "+"), dpkg.stdout


def test_long_term_store_keeps_a_year_on_a_volume(stack: Dict[str, Any]) -> None:
    lt = stack["services"]["longterm"]
    assert days(flag(lt, "retentionPeriod")) >= 365
    data = mounts(lt)[flag(lt, "storageDataPath")]
    assert data["source"] in stack["volumes"] and not data["read_only"]  # a named volume: survives re-creation
    longer = resolved({"LONGTERM_RETENTION": "3y"})["services"]["longterm"]
    assert flag(longer, "retentionPeriod") == "3y"


def test_everyone_finds_the_long_term_store_where_it_listens(stack: Dict[str, Any]) -> None:
    listen = flag(stack["services"]["longterm"], "httpListenAddr")
    assert listen == "127.0.0.1:8428"  # no authentication: loopback only
    port = listen.rsplit(":", 1)[1]
    (longterm,) = [rw for rw in PROMETHEUS["remote_write"] if rw["name"] == "longterm"]
    assert longterm["url"] == f"http://localhost:{port}/api/v1/write"
    (ds,) = yaml.safe_load((REPO / "grafana" / "provisioning" / "datasources" / "longterm.yml").read_text())["datasources"]
    assert ds["url"] == f"http://localhost:{port}" and ds["type"] == "prometheus" and ds["uid"] == "hostagent-longterm"
    assert ds["isDefault"] is False and ds["jsonData"]["timeInterval"] == "5m"
    grafana = stack["services"]["grafana"]
    assert Path(mounts(grafana)["/etc/grafana/provisioning"]["source"]) == REPO / "grafana" / "provisioning"


def test_forwarder_buffers_on_a_volume_and_runs_the_shipped_scrape_config(stack: Dict[str, Any]) -> None:
    fw = stack["services"]["forwarder"]
    assert fw["profiles"] == ["site"]
    m = mounts(fw)
    config_dir = Path(flag(fw, "promscrape.config")).parent
    assert Path(m[str(config_dir)]["source"]) == REPO / "prometheus" / "forwarder" and m[str(config_dir)]["read_only"]
    buffer = m[flag(fw, "remoteWrite.tmpDataPath")]
    assert buffer["source"] in stack["volumes"] and not buffer["read_only"]
    size = flag(fw, "remoteWrite.maxDiskUsagePerURL")
    number, unit = re.fullmatch(r"(\d+)(MB|GB|MiB|GiB)", size).groups()  # type: ignore[union-attr]
    assert int(number) * (1024 if unit.startswith("G") else 1) >= 500  # vmagent buffers in ~500 MB chunks
    assert flag(fw, "remoteWrite.url") == "http://localhost:9090/api/v1/write"
    site = resolved({"CENTRAL_WRITE_URL": "https://central.example.com:8480/api/v1/write"}, "--profile", "site")
    assert flag(site["services"]["forwarder"], "remoteWrite.url") == "https://central.example.com:8480/api/v1/write"
    # The central Prometheus takes what forwarders write.
    assert "--web.enable-remote-write-receiver" in stack["services"]["prometheus"]["command"]


def test_forwarder_scrapes_as_the_centre_does() -> None:
    central_job = next(j for j in PROMETHEUS["scrape_configs"] if j["job_name"] == "hostagent")
    (job,) = FORWARDER["scrape_configs"]
    assert job["job_name"] == "hostagent"
    assert job["sample_limit"] == central_job["sample_limit"]
    for key in ("scrape_interval", "scrape_timeout"):
        assert FORWARDER["global"][key] == PROMETHEUS["global"][key], key
    assert job["file_sd_configs"] == [{"files": ["targets/*.yml"]}]
    assert yaml.safe_load((REPO / "prometheus" / "forwarder" / "targets" / "hosts.yml").read_text()) == []


def test_forwarder_config_passes_vmagent(tmp_path: Path) -> None:
    vmagent = require_tool("vmagent")
    config = REPO / "prometheus" / "forwarder" / "scrape.yml"
    done = subprocess.run([vmagent, f"-promscrape.config={config}", "-promscrape.config.dryRun", "-loggerLevel=ERROR"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    # The dry run does refuse a bad file, so passing means something.
    bad = tmp_path / "scrape.yml"
    bad.write_text(config.read_text().replace("sample_limit:", "sample_limitt:"))
    done = subprocess.run([vmagent, f"-promscrape.config={bad}", "-promscrape.config.dryRun", "-loggerLevel=ERROR"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode != 0 and "sample_limitt" in done.stderr


def test_prometheus_datasource_stays_the_default() -> None:
    files: List[Dict[str, Any]] = [yaml.safe_load(p.read_text()) for p in sorted((REPO / "grafana" / "provisioning" / "datasources").glob("*.yml"))]
    sources = [d for f in files for d in f["datasources"]]
    assert [d["uid"] for d in sources if d.get("isDefault")] == ["hostagent-prometheus"]
    assert len({d["uid"] for d in sources}) == len(sources) == 2
