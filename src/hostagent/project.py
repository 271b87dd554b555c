"""Where the project files the generators read and write live.

The project is the nearest directory, from the current one upwards, holding
``config/alerting.yaml`` or ``config/agent.example.yaml``: run ``hostagent
rules`` (or ``dashboards``, ``docs``) from anywhere inside a copy of the
project and that copy is the one read and written. Outside any project, it
is the checkout the package runs from, if it runs from one. An installed
package run outside a project has none (``FOUND`` is None): ``hostagent
docs`` refuses to write there, ``rules`` and ``dashboards`` report the files
they lack. Paths are shown absolute, so a message never leaves in doubt
which copy it is about.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Optional, Union

# Files only a hostagent project holds.
MARKERS = ("config/alerting.yaml", "config/agent.example.yaml")


def checkout() -> Optional[Path]:
    """The source checkout this package is imported from (src/hostagent in
    it), or None when the package is installed."""
    src = Path(__file__).resolve().parents[1]
    if src.name == "src" and (src.parent / "pyproject.toml").is_file():
        return src.parent
    return None


def find(start: Optional[Path]) -> Optional[Path]:
    """The project holding ``start`` (a directory), else the checkout, else None."""
    for directory in (start, *start.parents) if start is not None else ():
        if any((directory / marker).is_file() for marker in MARKERS):
            return directory
    return checkout()


def _cwd() -> Optional[Path]:
    try:
        return Path.cwd()
    except OSError:  # the current directory was removed
        return None


FOUND: Optional[Path] = find(_cwd())
ROOT: Path = FOUND or _cwd() or Path("/")


def outside_project(command: str) -> Optional[str]:
    """Why ``command`` must not write here, or None inside a project."""
    if FOUND is not None:
        return None
    return (
        f"{command}: {_cwd() or 'the current directory'} is not inside a hostagent project "
        f"(no {' or '.join(MARKERS)} in it or above it); run it from your copy of the project"
    )


def shown(path: Union[str, "os.PathLike[str]"]) -> str:
    """A path as messages show it: absolute."""
    return os.path.abspath(path)


def write_or_check(command: str, path: Path, text: str, check: bool) -> int:
    """Write ``text`` to ``path``, or with ``check`` only compare, and print
    one line about it, the same for every generator:

        wrote /abs/path                  (stdout: it changed and was written)
        /abs/path is up to date          (stdout: nothing to do)
        hostagent rules: /abs/path is out of date; run `hostagent rules`
                                         (stderr, --check: missing or out of date)

    Returns the exit status for this file: 0, 1 stale under ``check``, 2 when
    it cannot be written."""
    current = path.read_text(encoding="utf-8") if path.is_file() else None
    if current == text:
        print(f"{shown(path)} is up to date")
        return 0
    if check:
        print(f"{command}: {shown(path)} is {'missing' if current is None else 'out of date'}; run `{command}`", file=sys.stderr)
        return 1
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        print(f"{command}: cannot write {shown(path)}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    print(f"wrote {shown(path)}")
    return 0
