"""The example of docs/processes.md that folds the kernel threads into one
process group, run by a real agent on this host's /proc."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Dict, Set

import pytest
import yaml
from support import REPO, agent_server, wait_until

from hostagent.collectors.procgroups import base_name
from hostagent.tools.hostview import parse_exposition

PF_KTHREAD = 0x00200000


def doc_example() -> Dict:
    text = (REPO / "docs" / "processes.md").read_text()
    block = re.search(r"<!-- kernel-threads-example:[^>]*-->\n```yaml\n(.*?)```", text, re.S)
    assert block, "docs/processes.md lost its kernel threads example"
    return yaml.safe_load(block.group(1))


def kernel_thread_groups() -> Set[str]:
    """The groups the default rule makes of this host's kernel threads."""
    found = set()
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        comm, rest = stat[stat.index("(") + 1 : stat.rindex(")")], stat[stat.rindex(")") + 2 :].split()
        if int(rest[6]) & PF_KTHREAD:
            found.add(base_name(comm, True))
    return found


def groups_of(url: str) -> Dict[str, float]:
    import requests

    samples = parse_exposition(requests.get(url + "/metrics", timeout=10).text)
    return {labels["group"]: value for labels, value in samples.get("host_process_group_processes", [])}


def test_the_documented_matcher_folds_the_kernel_threads(tmp_path: Path) -> None:
    before = kernel_thread_groups()
    if not {"kworker", "ksoftirqd"} <= before:
        pytest.skip("this host shows no kernel threads (a container)")
    config = doc_example()
    matcher = config["collectors"]["processes"]["groups"][0]
    assert matcher["name"] == "kernel"
    config["collectors"]["processes"].update(interval=1, max_groups=200)
    with agent_server(tmp_path, yaml.safe_dump(config)).start() as agent:
        wait_until(lambda: "kernel" in groups_of(agent.base_url), 30, "the kernel group")
        groups = groups_of(agent.base_url)
    named = re.compile(matcher["comm"])
    folded = {g for g in before if named.search(g)}
    # Every kernel thread the list names is in one group; none keeps its own.
    assert {"kworker", "ksoftirqd"} <= folded
    assert not folded & set(groups), sorted(folded & set(groups))
    assert groups["kernel"] >= len(folded)
    # User processes are not folded: the agent's own group (a python) is there.
    assert any(g.startswith("python") for g in groups), sorted(groups)
