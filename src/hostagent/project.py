"""Where the project files the generators read and write live.

Run from a checkout, that is the checkout the package was imported from.
Installed with pip, the package keeps no project files beside it, so it is
the current directory: run ``hostagent rules`` (or ``dashboards``, ``docs``)
from a copy of the project, or pass the paths explicitly.
"""

from __future__ import annotations

from pathlib import Path


def _root() -> Path:
    # src/hostagent/project.py -> the checkout holding src/
    checkout = Path(__file__).resolve().parents[2]
    if (checkout / "pyproject.toml").is_file() and (checkout / "config").is_dir():
        return checkout
    return Path.cwd()


ROOT: Path = _root()


def shown(path: Path) -> str:
    """A path relative to the project root when it is inside it."""
    try:
        return str(path.resolve().relative_to(ROOT))
    except ValueError:
        return str(path)
