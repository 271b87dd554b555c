"""Fixtures for the storage tier's tests: fleetlib, a block of loopback
addresses for a fleet of agents, and the engines."""

from __future__ import annotations

from types import ModuleType
from typing import Tuple

import pytest
from benchscripts import fleetlib as load_fleetlib
from support import require_tool


@pytest.fixture(scope="session")
def fleetlib() -> ModuleType:
    return load_fleetlib()


@pytest.fixture()
def fleet_address(fleetlib: ModuleType) -> Tuple[str, int]:
    """(prefix, port) for a fleet of up to 12 agents on prefix.1, prefix.2, ..."""
    return fleetlib.free_block(12)


@pytest.fixture(scope="session")
def engines() -> None:
    """Prometheus and the VictoriaMetrics programs, or a skip (a failure under CI)."""
    for name in ("prometheus", "vmagent", "victoria-metrics"):
        require_tool(name)
