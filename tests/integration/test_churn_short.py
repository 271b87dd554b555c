"""A shortened bench/churn: under process churn with every job named anew
(the worst case for grouping), the agent at its defaults starts new series
only within its budget, while per-pid series start them by the hundred.

The full measurement, beside the earlier design and at the default
intervals, is ``bench/churn`` (docs/performance.md)."""

from __future__ import annotations

import importlib.util
import re
import sys
from importlib.machinery import SourceFileLoader
from types import ModuleType

from support import REPO, agent_server

from hostagent.collectors.topgroups import BURST

WARMUP, WINDOW, PERIOD = 12.0, 40.0, 2.0
FAST = "limits: {enabled: false}\ncollectors:\n  processes: {interval: 2%s}\n  cgroups: {interval: 2}\n"


def load_churn() -> ModuleType:
    """bench/churn as a module (it is a script without a .py suffix)."""
    loader = SourceFileLoader("bench_churn", str(REPO / "bench" / "churn"))
    spec = importlib.util.spec_from_loader("bench_churn", loader)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    loader.exec_module(module)
    return module


def test_new_series_stay_within_the_budget_under_worst_case_churn(tmp_path):
    churn = load_churn()
    (tmp_path / "defaults").mkdir()
    (tmp_path / "top").mkdir()
    defaults = agent_server(tmp_path / "defaults", FAST % "")
    per_pid = agent_server(tmp_path / "top", FAST % ", top_n: 20")
    with defaults.start(), per_pid.start():
        services = []
        for name, server in (("defaults", defaults), ("top_n 20", per_pid)):
            port = int(server.base_url.rsplit(":", 1)[1])
            services.append(churn.Service(name, server.argv, port, "/-/ready", server.log_path))
            services[-1].proc = server.proc
        with churn.Churn(tmp_path, rate=9.2, workers=4, unique_names=True, max_lifetime=WARMUP + WINDOW + 60) as load:
            tallies = churn.measure(services, load, WARMUP, WINDOW, PERIOD)
    mine, pids = tallies["defaults"], tallies["top_n 20"]
    print(f"new series in {WINDOW:g} s: defaults {len(mine.new)}, top_n 20 {len(pids.new)}; jobs {load.started}")
    assert load.started > 9.2 * (WARMUP + WINDOW) * 0.5, "the churn did not run"
    # No per-process series, and renamed workers never made a group of their own.
    assert not [s for s in mine.seen if 'pid="' in s]
    assert not [s for s in mine.seen if re.search(r'group="kworker[^"]', s)]
    # New groups get series only from the budget: BURST at once, then 15 an
    # hour, 9 series each, whatever the churn (and whatever else runs on the
    # host meanwhile): over an hour at most 9 x (5 + 15) = 180.
    budget = 9 * (BURST + 15 * (WARMUP + WINDOW) / 3600)
    assert len(mine.new) <= budget, sorted(mine.new)
    # The same churn with per-pid series: far beyond 300 an hour.
    assert churn.per_hour(len(pids.new), WINDOW) > 10 * 300, len(pids.new)
