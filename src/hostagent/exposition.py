"""From snapshots to the bytes a scrape gets.

A private registry holds one custom collector that yields the fresh snapshots'
families plus the agent's own metrics, and prometheus-client's process and
platform collectors. The rendered bytes (text, OpenMetrics, each optionally
gzipped) are cached and reused until a snapshot changes, one goes stale, or
``max_age`` passes (the agent's own process metrics keep moving).
"""

from __future__ import annotations

import gzip
import platform
import threading
from dataclasses import dataclass, field
from typing import Callable, Dict, Iterator, List, Optional, Tuple

from prometheus_client import CollectorRegistry, PlatformCollector, ProcessCollector
from prometheus_client.core import Metric
from prometheus_client.exposition import generate_latest
from prometheus_client.openmetrics.exposition import CONTENT_TYPE_LATEST as OPENMETRICS_CONTENT_TYPE
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics

from . import __version__
from .agent import Agent
from .collectors.base import MetricSpec

TEXT_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

COLLECTOR_UP = MetricSpec("hostagent_collector_up", "gauge", "1 if the collector's last runs succeeded and its data is fresh, 0 after 3 consecutive failures or once stale.", ("collector",))
COLLECTOR_ERRORS = MetricSpec("hostagent_collector_errors_total", "counter", "Runs of the collector that failed.", ("collector",))
COLLECTOR_RUNS = MetricSpec("hostagent_collector_runs_total", "counter", "Runs of the collector, successful or not.", ("collector",))
COLLECTOR_SKIPPED = MetricSpec("hostagent_collector_skipped_runs_total", "counter", "Scheduled runs skipped because the previous run overran its interval.", ("collector",))
COLLECTOR_DURATION = MetricSpec("hostagent_collector_duration_seconds", "gauge", "Duration of the collector's last run.", ("collector",), "seconds")
COLLECTOR_LAST_SUCCESS = MetricSpec("hostagent_collector_last_success_timestamp_seconds", "gauge", "Unix time of the collector's last successful run (0 before the first).", ("collector",), "seconds")
COLLECTOR_INTERVAL = MetricSpec("hostagent_collector_interval_seconds", "gauge", "Configured seconds between the collector's runs.", ("collector",), "seconds")
COLLECTOR_ENABLED = MetricSpec("hostagent_collector_enabled", "gauge", "1 while the collector is scheduled, 0 once self-monitoring switched it off.", ("collector",))
BUILD_INFO = MetricSpec("hostagent_build_info", "gauge", "Agent version and Python version; value is always 1.", ("version", "python_version"))

AGENT_METRICS: Tuple[MetricSpec, ...] = (
    COLLECTOR_UP,
    COLLECTOR_ERRORS,
    COLLECTOR_RUNS,
    COLLECTOR_SKIPPED,
    COLLECTOR_DURATION,
    COLLECTOR_LAST_SUCCESS,
    COLLECTOR_INTERVAL,
    COLLECTOR_ENABLED,
    BUILD_INFO,
)


class SnapshotCollector:
    """prometheus-client custom collector serving the agent's snapshots."""

    def __init__(self, agent: Agent, extra: Callable[[], List[Metric]] = list):
        self.agent = agent
        self.extra = extra

    def collect(self) -> Iterator[Metric]:
        now = self.agent.clock()
        for runner in self.agent.active():
            snap = runner.fresh_snapshot(now)
            if snap is not None:
                yield from snap.families
        yield from self.agent_families(now)
        yield from self.extra()

    def agent_families(self, now: float) -> Iterator[Metric]:
        fams = {spec: spec.family() for spec in AGENT_METRICS if spec is not BUILD_INFO}
        for runner in self.agent.runners:
            st = runner.status
            labels = [runner.name]
            fams[COLLECTOR_UP].add_metric(labels, 1.0 if st.enabled and runner.is_up(now) else 0.0)
            fams[COLLECTOR_ERRORS].add_metric(labels, st.errors_total)
            fams[COLLECTOR_RUNS].add_metric(labels, st.runs_total)
            fams[COLLECTOR_SKIPPED].add_metric(labels, st.skipped_total)
            fams[COLLECTOR_DURATION].add_metric(labels, st.last_duration)
            fams[COLLECTOR_LAST_SUCCESS].add_metric(labels, st.last_success_wall)
            fams[COLLECTOR_INTERVAL].add_metric(labels, runner.interval)
            fams[COLLECTOR_ENABLED].add_metric(labels, 1.0 if st.enabled else 0.0)
        yield from fams.values()
        build = BUILD_INFO.family()
        build.add_metric([__version__, platform.python_version()], 1.0)
        yield build


def build_registry(agent: Agent, extra: Callable[[], List[Metric]] = list) -> CollectorRegistry:
    """The private registry behind /metrics."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(SnapshotCollector(agent, extra))
    registry.register(ProcessCollector(registry=None))
    registry.register(PlatformCollector(registry=None))
    return registry


@dataclass
class _Rendered:
    version: int
    made_at: float
    valid_until: float
    bodies: Dict[Tuple[bool, bool], bytes] = field(default_factory=dict)


class Exposition:
    """Rendered bytes for the current snapshots, made once per change."""

    def __init__(self, agent: Agent, registry: CollectorRegistry, max_age: float = 1.0):
        self.agent = agent
        self.registry = registry
        self.max_age = max_age
        self._lock = threading.Lock()
        self._cache: Optional[_Rendered] = None
        self.renders = 0  # how many times bytes were made (tests and bench read it)

    def _valid(self, cache: Optional[_Rendered], now: float) -> bool:
        return cache is not None and cache.version == self.agent.version and now < cache.valid_until

    def body(self, openmetrics: bool = False, compressed: bool = False) -> Tuple[bytes, str]:
        """Bytes and content type; renders only when the cache is outdated."""
        now = self.agent.clock()
        with self._lock:
            cache = self._cache
            if not self._valid(cache, now):
                # Read the version before rendering: a change during the render
                # then makes the next scrape render again.
                stale_at = min((r.stale_deadline() for r in self.agent.active()), default=now + self.max_age)
                cache = self._cache = _Rendered(self.agent.version, now, min(now + self.max_age, stale_at))
            plain = cache.bodies.get((openmetrics, False))
            if plain is None:
                plain = cache.bodies[(openmetrics, False)] = self._render(openmetrics)
            data = plain
            if compressed:
                data = cache.bodies.get((openmetrics, True)) or cache.bodies.setdefault((openmetrics, True), gzip.compress(plain, compresslevel=6))
        return data, OPENMETRICS_CONTENT_TYPE if openmetrics else TEXT_CONTENT_TYPE

    def _render(self, openmetrics: bool) -> bytes:
        self.renders += 1
        return generate_openmetrics(self.registry) if openmetrics else generate_latest(self.registry)
