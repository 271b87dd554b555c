"""The bench/ scripts as importable modules, for the tests that run them shortened."""

from __future__ import annotations

import importlib.util
import sys
from importlib.machinery import SourceFileLoader
from types import ModuleType

from support import REPO

BENCH = REPO / "bench"


def bench_path() -> None:
    """Put bench/ on sys.path, where the scripts find benchlib and fleetlib."""
    if str(BENCH) not in sys.path:
        sys.path.insert(0, str(BENCH))


def bench_module(name: str) -> ModuleType:
    """bench/<name> as a module (the scripts have no .py suffix)."""
    bench_path()
    loader = SourceFileLoader(f"bench_{name}", str(BENCH / name))
    spec = importlib.util.spec_from_loader(loader.name, loader)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up here
    loader.exec_module(module)
    return module


def fleetlib() -> ModuleType:
    """bench/fleetlib.py: fleets of agents and the engines around them."""
    bench_path()
    return importlib.import_module("fleetlib")
