"""The shipped Prometheus config and rules in a real Prometheus scraping a real
agent: targets come from file_sd, every rule evaluates without error, and
every recording rule yields series from the agent's real metrics."""

from __future__ import annotations

import re
import shutil
import socket
import time
from pathlib import Path
from typing import Dict, List

import requests
import yaml

from support import REPO, agent_server, fast_agent_config, free_port, prom_query, prometheus_server, require_tool, wait_until

PROM_DIR = REPO / "prometheus"
AGENT_CONFIG = fast_agent_config(top_n=3)


def port_in_use(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def shipped_copy(tmp: Path) -> str:
    """The prometheus/ directory copied to tmp, the config, every rule group
    and every subquery step at 1s and otherwise unchanged; returns the
    config text."""
    (tmp / "rules").mkdir()
    slowed = []
    for path in (PROM_DIR / "rules").glob("*.rules.yml"):
        doc = yaml.safe_load(path.read_text())
        for group in doc["groups"]:
            if group.pop("interval", None):
                slowed.append(group["name"])
            for rule in group["rules"]:
                # Subquery steps fall on whole 5 minutes of the clock: a
                # baseline exists once one has passed since the first scrape.
                # So do the tiers' peaks, the busiest minute of each 5 minutes.
                rule["expr"] = re.sub(r"\[(\w+):(5m|1m)\]", r"[\1:1s]", rule["expr"])
        (tmp / "rules" / path.name).write_text(yaml.safe_dump(doc, sort_keys=False))
    # The day-long groups run less often than the rest (test_rules.py checks
    # why); here they must run at once.
    assert {"hostagent-downsample", "hostagent-baselines"} <= set(slowed)
    shutil.copytree(PROM_DIR / "targets", tmp / "targets")
    doc = yaml.safe_load((PROM_DIR / "prometheus.yml").read_text())
    doc["global"].update(scrape_interval="1s", scrape_timeout="1s", evaluation_interval="1s")
    return yaml.safe_dump(doc, sort_keys=False)


def api(base: str, path: str) -> dict:
    body = requests.get(base + path, timeout=10).json()
    assert body["status"] == "success", body
    return body["data"]


def recording_rules() -> Dict[str, str]:
    rules = {}
    for path in sorted((PROM_DIR / "rules").glob("*.rules.yml")):
        for group in yaml.safe_load(path.read_text())["groups"]:
            rules.update({r["record"]: r["expr"] for r in group["rules"] if "record" in r})
    return rules


def unavailable_metrics(collectors) -> set:
    """The families of the named collectors, and the recorded series made
    from them (a rule reading another rule's series needs its source too)."""
    from hostagent.collectors import load_all

    names = {spec.name for name, cls in load_all().items() if name in collectors for spec in cls.metrics}
    rules = recording_rules()
    grown = True
    while grown:
        grown = False
        for record, expr in rules.items():
            if record not in names and set(re.findall(r"[\w:]+", expr)) & names:
                names.add(record)
                grown = True
    return names


def test_shipped_config_and_rules_against_a_real_agent(tmp_path):
    require_tool("prometheus")
    prom_dir = tmp_path / "prom"
    prom_dir.mkdir()
    config_text = shipped_copy(prom_dir)
    with agent_server(tmp_path, AGENT_CONFIG).start() as agent:
        instance = agent.base_url.split("//", 1)[1]
        # Adding a host is adding a target file: no change to prometheus.yml.
        (prom_dir / "targets" / "test-agent.yml").write_text(f'- targets: ["{instance}"]\n')
        # As docker-compose.yml runs it: the runbook page served as a user asset.
        port = free_port()
        external = f"http://127.0.0.1:{port}"
        features = [a for a in yaml.safe_load((REPO / "docker-compose.yml").read_text())["services"]["prometheus"]["command"] if a.startswith("--enable-feature=")]
        flags = [f"--web.external-url={external}", f"--web.user-assets={PROM_DIR / 'user'}", *features]
        with prometheus_server(prom_dir, config_text, port=port, extra_args=flags).start() as prom:
            base = prom.base_url
            sel = f'{{job="hostagent", instance="{instance}"}}'

            wait_until(lambda: prom_query(base, f"up{sel} == 1"), 30, f"a successful scrape of {instance}")

            targets = api(base, "/api/v1/targets")["activeTargets"]
            by_job: Dict[str, List[str]] = {}
            for target in targets:
                by_job.setdefault(target["labels"]["job"], []).append(target["labels"]["instance"])
            # The shipped target is named without the default port; the test
            # agent's port is not 9100, so it keeps host:port.
            assert sorted(by_job["hostagent"]) == sorted(["localhost", instance])
            assert by_job["prometheus"] == ["localhost:9090"]
            assert by_job["alertmanager"] == ["localhost:9093"]

            # Every recording rule has series for the agent, once rates have
            # two samples; but not those that divide by swap on a host
            # without swap, nor those that read a collector whose source is
            # not on this host (no PSI, no conntrack module).
            rules = recording_rules()
            swap = prom_query(base, f"host_swap_total_bytes{sel}")
            wait_until(lambda: prom_query(base, f"hostagent_collector_available{sel}"), 30, "the collectors' availability")
            absent = {s["metric"]["collector"] for s in prom_query(base, f"hostagent_collector_available{sel} == 0")}
            unread = unavailable_metrics(absent)
            expected = {
                name
                for name, expr in rules.items()
                if not (name.startswith("instance:host_swap") and float(swap[0]["value"][1]) == 0)
                and not set(re.findall(r"[\w:]+", expr)) & unread
            }
            assert expected, "no recording rule left to check"

            def missing() -> List[str]:
                return sorted(n for n in expected if not prom_query(base, f'{n}{{instance="{instance}"}}'))

            deadline = time.monotonic() + 30
            while missing() and time.monotonic() < deadline:
                time.sleep(1)
            assert missing() == [], "recording rules without series from the real agent"

            # Sanity of values on a real host: ratios are ratios.
            for name in expected:
                if re.search(r"(utilisation|usage|entries|allocated):ratio|:ratio_rate5m$|:rate5m$", name) and not re.search(r"bytes|packets|weighted", name):
                    for sample in prom_query(base, f'{name}{{instance="{instance}"}}'):
                        value = float(sample["value"][1])
                        assert -1e-9 <= value <= 1 + 1e-9, f"{name} = {value}"

            # Every rule of every shipped group has evaluated cleanly.
            def groups():
                data = api(base, "/api/v1/rules")["groups"]
                return data if all(r.get("lastEvaluation", "").startswith("20") for g in data for r in g["rules"]) else None

            loaded = wait_until(groups, 15, "every rule to be evaluated")
            shipped = {g["name"] for p in (PROM_DIR / "rules").glob("*.rules.yml") for g in yaml.safe_load(p.read_text())["groups"]}
            assert {g["name"] for g in loaded} == shipped
            unhealthy = [(r["name"], r.get("lastError")) for g in loaded for r in g["rules"] if r["health"] != "ok"]
            assert unhealthy == []

            # Every alert's runbook link, as Prometheus fills it in, is a page
            # this Prometheus serves, with the alert's section in it.
            links = {r["annotations"]["runbook_url"].replace("{{ $externalURL }}", external) for g in loaded for r in g["rules"] if r["type"] == "alerting"}
            assert links and all(link.startswith(external + "/user/runbooks.html#") for link in links), links
            page = requests.get(external + "/user/runbooks.html", timeout=10)
            assert page.status_code == 200 and page.headers["Content-Type"].startswith("text/html")
            missing = [link for link in links if f'id="{link.split("#", 1)[1]}"' not in page.text]
            assert missing == [], "runbook links without their section in the page"

            # The shipped static target localhost:9100 has no agent here, so
            # HostagentDown goes pending for it (and only for it), with a
            # runbook link that opens.
            if not port_in_use(9100):
                def pending():
                    alerts = api(base, "/api/v1/alerts")["alerts"]
                    return [a for a in alerts if a["labels"]["alertname"] == "HostagentDown"]

                down = wait_until(pending, 15, "HostagentDown for localhost:9100")
                assert [(a["labels"]["instance"], a["labels"]["severity"], a["state"]) for a in down] == [
                    ("localhost", "critical", "pending")
                ]
                link = down[0]["annotations"]["runbook_url"]
                assert link == f"{external}/user/runbooks.html#hostagentdown"
                opened = requests.get(link, timeout=10)
                assert opened.status_code == 200 and 'id="hostagentdown"' in opened.text
