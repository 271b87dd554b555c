"""Fleets of real agents and the engines around them: Prometheus, vmagent,
VictoriaMetrics, all on loopback. Used by ``bench/fleet``, ``bench/outage``
and their shortened tests.

Each agent of a fleet is a separate ``hostagent`` process listening on its own
loopback address (``127.0.1.1``, ``127.0.1.2``, ...), as separate hosts would;
Linux routes all of 127.0.0.0/8 to ``lo``. Configuration files are written as
JSON, which Prometheus and vmagent read as YAML, so this module needs only the
standard library.
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

from benchlib import AGENT_SCRIPT, DEFAULT_CONFIG, REPO, BenchError, Service, agent_python, free_port

Labels = Tuple[Tuple[str, str], ...]
Sample = Tuple[float, str]  # (timestamp in seconds, value as the API prints it)

# The Debian package names of the engines, for error messages.
PACKAGES = {"prometheus": "prometheus", "vmagent": "victoria-metrics", "victoria-metrics": "victoria-metrics"}


def tool(name: str) -> str:
    """Path of an engine's executable; BenchError naming the package when missing."""
    path = shutil.which(name)
    if path is None:
        raise BenchError(f"{name} not found: apt-get install {PACKAGES.get(name, name)} (scripts/install-tools does it as root)")
    return path


def version(name: str) -> str:
    """First line of ``name --version`` (``-version`` for the VictoriaMetrics programs)."""
    flag = "--version" if name == "prometheus" else "-version"
    done = subprocess.run([tool(name), flag], capture_output=True, text=True, timeout=30)
    lines = (done.stdout + done.stderr).strip().splitlines()
    if lines:
        return lines[0]
    # Debian's VictoriaMetrics builds print nothing: ask the package manager.
    package = subprocess.run(["dpkg-query", "-W", "-f=${Version}", PACKAGES.get(name, name)], capture_output=True, text=True, timeout=30)
    return f"{PACKAGES.get(name, name)} {package.stdout.strip()} (Debian package)" if package.returncode == 0 else "unknown"


def port_free(host: str, port: int) -> bool:
    """True when nothing listens on host:port (and nothing on the wildcard blocks it)."""
    with socket.socket() as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def wait_for(check: Callable[[], Any], timeout: float, what: str, every: float = 0.25) -> Any:
    """Call ``check`` until it returns something truthy; BenchError naming ``what`` otherwise."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = check()
        except (OSError, ValueError, KeyError) as exc:  # a server still starting or restarting
            last = exc
        else:
            if last:
                return last
        time.sleep(every)
    raise BenchError(f"timed out after {timeout:g}s waiting for {what} (last: {last!r})")


def duration(seconds: float) -> str:
    """A Prometheus duration string (whole milliseconds: it takes no decimals)."""
    ms = int(round(seconds * 1000))
    return f"{ms // 1000}s" if ms % 1000 == 0 else f"{ms}ms"


def write_json(path: Path, data: Any) -> Path:
    """Write ``data`` as JSON (which is YAML too) and return the path."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=1) + "\n")
    tmp.replace(path)  # file_sd readers never see half a file
    return path


# --------------------------------------------------------------------------
# The HTTP APIs (Prometheus's, which VictoriaMetrics and vmagent also speak)


def get_json(url: str, params: Optional[Mapping[str, str]] = None, timeout: float = 30.0) -> Any:
    if params:
        url += "?" + urllib.parse.urlencode(params)
    with urllib.request.urlopen(url, timeout=timeout) as resp:
        return json.loads(resp.read())


def post(url: str, data: bytes = b"", timeout: float = 60.0) -> bytes:
    with urllib.request.urlopen(urllib.request.Request(url, data=data, method="POST"), timeout=timeout) as resp:
        return resp.read()


def query(base: str, expr: str, at: Optional[float] = None, timeout: float = 30.0) -> List[Dict[str, Any]]:
    """An instant query; raises BenchError with the server's reason on failure."""
    params = {"query": expr}
    if at is not None:
        params["time"] = f"{at:.3f}"
    try:
        body = get_json(base + "/api/v1/query", params, timeout)
    except urllib.error.HTTPError as exc:
        raise BenchError(f"query {expr!r} failed: HTTP {exc.code}: {exc.read()[:300]!r}") from None
    if body.get("status") != "success":
        raise BenchError(f"query {expr!r} failed: {body.get('error')}")
    return body["data"]["result"]


def scalar(base: str, expr: str, at: Optional[float] = None) -> Optional[float]:
    """The value of a query returning one series (None when it returns none)."""
    result = query(base, expr, at)
    if not result:
        return None
    if len(result) > 1:
        raise BenchError(f"{expr!r} returned {len(result)} series, expected one")
    return float(result[0]["value"][1])


def labels_of(metric: Mapping[str, str]) -> Labels:
    return tuple(sorted(metric.items()))


def raw_samples(base: str, selector: str, start: float, end: float) -> Dict[Labels, List[Sample]]:
    """Every stored sample of ``selector`` with start < timestamp <= end, per series
    (a range-vector instant query returns samples as stored; stale markers are left out)."""
    window_ms = int(round((end - start) * 1000))
    result = query(base, f"{selector}[{window_ms}ms]", at=end, timeout=120)
    return {labels_of(r["metric"]): [(float(t), v) for t, v in r["values"]] for r in result}


def metric_values(base: str, name: str) -> Dict[Labels, float]:
    """Samples of ``name`` in a server's own /metrics, by labels (a tiny text-format reader)."""
    with urllib.request.urlopen(base + "/metrics", timeout=30) as resp:
        text = resp.read().decode()
    out: Dict[Labels, float] = {}
    for line in text.splitlines():
        if not line.startswith(name) or line[len(name):len(name) + 1] not in ("{", " "):
            continue
        head, _, value = line.rpartition(" ")
        labels: Dict[str, str] = {}
        if "{" in head:
            for part in head[head.index("{") + 1:head.rindex("}")].split(","):
                if "=" in part:
                    key, _, val = part.strip().partition("=")
                    labels[key] = val.strip('"')
        out[labels_of(labels)] = float(value)
    return out


# --------------------------------------------------------------------------
# Comparing what two stores hold


@dataclass
class Comparison:
    """Samples one store should hold (``expected``, per series) against what it holds."""

    series: int = 0
    expected: int = 0
    present: int = 0
    missing: int = 0
    extra: int = 0
    missing_series: List[Labels] = field(default_factory=list)
    worst: List[Tuple[Labels, int, int]] = field(default_factory=list)  # (series, expected, present), most missing first
    per_series_counts: Dict[Labels, Tuple[int, int]] = field(default_factory=dict)

    @property
    def complete(self) -> bool:
        return self.missing == 0


def compare(expected: Mapping[Labels, Sequence[Sample]], present: Mapping[Labels, Sequence[Sample]]) -> Comparison:
    """Per series: which expected (timestamp, value) samples are absent from ``present``."""
    out = Comparison(series=len(expected))
    misses = []
    for labels, samples in expected.items():
        want = set(samples)
        got = set(present.get(labels, ()))
        missing = len(want - got)
        out.expected += len(want)
        out.present += len(want & got)
        out.missing += missing
        out.extra += len(got - want)
        out.per_series_counts[labels] = (len(want), len(want & got))
        if labels not in present:
            out.missing_series.append(labels)
        if missing:
            misses.append((labels, len(want), len(want & got)))
    out.extra += sum(len(v) for k, v in present.items() if k not in expected)
    out.worst = sorted(misses, key=lambda m: m[2] - m[1])[:10]
    return out


def show_labels(labels: Labels) -> str:
    d = dict(labels)
    name = d.pop("__name__", "")
    return name + "{" + ",".join(f'{k}="{v}"' for k, v in sorted(d.items())) + "}"


# --------------------------------------------------------------------------
# Agents as hosts


def fleet_hosts(count: int, prefix: str = "127.0.1") -> List[str]:
    """``count`` loopback addresses ``prefix.1`` .. ``prefix.count`` (at most 254)."""
    if not 1 <= count <= 254:
        raise ValueError(f"a fleet holds 1 to 254 hosts per address prefix, not {count}")
    return [f"{prefix}.{i}" for i in range(1, count + 1)]


def free_block(count: int, tries: int = 50) -> Tuple[str, int]:
    """(prefix, port) with the port free on prefix.1 .. prefix.count: a random
    /24 of 127.0.0.0/8, so fleets of tests running side by side never meet."""
    rng = random.Random()
    for _ in range(tries):
        prefix, port = f"127.{rng.randint(100, 250)}.{rng.randint(1, 254)}", rng.randint(20000, 60000)
        if all(port_free(host, port) for host in fleet_hosts(count, prefix)):
            return prefix, port
    raise BenchError(f"no loopback block with a port free on {count} addresses after {tries} tries")


def host_name(index: int) -> str:
    """The name fleet host ``index`` (1-based) goes by: its ``instance`` label."""
    return f"host-{index:03d}"


class Agent(Service):
    """One real agent, as one host of the fleet."""

    def __init__(self, workdir: Path, name: str, host: str, port: int, config: Path = DEFAULT_CONFIG, extra_args: Sequence[str] = ()):
        argv = [agent_python(), str(AGENT_SCRIPT), "--config", str(config), f"--web.listen-address={host}:{port}", *extra_args]
        super().__init__(name, argv, port, "/-/ready", workdir / f"agent-{name}.log", host=host)
        self.hostname = name

    def hang(self) -> None:
        """SIGSTOP: the process holds its socket but answers nothing, like a hung host."""
        os.kill(self.pid, signal.SIGSTOP)

    def resume(self) -> None:
        os.kill(self.pid, signal.SIGCONT)

    def stop(self, timeout: float = 10.0) -> None:
        if self.alive():
            os.kill(self.pid, signal.SIGCONT)  # a stopped process cannot act on SIGTERM
        super().stop(timeout)


def start_fleet(workdir: Path, count: int, prefix: str = "127.0.1", port: int = 9100, config: Path = DEFAULT_CONFIG,
                extra_args: Sequence[str] = (), timeout: float = 300.0) -> List[Agent]:
    """Start ``count`` agents on prefix.1..count:port, all at once, and wait until each is ready."""
    hosts = fleet_hosts(count, prefix)
    taken = [h for h in hosts if not port_free(h, port)]
    if taken:
        raise BenchError(f"port {port} is taken on {', '.join(taken[:5])}{' ...' if len(taken) > 5 else ''} (something listens there, or on *:{port}); pick another with --port")
    agents = [Agent(workdir, host_name(i), host, port, config, extra_args) for i, host in enumerate(hosts, 1)]
    try:
        for agent in agents:
            agent.launch()
        deadline = time.monotonic() + timeout
        for agent in agents:
            agent.wait_ready(max(5.0, deadline - time.monotonic()))
    except BaseException:
        stop_all(agents)
        raise
    return agents


def stop_all(services: Iterable[Optional[Service]]) -> None:
    for svc in services:
        if svc is not None:
            svc.stop()


def inventory_text(agents: Sequence[Agent]) -> str:
    """An Ansible INI inventory of the fleet: name, and the address it answers on."""
    lines = ["# The test fleet: every host an agent on its own loopback address.", "[fleet]"]
    lines += [f"{a.hostname} ansible_host={a.host}" for a in agents]
    return "\n".join(lines) + "\n"


def targets_from_inventory(workdir: Path, agents: Sequence[Agent], port: int) -> Path:
    """The fleet's file_sd targets, generated by ``hostagent targets`` from an inventory."""
    inventory = workdir / "inventory.ini"
    inventory.write_text(inventory_text(agents))
    out = workdir / "targets" / "hosts.yml"
    out.parent.mkdir(exist_ok=True)
    done = subprocess.run([agent_python(), str(REPO / "run_agent.py"), "targets", "--from", str(inventory), "--port", str(port)],
                          capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        raise BenchError(f"hostagent targets failed ({done.returncode}): {done.stderr.strip()}")
    out.write_text(done.stdout)
    return out


# --------------------------------------------------------------------------
# Engines


class Engine(Service):
    """A Prometheus, vmagent or VictoriaMetrics process with its data directory."""

    def __init__(self, name: str, argv: Sequence[str], port: int, ready_path: str, workdir: Path, data: Path):
        super().__init__(name, argv, port, ready_path, workdir / f"{name}.log")
        self.data = data

    def restart(self, timeout: float = 120.0) -> "Engine":
        self.stop(timeout=60.0)
        return self.start(timeout)  # type: ignore[return-value]


def compose_features() -> List[str]:
    """The ``--enable-feature`` flags docker-compose.yml runs the central
    Prometheus with (extra-scrape-metrics, which the sample-limit alert reads)."""
    command = load_yaml(REPO / "docker-compose.yml")["services"]["prometheus"]["command"]
    return [arg for arg in command if arg.startswith("--enable-feature=")]


def prometheus(workdir: Path, name: str, config: Mapping[str, Any], port: Optional[int] = None, receiver: bool = False,
               extra_args: Sequence[str] = (), agent_mode: bool = False) -> Engine:
    """A Prometheus (or, with ``agent_mode``, a Prometheus agent) on 127.0.0.1, config written from ``config``."""
    port = port or free_port()
    cfg = write_json(workdir / f"{name}.yml", config)
    data = workdir / f"{name}-data"
    storage = [f"--storage.agent.path={data}", "--enable-feature=agent"] if agent_mode else [f"--storage.tsdb.path={data}", *compose_features()]
    argv = [tool("prometheus"), f"--config.file={cfg}", *storage, f"--web.listen-address=127.0.0.1:{port}",
            "--web.enable-lifecycle", *(["--web.enable-remote-write-receiver"] if receiver else []), *extra_args]
    return Engine(name, argv, port, "/-/ready", workdir, data)


def vmagent(workdir: Path, name: str, scrape_config: Mapping[str, Any], remote_write: Sequence[str], port: Optional[int] = None,
            extra_args: Sequence[str] = ()) -> Engine:
    """A vmagent scraping per ``scrape_config`` and writing to every URL of ``remote_write``,
    buffering on disk under its data directory."""
    port = port or free_port()
    cfg = write_json(workdir / f"{name}.yml", scrape_config)
    data = workdir / f"{name}-buffer"
    argv = [tool("vmagent"), f"-promscrape.config={cfg}", f"-remoteWrite.tmpDataPath={data}", f"-httpListenAddr=127.0.0.1:{port}",
            "-promscrape.fileSDCheckInterval=5s", "-loggerLevel=WARN", *[f"-remoteWrite.url={u}" for u in remote_write], *extra_args]
    return Engine(name, argv, port, "/health", workdir, data)


def victoria_metrics(workdir: Path, name: str, port: Optional[int] = None, retention: str = "1y", extra_args: Sequence[str] = ()) -> Engine:
    """A single-node VictoriaMetrics on 127.0.0.1."""
    port = port or free_port()
    data = workdir / f"{name}-data"
    argv = [tool("victoria-metrics"), f"-storageDataPath={data}", f"-retentionPeriod={retention}", f"-httpListenAddr=127.0.0.1:{port}",
            "-loggerLevel=WARN", *extra_args]
    return Engine(name, argv, port, "/health", workdir, data)


def receiver_config(**extra: Any) -> Dict[str, Any]:
    """A central store that takes remote writes as the shipped prometheus.yml
    does (the same out-of-order window), with ``extra`` top-level sections."""
    return {"global": {"scrape_interval": "15s"}, "storage": shipped_prometheus().get("storage", {}), **extra}


def remote_write_url(engine: Engine) -> str:
    """Where ``engine`` takes remote_write: the same path on Prometheus and VictoriaMetrics."""
    return f"{engine.url}/api/v1/write"


def pending_bytes(forwarder: Engine) -> float:
    """Bytes vmagent still holds for its remote-write URLs (disk queue plus memory)."""
    return sum(metric_values(forwarder.url, "vm_persistentqueue_bytes_pending").values())


def dir_bytes(path: Path) -> int:
    """Bytes of the regular files under ``path``."""
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


# --------------------------------------------------------------------------
# The repository's own configuration, adapted to a fleet on loopback


def in_agent_python(argv: Sequence[str]) -> None:
    """Re-run the script under the checkout's virtualenv Python when this one
    lacks PyYAML (the agent's own dependency), which reads the shipped YAML."""
    try:
        import yaml  # noqa: F401, PLC0415
    except ImportError:
        python = agent_python()
        if os.path.realpath(python) == os.path.realpath(sys.executable):
            raise BenchError("PyYAML is missing: run scripts/setup, then this script with .venv/bin/python") from None
        os.execv(python, [python, *argv])


def load_yaml(path: Path) -> Any:
    import yaml  # noqa: PLC0415 - see in_agent_python

    return yaml.safe_load(path.read_text())


def shipped_prometheus() -> Dict[str, Any]:
    return load_yaml(REPO / "prometheus" / "prometheus.yml")


def hostagent_job(targets_dir: Path, interval: Optional[float] = None) -> Dict[str, Any]:
    """The shipped ``hostagent`` scrape job (its limits included), its targets
    read from ``targets_dir/*.yml`` instead of the shipped static one."""
    job = dict(next(j for j in shipped_prometheus()["scrape_configs"] if j["job_name"] == "hostagent"))
    job.pop("static_configs", None)
    job["file_sd_configs"] = [{"files": [str(targets_dir / "*.yml")]}]
    if interval is not None:
        job["scrape_interval"] = duration(interval)
    return job


def central_config(targets_dir: Path, longterm_url: Optional[str] = None, interval: Optional[float] = None,
                   rule_files: Optional[Sequence[str]] = None) -> Dict[str, Any]:
    """The shipped prometheus.yml for a fleet on loopback: its global settings,
    storage, rules and hostagent job; no Alertmanager; the long-term
    remote_write (with its filter) sent to ``longterm_url`` if given.

    With ``interval`` (a test's faster pace) scrapes and rule evaluations run
    at that interval, and the scrape timeout shrinks to fit inside it."""
    shipped = shipped_prometheus()
    config: Dict[str, Any] = {"global": dict(shipped["global"]), "storage": shipped.get("storage", {})}
    if interval is not None:
        timeout = min(parse_seconds(config["global"].get("scrape_timeout", "10s")), interval)
        config["global"].update(scrape_interval=duration(interval), evaluation_interval=duration(interval), scrape_timeout=duration(timeout))
    config["rule_files"] = list(rule_files) if rule_files is not None else [str(REPO / "prometheus" / f) for f in shipped.get("rule_files", [])]
    config["scrape_configs"] = [hostagent_job(targets_dir)]
    if longterm_url is not None:
        (longterm,) = [rw for rw in shipped.get("remote_write", []) if rw.get("name") == "longterm"]
        config["remote_write"] = [dict(longterm, url=longterm_url, queue_config={"batch_send_deadline": "1s"})]
    return config


def parse_seconds(text: str) -> float:
    """Seconds in a Prometheus duration such as ``5s``, ``1m30s``, ``250ms``."""
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}
    parts = re.findall(r"(\d+)(ms|s|m|h|d|w|y)", text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise ValueError(f"not a Prometheus duration: {text!r}")
    return sum(int(n) * units[u] for n, u in parts)


# --------------------------------------------------------------------------
# Sharding scrapes across forwarders


def shard_relabel(shards: int, shard: int) -> List[Dict[str, Any]]:
    """The relabel rules that keep the targets of shard ``shard`` of ``shards``
    (Prometheus's hashmod of the address; vmagent and Prometheus both run it),
    and label each series with the shard that scraped it."""
    return [
        {"source_labels": ["__address__"], "modulus": shards, "target_label": "__tmp_shard", "action": "hashmod"},
        {"source_labels": ["__tmp_shard"], "regex": str(shard), "action": "keep"},
        {"target_label": "shard", "replacement": str(shard)},
    ]


def active_targets(engine: Engine) -> List[Dict[str, Any]]:
    """The targets a Prometheus or vmagent scrapes, from its /api/v1/targets."""
    return get_json(engine.url + "/api/v1/targets")["data"]["activeTargets"]


# --------------------------------------------------------------------------
# The shipped forwarder (prometheus/forwarder/, docker-compose.storage.yml)


def forwarder_config(targets_dir: Path, interval: Optional[float] = None, relabel: Sequence[Mapping[str, Any]] = ()) -> Dict[str, Any]:
    """prometheus/forwarder/scrape.yml with its targets read from
    ``targets_dir/*.yml``; at a test's faster ``interval`` if given (the
    timeout shrunk to fit), with ``relabel`` rules added to every job."""
    config = load_yaml(REPO / "prometheus" / "forwarder" / "scrape.yml")
    if interval is not None:
        timeout = min(parse_seconds(config["global"].get("scrape_timeout", "10s")), interval)
        config["global"].update(scrape_interval=duration(interval), scrape_timeout=duration(timeout))
    for job in config["scrape_configs"]:
        job["file_sd_configs"] = [{"files": [str(targets_dir / "*.yml")]}]
        if relabel:
            job["relabel_configs"] = list(job.get("relabel_configs", [])) + list(relabel)
    return config


def shipped_forwarder_flags(env: Optional[Mapping[str, str]] = None) -> List[str]:
    """The forwarder's flags in docker-compose.storage.yml that are about
    behaviour, not places (buffer size, discovery, credentials for the
    centre), with compose's ``${VAR:-default}`` taken from ``env``."""
    command = load_yaml(REPO / "docker-compose.storage.yml")["services"]["forwarder"]["command"]
    places = ("-promscrape.config=", "-remoteWrite.url=", "-remoteWrite.tmpDataPath=", "-httpListenAddr=")
    values = env or {}
    return [re.sub(r"\$\{(\w+):-([^}]*)\}", lambda m: values.get(m.group(1), m.group(2)), flag)
            for flag in command if not flag.startswith(places)]


# --------------------------------------------------------------------------
# The long-term tiers at a test's pace

TIERS_FILE = REPO / "prometheus" / "rules" / "hostagent-tiers.rules.yml"


def tier_names() -> Dict[str, List[str]]:
    """Tier -> the series names the shipped tier rules record for it."""
    out: Dict[str, List[str]] = {}
    for group in load_yaml(TIERS_FILE)["groups"]:
        for rule in group["rules"]:
            out.setdefault(rule["labels"]["tier"], []).append(rule["record"])
    return out


def fast_tier_rules(workdir: Path, intervals: Mapping[str, float]) -> List[str]:
    """The shipped rule files, with the tier file rewritten into ``workdir``
    so each tier's group runs every ``intervals[tier]`` seconds instead of
    its period (5m, 1h). Only the groups' ``interval`` changes: every rule,
    its expression, windows and labels are the shipped ones."""
    doc = load_yaml(TIERS_FILE)
    for group in doc["groups"]:
        (tier,) = {rule["labels"]["tier"] for rule in group["rules"]}
        if group.get("interval") != tier:
            raise BenchError(f"{TIERS_FILE.name}: group {group['name']} runs every {group.get('interval')}, not its tier's {tier}")
        group["interval"] = duration(intervals[tier])
    fast = write_json(workdir / TIERS_FILE.name, doc)
    shipped = sorted(p for f in shipped_prometheus().get("rule_files", []) for p in (REPO / "prometheus").glob(f))
    return [*(str(p) for p in shipped if p != TIERS_FILE), str(fast)]


def tier_series_counts(base: str) -> Dict[str, Dict[str, int]]:
    """Tier -> host -> how many series the shipped tier rules make for it,
    counted on the Prometheus at ``base`` by evaluating each 5-minute rule's
    expression now (no need to wait for the groups' periods). Each hourly
    rule aggregates one 5-minute series into one, so it makes as many as the
    rule it reads."""
    doc = load_yaml(TIERS_FILE)
    per_rule: Dict[str, Dict[str, int]] = {}
    out: Dict[str, Dict[str, int]] = {}
    for group in doc["groups"]:
        for rule in group["rules"]:
            tier, name = rule["labels"]["tier"], rule["record"]
            if tier == "5m":
                counts = {r["metric"].get("instance", ""): int(float(r["value"][1])) for r in query(base, f"count by (instance) ({rule['expr']})")}
            else:
                (source,) = set(re.findall(r"[\w:]+_5m\b", rule["expr"]))
                counts = per_rule[source]
            per_rule[name] = counts
            for host, n in counts.items():
                out.setdefault(tier, {}).setdefault(host, 0)
                out[tier][host] += n
    return out
