"""The generators' project and the agent's default config, as a checkout and
as a real `pip install` of the project into a fresh virtual environment."""

from __future__ import annotations

import os
import shutil
import site
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from support import REPO

from hostagent import project

PROJECT_PARTS = ("config", "prometheus", "grafana", "docs")


def test_in_a_checkout_the_root_is_the_checkout():
    assert project.FOUND == project.ROOT == project.checkout() == REPO
    assert project.shown(REPO / "docs" / "metrics.md") == str(REPO / "docs" / "metrics.md")
    assert project.shown("docs") == os.path.join(os.getcwd(), "docs")


def test_the_nearest_project_upwards_wins(tmp_path):
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "alerting.yaml").write_text("alerts: {}\n")
    deep = tmp_path / "docs" / "more"
    deep.mkdir(parents=True)
    assert project.find(deep) == project.find(tmp_path) == tmp_path
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (tmp_path / "config" / "alerting.yaml").unlink()
    assert project.find(elsewhere) == project.checkout()  # the checkout these tests run from


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """bin/ of a fresh venv holding a real (not editable) `pip install` of the
    project; its dependencies come from this test environment."""
    base = tmp_path_factory.mktemp("installed")
    source = base / "source"  # a copy: building writes build/ and *.egg-info beside the sources
    source.mkdir()
    shutil.copytree(REPO / "src", source / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    # The package also carries the default config and the systemd unit (pyproject.toml's data-files).
    for name in ("pyproject.toml", "README.md", "config/agent.yaml", "config/systemd/hostagent.service"):
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO / name, source / name)
    venv = base / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    purelib = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], capture_output=True, text=True, check=True).stdout.strip())
    # Dependencies (psutil, PyYAML, bcrypt...) from the test environment, after the venv's own packages.
    (purelib / "deps.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    out = subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet", "--no-deps", str(source)],
        capture_output=True, text=True, timeout=300,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert (purelib / "hostagent" / "config.py").is_file() and not (purelib / "__editable__.hostagent-0.pth").exists()
    return venv


def hostagent(venv: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HOSTAGENT_", "PYTHON"))}
    return subprocess.run([str(venv / "bin" / "hostagent"), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


def test_installed_agent_never_looks_beside_site_packages(installed, tmp_path):
    purelib = Path(subprocess.run([str(installed / "bin" / "python"), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], capture_output=True, text=True, check=True).stdout.strip())
    # Where the old lookup went: <venv>/lib/python3.X/config/agent.yaml. A file there must be ignored.
    trap = purelib.parent / "config" / "agent.yaml"
    trap.parent.mkdir()
    trap.write_text("not_a_section: {}\n")
    out = hostagent(installed, tmp_path, "--check-config")
    system = "/etc/hostagent/agent.yaml"
    assert out.returncode == 0, out.stderr
    expected = system if os.path.isfile(system) else "(defaults)"
    assert out.stdout.startswith(f"configuration OK: {expected} "), out.stdout
    out = hostagent(installed, tmp_path, "--help")
    assert f"(default: $HOSTAGENT_CONFIG, else {system} if it exists, else built-in defaults)" in " ".join(out.stdout.split()), out.stdout
    assert str(purelib.parent) not in out.stdout


def test_installed_docs_refuse_outside_a_project(installed, tmp_path):
    for args in (["docs"], ["docs", "--check"]):
        out = hostagent(installed, tmp_path, *args)
        assert out.returncode == 2 and "Traceback" not in out.stderr
        assert out.stderr == (
            f"hostagent docs: {tmp_path} is not inside a hostagent project (no config/alerting.yaml or "
            "config/agent.example.yaml in it or above it); run it from your copy of the project\n"
        )
    assert list(tmp_path.iterdir()) == []  # nothing written
    # rules and dashboards say which file they lack, where.
    out = hostagent(installed, tmp_path, "rules", "--check")
    assert out.returncode == 2 and str(tmp_path / "config" / "alerting.yaml") in out.stderr, out.stderr
    out = hostagent(installed, tmp_path, "dashboards", "--check")
    assert out.returncode == 2 and str(tmp_path / "config" / "alerting.yaml") in out.stderr, out.stderr


def test_installed_generators_work_on_the_project_they_run_in(installed, tmp_path):
    work = tmp_path / "work"
    for part in PROJECT_PARTS:
        shutil.copytree(REPO / part, work / part)
    for sub in ("rules", "dashboards", "docs"):
        out = hostagent(installed, work, sub, "--check")
        assert out.returncode == 0, (sub, out.stdout, out.stderr)
    (work / "docs" / "metrics.md").unlink()
    out = hostagent(installed, work / "grafana", "docs")  # from a directory inside the project
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == [f"wrote {work / 'docs' / 'metrics.md'}", f"{work / 'config' / 'agent.example.yaml'} is up to date"]
    assert (work / "docs" / "metrics.md").read_text() == (REPO / "docs" / "metrics.md").read_text()


def test_a_checkouts_command_works_on_the_project_it_runs_in(tmp_path):
    other = tmp_path / "other"
    for part in PROJECT_PARTS:
        shutil.copytree(REPO / part, other / part)
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOSTAGENT_")}
    out = subprocess.run([sys.executable, "-m", "hostagent", "rules", "--check"], cwd=other, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    rules = other / "prometheus" / "rules"
    lines = out.stdout.splitlines()
    assert f"{rules / 'hostagent-alerts.rules.yml'} is up to date" in lines
    assert lines and all(line.startswith(f"{other}/") and line.endswith(" is up to date") for line in lines), lines
    (other / "prometheus" / "rules" / "hostagent-alerts.rules.yml").write_text("stale\n")
    out = subprocess.run([sys.executable, "-m", "hostagent", "rules", "--check"], cwd=other, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 1 and str(rules / "hostagent-alerts.rules.yml") + " is out of date" in out.stderr
    assert str(REPO) not in out.stdout + out.stderr


GENERATED = {
    "docs": ("docs/metrics.md", "config/agent.example.yaml"),
    "rules": ("prometheus/rules/hostagent-alerts.rules.yml",),
    "dashboards": ("grafana/dashboards/overview.json",),
}


@pytest.mark.parametrize("sub", sorted(GENERATED))
def test_the_three_generators_print_the_same_lines(tmp_path, sub):
    work = tmp_path / "work"
    for part in PROJECT_PARTS:
        shutil.copytree(REPO / part, work / part)
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOSTAGENT_")}

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "hostagent", sub, *args], cwd=work, env=env, capture_output=True, text=True, timeout=120)

    # Current: one "is up to date" line per file, with and without --check.
    for args in ((), ("--check",)):
        out = run(*args)
        lines = out.stdout.splitlines()
        assert out.returncode == 0 and out.stderr == "", out.stderr
        assert lines and all(line.startswith(f"{work}/") and line.endswith(" is up to date") for line in lines), lines
        for name in GENERATED[sub]:
            assert f"{work / name} is up to date" in lines
    current = lines
    stale = work / GENERATED[sub][0]
    stale.write_text("stale\n")
    out = run("--check")
    assert out.returncode == 1
    assert out.stderr.splitlines() == [f"hostagent {sub}: {stale} is out of date; run `hostagent {sub}`"]
    assert out.stdout.splitlines() == [line for line in current if not line.startswith(f"{stale} ")]
    out = run()
    assert out.returncode == 0 and out.stderr == ""
    assert out.stdout.splitlines() == [f"wrote {stale}" if line.startswith(f"{stale} ") else line for line in current]
    assert stale.read_text() == (REPO / GENERATED[sub][0]).read_text()
