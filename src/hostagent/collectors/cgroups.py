"""Services, user sessions and containers: CPU, memory, I/O and pressure per cgroup.

The kernel accounts every task of a cgroup, however short-lived, so a
service's CPU includes the children it ran and reaped between two runs.
Read from ``<sysfs>/fs/cgroup``: the unified (v2) hierarchy, or the v1
``cpuacct``, ``memory`` and ``blkio`` hierarchies (a hybrid host adds
pressure figures from its ``unified`` one). Exported cgroups and their label:

- systemd services outside user sessions (``system.slice/nginx.service``):
  the unit name, ``nginx.service``;
- user sessions summed per user slice (``user.slice/user-1000.slice``):
  ``user-1000.slice``;
- containers: ``<runtime>/<name>`` where the runtime's files name it (docker's
  ``config.v2.json`` under ``docker_root``), else ``<runtime>/<12-hex id>``,
  for docker, containerd (also under Kubernetes), CRI-O, podman and LXC;
- paths matching ``extra_paths``: the path itself.

At most ``max_cgroups`` get series of their own, ranked and budgeted as
process groups are; the rest are summed into ``other`` (which appears once
there is a rest). A removed cgroup's series end at the next run.

    host_cgroup_cpu_seconds_total{cgroup="nginx.service",mode="user"} 812.4
    host_cgroup_memory_bytes{cgroup="docker/web-1"} 1.5e+08
    host_cgroup_memory_limit_bytes{cgroup="docker/web-1"} 5.36870912e+08
    host_cgroup_oom_kills_total{cgroup="docker/web-1"} 1.0
    host_cgroup_pressure_memory_waiting_seconds_total{cgroup="docker/web-1"} 3.2
    host_cgroup_info{cgroup="docker/web-1",kind="container",path="system.slice/docker-3f2a...scope",runtime="docker"} 1.0
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from time import monotonic
from typing import Any, Dict, Iterator, List, Mapping, NamedTuple, Optional, Tuple

from ..promclient import Metric
from .base import BaseCollector, MetricSpec, NotAvailable, Option, Paths, register
from .procgroups import label_safe
from .topgroups import OTHER, TopGroups

MAX_LABEL = 64
MAX_DIRS = 20000  # directories visited per run at most, however deep and wide the tree
NO_LIMIT = 1 << 60  # v1 reports "no memory limit" as a page-rounded 2^63-1

CPU = MetricSpec("host_cgroup_cpu_seconds_total", "counter", "CPU time the cgroup's tasks used, by mode (user, system); every task counts, however short-lived.", ("cgroup", "mode"), "seconds")
MEMORY = MetricSpec("host_cgroup_memory_bytes", "gauge", "Memory the cgroup uses now, page cache included (v2 memory.current, v1 memory.usage_in_bytes).", ("cgroup",), "bytes")
MEMORY_LIMIT = MetricSpec("host_cgroup_memory_limit_bytes", "gauge", "The cgroup's memory limit, where one is set.", ("cgroup",), "bytes")
IO_READ = MetricSpec("host_cgroup_io_read_bytes_total", "counter", "Bytes the cgroup read from block devices.", ("cgroup",), "bytes")
IO_WRITTEN = MetricSpec("host_cgroup_io_written_bytes_total", "counter", "Bytes the cgroup wrote to block devices.", ("cgroup",), "bytes")
PROCESSES = MetricSpec("host_cgroup_processes", "gauge", "Number of processes in the cgroup and the cgroups below it.", ("cgroup",))
OOM_KILLS = MetricSpec("host_cgroup_oom_kills_total", "counter", "Processes of the cgroup killed by the out-of-memory killer (v2 memory.events, v1 memory.oom_control).", ("cgroup",))
PSI = (
    MetricSpec("host_cgroup_pressure_cpu_waiting_seconds_total", "counter", "Time at least one of the cgroup's runnable tasks waited for a CPU (PSI cpu some; v2 and hybrid hosts).", ("cgroup",), "seconds"),
    MetricSpec("host_cgroup_pressure_cpu_stalled_seconds_total", "counter", "Time all of the cgroup's runnable tasks waited for a CPU at once, e.g. throttled by cpu.max (PSI cpu full).", ("cgroup",), "seconds"),
    MetricSpec("host_cgroup_pressure_memory_waiting_seconds_total", "counter", "Time at least one of the cgroup's tasks was stalled on memory (PSI memory some).", ("cgroup",), "seconds"),
    MetricSpec("host_cgroup_pressure_memory_stalled_seconds_total", "counter", "Time all of the cgroup's non-idle tasks were stalled on memory at once (PSI memory full).", ("cgroup",), "seconds"),
    MetricSpec("host_cgroup_pressure_io_waiting_seconds_total", "counter", "Time at least one of the cgroup's tasks was stalled on block I/O (PSI io some).", ("cgroup",), "seconds"),
    MetricSpec("host_cgroup_pressure_io_stalled_seconds_total", "counter", "Time all of the cgroup's non-idle tasks were stalled on block I/O at once (PSI io full).", ("cgroup",), "seconds"),
)
INFO = MetricSpec("host_cgroup_info", "gauge", "What an exported cgroup is: kind (service, user, container, path), container runtime and cgroup path; value is always 1.", ("cgroup", "kind", "runtime", "path"))

# Counters of one cgroup, in TopGroups' order; PSI after these.
USER, SYSTEM, READ, WRITTEN, OOM = range(5)
WIDTH = 5 + len(PSI)
PSI_FILES = (("cpu.pressure", "some"), ("cpu.pressure", "full"), ("memory.pressure", "some"), ("memory.pressure", "full"), ("io.pressure", "some"), ("io.pressure", "full"))


# --------------------------------------------------------------------------
# Which cgroups, and their names

class Kind(NamedTuple):
    """What a cgroup is: its label, kind, container runtime and id."""

    label: str
    kind: str
    runtime: str = ""
    id: str = ""


_HEX64 = r"([0-9a-f]{64})"
# (pattern on the last path segment, runtime); conmon and other helper scopes do not match.
_CONTAINER_SCOPES = (
    (re.compile(rf"^docker-{_HEX64}\.scope$"), "docker"),
    (re.compile(rf"^cri-containerd-{_HEX64}\.scope$"), "containerd"),
    (re.compile(rf"^nerdctl-{_HEX64}\.scope$"), "containerd"),
    (re.compile(rf"^crio-{_HEX64}\.scope$"), "crio"),
    (re.compile(rf"^libpod-{_HEX64}\.scope$"), "podman"),
)
_BARE_ID = re.compile(rf"^{_HEX64}$")
_BARE_PARENTS = {"docker": "docker", "libpod_parent": "podman", "crio": "crio"}
_LXC = re.compile(r"^lxc\.payload\.(.+)$")
_USER_SLICE = re.compile(r"^user-\d+\.slice$")


def classify(path: str) -> Optional[Kind]:
    """The kind of an exported cgroup at ``path`` (relative to the hierarchy
    root), or None for one not exported by default."""
    segments = path.split("/")
    last = segments[-1]
    parent = segments[-2] if len(segments) > 1 else ""
    for pattern, runtime in _CONTAINER_SCOPES:
        m = pattern.match(last)
        if m:
            return Kind("", "container", runtime, m.group(1))
    m = _BARE_ID.match(last)
    if m:
        # cgroupfs drivers: docker/<id>, libpod_parent/<id>, k8s.io/<id>, kubepods/.../<id>
        return Kind("", "container", _BARE_PARENTS.get(parent, "containerd"), m.group(1))
    m = _LXC.match(last)
    if m:
        return Kind("", "container", "lxc", m.group(1))
    if parent == "lxc" and len(segments) == 2:
        return Kind("", "container", "lxc", last)
    if segments[0] == "user.slice":
        if len(segments) == 2 and _USER_SLICE.match(last):
            return Kind(label_safe(last, MAX_LABEL), "user")
        return None  # the user's own units are part of the slice
    if last.endswith(".service"):
        return Kind(label_safe(last, MAX_LABEL), "service")
    return None


class ContainerNames:
    """Container names from the runtime's own files, cached per id."""

    _LIMIT = 4096

    def __init__(self, docker_root: str):
        self.docker_root = docker_root
        self._cache: Dict[str, Tuple[float, str]] = {}

    def __call__(self, runtime: str, cid: str) -> str:
        if runtime != "docker":
            return ""
        path = os.path.join(self.docker_root, "containers", cid, "config.v2.json")
        try:
            mtime = os.stat(path).st_mtime
        except OSError:
            return ""
        cached = self._cache.get(cid)
        if cached is not None and cached[0] == mtime:
            return cached[1]
        try:
            with open(path, "rb") as f:
                name = str(json.loads(f.read()).get("Name", "")).lstrip("/")
        except (OSError, ValueError, AttributeError):
            name = ""
        if len(self._cache) >= self._LIMIT:
            self._cache.clear()
        self._cache[cid] = (mtime, name)
        return name


def container_label(runtime: str, cid: str, name: str) -> str:
    return label_safe(f"{runtime}/{name or cid[:12]}", MAX_LABEL, extra="/")


# --------------------------------------------------------------------------
# The hierarchies


@dataclass(frozen=True)
class Layout:
    """Where each figure is read: the v2 hierarchy, or v1 controllers."""

    mode: str  # "v2", "v1" or "hybrid"
    unified: Optional[str] = None  # v2 hierarchy (on hybrid hosts: pressure only)
    cpuacct: Optional[str] = None
    memory: Optional[str] = None
    blkio: Optional[str] = None
    procs: Optional[str] = None  # the v1 hierarchy process counts come from

    def trees(self) -> Tuple[str, ...]:
        """The hierarchies whose directories name cgroups."""
        if self.mode == "v2":
            return (self.unified,)  # type: ignore[return-value]
        return tuple(dict.fromkeys(t for t in (self.cpuacct, self.memory, self.blkio, self.procs) if t))


def detect(root: str) -> Layout:
    """The cgroup layout mounted at ``root``; NotAvailable without one."""
    if not os.path.isdir(root):
        raise NotAvailable(f"no cgroup filesystem at {root}")
    if os.path.isfile(os.path.join(root, "cgroup.controllers")):
        return Layout("v2", unified=root)

    def v1(*names: str) -> Optional[str]:
        for name in names:
            path = os.path.join(root, name)
            if os.path.isfile(os.path.join(path, "cgroup.procs")):
                return path
        return None

    cpuacct, memory, blkio = v1("cpuacct", "cpu,cpuacct", "cpuacct,cpu"), v1("memory"), v1("blkio")
    if not (cpuacct or memory or blkio):
        raise NotAvailable(f"no cgroup hierarchy with cpuacct, memory or blkio under {root}")
    procs = v1("pids", "memory", "cpuacct", "cpu,cpuacct", "systemd")
    unified = os.path.join(root, "unified")
    hybrid = os.path.isfile(os.path.join(unified, "cgroup.controllers"))
    return Layout("hybrid" if hybrid else "v1", unified if hybrid else None, cpuacct, memory, blkio, procs)


# --------------------------------------------------------------------------
# Parsers (text of one file each)


def parse_keyed(text: str) -> Dict[str, int]:
    """Lines of ``key value`` (cpu.stat, memory.events, cpuacct.stat, memory.oom_control)."""
    out = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].lstrip("-").isdigit():
            out[parts[0]] = int(parts[1])
    return out


def parse_io_stat(text: str) -> Tuple[int, int]:
    """(read, written) bytes summed over devices from v2 io.stat."""
    read = written = 0
    for line in text.splitlines():
        for field in line.split()[1:]:
            key, _, value = field.partition("=")
            if key == "rbytes":
                read += int(value)
            elif key == "wbytes":
                written += int(value)
    return read, written


def parse_blkio(text: str) -> Tuple[int, int]:
    """(read, written) bytes summed over devices from v1 blkio.throttle.io_service_bytes(_recursive)."""
    read = written = 0
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 3:
            if parts[1] == "Read":
                read += int(parts[2])
            elif parts[1] == "Write":
                written += int(parts[2])
    return read, written


def parse_pressure(text: str) -> Dict[str, float]:
    """``total`` seconds of the some and full lines of a PSI file."""
    out = {}
    for line in text.splitlines():
        kind, _, rest = line.partition(" ")
        for field in rest.split():
            if field.startswith("total="):
                out[kind] = int(field[6:]) / 1e6
    return out


def parse_limit(text: str) -> Optional[int]:
    """A memory limit, None for none ("max" on v2, about 2^63 on v1)."""
    text = text.strip()
    if text == "max":
        return None
    value = int(text)
    return None if value >= NO_LIMIT else value


# --------------------------------------------------------------------------
# Reading one cgroup


class Reading(NamedTuple):
    """One cgroup read in one run; None where its controller is absent."""

    counters: Tuple[Optional[float], ...]  # WIDTH figures, cumulative
    memory: Optional[int]
    limit: Optional[int]
    processes: int


def _read(path: str) -> Optional[str]:
    try:
        with open(path) as f:
            return f.read()
    except (FileNotFoundError, ProcessLookupError, NotADirectoryError):
        return None


def _count_procs(tree: str, rel: str, depth: int = 8) -> int:
    """Processes in the cgroup at ``rel`` and below."""
    total = 0
    stack = [(os.path.join(tree, rel) if rel else tree, 0)]
    while stack:
        path, level = stack.pop()
        text = _read(os.path.join(path, "cgroup.procs"))
        if text:
            total += text.count("\n")
        if level < depth:
            try:
                with os.scandir(path) as it:
                    stack.extend((e.path, level + 1) for e in it if e.is_dir(follow_symlinks=False))
            except OSError:
                pass
    return total


def read_v2(root: str, rel: str) -> Reading:
    base = os.path.join(root, rel)
    counters: List[Optional[float]] = [None] * WIDTH
    text = _read(os.path.join(base, "cpu.stat"))
    if text is not None:
        stat = parse_keyed(text)
        if "user_usec" in stat:
            counters[USER], counters[SYSTEM] = stat["user_usec"] / 1e6, stat["system_usec"] / 1e6
    text = _read(os.path.join(base, "io.stat"))
    if text is not None:
        counters[READ], counters[WRITTEN] = parse_io_stat(text)
    text = _read(os.path.join(base, "memory.events"))
    if text is not None:
        counters[OOM] = parse_keyed(text).get("oom_kill")
    _read_pressure(base, counters)
    memory = _read(os.path.join(base, "memory.current"))
    limit = _read(os.path.join(base, "memory.max"))
    return Reading(tuple(counters), int(memory) if memory is not None else None, parse_limit(limit) if limit is not None else None, _count_procs(root, rel))


def _read_pressure(base: str, counters: List[Optional[float]]) -> None:
    texts: Dict[str, Optional[Dict[str, float]]] = {}
    for i, (name, kind) in enumerate(PSI_FILES):
        if name not in texts:
            text = _read(os.path.join(base, name))
            texts[name] = parse_pressure(text) if text is not None else None
        parsed = texts[name]
        if parsed is not None and kind in parsed:
            counters[5 + i] = parsed[kind]


def _v1_cpu(base: str) -> Tuple[Optional[float], Optional[float]]:
    """(user, system) seconds of a v1 cpuacct cgroup. cpuacct.usage counts
    every nanosecond run; the user/system split (cpuacct.usage_user and
    usage_sys, or cpuacct.stat) is sampled at timer ticks and can miss a
    share under load, so it only divides the exact total."""
    usage = _read(os.path.join(base, "cpuacct.usage"))
    user, system = _read(os.path.join(base, "cpuacct.usage_user")), _read(os.path.join(base, "cpuacct.usage_sys"))
    if user is not None and system is not None:
        u, s = int(user), int(system)
    else:
        text = _read(os.path.join(base, "cpuacct.stat"))
        if text is None:
            return None, None
        stat = parse_keyed(text)
        u, s = stat.get("user", 0), stat.get("system", 0)
        if usage is None:
            ticks = os.sysconf("SC_CLK_TCK")
            return u / ticks, s / ticks
    if usage is None:
        return u / 1e9, s / 1e9
    total = int(usage) / 1e9
    share = u / (u + s) if u + s > 0 else 1.0
    return total * share, total * (1 - share)


def read_v1(layout: Layout, rel: str) -> Reading:
    counters: List[Optional[float]] = [None] * WIDTH
    if layout.cpuacct:
        counters[USER], counters[SYSTEM] = _v1_cpu(os.path.join(layout.cpuacct, rel))
    memory = limit = None
    if layout.memory:
        base = os.path.join(layout.memory, rel)
        text = _read(os.path.join(base, "memory.usage_in_bytes"))
        memory = int(text) if text is not None else None
        text = _read(os.path.join(base, "memory.limit_in_bytes"))
        limit = parse_limit(text) if text is not None else None
        text = _read(os.path.join(base, "memory.oom_control"))
        if text is not None:
            counters[OOM] = parse_keyed(text).get("oom_kill")
    if layout.blkio:
        base = os.path.join(layout.blkio, rel)
        text = _read(os.path.join(base, "blkio.throttle.io_service_bytes_recursive"))
        if text is None:
            text = _read(os.path.join(base, "blkio.throttle.io_service_bytes"))
        if text is not None:
            counters[READ], counters[WRITTEN] = parse_blkio(text)
    if layout.unified and os.path.isdir(os.path.join(layout.unified, rel)):
        _read_pressure(os.path.join(layout.unified, rel), counters)
    # Processes from the first hierarchy that has this cgroup (systemd mirrors
    # its tree into each; other managers need not).
    tree = next((t for t in (layout.procs, layout.memory, layout.cpuacct, layout.blkio) if t and os.path.isdir(os.path.join(t, rel))), None)
    return Reading(tuple(counters), memory, limit, _count_procs(tree, rel) if tree else 0)


def _cpu(counters: Tuple[Optional[float], ...]) -> float:
    return (counters[USER] or 0.0) + (counters[SYSTEM] or 0.0)


# --------------------------------------------------------------------------
# The collector


@dataclass(frozen=True)
class CgroupFigures:
    """One exported cgroup (or ``other``)."""

    label: str
    kind: str
    runtime: str
    path: str
    counters: Tuple[float, ...]
    present: Tuple[bool, ...]  # which counters the cgroup has (controllers, PSI)
    memory: Optional[int]
    limit: Optional[int]
    processes: int
    gone: bool = False  # removed since the last run: counters only


@dataclass(frozen=True)
class CgroupsSample:
    mode: str
    cgroups: Tuple[CgroupFigures, ...]


@register
class CgroupsCollector(BaseCollector):
    """CPU, memory, I/O, OOM kills and pressure per service, user slice and container."""

    name = "cgroups"
    default_interval = 15.0
    help = "CPU, memory, I/O, OOM kills and pressure per systemd service, user slice and container, from the cgroup tree (up to 15 series a cgroup, at most max_cgroups + 1)"
    options = {
        "max_cgroups": Option.integer(100, "Most cgroups exported under their own name; the rest are summed into 'other'.", 1, 10000),
        "new_cgroups_per_hour": Option.integer(10, "Most cgroups newly given their own series per hour after the first run (up to 15 series each); others wait in 'other'.", 0, 3600),
        "max_depth": Option.integer(6, "How deep below the cgroup root to look for services and containers.", 1, 32),
        "extra_paths": Option.regex(None, "Also export cgroups whose path (relative to the hierarchy root, e.g. 'machine.slice/qemu-1-vm.scope') matches this regex (searched), labelled by their path."),
        "paths_exclude": Option.regex(None, "Skip cgroups (and what is below them) whose path matches this regex (searched)."),
        "docker_root": Option.string("/var/lib/docker", "Docker's data directory on the host (under paths.rootfs): container names come from containers/<id>/config.v2.json there."),
    }
    metrics = (CPU, MEMORY, MEMORY_LIMIT, IO_READ, IO_WRITTEN, PROCESSES, OOM_KILLS) + PSI + (INFO,)

    def __init__(self, options: Optional[Mapping[str, Any]] = None, paths: Optional[Paths] = None) -> None:
        super().__init__(options, paths)
        self.root = os.path.join(self.paths.sysfs, "fs", "cgroup")
        self._extra = re.compile(self.config["extra_paths"]) if self.config["extra_paths"] else None
        self._exclude = re.compile(self.config["paths_exclude"]) if self.config["paths_exclude"] else None
        self._names = ContainerNames(os.path.join(self.paths.rootfs, self.config["docker_root"].lstrip("/")))
        self._top = TopGroups(self.config["max_cgroups"], self.config["new_cgroups_per_hour"], WIDTH, keep_absent=0.0)
        self._last: Dict[Tuple[str, int], Tuple[Optional[float], ...]] = {}
        self._seen = False
        self._other_shown = False
        self._shown: Dict[str, Tuple[Kind, str, Tuple[bool, ...]]] = {}  # label -> what it was when last present

    def select(self, layout: Layout) -> Dict[str, Tuple[Kind, List[str]]]:
        """Exported label -> (its kind, the paths summed under it)."""
        out: Dict[str, Tuple[Kind, List[str]]] = {}
        visited = 0
        max_depth = self.config["max_depth"]
        paths: Dict[str, Optional[Kind]] = {}
        for tree in layout.trees():
            stack = [("", 0)]
            while stack and visited < MAX_DIRS:
                rel, depth = stack.pop()
                visited += 1
                try:
                    with os.scandir(os.path.join(tree, rel) if rel else tree) as it:
                        children = sorted(e.name for e in it if e.is_dir(follow_symlinks=False))
                except OSError:
                    continue
                for name in children:
                    child = f"{rel}/{name}" if rel else name
                    if self._exclude is not None and self._exclude.search(child):
                        continue
                    kind = classify(child)
                    extra = self._extra is not None and self._extra.search(child) is not None
                    if kind is not None or extra:
                        paths.setdefault(child, kind)
                    if (kind is None or kind.kind != "container") and depth + 1 < max_depth:
                        stack.append((child, depth + 1))
        for rel, kind in paths.items():
            if kind is None:
                kind = Kind(label_safe(rel, MAX_LABEL, extra="/"), "path")
            elif kind.kind == "container":
                kind = kind._replace(label=container_label(kind.runtime, kind.id, self._names(kind.runtime, kind.id)))
            if kind.label == OTHER:
                kind = kind._replace(label=OTHER + "_")
            out.setdefault(kind.label, (kind, []))[1].append(rel)
        return out

    def sample(self) -> CgroupsSample:
        layout = detect(self.root)
        now = monotonic()
        selected = self.select(layout)
        first = not self._seen
        self._seen = True
        ident_tree = layout.unified if layout.mode == "v2" else layout.trees()[0]
        deltas: Dict[str, List[float]] = {}
        present: Dict[str, List[bool]] = {}
        gauges: Dict[str, Tuple[Optional[int], Optional[int], int]] = {}
        last: Dict[Tuple[str, int], Tuple[Optional[float], ...]] = {}
        for label, (kind, rels) in selected.items():
            d = deltas[label] = [0.0] * WIDTH
            has = present[label] = [False] * WIDTH
            memory: Optional[int] = None
            limit: Optional[int] = None
            processes = 0
            for rel in rels:
                reading = read_v2(layout.unified, rel) if layout.mode == "v2" else read_v1(layout, rel)  # type: ignore[arg-type]
                try:
                    ino = os.stat(os.path.join(ident_tree, rel)).st_ino  # type: ignore[arg-type]
                except OSError:
                    ino = 0
                ident = (rel, ino)
                prev = self._last.get(ident)
                if prev is not None and _cpu(reading.counters) < _cpu(prev) - 1e-6:
                    prev = None  # the CPU total went down: a cgroup made anew where the old one was
                for i, value in enumerate(reading.counters):
                    if value is None:
                        continue
                    has[i] = True
                    before = prev[i] if prev is not None else None
                    if before is None:
                        # New since the last run (or a figure that just appeared): all of it is recent.
                        d[i] += value
                    elif value > before:
                        # Within one cgroup, a figure that went down (v1's
                        # user/system split moving) adds nothing.
                        d[i] += value - before
                last[ident] = reading.counters
                if reading.memory is not None:
                    memory = (memory or 0) + reading.memory
                if reading.limit is not None and len(rels) == 1:
                    limit = reading.limit
                processes += reading.processes
            gauges[label] = (memory, limit, processes)
        self._last = last
        ranking = self._top.update(deltas, {label: float(g[0] or 0) for label, g in gauges.items()}, now)
        out = []
        shown = {}
        for label in ranking.named:
            if label in selected:
                kind, rels = selected[label]
                memory, limit, processes = gauges[label]
                shown[label] = (kind, rels[0], tuple(present[label]))
                out.append(CgroupFigures(label, kind.kind, kind.runtime, rels[0], ranking.counters[label], shown[label][2], memory, limit, processes))
            elif label in self._shown:
                # Removed since the last run, but first named then: its
                # counters show once more, with the use held back from then.
                kind, path, has = self._shown[label]
                out.append(CgroupFigures(label, kind.kind, kind.runtime, path, ranking.counters[label], has, None, None, 0, gone=True))
        self._shown = shown
        if ranking.in_other:
            self._other_shown = True
        if self._other_shown:
            rest = [gauges[k] for k in ranking.in_other if k in gauges]
            memory_sum = sum(g[0] or 0 for g in rest)
            shown = tuple(i < 5 for i in range(WIDTH))  # pressure does not add up across cgroups
            out.append(CgroupFigures(OTHER, "other", "", "", ranking.other, shown, memory_sum, None, sum(g[2] for g in rest)))
        return CgroupsSample(layout.mode, tuple(out))

    def families(self, sample: CgroupsSample) -> Iterator[Metric]:
        cpu = CPU.family()
        fams = {spec: spec.family() for spec in (MEMORY, MEMORY_LIMIT, IO_READ, IO_WRITTEN, PROCESSES, OOM_KILLS) + PSI + (INFO,)}
        for c in sample.cgroups:
            labels = [c.label]
            if c.present[USER]:
                cpu.add_metric([c.label, "user"], c.counters[USER])
                cpu.add_metric([c.label, "system"], c.counters[SYSTEM])
            if c.memory is not None:
                fams[MEMORY].add_metric(labels, c.memory)
            if c.limit is not None:
                fams[MEMORY_LIMIT].add_metric(labels, c.limit)
            if c.present[READ]:
                fams[IO_READ].add_metric(labels, c.counters[READ])
                fams[IO_WRITTEN].add_metric(labels, c.counters[WRITTEN])
            if not c.gone:
                fams[PROCESSES].add_metric(labels, c.processes)
            if c.present[OOM]:
                fams[OOM_KILLS].add_metric(labels, c.counters[OOM])
            for i, spec in enumerate(PSI):
                if c.present[5 + i]:
                    fams[spec].add_metric(labels, c.counters[5 + i])
            if c.label != OTHER:
                fams[INFO].add_metric([c.label, c.kind, c.runtime, c.path[:256]], 1)
        yield cpu
        yield from fams.values()
