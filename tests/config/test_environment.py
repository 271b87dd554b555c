"""HOSTAGENT_* variables: the project's own non-setting variables (the client
tools' and compose file's) never stop the agent; an unknown one still does,
by name."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Dict, Set

from support import REPO, agent_server

from hostagent import config as cfgmod
from hostagent.collectors import load_all

REGISTRY = load_all()
VARIABLE = re.compile(r"\bHOSTAGENT_[A-Z0-9_]*[A-Z0-9]\b")
# Placeholders and deliberate misspellings the docs show as examples.
NOT_VARIABLES = {"HOSTAGENT_COLLECTOR_NAME_OPTION", "HOSTAGENT_NO_SUCH_THING", "HOSTAGENT_LOG_LEVL"}
SCANNED = ["src", "docs", "scripts", "config", "README.md", "Dockerfile", *(p.name for p in REPO.glob("docker-compose*.yml"))]


def variables_the_project_names() -> Dict[str, Set[str]]:
    """Every HOSTAGENT_* name in the project's code, docs, compose files and
    Dockerfile, with the files it appears in."""
    found: Dict[str, Set[str]] = {}
    for entry in SCANNED:
        root = REPO / entry
        files = [root] if root.is_file() else [p for p in root.rglob("*") if p.is_file() and ".egg-info" not in str(p)]
        for path in files:
            try:
                text = path.read_text()
            except (UnicodeDecodeError, OSError):
                continue
            for name in VARIABLE.findall(text):
                if name not in NOT_VARIABLES:
                    found.setdefault(name, set()).add(str(path.relative_to(REPO)))
    return found


def test_every_variable_the_project_names_is_a_setting_or_known_to_be_something_else():
    found = variables_the_project_names()
    # The scan does find the tools' and compose file's variables.
    assert {"HOSTAGENT_PROMETHEUS_URL", "HOSTAGENT_PASSWORD", "HOSTAGENT_EXTERNAL_HOST", "HOSTAGENT_ALERTMANAGER_URL"} <= set(found)
    refused = {}
    for name, where in found.items():
        _, problems = cfgmod.env_overrides({name: "1"}, REGISTRY)
        if any("unknown setting" in p for p in problems):
            refused[name] = sorted(where)
    assert refused == {}, "the agent would refuse to start with these set"


def test_an_unknown_variable_is_still_refused_by_name():
    _, problems = cfgmod.env_overrides({"HOSTAGENT_PROMETHEUS_ULR": "http://x"}, REGISTRY)
    assert len(problems) == 1 and problems[0].startswith("environment variable HOSTAGENT_PROMETHEUS_ULR: unknown setting"), problems


TOOL_VARIABLES = {
    "HOSTAGENT_PROMETHEUS_URL": "http://127.0.0.1:1/",
    "HOSTAGENT_PASSWORD": "secret",
    "HOSTAGENT_EXTERNAL_HOST": "mon-1.example.com",
    "HOSTAGENT_ALERTMANAGER_URL": "http://127.0.0.1:1/",
}


def test_the_agent_and_healthcheck_run_with_the_tools_variables_set(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOSTAGENT_")}
    env.update(TOOL_VARIABLES)
    cfg = tmp_path / "agent.yaml"
    with agent_server(tmp_path, "collectors: {processes: {enabled: false}}\n", env=env) as agent:
        agent.start()
        # The healthcheck reads the same environment and finds the agent by its config file.
        address = agent.base_url.split("//", 1)[1]
        check = subprocess.run(
            [sys.executable, str(REPO / "run_agent.py"), "healthcheck", "--config", str(cfg)],
            capture_output=True, text=True, timeout=60, env={**env, "HOSTAGENT_WEB_LISTEN_ADDRESS": address},
        )
        assert check.returncode == 0, check.stderr
        assert "unknown setting" not in agent.log()
    out = subprocess.run(
        [sys.executable, str(REPO / "run_agent.py"), "--check-config", "--config", str(cfg)],
        capture_output=True, text=True, timeout=60, env={**env, "HOSTAGENT_PROMETHEUS_ULR": "x"},
    )
    assert out.returncode == 2 and "environment variable HOSTAGENT_PROMETHEUS_ULR: unknown setting" in out.stderr, out.stderr


def test_the_container_runs_the_agent_with_the_units_allocator_setting():
    unit = (REPO / "config" / "systemd" / "hostagent.service").read_text()
    dockerfile = (REPO / "Dockerfile").read_text()
    assert "Environment=PYTHONMALLOC=malloc" in unit
    assert re.search(r"^ENV (?:[^\n]*\\\n)*\s*PYTHONMALLOC=malloc\b", dockerfile, re.M), "the image should set PYTHONMALLOC=malloc as the unit does"
