"""A process that burns a core for 10 seconds and exits, between two runs of
the processes collector, shows in a real Prometheus scraping the real agent
at its default intervals: in its process group and in its cgroup."""

from __future__ import annotations

import os
import subprocess
import sys
import time

from cgrouptest import ROOT, move, v1_cgroup
from support import agent_server, prom_query, prometheus_server, require_tool, wait_until

# A job that forks a worker (same command name, as job runners do), lets it
# spin for 10 s of wall time and reaps it; it prints the CPU the worker used.
JOB = r"""
import os, resource, sys, time
open("/proc/self/comm", "w").write(sys.argv[1])
sys.stdin.readline()
started = time.time()
pid = os.fork()
if pid == 0:
    end = time.monotonic() + 10.0
    while time.monotonic() < end:
        pass
    os._exit(0)
_, _, usage = os.wait4(pid, 0)
print(f"{started} {time.time()} {usage.ru_utime + usage.ru_stime}", flush=True)
sys.stdin.readline()
"""


def test_ten_second_hog_shows_in_its_group_and_its_cgroup(tmp_path):
    require_tool("prometheus")
    name = f"hostagent-hog-{os.getpid()}"
    with v1_cgroup(name, ("cpuacct",)) as dirs:
        group = f"hogjob{os.getpid()}"  # this run's own: no other process on the host is in it
        job = subprocess.Popen([sys.executable, "-c", JOB, group], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        try:
            move(job.pid, dirs)
            # Default intervals (processes every 30 s, cgroups every 15 s). The
            # group is pinned, as a job someone watches would be: on a busy host
            # it could otherwise be summed into "other".
            config = f"collectors:\n  processes: {{pinned_groups: [{group}]}}\n  cgroups: {{extra_paths: '{name}$'}}\n"
            with agent_server(tmp_path, config).start() as agent:
                instance = agent.base_url.split("//", 1)[1]
                prom_config = (
                    "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
                    f"scrape_configs:\n  - job_name: hostagent\n    static_configs: [{{targets: ['{instance}']}}]\n"
                )
                with prometheus_server(tmp_path, prom_config).start() as prom:
                    base = prom.base_url
                    cgroup = str(dirs["cpuacct"].relative_to(ROOT / "cpuacct"))
                    cpu_group = f'sum(host_process_group_cpu_seconds_total{{group="{group}"}})'
                    cpu_cgroup = f'sum(host_cgroup_cpu_seconds_total * on(instance, cgroup) group_left host_cgroup_info{{path="{cgroup}"}})'
                    for expr in (cpu_group, cpu_cgroup):
                        wait_until(lambda expr=expr: prom_query(base, expr), 60, f"{expr} in Prometheus")
                    time.sleep(2)  # a few samples before the hog starts
                    job.stdin.write("go\n")
                    job.stdin.flush()
                    started, ended, used = map(float, job.stdout.readline().split())

                    def increase(expr: str) -> float:
                        # Both counters only rise; the window opens just before the hog started.
                        window = f"{int(time.time() - started) + 3}s"
                        got = prom_query(base, f"max_over_time(({expr})[{window}:1s]) - min_over_time(({expr})[{window}:1s])")
                        return float(got[0]["value"][1]) if got else 0.0

                    # Counted once the processes collector ran after the exit (within 30 s).
                    wait_until(lambda: increase(cpu_group) >= 0.9 * used, 60, f"the group's CPU to rise by the {used:.1f} s the hog used")
                    wait_until(lambda: increase(cpu_cgroup) >= 0.9 * used, 30, f"the cgroup's CPU to rise by the {used:.1f} s the hog used")
                    group_rate = increase(cpu_group) / (ended - started)
                    cgroup_rate = increase(cpu_cgroup) / (ended - started)
        finally:
            job.kill()
            job.wait()
    # On an idle machine the hog gets a whole core (1.0 core-seconds per
    # second); on a loaded one less, and the agent must still count all of it.
    print(f"hog used {used:.2f} CPU s in {ended - started:.1f} s; Prometheus shows {group_rate:.2f} core-s/s for its group, {cgroup_rate:.2f} for its cgroup")
    assert 0.9 * used <= group_rate * (ended - started) <= 1.1 * used + 0.5  # all of it, and once
    if used >= 5.0:  # the machine gave it at least half a core
        assert group_rate >= 0.5 and cgroup_rate >= 0.5
