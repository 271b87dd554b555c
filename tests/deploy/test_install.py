"""The wheel, installed on a bare host: `python -m build`, a fresh venv,
`hostagent install --systemd` into a staging root, the unit verified by
systemd, and `hostagent uninstall`."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Dict, Iterator, List

import pytest
from support import REPO, require_tool

from hostagent import install as inst

# What a source tree holds that a build must not see or write into.
NOT_SOURCE = shutil.ignore_patterns(".venv", ".git", "build", "dist", "*.egg-info", "__pycache__", ".pytest_cache", ".hypothesis", "tests", "bench")


def sh(argv: List[str], cwd: Path = REPO, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([str(a) for a in argv], cwd=cwd, capture_output=True, text=True, timeout=timeout)


def build_wheel(source: Path, out: Path) -> Path:
    done = sh([sys.executable, "-m", "build", "--wheel", "--outdir", out, source], cwd=source)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    (wheel,) = out.glob("hostagent-*.whl")
    return wheel


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A fresh venv with only the wheel built from a copy of this tree installed."""
    pytest.importorskip("build", reason="the test extra installs build")
    tmp = tmp_path_factory.mktemp("wheel")
    source = tmp / "src-tree"
    shutil.copytree(REPO, source, ignore=NOT_SOURCE)
    wheel = build_wheel(source, tmp / "dist")
    env = tmp / "venv"
    done = sh([sys.executable, "-m", "venv", env])
    assert done.returncode == 0, done.stderr
    done = sh([env / "bin" / "pip", "install", "--quiet", "--disable-pip-version-check", wheel])
    assert done.returncode == 0, done.stderr[-2000:]
    yield env


def hostagent(env: Path, *args: object) -> subprocess.CompletedProcess:
    # Run from a directory outside any checkout: the installed program alone.
    return sh([env / "bin" / "hostagent", *args], cwd=env)


def tree(root: Path) -> Dict[str, str]:
    return {str(p.relative_to(root)): p.read_text() for p in sorted(root.rglob("*")) if p.is_file()}


def test_the_wheel_carries_the_config_and_unit(venv: Path) -> None:
    share = venv / "share" / "hostagent"
    assert (share / "agent.yaml").read_text() == (REPO / "config" / "agent.yaml").read_text()
    assert (share / "hostagent.service").read_text() == (REPO / "config" / "systemd" / "hostagent.service").read_text()


def test_install_uninstall_in_a_staging_root(venv: Path, tmp_path: Path) -> None:
    root = tmp_path / "root"
    done = hostagent(venv, "install", "--systemd", "--root", root)
    assert done.returncode == 0, done.stderr
    config = root / "etc/hostagent/agent.yaml"
    unit = root / "etc/systemd/system/hostagent.service"
    assert f"installed {config}" in done.stdout and f"installed {unit} (runs {venv}/bin/hostagent)" in done.stdout
    assert "no user created, systemctl not run" in done.stdout
    assert config.read_text() == (REPO / "config" / "agent.yaml").read_text()
    assert oct(config.stat().st_mode & 0o777) == "0o644"
    assert f"ExecStart={venv}/bin/hostagent --config /etc/hostagent/agent.yaml" in unit.read_text()
    assert inst.SHIPPED_EXEC not in unit.read_text()

    # Installing again changes nothing; the installed agent accepts the installed config.
    before = tree(root)
    done = hostagent(venv, "install", "--systemd", "--root", root)
    assert done.returncode == 0 and tree(root) == before, done.stdout + done.stderr
    done = hostagent(venv, "--config", config, "--check-config")
    assert done.returncode == 0 and "configuration OK" in done.stdout, done.stderr

    # A config changed on the host survives a reinstall, and an explicit --config over it is refused.
    config.write_text(config.read_text() + "# tuned on this host\n")
    changed = config.read_text()
    done = hostagent(venv, "install", "--systemd", "--root", root)
    assert done.returncode == 0 and config.read_text() == changed
    assert f"kept {config} (changed on this host since it was installed)" in done.stdout
    mine = tmp_path / "fleet.yaml"
    mine.write_text("collectors:\n  processes:\n    enabled: false\n")
    done = hostagent(venv, "install", "--root", root, "--config", mine)
    assert done.returncode == 1 and f"refusing to overwrite {config}" in done.stderr and config.read_text() == changed
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    done = hostagent(venv, "install", "--root", root, "--config", mine, "--force")
    assert done.returncode == 0, done.stderr
    assert config.read_text() == mine.read_text() and (config.parent / "agent.yaml.bak").read_text() == changed

    # A config the agent would refuse is never installed (exit 2, as for any bad configuration).
    bad = tmp_path / "bad.yaml"
    bad.write_text("collectors:\n  cpu:\n    interval: -1\n")
    done = hostagent(venv, "install", "--root", root, "--config", bad, "--force")
    assert done.returncode == 2 and "is not a valid agent config" in done.stderr and "collectors.cpu.interval" in done.stderr
    assert config.read_text() == mine.read_text()

    # uninstall removes what install wrote and nothing changed since.
    unit.write_text(unit.read_text() + "# local tweak\n")
    done = hostagent(venv, "uninstall", "--root", root)
    assert done.returncode == 0, done.stderr
    assert f"removed {config}" in done.stdout and f"kept {unit} (changed since it was installed" in done.stdout
    assert not config.exists() and unit.exists() and (config.parent / "agent.yaml.bak").exists()
    done = hostagent(venv, "uninstall", "--root", root, "--purge")
    assert done.returncode == 0 and not unit.exists() and f"removed {unit}" in done.stdout
    assert not (root / inst.MANIFEST_PATH).exists()
    done = hostagent(venv, "uninstall", "--root", root)
    assert done.returncode == 0 and "nothing installed" in done.stdout


def test_installed_unit_passes_systemd_analyze(venv: Path, tmp_path: Path) -> None:
    exe = require_tool("systemd-analyze")
    root = tmp_path / "root"
    done = hostagent(venv, "install", "--systemd", "--root", root)
    assert done.returncode == 0, done.stderr
    unit = root / "etc/systemd/system/hostagent.service"
    # The unit runs the venv's hostagent, which exists: verify checks it.
    done = sh([exe, "verify", unit])
    problems = [ln for ln in (done.stdout + done.stderr).splitlines() if "hostagent.service" in ln]
    assert done.returncode == 0 and not problems, done.stdout + done.stderr
    # verify does fail on a unit whose program is missing, so passing means something.
    broken = tmp_path / "hostagent.service"
    broken.write_text(unit.read_text().replace(f"{venv}/bin/hostagent", f"{tmp_path}/missing/hostagent"))
    done = sh([exe, "verify", broken])
    assert done.returncode != 0 or "missing/hostagent" in done.stdout + done.stderr


def test_refusals_and_usage(venv: Path, tmp_path: Path) -> None:
    done = hostagent(venv, "install", "--root", "relative/dir")
    assert done.returncode == 2 and "--root: must be an absolute path" in done.stderr
    done = hostagent(venv, "install", "--root", tmp_path / "r", "--prefix", tmp_path / "nowhere")
    assert done.returncode == 1 and f"{tmp_path / 'nowhere'}/bin/hostagent does not exist" in done.stderr
    assert not (tmp_path / "r").exists()
    if shutil.which("id") and sh(["id", "-u"]).stdout.strip() != "0":
        done = hostagent(venv, "install", "--systemd")
        assert done.returncode == 1 and "needs root" in done.stderr


def test_wheel_builds_from_what_the_container_build_sees(tmp_path: Path) -> None:
    """The Dockerfile installs the package from the files .dockerignore lets in."""
    pytest.importorskip("build", reason="the test extra installs build")
    context = tmp_path / "context"
    allowed = [ln[1:] for ln in (REPO / ".dockerignore").read_text().splitlines() if ln.startswith("!")]
    for entry in allowed:
        src = REPO / entry.rstrip("/")
        dest = context / entry.rstrip("/")
        dest.parent.mkdir(parents=True, exist_ok=True)
        if src.is_dir():
            shutil.copytree(src, dest, ignore=NOT_SOURCE)
        else:
            shutil.copy2(src, dest)
    wheel = build_wheel(context, tmp_path / "dist")
    with zipfile.ZipFile(wheel) as zf:
        shared = sorted(n.split("/data/", 1)[1] for n in zf.namelist() if ".data/data/" in n)
    assert shared == ["share/hostagent/agent.yaml", "share/hostagent/hostagent.service"]
