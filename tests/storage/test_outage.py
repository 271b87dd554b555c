"""No sample lost while the central store is down: real agents -> vmagent -> Prometheus.

The full ten-minute run is ``bench/outage``; this one keeps the central store
down for half a minute and restarts the forwarder half-way through, then compares
every series sample by sample with the forwarder's own record (a witness store
that never went down).
"""

from __future__ import annotations

from pathlib import Path
from types import ModuleType
from typing import Tuple

import pytest
from benchscripts import bench_module

INTERVAL = 2.0
OUTAGE = 30.0


@pytest.fixture(scope="module")
def outage() -> ModuleType:
    return bench_module("outage")


def test_nothing_is_lost_across_an_outage_and_a_forwarder_restart(tmp_path: Path, outage: ModuleType, engines: None, fleet_address: Tuple[str, int]) -> None:
    prefix, port = fleet_address
    r = outage.run(tmp_path, agents_count=2, interval=INTERVAL, outage=OUTAGE, forwarder_kind="vmagent", restart=True,
                   prefix=prefix, agent_port=port, catch_up_timeout=180.0)
    detail = outage.report(r)
    # The forwarder kept scraping both agents through the outage and its own restart...
    assert set(r.scrapes_during_outage) == {"host-001", "host-002"}, detail
    for instance, count in r.scrapes_during_outage.items():
        assert count >= 0.7 * OUTAGE / INTERVAL, detail
    assert r.restarted_at is not None and r.peak_buffer_bytes > 0, detail
    # ...over hundreds of series (every collector's, plus the scrape's own)...
    assert r.series >= 200 and r.expected >= r.series * OUTAGE / INTERVAL * 0.7, detail
    # ...and every one of those samples reached the central store.
    assert (r.missing, r.missing_series) == (0, []), detail
    assert r.series_complete == r.series, detail  # counted per series: each one whole
    assert r.present == r.expected and r.catch_up_seconds is not None, detail
