"""Where the tools' PromQL comes from: the named expressions of
``hostagent.promql``, in a scope of the tools' own.

The fleet view and the report read the same quantities the alert rules and
the dashboards read (CPU and memory utilisation, load per core, network
throughput, PSI, who used the host), written once in ``hostagent.promql``;
only the hosts (one scrape job, an instance regex) and the rate window
(2 minutes live, two steps in a report, the whole range for totals) are the
tools' own. So what ``top`` and ``report`` show cannot drift from what
pages someone or what Grafana draws.

    >>> from hostagent import promql as q
    >>> q.memory_utilisation.expr(scope("hostagent", window="2m"))
    '1 - host_memory_available_bytes{job="hostagent"} / host_memory_total_bytes{job="hostagent"}'
"""

from __future__ import annotations

from .. import promql


def quote(value: str) -> str:
    """A PromQL string's inside: backslashes and double quotes escaped."""
    return value.replace("\\", "\\\\").replace('"', '\\"')


def scope(job: str, instances: str = "", window: str = "5m") -> promql.Scope:
    """The hosts of scrape job ``job`` (those whose instance matches the regex
    ``instances``, when given), rates over ``window``, every quantity computed
    afresh: the tools cannot count on the recording rules being loaded."""
    hosts = (f'job="{quote(job)}"',) + ((f'instance=~"{quote(instances)}"',) if instances else ())
    return promql.Scope(hosts=hosts, window=window, recorded=False)


def cpu_utilisation(s: promql.Scope) -> str:
    """Share of CPU time doing work, all cores together (0..1): what
    ``promql.cpu_utilisation`` measures, written as idle time over all time.

    ``rate()`` divides what a counter rose by over the whole window, so a
    window only partly covered by samples (the first and last windows of a
    series, an agent restart, a Prometheus that started an hour ago) reads a
    low idle rate, and ``1 - idle`` reads as a busy CPU. Idle over all time
    cancels the coverage out: both rates shrink alike.

    >>> cpu_utilisation(scope("hostagent", window="10m"))  # doctest: +NORMALIZE_WHITESPACE
    '1 - sum without (cpu, mode) (rate(host_cpu_seconds_total{job="hostagent",mode=~"idle|iowait|steal"}[10m])) / sum without (cpu, mode) (rate(host_cpu_seconds_total{job="hostagent"}[10m]))'
    """
    idle, every = s.rate("host_cpu_seconds_total", promql.CPU_IDLE), s.rate("host_cpu_seconds_total")
    return f"1 - sum without (cpu, mode) ({idle}) / sum without (cpu, mode) ({every})"


def pressure_metric(resource: str, kind: str) -> str:
    """The agent's PSI counter behind ``promql.pressure[(resource, kind)]``."""
    return f"host_pressure_{resource}_{kind}_seconds_total"
