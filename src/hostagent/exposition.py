"""From snapshots to the bytes a scrape gets.

The fresh snapshots' families, plus a private registry with the agent's own
metrics and prometheus-client's process and platform collectors, rendered as
text or OpenMetrics, optionally gzipped. A scrape is handed bytes made before
it arrived; see ``Exposition``.
"""

from __future__ import annotations

import gzip
import logging
import platform
import threading
import time
from dataclasses import dataclass
from typing import Callable, Dict, Iterable, Iterator, List, Optional, Set, Tuple

from .promclient import (
    OPENMETRICS_CONTENT_TYPE,
    TEXT_CONTENT_TYPE,
    CollectorRegistry,
    Metric,
    PlatformCollector,
    ProcessCollector,
    families_of,
    generate_openmetrics,
    generate_text,
)

from . import __version__
from .agent import Agent
from .collectors.base import MetricSpec

log = logging.getLogger("hostagent.exposition")

COLLECTOR_UP = MetricSpec(
    "hostagent_collector_up",
    "gauge",
    "1 if the collector's last runs succeeded and its data is fresh, 0 after 3 consecutive failures or once stale; absent while the collector is not available on this host.",
    ("collector",),
)
COLLECTOR_AVAILABLE = MetricSpec(
    "hostagent_collector_available",
    "gauge",
    "0 while the collector's last run found its source absent on this host (not a failure: no host series, no error counted, readiness not held back), else 1.",
    ("collector",),
)
COLLECTOR_ERRORS = MetricSpec("hostagent_collector_errors_total", "counter", "Runs of the collector that failed (a source absent on this host is not a failure).", ("collector",))
COLLECTOR_RUNS = MetricSpec("hostagent_collector_runs_total", "counter", "Runs of the collector, successful or not.", ("collector",))
COLLECTOR_SKIPPED = MetricSpec("hostagent_collector_skipped_runs_total", "counter", "Scheduled runs skipped because the previous run overran its interval.", ("collector",))
COLLECTOR_DURATION = MetricSpec("hostagent_collector_duration_seconds", "gauge", "Duration of the collector's last run.", ("collector",), "seconds")
COLLECTOR_LAST_SUCCESS = MetricSpec(
    "hostagent_collector_last_success_timestamp_seconds",
    "gauge",
    "Unix time of the collector's last successful run (0 before the first); absent while the collector is not available on this host.",
    ("collector",),
    "seconds",
)
COLLECTOR_SNAPSHOT_TIME = MetricSpec(
    "hostagent_collector_snapshot_timestamp_seconds",
    "gauge",
    "Unix time at which the host data served for the collector was read (the start of the run that made it); absent while none is served. "
    "Its age when scraped is timestamp(x) - x in PromQL.",
    ("collector",),
    "seconds",
)
COLLECTOR_INTERVAL = MetricSpec("hostagent_collector_interval_seconds", "gauge", "Configured seconds between the collector's runs.", ("collector",), "seconds")
COLLECTOR_ENABLED = MetricSpec("hostagent_collector_enabled", "gauge", "1 while the collector is scheduled, 0 once self-monitoring switched it off.", ("collector",))
BUILD_INFO = MetricSpec("hostagent_build_info", "gauge", "Agent version and Python version; value is always 1.", ("version", "python_version"))

AGENT_METRICS: Tuple[MetricSpec, ...] = (
    COLLECTOR_UP,
    COLLECTOR_AVAILABLE,
    COLLECTOR_ERRORS,
    COLLECTOR_RUNS,
    COLLECTOR_SKIPPED,
    COLLECTOR_DURATION,
    COLLECTOR_LAST_SUCCESS,
    COLLECTOR_SNAPSHOT_TIME,
    COLLECTOR_INTERVAL,
    COLLECTOR_ENABLED,
    BUILD_INFO,
)


class AgentCollector:
    """prometheus-client custom collector for the agent's own health metrics."""

    def __init__(self, agent: Agent, extra: Callable[[], List[Metric]] = list):
        self.agent = agent
        self.extra = extra

    def collect(self) -> Iterator[Metric]:
        yield from self.agent_families(self.agent.clock())
        yield from self.extra()

    def agent_families(self, now: float) -> Iterator[Metric]:
        fams = {spec: spec.family() for spec in AGENT_METRICS if spec is not BUILD_INFO}
        for runner in self.agent.runners:
            st = runner.status
            labels = [runner.name]
            if st.not_available:
                # Nothing to be up or fresh about: only available=0 says so.
                fams[COLLECTOR_AVAILABLE].add_metric(labels, 0.0)
            else:
                fams[COLLECTOR_AVAILABLE].add_metric(labels, 1.0)
                fams[COLLECTOR_UP].add_metric(labels, 1.0 if st.enabled and runner.is_up(now) else 0.0)
                fams[COLLECTOR_LAST_SUCCESS].add_metric(labels, st.last_success_wall)
            snap = runner.fresh_snapshot(now) if st.enabled else None
            if snap is not None:
                fams[COLLECTOR_SNAPSHOT_TIME].add_metric(labels, snap.taken_wall)
            fams[COLLECTOR_ERRORS].add_metric(labels, st.errors_total)
            fams[COLLECTOR_RUNS].add_metric(labels, st.runs_total)
            fams[COLLECTOR_SKIPPED].add_metric(labels, st.skipped_total)
            fams[COLLECTOR_DURATION].add_metric(labels, st.last_duration)
            fams[COLLECTOR_INTERVAL].add_metric(labels, runner.interval)
            fams[COLLECTOR_ENABLED].add_metric(labels, 1.0 if st.enabled else 0.0)
        yield from fams.values()
        build = BUILD_INFO.family()
        build.add_metric([__version__, platform.python_version()], 1.0)
        yield build


def build_registry(agent: Agent, extra: Callable[[], List[Metric]] = list) -> CollectorRegistry:
    """The private registry for what changes outside snapshots: the agent's
    health, ``extra`` (self-monitoring), process and platform metrics."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(AgentCollector(agent, extra))
    registry.register(ProcessCollector(registry=None))
    registry.register(PlatformCollector(registry=None))
    return registry


_EOF = b"# EOF\n"


def render(source: object, openmetrics: bool) -> bytes:
    """Families as text-format bytes, or OpenMetrics bytes without '# EOF'."""
    if not openmetrics:
        return generate_text(source)
    return generate_openmetrics(source, eof=False)


Key = Tuple[bool, bool]  # (openmetrics, gzip)

# Seconds the renderer waits after a change before refreshing, so the
# collectors that ran at the same moment are rendered together.
SETTLE = 0.05


@dataclass(frozen=True)
class _Published:
    version: int
    made_at: float
    valid_until: float
    bodies: Dict[Key, bytes]


class Exposition:
    """Bytes for /metrics, rendered once per change, never by a waiting scrape.

    Each snapshot is rendered once, when it first needs to be, and its bytes
    reused until the collector replaces it. A refresh joins those parts with
    the small dynamic part (agent health, process metrics) and publishes every
    variant a client has asked for. With ``start()`` a renderer thread
    refreshes ``settle`` seconds after a change (so collectors finishing
    together are rendered together), when a snapshot goes stale, and every
    ``max_age`` seconds; without it (``--once``, tests) ``body()`` refreshes
    when the published bytes are out of date.

    Nothing in the bytes depends on the moment they are served: the time of
    each collector's data goes out as an absolute Unix time
    (``hostagent_collector_snapshot_timestamp_seconds``), never as an age.
    """

    def __init__(self, agent: Agent, registry: CollectorRegistry, max_age: float = 15.0, compresslevel: int = 1, settle: float = SETTLE):
        self.agent = agent
        self.registry = registry
        self.max_age = max_age
        self.settle = settle
        self.compresslevel = compresslevel
        self.renders = 0  # refreshes so far (tests and the benchmark read it)
        self._published: Optional[_Published] = None
        self._parts: Dict[Tuple[str, bool], Tuple[object, bytes]] = {}
        # Only variants someone has asked for are rendered: Prometheus wants
        # gzipped OpenMetrics, curl plain text; rendering both on every
        # change would double the work.
        # Prometheus's variant is made from the start, so its first scrape
        # does not render; others are added when first asked for.
        self._wanted: Set[Key] = {(True, True)}
        self._render_lock = threading.Lock()
        self._cond = threading.Condition()
        self._dirty = False
        self._stopping = False
        self._thread: Optional[threading.Thread] = None

    # -- rendering -----------------------------------------------------------

    def _part(self, name: str, snap: object, families: Iterable[Metric], openmetrics: bool) -> bytes:
        cached = self._parts.get((name, openmetrics))
        if cached is not None and cached[0] is snap:
            return cached[1]
        try:
            data = render(families_of(families), openmetrics)
        except Exception as exc:  # a collector's bad family must not sink the whole scrape
            log.error("collector %s produced metrics that cannot be rendered, left out until its next run: %s: %s", name, type(exc).__name__, exc)
            data = b""
        self._parts[(name, openmetrics)] = (snap, data)
        return data

    def _assemble(self, openmetrics: bool, now: float) -> bytes:
        parts = []
        for runner in self.agent.active():
            snap = runner.fresh_snapshot(now)
            if snap is not None:
                parts.append(self._part(runner.name, snap, snap.families, openmetrics))
        parts.append(render(self.registry, openmetrics))
        if openmetrics:
            parts.append(_EOF)
        return b"".join(parts)

    def refresh(self) -> None:
        """Render every wanted variant for the current snapshots and publish."""
        with self._render_lock:
            now = self.agent.clock()
            # The version is read first: a change during the render leaves the
            # published version behind, so the change is rendered again.
            version = self.agent.version
            deadlines = [d for d in (r.stale_deadline() for r in self.agent.active()) if d > now]
            valid_until = min([now + self.max_age] + deadlines)
            with self._cond:
                wanted = sorted(self._wanted)
            bodies: Dict[Key, bytes] = {}
            for openmetrics, compressed in wanted:
                plain = bodies.get((openmetrics, False))
                if plain is None:
                    plain = bodies[(openmetrics, False)] = self._assemble(openmetrics, now)
                if compressed:
                    bodies[(openmetrics, True)] = gzip.compress(plain, compresslevel=self.compresslevel)
            # Forget parts of collectors that are gone or stale.
            live = {(r.name, om) for r in self.agent.active() if r.fresh_snapshot(now) is not None for om in (False, True)}
            for key in [k for k in self._parts if k not in live]:
                del self._parts[key]
            self._published = _Published(version, now, valid_until, bodies)
            self.renders += 1

    def _usable(self, pub: Optional[_Published], key: Key, now: float) -> bool:
        if pub is None or key not in pub.bodies or now < pub.made_at:
            # (made "later" than now: the clock stepped back since)
            return False
        if self._thread is not None and self._thread.is_alive():
            # The renderer is (or will be in a moment) at work on any change.
            return now < pub.valid_until + 1.0
        return pub.version == self.agent.version and now < pub.valid_until

    def body(self, openmetrics: bool = False, compressed: bool = False) -> Tuple[bytes, str]:
        """The published bytes and content type for this variant."""
        key = (openmetrics, compressed)
        pub = self._published
        if not self._usable(pub, key, self.agent.clock()):
            with self._cond:
                self._wanted.add(key)
            self.refresh()
            pub = self._published
        assert pub is not None
        return pub.bodies[key], OPENMETRICS_CONTENT_TYPE if openmetrics else TEXT_CONTENT_TYPE

    # -- the renderer thread -------------------------------------------------

    def notify(self) -> None:
        """A snapshot changed: the renderer should refresh."""
        with self._cond:
            self._dirty = True
            self._cond.notify()

    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._dirty and not self._stopping:
                    pub = self._published
                    now = self.agent.clock()
                    if pub is None or not pub.made_at <= now < pub.valid_until:
                        break
                    # At most max_age at a time: the clock is read again, so
                    # one that steps back cannot park the renderer.
                    self._cond.wait(min(pub.valid_until - now, self.max_age))
                if self._dirty:
                    # Collectors of one tick finish within milliseconds of
                    # each other (they share an anchor): one refresh for all.
                    due = time.monotonic() + self.settle
                    while not self._stopping and due > time.monotonic():
                        self._cond.wait(due - time.monotonic())
                if self._stopping:
                    return
                self._dirty = False
            try:
                self.refresh()
            except Exception:  # keep serving what was published; try again on the next change
                log.exception("rendering the exposition failed")

    def start(self) -> None:
        self.agent.listeners.append(self.notify)
        self.refresh()
        self._thread = threading.Thread(target=self._loop, name="exposition", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify()
        if self._thread is not None:
            self._thread.join(2)
