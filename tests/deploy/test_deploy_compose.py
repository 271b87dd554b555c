"""docker-compose.yml, checked by docker-compose itself and against the files it mounts."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path
from typing import Any, Dict

import pytest
import yaml
from support import REPO, require_tool

PASSWORD = "not-a-real-password"


def compose_config(env_extra: Dict[str, str]) -> subprocess.CompletedProcess:
    exe = require_tool("docker-compose")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GF_", "PROMETHEUS_RETENTION", "HOSTAGENT_EXTERNAL_HOST"))}
    env.update(env_extra)
    return subprocess.run([exe, "-f", str(REPO / "docker-compose.yml"), "config"], cwd=REPO, env=env, capture_output=True, text=True, timeout=60)


@pytest.fixture(scope="module")
def config() -> Dict[str, Any]:
    """The compose file as docker-compose resolves it."""
    done = compose_config({"GF_ADMIN_PASSWORD": PASSWORD})
    assert done.returncode == 0, done.stderr
    return yaml.safe_load(done.stdout)


def _mounts(service: Dict[str, Any]) -> Dict[str, Dict[str, Any]]:
    """Container path -> {source, read_only, ...} for every mount of a service."""
    out = {}
    for v in service.get("volumes", []):
        if isinstance(v, str):
            source, target, *mode = v.split(":")
            out[target] = {"source": source, "read_only": mode == ["ro"]}
        else:
            out[v["target"]] = v
    return out


def _flag(service: Dict[str, Any], name: str) -> str:
    values = [a.split("=", 1)[1] for a in service["command"] if a.startswith(f"--{name}=")]
    assert len(values) == 1, f"--{name} given {len(values)} times"
    return values[0]


def test_admin_password_comes_from_the_environment() -> None:
    done = compose_config({})
    assert done.returncode != 0
    assert "GF_ADMIN_PASSWORD" in done.stderr
    text = (REPO / "docker-compose.yml").read_text()
    assert re.search(r"GF_SECURITY_ADMIN_PASSWORD: \$\{GF_ADMIN_PASSWORD:\?[^}]+\}", text)


def test_every_image_is_pinned(config: Dict[str, Any]) -> None:
    images = {name: svc["image"] for name, svc in config["services"].items()}
    assert set(images) == {"agent", "prometheus", "alertmanager", "grafana"}
    for name, image in images.items():
        assert re.fullmatch(r"[\w./-]+:v?\d+\.\d+\.\d+", image), f"{name}: {image} is not pinned to a version"
    base = re.search(r"^FROM (\S+)", (REPO / "Dockerfile").read_text(), re.M).group(1)
    assert re.fullmatch(r"python:3\.\d+\.\d+-slim-\w+", base), base
    assert "build" in config["services"]["agent"]


def test_everything_on_the_host_network(config: Dict[str, Any]) -> None:
    for name, svc in config["services"].items():
        assert svc["network_mode"] == "host", name
        assert "ports" not in svc, f"{name}: ports mean nothing on the host network"
        assert svc["restart"] == "unless-stopped", name


def test_agent_sees_the_host(config: Dict[str, Any]) -> None:
    agent = config["services"]["agent"]
    assert agent["pid"] == "host"
    root = _mounts(agent)["/host"]
    assert root["source"] == "/" and root["read_only"] is True
    assert root["bind"]["propagation"] == "rslave"
    assert agent["environment"] == {
        "HOSTAGENT_PATHS_PROCFS": "/host/proc",
        "HOSTAGENT_PATHS_SYSFS": "/host/sys",
        "HOSTAGENT_PATHS_ROOTFS": "/host",
    }


def test_prometheus_runs_the_repository_config(config: Dict[str, Any]) -> None:
    prom = config["services"]["prometheus"]
    mounts = _mounts(prom)
    assert Path(mounts["/etc/prometheus"]["source"]) == REPO / "prometheus"
    assert mounts["/etc/prometheus"]["read_only"]
    config_file = _flag(prom, "config.file")
    assert config_file == "/etc/prometheus/prometheus.yml"
    repo_config = yaml.safe_load((REPO / "prometheus" / "prometheus.yml").read_text())
    assert _flag(prom, "storage.tsdb.retention.time") == "30d"
    assert re.fullmatch(r"\d+[KMGT]B", _flag(prom, "storage.tsdb.retention.size"))
    assert "/prometheus" in mounts and _flag(prom, "storage.tsdb.path") == "/prometheus"
    # The addresses in the repository's config are where compose runs things.
    assert _flag(prom, "web.listen-address") == "127.0.0.1:9090"  # unauthenticated lifecycle API: loopback only
    hostagent = next(j for j in repo_config["scrape_configs"] if j["job_name"] == "hostagent")
    assert "localhost:9100" in hostagent["static_configs"][0]["targets"]
    am_targets = repo_config["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"]
    assert am_targets == ["localhost:9093"]
    assert _flag(config["services"]["alertmanager"], "web.listen-address") == "127.0.0.1:9093"


def test_retention_is_configurable(config: Dict[str, Any]) -> None:
    done = compose_config({"GF_ADMIN_PASSWORD": PASSWORD, "PROMETHEUS_RETENTION_TIME": "90d"})
    assert done.returncode == 0, done.stderr
    assert _flag(yaml.safe_load(done.stdout)["services"]["prometheus"], "storage.tsdb.retention.time") == "90d"


def test_alertmanager_runs_the_repository_config(config: Dict[str, Any]) -> None:
    am = config["services"]["alertmanager"]
    mounts = _mounts(am)
    assert Path(mounts["/etc/alertmanager"]["source"]) == REPO / "alertmanager"
    assert mounts["/etc/alertmanager"]["read_only"]
    assert _flag(am, "config.file") == "/etc/alertmanager/alertmanager.yml"
    assert (REPO / "alertmanager" / "alertmanager.yml").is_file()
    # Paths inside the Alertmanager config point into the mounted directory.
    text = (REPO / "alertmanager" / "alertmanager.yml").read_text()
    for path in re.findall(r"_file: (/\S+)", text):
        assert path.startswith("/etc/alertmanager/"), path


def test_grafana_gets_provisioning_and_dashboards(config: Dict[str, Any]) -> None:
    grafana = config["services"]["grafana"]
    mounts = _mounts(grafana)
    assert Path(mounts["/etc/grafana/provisioning"]["source"]) == REPO / "grafana" / "provisioning"
    provider = yaml.safe_load((REPO / "grafana" / "provisioning" / "dashboards" / "hostagent.yml").read_text())["providers"][0]
    dash_dir = provider["options"]["path"]
    assert Path(mounts[dash_dir]["source"]) == REPO / "grafana" / "dashboards"
    assert all(m["read_only"] for t, m in mounts.items() if t.startswith("/etc/grafana"))
    home = grafana["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert home.startswith(dash_dir + "/") and (REPO / "grafana" / "dashboards" / Path(home).name).is_file()
    assert grafana["environment"]["GF_SECURITY_ADMIN_PASSWORD"] == PASSWORD


def test_grafana_provisioning() -> None:
    from hostagent.dashboards.grafana import DATASOURCE_NAME, DATASOURCE_UID

    ds = yaml.safe_load((REPO / "grafana" / "provisioning" / "datasources" / "prometheus.yml").read_text())["datasources"]
    assert len(ds) == 1
    assert ds[0]["uid"] == DATASOURCE_UID and ds[0]["name"] == DATASOURCE_NAME and ds[0]["type"] == "prometheus"
    assert ds[0]["url"] == "http://localhost:9090"
    scrape = yaml.safe_load((REPO / "prometheus" / "prometheus.yml").read_text())["global"]["scrape_interval"]
    assert ds[0]["jsonData"]["timeInterval"] == scrape
    provider = yaml.safe_load((REPO / "grafana" / "provisioning" / "dashboards" / "hostagent.yml").read_text())["providers"]
    assert len(provider) == 1 and provider[0]["type"] == "file"
    assert provider[0]["folder"] == "hostagent" and provider[0]["folderUid"] == "hostagent"


def test_external_urls_come_from_one_setting(config: Dict[str, Any]) -> None:
    """Links in notifications (graph, runbook, Alertmanager) point where people
    reach the stack: one name, HOSTAGENT_EXTERNAL_HOST, for every service."""
    prom, am = config["services"]["prometheus"], config["services"]["alertmanager"]
    assert _flag(prom, "web.external-url") == "http://localhost:9090/"
    assert _flag(am, "web.external-url") == "http://localhost:9093/"
    done = compose_config({"GF_ADMIN_PASSWORD": PASSWORD, "HOSTAGENT_EXTERNAL_HOST": "mon-1.example.com"})
    assert done.returncode == 0, done.stderr
    services = yaml.safe_load(done.stdout)["services"]
    assert _flag(services["prometheus"], "web.external-url") == "http://mon-1.example.com:9090/"
    assert _flag(services["alertmanager"], "web.external-url") == "http://mon-1.example.com:9093/"
    assert services["grafana"]["environment"]["GF_SERVER_ROOT_URL"] == "http://mon-1.example.com:3000/"


def test_prometheus_serves_the_runbook_page(config: Dict[str, Any]) -> None:
    prom = config["services"]["prometheus"]
    assets = _flag(prom, "web.user-assets")
    mounted = _mounts(prom)["/etc/prometheus"]["source"]
    page = Path(mounted) / Path(assets).relative_to("/etc/prometheus") / "runbooks.html"
    assert page.is_file(), f"{page}: run `hostagent rules`"
    from hostagent.alerting import thresholds

    assert thresholds.load_config().runbook_base_url == "{{ $externalURL }}/user/runbooks.html"
