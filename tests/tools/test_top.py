"""hostagent top in a real terminal (tmux) against a real agent and a real Prometheus."""

from __future__ import annotations

import datetime
import json
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Tuple

import pytest
import requests
from cgroupfeed import CounterFeed, FedSysfs, fed_sysfs
from support import agent_server, fast_agent_config, free_port, prom_query, prometheus_server, wait_until
from terminal import Tmux
from tools_support import one_line_error, tool

from hostagent.tools.hostview import parse_exposition

CANARY = """\
groups:
  - name: top-canary
    rules:
      - alert: TopCanary
        expr: host_cpu_cores > 0
        labels: {severity: warning}
"""


def agent_config(fed: Optional[FedSysfs] = None) -> str:
    """Every collector each second but the processes one, which can take
    longer than that on a loaded machine and would be withdrawn as stale.
    Per-pid series are off, as by default: processes come from the process
    list. With ``fed``, the cgroups are a fixture tree's services and
    containers, which this machine lacks."""
    text = fast_agent_config(top_n=0).replace("processes: {interval: 1,", "processes: {interval: 3,")
    if fed is None:
        return text
    text = text.replace("  cgroups: {interval: 1}", f"  cgroups: {{interval: 1, docker_root: '{fed.docker_root}'}}")
    return f"paths: {{sysfs: '{fed.sysfs}'}}\n" + text


@pytest.fixture(scope="module")
def agent(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    tmp = tmp_path_factory.mktemp("top-agent")
    fed = fed_sysfs(tmp)
    with CounterFeed(fed.cgroup), agent_server(tmp, agent_config(fed)).start() as server:
        yield server.base_url


@pytest.fixture(scope="module")
def prometheus(agent: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tuple[str, str, str]]:
    """(Prometheus URL, the agent's instance, an instance that never answers)."""
    tmp = tmp_path_factory.mktemp("top-prom")
    rules = tmp / "canary.yml"
    rules.write_text(CANARY)
    instance = agent.split("//", 1)[1]
    dead = f"127.0.0.1:{free_port()}"
    config = (
        "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
        f"rule_files: ['{rules}']\n"
        "scrape_configs:\n"
        "  - job_name: hostagent\n"
        f"    static_configs: [{{targets: ['{instance}', '{dead}']}}]\n"
    )
    with prometheus_server(tmp, config).start() as prom:
        wait_until(lambda: prom_query(prom.base_url, 'ALERTS{alertname="TopCanary",alertstate="firing"}'), 30, "the canary alert to fire")
        # Two minutes of rate window are not needed: a few scrapes give rate() its two points.
        wait_until(lambda: prom_query(prom.base_url, f'rate(host_cpu_seconds_total{{instance="{instance}"}}[2m])'), 30, "CPU rates")
        yield prom.base_url, instance, dead


def metrics(url: str) -> Dict[str, List[Tuple[Dict[str, str], float]]]:
    return parse_exposition(requests.get(url + "/metrics", timeout=10).text)


def value(samples, name: str, **match: str) -> float:
    return next(v for labels, v in samples[name] if all(labels.get(k) == x for k, x in match.items()))


def figure(screen: str, pattern: str) -> float:
    found = re.search(pattern, screen)
    assert found, f"{pattern!r} not on the screen:\n{screen}"
    return float(found.group(1))


def size_bytes(text: str) -> float:
    units = {"B": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4, "P": 1024**5}
    return float(text[:-1]) * units[text[-1]]


def size_step(text: str) -> float:
    """The value of one unit in the last digit shown: 0.1 MiB for "1.0M"."""
    digits = text[:-1].split(".")
    return size_bytes(("1" if len(digits) == 1 else "0." + "0" * (len(digits[1]) - 1) + "1") + text[-1])


# The columns of each table, as the header names them; the last may hold spaces.
COLUMNS = {"PID": 7, "PROCS": 6}


def table(screen: str) -> Tuple[str, List[List[str]]]:
    """The process table on the screen: (its title, e.g. 'process groups by
    cpu', its rows split into the header's columns)."""
    lines = screen.split("\n")
    head = next(line for line in lines if line.startswith("Processes "))
    title = head.split(" · ")[1].split(" at ")[0]
    at = next(i for i, line in enumerate(lines) if line.split()[:1] in (["PID"], ["PROCS"]))
    width = len(lines[at].split())
    rows = []
    for line in lines[at + 1 :]:
        if not line.strip() or "q quit" in line:
            break
        rows.append(line.split(None, width - 1))
    return title, rows


def as_of(screen: str) -> str:
    """The time of the collector run the table comes from, as the heading says it."""
    return re.search(r" by (?:cpu|memory) at (\d\d:\d\d:\d\d)", screen).group(1)


def clock(ts: float) -> str:
    return datetime.datetime.fromtimestamp(ts).strftime("%H:%M:%S")


def rss_column(screen: str) -> List[float]:
    return [size_bytes(row[5]) for row in table(screen)[1]]


def cpu_column(screen: str) -> List[float]:
    return [float(row[3]) for row in table(screen)[1]]


def ready(screen: str) -> bool:
    return "Collectors" in screen and "PID" in screen and "q quit" in screen


def check_rows_against_the_list(rows: List[List[str]], listed: Dict[str, Any]) -> None:
    """Rows of the processes table are the busiest of the agent's process
    list by CPU, each as the list has it."""
    by_pid = {p["pid"]: p for p in listed["processes"]}
    letters = {"running": "R", "sleeping": "S", "disk-sleep": "D", "stopped": "T", "zombie": "Z", "idle": "I", "parked": "P"}
    assert rows
    for pid, user, state, cpu, mem, rss, name in rows:
        p = by_pid[int(pid)]
        assert (name, user, state) == (p["name"], p["user"][:9], letters.get(p["state"], p["state"][:1])), (pid, p)
        assert float(cpu) == pytest.approx(p["cpu_cores"] * 100, abs=0.051)  # %CPU: of one core
        assert float(mem) == pytest.approx(p["resident_memory_bytes"] / listed["memory_total_bytes"] * 100, abs=0.051)
        assert size_bytes(rss) == pytest.approx(p["resident_memory_bytes"], abs=size_step(rss) / 2 + 1), (p, rss)
    # The busiest: the same CPU figures as the top of the list.
    top = sorted((p["cpu_cores"] * 100 for p in listed["processes"]), reverse=True)[: len(rows)]
    assert [float(row[3]) for row in rows] == pytest.approx(top, abs=0.051)


def test_screen_shows_what_the_agent_serves(agent: str) -> None:
    with Tmux(["top", "--url", agent, "--interval", "1"]) as term:
        term.wait(ready, "the host screen")
        assert term.state()["alternate"] == "1" and term.state()["cursor"] == "0"
        # What the agent served over the last few seconds, against what is on the screen now.
        seen_cpu, seen_mem, seen_up = set(), set(), set()
        lists: Dict[str, Dict[str, Any]] = {}  # the process lists served, by the time of their run
        deadline = time.monotonic() + 6
        while time.monotonic() < deadline:
            m = metrics(agent)
            seen_cpu.add(round(value(m, "host_cpu_usage_ratio") * 100, 1))
            seen_mem.add(round(value(m, "host_memory_usage_ratio") * 100, 1))
            seen_up.add(sum(1 for _, v in m["hostagent_collector_up"] if v == 1))
            listed = requests.get(agent + "/api/v1/processes", params={"limit": 500}, timeout=10).json()
            lists[clock(listed["timestamp"])] = listed
            time.sleep(0.2)
        screen = term.screen()
        # The list on the screen was served by now: the one polled last, or a newer one.
        listed = requests.get(agent + "/api/v1/processes", params={"limit": 500}, timeout=10).json()
        lists[clock(listed["timestamp"])] = listed
        cpu = figure(screen, r"CPU +([\d.]+)%")
        assert any(abs(cpu - v) <= 0.11 for v in seen_cpu), (cpu, sorted(seen_cpu))
        mem = figure(screen, r"Mem +([\d.]+)%")
        assert any(abs(mem - v) <= 0.11 for v in seen_mem), (mem, sorted(seen_mem))
        m = metrics(agent)
        total = re.search(r"Mem .* of ([\d.]+[BKMGTP])", screen).group(1)
        assert size_bytes(total) == pytest.approx(value(m, "host_memory_total_bytes"), rel=0.01)
        cores = int(value(m, "host_cpu_cores"))
        assert f"/core × {cores})" in screen
        assert len(re.findall(r"\d+ +[\d.]+% \[", screen.split("\n")[2])) == min(cores, 4)
        root = value(m, "host_filesystem_usage_ratio", mountpoint="/") * 100
        assert figure(screen, r"\n/ +([\d.]+)%") == pytest.approx(root, abs=0.2)
        shown_up, shown_total = re.search(r"Collectors (\d+)/(\d+) up", screen).groups()
        assert int(shown_up) in seen_up
        assert int(shown_total) == len(m["hostagent_collector_up"])  # not-available collectors have no up series
        # The processes: the busiest of the agent's list of the run the heading names.
        title, rows = table(screen)
        assert title == "processes by cpu"
        assert "host_process_resident_memory_bytes" not in m  # per-pid series off: from the list
        check_rows_against_the_list(rows, lists[as_of(screen)])
        assert "thresholds" not in screen  # help is not open
        for line in screen.split("\n"):
            assert len(line) <= 80


def test_keys_sort_help_and_quit_restores_the_terminal(agent: str) -> None:
    with Tmux(["top", "--url", agent, "--interval", "1"]) as term:
        term.wait(ready, "the host screen")
        # A capture can fall between two halves of a redraw: wait for a whole sorted screen.
        term.keys("m")
        screen = term.wait(lambda s: "sort memory" in s and "by memory" in s and rss_column(s) == sorted(rss_column(s), reverse=True), "memory sort")
        assert len(rss_column(screen)) >= 3
        term.keys("c")
        screen = term.wait(lambda s: "sort cpu" in s and "by cpu" in s and cpu_column(s) == sorted(cpu_column(s), reverse=True), "CPU sort")
        assert len(cpu_column(screen)) >= 3
        term.keys("h")
        screen = term.wait(lambda s: "Keys" in s and "thresholds from /" in s, "the help screen")
        assert "PID" not in screen
        term.keys("x")  # any key closes the help
        term.wait(lambda s: "PID" in s and "Keys" not in s, "the help to close")
        term.keys("q")
        term.wait(lambda s: "EXITED 0" in s, "top to exit")
        state = term.state()
        assert state["alternate"] == "0", "still on the alternate screen"
        assert state["cursor"] == "1", "the cursor is still hidden"


class Runs:
    """What the agent served for each run of its processes collector: the
    process group series, by the run's time."""

    def __init__(self) -> None:
        self.groups: Dict[float, Dict[str, Dict[str, float]]] = {}

    def record(self, agent: str) -> None:
        m = metrics(agent)
        at = value(m, "hostagent_collector_last_success_timestamp_seconds", collector="processes")
        run: Dict[str, Dict[str, float]] = {}
        self.groups[at] = run
        for name, field in (("host_process_group_processes", "processes"), ("host_process_group_threads", "threads"), ("host_process_group_resident_memory_bytes", "rss")):
            for labels, v in m[name]:
                run.setdefault(labels["group"], {})[field] = v
        for labels, v in m["host_process_group_cpu_seconds_total"]:
            run.setdefault(labels["group"], {}).setdefault("cpu_seconds", 0.0)
            run[labels["group"]]["cpu_seconds"] += v

    def cores(self, group: str, at: float) -> List[float]:
        """The group's CPU in cores from every earlier run seen to the run at ``at``."""
        now = self.groups[at][group]
        return [(now["cpu_seconds"] - run[group]["cpu_seconds"]) / (at - t) for t, run in self.groups.items() if t < at and group in run]


def test_the_table_key_shows_process_groups_and_services_as_the_agent_serves_them(agent: str) -> None:
    runs = Runs()
    with Tmux(["top", "--url", agent, "--interval", "1"], width=100, height=40) as term:
        screen = term.wait(ready, "the host screen")
        assert "g procs/groups/svcs" in screen.split("\n")[39]
        term.keys("h")
        screen = term.wait(lambda s: "Keys" in s, "the help screen")
        assert "g        the table: processes, process groups, services and containers" in screen
        term.keys("x")
        term.wait(lambda s: "PID" in s and "Keys" not in s, "the help to close")
        term.keys("g")
        term.wait(lambda s: "groups by cpu" in s and "GROUP" in s, "the process groups")
        # The groups of a run of the processes collector, with CPU over the runs before it.
        deadline = time.monotonic() + 60
        while True:
            runs.record(agent)
            screen = term.screen()
            try:  # a capture can fall in the middle of a redraw
                title, rows = table(screen)
                shown = [t for t in runs.groups if clock(t) == as_of(screen)]
                if title == "groups by cpu" and shown and rows and runs.cores(rows[0][5], shown[0]):
                    break
            except (StopIteration, AttributeError):
                pass
            assert time.monotonic() < deadline, screen
            time.sleep(0.2)
        served = runs.groups[shown[0]]
        assert len(rows) >= 5
        for procs, threads, cpu, mem, rss, group in rows:
            assert (int(procs), int(threads)) == (served[group]["processes"], served[group]["threads"]), group
            assert size_bytes(rss) == pytest.approx(served[group]["rss"], abs=size_step(rss) / 2 + 1), (group, rss)
            # Between two runs top saw: the one before this one, or an earlier one when a
            # refresh missed it; none for a group new in this run.
            if cpu == "–":
                assert group not in runs.groups[min(runs.groups)], group
            else:
                assert any(abs(float(cpu) - c * 100) <= 0.051 for c in runs.cores(group, shown[0])), (group, cpu, runs.cores(group, shown[0]))
        cpus = [float(row[2]) for row in rows if row[2] != "–"]
        assert len(cpus) >= 3 and cpus == sorted(cpus, reverse=True)
        # Services and containers: the cgroups the agent serves, of their kind.
        term.keys("g")
        screen = term.wait(lambda s: "services by cpu" in s and "CONTAINER" in s and "nginx.service" in s, "the services")
        info = {labels["cgroup"]: labels["kind"] for labels, _ in metrics(agent)["host_cgroup_info"]}
        _, rows = table(screen)
        assert {row[5]: row[4] for row in rows} == info
        assert rows[0][5] == "nginx.service"  # the busiest: half a core in the fed tree
        # The feed moves the counters by the time that passed, but in steps of
        # 0.25 s or more under load: between two of the agent's reads a second
        # apart, a late step moves the rate shown by a fifth or so.
        assert float(rows[0][1]) == pytest.approx(50, abs=20)
        term.keys("g")
        term.wait(lambda s: "processes by cpu" in s and "PID" in s, "the processes again")
        term.keys("q")
        term.wait(lambda s: "EXITED 0" in s, "top to exit")


def test_resize_redraws_to_the_new_size(agent: str) -> None:
    with Tmux(["top", "--url", agent, "--interval", "1"]) as term:
        small = term.wait(ready, "the host screen")
        rows_small = len(table(small)[1])
        term.resize(120, 40)

        def big(screen: str) -> bool:
            lines = screen.split("\n")
            return len(lines) >= 40 and "q quit" in lines[39] and len(lines[0].rstrip()) > 100

        screen = term.wait(big, "the 120x40 layout")
        rows_big = len(table(screen)[1])
        assert rows_big > rows_small
        term.resize(60, 14)
        screen = term.wait(lambda s: "q quit" in s.split("\n")[13] and "PID" not in s.split("\n")[0], "the 60x14 layout")
        assert all(len(line) <= 60 for line in screen.split("\n"))
        term.keys("q")
        term.wait(lambda s: "EXITED 0" in s, "top to exit")


def test_a_host_that_stops_answering_is_shown_as_such(tmp_path: Path) -> None:
    with agent_server(tmp_path, agent_config()).start() as server:
        with Tmux(["top", "--url", server.base_url, "--interval", "1", "--timeout", "1"]) as term:
            term.wait(ready, "the host screen")
            server.proc.send_signal(signal.SIGSTOP)
            try:
                screen = term.wait(lambda s: "NO ANSWER" in s, "the frozen agent to be reported")
                assert "no answer from agent" in screen and "within 1s" in screen
                assert "Collectors" in screen  # the last figures stay, dimmed
            finally:
                server.proc.send_signal(signal.SIGCONT)
            term.wait(lambda s: "NO ANSWER" not in s and ready(s), "the agent to be back")
            server.stop()
            screen = term.wait(lambda s: "NO ANSWER" in s and "Connection refused" in s, "the stopped agent to be reported")
            term.keys("q")
            term.wait(lambda s: "EXITED 0" in s, "top to exit")


def test_once_and_json_match_the_agent(agent: str) -> None:
    done = tool("top", "--url", agent, "--once")
    assert done.returncode == 0, done.stderr
    text = done.stdout.decode()
    assert "\x1b" not in text
    for word in ("CPU", "Load", "Mem", "Swap", "Filesystem", "Disk", "Net", "TCP", "Collectors", "PID"):
        assert re.search(rf"^{word}", text, re.M) or word in text, word
    done = tool("top", "--url", agent, "--json")
    assert done.returncode == 0, done.stderr
    view = json.loads(done.stdout)
    m = metrics(agent)
    assert view["memory"]["total"] == value(m, "host_memory_total_bytes")
    assert view["cpu"]["cores"] == value(m, "host_cpu_cores")
    assert {fs["mountpoint"] for fs in view["filesystems"]} == {labels["mountpoint"] for labels, _ in m["host_filesystem_size_bytes"]}
    # Rates were measured across a collector run: every interface and disk has them.
    assert view["network"] and all(n["receive_bytes_per_second"] is not None for n in view["network"])
    assert view["cpu"]["modes"] and sum(view["cpu"]["modes"].values()) == pytest.approx(1.0)
    tables = view["processes"]["tables"]
    assert list(tables) == ["processes", "groups", "services"]
    assert tables["processes"]["source"] == "/api/v1/processes" and tables["processes"]["rows"]
    assert {r["name"] for r in tables["groups"]["rows"]} == {labels["group"] for labels, _ in m["host_process_group_processes"]}
    assert {r["name"] for r in tables["services"]["rows"]} == {labels["cgroup"] for labels, _ in m["host_cgroup_info"]}
    assert view["pressure"] is None or isinstance(view["pressure"], dict)
    assert {c["name"] for c in view["collectors"]} == {labels["collector"] for labels, _ in m["hostagent_collector_enabled"]}


def test_dumb_terminal_gets_plain_frames(agent: str) -> None:
    with Tmux(["top", "--url", agent, "--interval", "1"], env={"TERM": "dumb"}) as term:
        text = term.wait(lambda s: s.count("Collectors") >= 2, "two plain frames", history=True)
        assert term.state()["alternate"] == "0"
        # No colours, no cursor movement: the pane holds plain text only.
        assert "\x1b" not in term.screen(escapes=True, history=True)
        assert "[#" in text or "[." in text  # ASCII bars
        assert "█" not in text and "↓" not in text
        term.keys("q")
        term.wait(lambda s: "EXITED 0" in s, "top to exit on q")


def test_not_a_terminal_prints_snapshots(agent: str) -> None:
    done = tool("top", "--url", agent, "--interval", "0.5")
    assert done.returncode == 0, done.stderr
    text = done.stdout.decode()
    assert text.count("Collectors") == 1 and "\x1b" not in text
    done = tool("top", "--url", agent, "--interval", "0.5", "-n", "3")
    assert done.returncode == 0, done.stderr
    assert done.stdout.decode().count("Collectors") == 3


def test_fleet_view_from_prometheus(prometheus) -> None:
    url, instance, dead = prometheus
    with Tmux(["top", "--prometheus", url, "--interval", "1"]) as term:
        screen = term.wait(lambda s: instance in s and dead in s and "TopCanary" in s and "2 hosts" in s, "the fleet screen")
        lines = screen.split("\n")
        dead_line = next(line for line in lines if line.startswith(dead))
        assert "DOWN" in dead_line
        assert lines.index(dead_line) < next(i for i, line in enumerate(lines) if line.startswith(instance)), "down hosts come first"
        row = next(line for line in lines if line.startswith(instance))
        cpu = float(re.search(r"^\S+ +([\d.]+)%", row).group(1))
        # Busy time over all time: right while the 2-minute window is not yet
        # full of samples, as it is not in a Prometheus started seconds ago.
        mine = f'host_cpu_seconds_total{{instance="{instance}"'
        theirs = float(prom_query(url, f'sum(increase({mine},mode!~"idle|iowait|steal"}}[2m])) / sum(increase({mine}}}[2m]))')[0]["value"][1]) * 100
        assert cpu == pytest.approx(theirs, abs=5)
        mem = float(re.search(r"^\S+ +[\d.]+% +([\d.]+)%", row).group(1))
        assert mem == pytest.approx(float(prom_query(url, f'1 - host_memory_available_bytes{{instance="{instance}"}} / host_memory_total_bytes{{instance="{instance}"}}')[0]["value"][1]) * 100, abs=1)
        assert "Firing alerts" in screen
        term.keys("m")
        term.wait(lambda s: "sort memory" in s, "memory sort")
        term.keys("q")
        term.wait(lambda s: "EXITED 0" in s, "top to exit")
        assert term.state()["alternate"] == "0" and term.state()["cursor"] == "1"
    done = tool("top", "--prometheus", url, "--json")
    view = json.loads(done.stdout)
    assert {(h["instance"], h["up"]) for h in view["hosts"]} == {(instance, True), (dead, False)}
    assert any(a["alertname"] == "TopCanary" for a in view["alerts"])


def test_local_agent_from_its_config(agent: str, tmp_path: Path) -> None:
    port = agent.rsplit(":", 1)[1]
    config = tmp_path / "agent.yaml"
    config.write_text(f"web:\n  listen_address: ':{port}'\n")
    done = tool("top", "--config", str(config), "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["source"] == f"http://127.0.0.1:{port}"
    config.write_text("web:\n  listen_address: 'nonsense'\n")
    line = one_line_error(tool("top", "--config", str(config), "--once"), (2,))
    assert "configuration is not usable" in line


def test_without_the_top_extra_one_line_says_what_to_install(agent: str) -> None:
    code = "import sys; sys.modules['rich'] = None; from hostagent.cli import main; sys.exit(main(sys.argv[1:]))"
    with Tmux(["top", "--url", agent], python_code=code) as term:
        screen = term.wait(lambda s: "EXITED" in s, "top to give up")
        assert "hostagent top needs the 'top' extra: pip install 'hostagent[top]'" in screen
        assert "EXITED 2" in screen and "Traceback" not in screen
    # Plain output needs no extra.
    done = subprocess.run([sys.executable, "-c", code, "top", "--url", agent, "--once"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr


def test_errors_are_one_line(agent: str, prometheus, tmp_path: Path) -> None:
    url, _, _ = prometheus
    cases = [
        (["--url", "127.0.0.1:9100", "--once"], 2, "must look like http://"),
        (["--url", f"http://127.0.0.1:{free_port()}", "--once"], 1, "Connection refused"),
        (["--url", url, "--once"], 1, "is it a hostagent?"),
        (["--prometheus", agent, "--once"], 1, "answered 404"),
        (["--url", agent, "--prometheus", url], 2, "not allowed with"),
        (["--url", agent, "--interval", "0", "--once"], 2, "--interval"),
        (["--url", agent, "--password-file", str(tmp_path / "nope")], 2, "no such file"),
    ]
    for argv, status, words in cases:
        line = one_line_error(tool("top", *argv), (status,))
        assert line.startswith("hostagent top: ") and words in line, (argv, line)
