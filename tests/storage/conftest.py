"""Fixtures for the storage tier's tests: fleetlib, a block of loopback
addresses for a fleet of agents, and the engines."""

from __future__ import annotations

import random
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
    """(prefix, port) for a fleet: agents on prefix.1, prefix.2, ... all on one port.

    A random /24 of 127.0.0.0/8 and a port free on its first addresses, so
    tests running beside others (or beside a real agent on :9100) never meet."""
    for _ in range(50):
        prefix = f"127.{random.randint(100, 250)}.{random.randint(1, 254)}"
        port = random.randint(20000, 60000)
        if all(fleetlib.port_free(f"{prefix}.{i}", port) for i in range(1, 13)):
            return prefix, port
    pytest.fail("no free loopback block for a fleet")


@pytest.fixture(scope="session")
def engines() -> None:
    """Prometheus and the VictoriaMetrics programs, or a skip (a failure under CI)."""
    for name in ("prometheus", "vmagent", "victoria-metrics"):
        require_tool(name)
