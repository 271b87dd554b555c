"""The generators' project root: the checkout, or the current directory when
the package is installed without one."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from support import REPO

from hostagent import project


def test_in_a_checkout_the_root_is_the_checkout():
    assert project.ROOT == REPO
    assert project.shown(REPO / "docs" / "metrics.md") == "docs/metrics.md"
    assert project.shown(Path("/etc/hostname")) == "/etc/hostname"


def installed_copy(tmp_path: Path) -> Path:
    """The package alone in a site directory, as pip installs it."""
    site = tmp_path / "site"
    shutil.copytree(REPO / "src" / "hostagent", site / "hostagent", ignore=shutil.ignore_patterns("__pycache__"))
    return site


def hostagent(site: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(site)}
    code = "import sys; from hostagent.cli import main; sys.exit(main(sys.argv[1:]))"
    return subprocess.run([sys.executable, "-c", code, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


def test_installed_package_works_on_the_current_directory(tmp_path):
    site = installed_copy(tmp_path)
    work = tmp_path / "work"
    work.mkdir()

    # No project files here: each generator says which file it lacks, where.
    out = hostagent(site, work, "rules", "--check")
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert str(work / "config" / "alerting.yaml") in out.stderr, out.stderr
    out = hostagent(site, work, "docs", "--check")
    assert out.returncode == 1 and "docs/metrics.md is missing" in out.stderr, out.stderr

    # A copy of the project's files: checked and regenerated in place.
    for part in ("config", "prometheus", "grafana", "docs"):
        shutil.copytree(REPO / part, work / part)
    for sub in ("rules", "dashboards", "docs"):
        out = hostagent(site, work, sub, "--check")
        assert out.returncode == 0, (sub, out.stdout, out.stderr)
    (work / "docs" / "metrics.md").unlink()
    out = hostagent(site, work, "docs")
    assert out.returncode == 0 and "wrote docs/metrics.md" in out.stdout, out.stderr
    assert (work / "docs" / "metrics.md").read_text() == (REPO / "docs" / "metrics.md").read_text()
