"""config/systemd/hostagent.service: verified by systemd, hardened, and runnable."""

from __future__ import annotations

import shlex
import subprocess
import sys
from pathlib import Path
from typing import Dict, List

from support import REPO, require_tool

UNIT = REPO / "config" / "systemd" / "hostagent.service"
EXEC = "/opt/hostagent/bin/hostagent"


def directives() -> Dict[str, List[str]]:
    """Key -> values, for every [Service]/[Unit]/[Install] line of the unit."""
    out: Dict[str, List[str]] = {}
    for line in UNIT.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith(("#", "[")):
            key, _, value = line.partition("=")
            out.setdefault(key, []).append(value)
    return out


def test_systemd_analyze_verify_is_clean(tmp_path: Path) -> None:
    exe = require_tool("systemd-analyze")
    # verify checks ExecStart exists; point it at a real program, same arguments.
    unit = tmp_path / "hostagent.service"
    unit.write_text(UNIT.read_text().replace(EXEC, sys.executable))
    done = subprocess.run([exe, "verify", str(unit)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    problems = [ln for ln in (done.stdout + done.stderr).splitlines() if "hostagent.service" in ln]
    assert not problems, "\n".join(problems)


def test_hardening() -> None:
    d = directives()
    one = {k: v[-1] for k, v in d.items()}
    assert one["User"] == "hostagent" and one["Group"] == "hostagent"
    for key, value in {
        "NoNewPrivileges": "yes",
        "ProtectSystem": "strict",
        "PrivateTmp": "yes",
        "PrivateDevices": "yes",
        "ProtectKernelTunables": "yes",
        "ProtectKernelModules": "yes",
        "ProtectControlGroups": "yes",
        "RestrictSUIDSGID": "yes",
        "CapabilityBoundingSet": "",
        "Restart": "on-failure",
    }.items():
        assert one.get(key) == value, f"{key}={one.get(key)!r}, want {value!r}"
    assert "DynamicUser" not in one  # a fixed user the docs create


def test_sandbox_leaves_what_the_agent_reads() -> None:
    one = {k: v[-1] for k, v in directives().items()}
    # Other processes' /proc entries and /proc/meminfo, /proc/stat...
    assert one.get("ProtectProc", "default") == "default"
    assert one.get("ProcSubset", "all") == "all"
    # statvfs on /home mounts, the host's interfaces and user names.
    assert one.get("ProtectHome") in ("read-only", "no")  # not yes/tmpfs: /home mounts must stay visible
    for key in ("PrivateNetwork", "PrivateUsers", "PrivateMounts", "InaccessiblePaths"):
        assert key not in one, f"{key} would hide what the agent measures"
    families = one["RestrictAddressFamilies"].split()
    assert {"AF_INET", "AF_INET6"} <= set(families)


def test_exec_start_arguments_are_accepted_by_the_agent(tmp_path: Path) -> None:
    argv = shlex.split(directives()["ExecStart"][0])
    assert argv[0] == EXEC
    assert argv[1:] == ["--config", "/etc/hostagent/agent.yaml"]
    # The same arguments on the repository's config pass the agent's own check.
    args = [a.replace("/etc/hostagent/agent.yaml", str(REPO / "config" / "agent.yaml")) for a in argv[1:]]
    done = subprocess.run([sys.executable, str(REPO / "run_agent.py"), *args, "--check-config"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    # Restart=on-failure must not loop on a bad configuration (exit 2), but
    # a self-monitoring stop (exit 3) restarts: it must not end monitoring.
    assert directives()["RestartPreventExitStatus"][0].split() == ["2"]
