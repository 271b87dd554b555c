"""hostagent install / uninstall: put the agent's config and systemd unit on a host.

    # python3 -m venv /opt/hostagent
    # /opt/hostagent/bin/pip install hostagent-0.2.0-py3-none-any.whl
    # /opt/hostagent/bin/hostagent install --systemd
    installed /etc/hostagent/agent.yaml
    installed /etc/systemd/system/hostagent.service (runs /opt/hostagent/bin/hostagent)
    created system user hostagent
    started hostagent.service

The package carries the default config and the unit (``share/hostagent`` in
its prefix). ``install`` writes them under ``--root`` (default ``/``), the
unit running ``<prefix>/bin/hostagent`` (default: this installation), and
records what it wrote in ``var/lib/hostagent/installed.json``. A file changed
on the host since it was installed is never overwritten: a reinstall or an
upgrade keeps it and says so, and asking for ``--config`` over it fails
without touching anything (``--force`` replaces it, keeping a ``.bak``).
``uninstall`` stops the service and removes what install wrote, except files
changed since (``--purge`` removes those too).

With ``--root`` other than ``/`` (a staging tree, a test) nothing is run: no
user is created and systemctl is not called.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, Optional, Sequence

from . import __version__
from . import config as cfgmod
from .project import checkout
from .usage import ArgumentParser

UNIT_NAME = "hostagent.service"
CONFIG_PATH = "etc/hostagent/agent.yaml"
UNIT_PATH = f"etc/systemd/system/{UNIT_NAME}"
MANIFEST_PATH = "var/lib/hostagent/installed.json"
SHIPPED_EXEC = "/opt/hostagent/bin/hostagent"  # what the shipped unit runs
USER = "hostagent"


class InstallError(Exception):
    """Installing cannot go on; the message says why. Nothing was changed."""

    status = 1


class BadConfig(InstallError):
    """The config to install is not one the agent would run with."""

    status = 2


def shipped_files() -> Dict[str, Path]:
    """The default config and the unit this installation carries: in the
    checkout it runs from, else in its prefix's share/hostagent."""
    root = checkout()
    candidates = (
        {"config": root / "config" / "agent.yaml", "unit": root / "config" / "systemd" / UNIT_NAME} if root else {},
        {"config": Path(sys.prefix) / "share" / "hostagent" / "agent.yaml", "unit": Path(sys.prefix) / "share" / "hostagent" / UNIT_NAME},
    )
    for files in candidates:
        if files and all(p.is_file() for p in files.values()):
            return files
    raise InstallError(f"this installation carries no config and unit (looked in {Path(sys.prefix) / 'share' / 'hostagent'}); "
                       "install hostagent from its wheel or a checkout")


def unit_text(template: str, executable: str) -> str:
    """The shipped unit, running ``executable``."""
    if SHIPPED_EXEC not in template:
        raise InstallError(f"the shipped unit does not run {SHIPPED_EXEC}; cannot point it at {executable}")
    return template.replace(SHIPPED_EXEC, executable)


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass
class Plan:
    """One file to put in place: what happens to it, and the words for it."""

    path: Path
    data: bytes
    mode: int
    action: str  # "write", "same", "keep" (changed on the host), "replace" (changed, --force)
    note: str = ""


def read_manifest(root: Path) -> Dict[str, str]:
    path = root / MANIFEST_PATH
    try:
        data = json.loads(path.read_text())
        return {str(k): str(v) for k, v in data.get("files", {}).items()}
    except FileNotFoundError:
        return {}
    except (OSError, ValueError, AttributeError) as exc:
        raise InstallError(f"{path}: cannot be read ({exc}); move it away to start afresh") from None


def write_manifest(root: Path, files: Dict[str, str]) -> None:
    path = root / MANIFEST_PATH
    if not files:
        if path.exists():
            path.unlink()
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    write_file(path, json.dumps({"version": __version__, "files": files}, indent=2, sort_keys=True).encode() + b"\n", 0o644)


def plan(path: Path, data: bytes, mode: int, installed: Optional[str], force: bool) -> Plan:
    """What to do with ``path``: write it unless the host changed it since it was installed."""
    try:
        current = path.read_bytes()
    except FileNotFoundError:
        return Plan(path, data, mode, "write")
    except OSError as exc:
        raise InstallError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    if current == data:
        return Plan(path, data, mode, "same")
    if installed is not None and digest(current) == installed:
        return Plan(path, data, mode, "write", "updated")  # ours, untouched: an upgrade
    if force:
        return Plan(path, data, mode, "replace")
    return Plan(path, data, mode, "keep", "changed on this host since it was installed" if installed else "not installed by hostagent install")


def write_file(path: Path, data: bytes, mode: int) -> None:
    """Replace ``path`` in one step, with ``mode``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def check_config(path: Path) -> None:
    """The agent's own validation of a config file; InstallError listing the problems."""
    from .collectors import load_all  # noqa: PLC0415 - only installing needs the collectors here

    try:
        cfgmod.load(str(path), load_all(), environ={})
    except cfgmod.ConfigError as exc:
        raise BadConfig(f"{path} is not a valid agent config:\n{exc}") from None


def run(argv: Sequence[str], what: str) -> None:
    try:
        done = subprocess.run(list(argv), capture_output=True, text=True, timeout=120)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise InstallError(f"{what}: {' '.join(argv)}: {exc}") from None
    if done.returncode != 0:
        raise InstallError(f"{what}: {' '.join(argv)} exited with {done.returncode}: {(done.stderr or done.stdout).strip()}")


def systemd_running() -> bool:
    return os.path.isdir("/run/systemd/system")


def ensure_user(say: Callable[[str], None]) -> None:
    try:
        pwd.getpwnam(USER)
        return
    except KeyError:
        pass
    run(["useradd", "--system", "--no-create-home", "--home-dir", "/nonexistent", "--shell", "/usr/sbin/nologin", USER], f"creating the user {USER}")
    say(f"created system user {USER}")


def install(root: Path, prefix: Path, systemd: bool, config: Optional[Path], force: bool, start: bool, say: Callable[[str], None]) -> int:
    live = root.resolve() == Path("/")
    if live and os.geteuid() != 0:
        raise InstallError("writing to / needs root (or give --root DIR to stage the files elsewhere)")
    shipped = shipped_files()
    executable = prefix / "bin" / "hostagent"
    if not (executable.is_file() or (root / str(executable).lstrip("/")).is_file()):
        raise InstallError(f"{executable} does not exist: --prefix must be the environment hostagent is installed in")
    source = config or shipped["config"]
    check_config(source)
    manifest = read_manifest(root)
    plans = [plan(root / CONFIG_PATH, source.read_bytes(), 0o644, manifest.get(CONFIG_PATH), force)]
    if systemd:
        text = unit_text(shipped["unit"].read_text(), str(executable))
        plans.append(plan(root / UNIT_PATH, text.encode(), 0o644, manifest.get(UNIT_PATH), force))
    kept = [p for p in plans if p.action == "keep"]
    if config is not None and any(p.path == (root / CONFIG_PATH) for p in kept):
        raise InstallError(f"refusing to overwrite {root / CONFIG_PATH}: {kept[0].note}; "
                           "compare it with yours, then move it away or add --force (it is kept as .bak)")
    for p in plans:
        relative = str(p.path.relative_to(root))
        if p.action == "keep":
            say(f"kept {p.path} ({p.note}); the shipped version is in {shipped['config'] if relative == CONFIG_PATH else shipped['unit']}")
            continue
        if p.action == "same":
            say(f"up to date {p.path}")
        if p.action == "replace":
            shutil.copy2(p.path, p.path.with_name(p.path.name + ".bak"))
        if p.action in ("write", "replace"):
            write_file(p.path, p.data, p.mode)
            say(f"{p.note or ('replaced' if p.action == 'replace' else 'installed')} {p.path}"
                + (f" (runs {executable})" if relative == UNIT_PATH else "") + (f" (the old one is {p.path.name}.bak)" if p.action == "replace" else ""))
        manifest[relative] = digest(p.data)
    write_manifest(root, manifest)
    if not systemd:
        return 0
    if not live:
        say(f"staged under {root}: no user created, systemctl not run")
        return 0
    ensure_user(say)
    if not systemd_running():
        say("systemd is not running here: start the service with `systemctl enable --now hostagent` where it is")
        return 0
    run(["systemctl", "daemon-reload"], "reloading systemd")
    if start:
        run(["systemctl", "enable", UNIT_NAME], "enabling hostagent")
        run(["systemctl", "restart", UNIT_NAME], "starting hostagent")  # restart: an upgrade runs the new files
        say(f"started {UNIT_NAME}")
    return 0


def uninstall(root: Path, purge: bool, say: Callable[[str], None]) -> int:
    live = root.resolve() == Path("/")
    if live and os.geteuid() != 0:
        raise InstallError("removing from / needs root (or give --root DIR)")
    manifest = read_manifest(root)
    if not manifest:
        say(f"nothing installed under {root} by hostagent install ({root / MANIFEST_PATH} is absent)")
        return 0
    if live and UNIT_PATH in manifest and systemd_running():
        run(["systemctl", "disable", "--now", UNIT_NAME], "stopping hostagent")
    left: Dict[str, str] = {}
    for relative, installed in sorted(manifest.items()):
        path = root / relative
        try:
            current = path.read_bytes()
        except FileNotFoundError:
            continue
        if digest(current) != installed and not purge:
            say(f"kept {path} (changed since it was installed; --purge removes it)")
            left[relative] = installed
            continue
        path.unlink()
        say(f"removed {path}")
    write_manifest(root, left)
    if live and UNIT_PATH in manifest and systemd_running():
        run(["systemctl", "daemon-reload"], "reloading systemd")
    for directory in ((root / "etc/hostagent"), (root / MANIFEST_PATH).parent):
        try:
            directory.rmdir()  # only when empty
        except OSError:
            pass
    say(f"the program itself stays: remove it with {Path(sys.prefix) / 'bin' / 'pip'} uninstall hostagent (or delete {sys.prefix}); "
        f"the user {USER} stays too (userdel {USER})")
    return 0


def _directory(text: str) -> Path:
    path = Path(text)
    if not path.is_absolute():
        raise argparse.ArgumentTypeError(f"must be an absolute path, got {text!r}")
    return path


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = ArgumentParser(
        prog="hostagent install",
        description="Install the agent's config (/etc/hostagent/agent.yaml) and, with --systemd, its systemd unit, "
        "user and service. A config changed on the host since it was installed is never overwritten.",
    )
    parser.add_argument("--systemd", action="store_true", help="also install the systemd unit, create the user and start the service")
    parser.add_argument("--config", type=Path, metavar="FILE", help="install this config instead of the shipped default (checked first)")
    parser.add_argument("--force", action="store_true", help="replace files changed on the host, keeping each as .bak")
    parser.add_argument("--no-start", dest="start", action="store_false", help="with --systemd: do not enable or (re)start the service")
    parser.add_argument("--root", type=_directory, default=Path("/"), metavar="DIR", help="write under DIR instead of / (stage files; runs nothing)")
    parser.add_argument("--prefix", type=_directory, default=Path(sys.prefix), metavar="DIR",
                        help=f"the environment whose bin/hostagent the unit runs (default: this one, {sys.prefix})")
    args = parser.parse_args(argv)
    return _main(lambda say: install(args.root, args.prefix, args.systemd, args.config, args.force, args.start, say), "install")


def uninstall_main(argv: Optional[Sequence[str]] = None) -> int:
    parser = ArgumentParser(
        prog="hostagent uninstall",
        description="Stop the service and remove what hostagent install wrote, except files changed since (see --purge).",
    )
    parser.add_argument("--purge", action="store_true", help="remove files changed since they were installed too")
    parser.add_argument("--root", type=_directory, default=Path("/"), metavar="DIR", help="remove from under DIR instead of /")
    args = parser.parse_args(argv)
    return _main(lambda say: uninstall(args.root, args.purge, say), "uninstall")


def _main(action: Callable[[Callable[[str], None]], int], name: str) -> int:
    def say(line: str) -> None:
        print(line, flush=True)

    try:
        return action(say)
    except InstallError as exc:
        print(f"hostagent {name}: {exc}", file=sys.stderr)
        return exc.status
    except OSError as exc:
        print(f"hostagent {name}: {exc.filename or ''}: {exc.strerror or exc}", file=sys.stderr)
        return 1
