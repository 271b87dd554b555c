"""Self-monitoring: the agent checks its own CPU and memory against limits.

Over a limit the configured action runs: ``log`` says so (once per change),
``disable_collectors`` switches off the most expensive collector still on (one
per check, saying which), ``stop`` asks the agent to exit with status 3.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from typing import Callable, Iterator, List, Mapping, Optional, Tuple

from .promclient import Metric

from .agent import Agent
from .collectors.base import MetricSpec

log = logging.getLogger("hostagent.selfmon")

EXIT_LIMIT = 3

# CPU in cores, not a ratio: a multi-threaded agent can use more than one.
SELF_CPU = MetricSpec("hostagent_self_cpu_usage_cores", "gauge", "The agent's CPU use over the last self-check, in cores: 1.0 = one core busy.", (), "cores")
SELF_RSS = MetricSpec("hostagent_self_resident_memory_bytes", "gauge", "The agent's resident memory at the last self-check.", (), "bytes")
LIMIT_CPU = MetricSpec("hostagent_limit_cpu_cores", "gauge", "Self-monitoring CPU limit, in cores: 1.0 = one core busy (limits.max_cpu_percent / 100).", (), "cores")
LIMIT_RSS = MetricSpec("hostagent_limit_resident_memory_bytes", "gauge", "Self-monitoring resident memory limit (limits.max_rss_bytes).", (), "bytes")
LIMIT_EXCEEDED = MetricSpec("hostagent_limit_exceeded", "gauge", "1 while the resource is over its limit at the last self-check.", ("resource",))
LIMIT_ACTIONS = MetricSpec("hostagent_limit_actions_total", "counter", "Times a limit action ran.", ("action",))

SELF_METRICS: Tuple[MetricSpec, ...] = (SELF_CPU, SELF_RSS, LIMIT_CPU, LIMIT_RSS, LIMIT_EXCEEDED, LIMIT_ACTIONS)


@dataclass(frozen=True)
class Usage:
    cpu_cores: float  # 1.0 = one core busy
    rss_bytes: int


def process_usage(
    clock: Callable[[], float] = time.monotonic,
    cpu_seconds: Callable[[], float] = time.process_time,
    statm: str = "/proc/self/statm",
) -> Callable[[], Usage]:
    """A reader of this process's CPU use (in cores) since the previous call and RSS.

    The agent's own figures come from its own /proc (and the CPU clock of the
    process, all threads), never from the configured procfs: in a container
    that is the host's, where the agent's pid may mean nothing."""
    page = os.sysconf("SC_PAGE_SIZE")
    last = [clock(), cpu_seconds()]

    def read() -> Usage:
        now, used = clock(), cpu_seconds()
        elapsed = now - last[0]
        cores = max(used - last[1], 0.0) / elapsed if elapsed > 0 else 0.0
        last[:] = [now, used]
        with open(statm) as f:
            resident_pages = int(f.read().split()[1])
        return Usage(cores, resident_pages * page)

    return read


class SelfMonitor:
    """Compares usage with limits and carries out the configured action."""

    def __init__(self, limits: Mapping, agent: Agent, read: Callable[[], Usage], request_stop: Callable[[int], None]):
        self.max_cpu = float(limits["max_cpu_percent"]) / 100.0
        self.max_rss = int(limits["max_rss_bytes"])
        self.action = limits["action"]
        self.agent = agent
        self.read = read
        self.request_stop = request_stop
        self.last: Optional[Usage] = None
        self.exceeded = {"cpu": False, "memory": False}
        self.actions = {"log": 0, "disable_collectors": 0, "stop": 0}
        self._kept: Optional[str] = None  # the last collector left running, once said

    def check(self) -> List[str]:
        """One check; returns the resources over their limit."""
        usage = self.last = self.read()
        over = []
        if usage.cpu_cores > self.max_cpu:
            over.append("cpu")
        if usage.rss_bytes > self.max_rss:
            over.append("memory")
        for resource in ("cpu", "memory"):
            now_over = resource in over
            if now_over != self.exceeded[resource]:
                if now_over:
                    log.warning("self-monitoring: %s", self._describe(resource, usage))
                else:
                    log.info("self-monitoring: %s back under its limit", resource)
            self.exceeded[resource] = now_over
        if over:
            self._act(over, usage)
        return over

    def _describe(self, resource: str, usage: Usage) -> str:
        if resource == "cpu":
            return f"CPU {usage.cpu_cores * 100:.1f}% of a core is over the limit {self.max_cpu * 100:g}%"
        return f"resident memory {usage.rss_bytes / 2**20:.1f} MiB is over the limit {self.max_rss / 2**20:.1f} MiB"

    def _act(self, over: List[str], usage: Usage) -> None:
        if self.action == "disable_collectors":
            active = self.agent.active()
            if len(active) <= 1:
                # Nothing left to do: said once, not at every check.
                kept = active[0].name if active else "nothing"
                if kept != self._kept:
                    self._kept = kept
                    log.warning("self-monitoring: only %s left running; not disabling it", kept)
                return
            victim = max(active, key=lambda r: r.cost())
            log.warning(
                "self-monitoring: disabling collector %s, the most expensive (%.1f ms per %gs run) because %s",
                victim.name, victim.status.last_duration * 1000, victim.interval, " and ".join(over),
            )
            self.agent.disable(victim.name)
            self.actions[self.action] += 1
            return
        self.actions[self.action] += 1
        if self.action == "stop":
            log.error("self-monitoring: stopping the agent because %s", "; ".join(self._describe(r, usage) for r in over))
            self.request_stop(EXIT_LIMIT)

    def families(self) -> Iterator[Metric]:
        if self.last is not None:
            yield SELF_CPU.single(self.last.cpu_cores)
            yield SELF_RSS.single(self.last.rss_bytes)
        yield LIMIT_CPU.single(self.max_cpu)
        yield LIMIT_RSS.single(self.max_rss)
        exceeded = LIMIT_EXCEEDED.family()
        for resource, value in self.exceeded.items():
            exceeded.add_metric([resource], 1.0 if value else 0.0)
        yield exceeded
        actions = LIMIT_ACTIONS.family()
        for action, count in self.actions.items():
            actions.add_metric([action], count)
        yield actions
