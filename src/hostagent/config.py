"""Agent configuration: defaults < YAML file < HOSTAGENT_* environment < flags.

Everything is validated before anything starts, and every problem is reported
at once with its key path, the value and (for environment overrides) the
variable it came from.
"""

from __future__ import annotations

import difflib
import os
from dataclasses import dataclass
from typing import Any, Dict, List, Mapping, MutableMapping, Optional, Sequence, Tuple, Type

import yaml

from .collectors.base import BaseCollector, Option, OptionError, Paths

# Used when neither --config nor HOSTAGENT_CONFIG names a file: the checkout's
# own config/agent.yaml (running from the repository), then the system-wide one.
DEFAULT_CONFIGS = (
    os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "config", "agent.yaml"),
    "/etc/hostagent/agent.yaml",
)


def default_config_path() -> Optional[str]:
    """The first default config file that exists, or None for built-in defaults."""
    return next((path for path in DEFAULT_CONFIGS if os.path.isfile(path)), None)
ENV_PREFIX = "HOSTAGENT_"
# HOSTAGENT_* variables read by other parts (not agent settings).
ENV_NOT_SETTINGS = frozenset({"HOSTAGENT_CONFIG", "HOSTAGENT_ALERTMANAGER_URL"})


class ConfigError(Exception):
    """The configuration is not usable; ``problems`` lists every reason."""

    def __init__(self, problems: Sequence[str], source: str = "", partial: Optional[Mapping[Tuple[str, ...], Any]] = None):
        self.problems = list(problems)
        self.source = source
        # The options that did check out, by key path: enough to go on and
        # check files they name (the web config) in the same run.
        self.partial: Mapping[Tuple[str, ...], Any] = dict(partial or {})
        where = f" in {source}" if source else ""
        lines = [f"invalid configuration{where} ({len(self.problems)} problem{'s' if len(self.problems) != 1 else ''}):"]
        lines += [f"  - {p}" for p in self.problems]
        super().__init__("\n".join(lines))


def _check_listen_address(value: Any) -> Any:
    parse_listen_address(value)
    return value


def parse_listen_address(value: Any) -> Tuple[Optional[str], int]:
    """Split ``host:port`` (``:9100``, ``[::1]:9100``) into (host or None, port)."""
    if not isinstance(value, str) or ":" not in value:
        raise OptionError(f"must be host:port (e.g. :9100 or 127.0.0.1:9100), got {value!r}")
    host, _, port_text = value.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        raise OptionError(f"IPv6 addresses need brackets, e.g. [::1]:9100, got {value!r}")
    if not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
        raise OptionError(f"port must be a number from 1 to 65535, got {value!r}")
    return (host or None), int(port_text)


def _check_optional_file(value: Any) -> Any:
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise OptionError(f"must be a file path, got {value!r}")
    if not os.path.isfile(value):
        raise OptionError(f"file does not exist: {value!r}")
    if not os.access(value, os.R_OK):
        raise OptionError(f"file is not readable: {value!r}")
    return value


def _check_directory(value: Any) -> Any:
    if not isinstance(value, str) or not value:
        raise OptionError(f"must be a directory path, got {value!r}")
    if not os.path.isdir(value):
        raise OptionError(f"directory does not exist: {value!r}")
    return value


def _check_procfs(value: Any) -> Any:
    _check_directory(value)
    # Every procfs has a "stat" file; a wrong mount point (say /host instead
    # of /host/proc) is caught here rather than as every collector failing.
    if not os.path.isfile(os.path.join(value, "stat")):
        raise OptionError(f"not a procfs (no 'stat' file in it): {value!r}")
    return value


MiB = 1024 * 1024

SECTIONS: Dict[str, Dict[str, Option]] = {
    "web": {
        "listen_address": Option(":9100", "Address to listen on, host:port; ':9100' means every interface.", _check_listen_address),
        "config_file": Option(None, "Web config file (exporter-toolkit format): TLS, basic auth, response headers, rate limit; read again when it or a file it names changes.", _check_optional_file),
        # These defaults are also web.Limits' (web.py reads them from here).
        "max_requests": Option.integer(40, "Most requests handled at once (credential checks not counted); more get 503 straight away.", 1, 10000),
        "max_connections": Option.integer(512, "Most open client connections (lowered to fit the open files limit); at the limit an idle or unfinished connection is closed to make room for a new one.", 1, 100000),
        "read_timeout": Option.seconds(10.0, "Seconds a client has to finish its TLS handshake, and to send each whole request head."),
        "idle_timeout": Option.seconds(120.0, "Seconds an idle keep-alive connection is kept open (5 once half of max_connections are in use)."),
        "write_timeout": Option.seconds(30.0, "Seconds a client may take to read a response before it is cut off."),
        "access_log": Option.boolean(False, "Log each request: method, path, status, duration, remote address."),
    },
    "logging": {
        "level": Option.choice("info", "Log level.", ("debug", "info", "warning", "error")),
        "format": Option.choice("text", "Log format.", ("text", "json")),
    },
    "limits": {
        "enabled": Option.boolean(True, "Check the agent's own CPU and memory use against the limits below."),
        "check_interval": Option.seconds(60.0, "Seconds between self-checks."),
        "max_cpu_percent": Option.number(5.0, "CPU limit in percent of one core, averaged over check_interval."),
        "max_rss_bytes": Option.integer(100 * MiB, "Resident memory limit in bytes.", 1),
        "action": Option.choice("log", "What to do over a limit: log, disable_collectors (most expensive first) or stop (exit with status 3).", ("log", "disable_collectors", "stop")),
    },
    "paths": {
        "procfs": Option("/proc", "Where the host's /proc is mounted (a container sees the host's at e.g. /host/proc).", _check_procfs),
        "sysfs": Option("/sys", "Where the host's /sys is mounted.", _check_directory),
        "rootfs": Option("/", "Where the host's root filesystem is mounted.", _check_directory),
    },
}

COLLECTOR_COMMON = ("enabled", "interval")
MIN_INTERVAL = 0.1


@dataclass(frozen=True)
class CollectorConfig:
    """One collector's validated settings."""

    name: str
    enabled: bool
    interval: float
    options: Mapping[str, Any]


@dataclass(frozen=True)
class Config:
    """The validated configuration the agent runs with."""

    web: Mapping[str, Any]
    logging: Mapping[str, Any]
    limits: Mapping[str, Any]
    paths: Paths
    collectors: Mapping[str, CollectorConfig]
    source: str

    def enabled_collectors(self) -> List[CollectorConfig]:
        return [c for c in self.collectors.values() if c.enabled]


def _collector_options(cls: Type[BaseCollector]) -> Dict[str, Option]:
    opts = {
        "enabled": Option.boolean(cls.default_enabled, "Run this collector."),
        # Below a tenth of a second a collector would spin rather than sample.
        "interval": Option.seconds(cls.default_interval, "Seconds between runs (at least 0.1).", lo=MIN_INTERVAL),
    }
    opts.update(cls.options)
    return opts


def schema(registry: Mapping[str, Type[BaseCollector]]) -> Dict[str, Dict[str, Any]]:
    """The full tree of Options: {section: {key: Option}} and collectors.{name}."""
    tree: Dict[str, Dict[str, Any]] = {name: dict(opts) for name, opts in SECTIONS.items()}
    tree["collectors"] = {name: _collector_options(cls) for name, cls in registry.items()}
    return tree


def _did_you_mean(word: str, choices: Sequence[str]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


# --------------------------------------------------------------------------
# Overrides: (key path, value, where it came from)

Override = Tuple[Tuple[str, ...], Any, str]


def _parse_scalar(text: str) -> Any:
    """Environment/flag values are YAML scalars: 15, 0.5, true, null, text."""
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        return text
    return value if isinstance(value, (str, int, float, bool)) or value is None else text


def env_overrides(environ: Mapping[str, str], registry: Mapping[str, Type[BaseCollector]]) -> Tuple[List[Override], List[str]]:
    """HOSTAGENT_* variables as overrides, plus problems for unknown ones."""
    tree = schema(registry)
    known: Dict[str, Tuple[str, ...]] = {}
    for section, opts in tree.items():
        if section == "collectors":
            for cname, copts in opts.items():
                for key in copts:
                    path = ("collectors", cname, key)
                    known[f"{ENV_PREFIX}COLLECTOR_{cname}_{key}".upper()] = path
                    known[f"{ENV_PREFIX}COLLECTORS_{cname}_{key}".upper()] = path
        else:
            for key in opts:
                known[f"{ENV_PREFIX}{section}_{key}".upper()] = (section, key)
    for key in SECTIONS["logging"]:
        known[f"{ENV_PREFIX}LOG_{key}".upper()] = ("logging", key)
    overrides: List[Override] = []
    problems: List[str] = []
    setter: Dict[Tuple[str, ...], str] = {}  # key path -> the variable that set it
    for var in sorted(environ):
        if not var.startswith(ENV_PREFIX) or var in ENV_NOT_SETTINGS:
            continue
        path = known.get(var)
        if path is None:
            problems.append(f"environment variable {var}: unknown setting{_did_you_mean(var, sorted(known))}")
            continue
        other = setter.setdefault(path, var)
        if other != var:
            # Two spellings of one setting (LOG_ and LOGGING_, COLLECTOR_ and
            # COLLECTORS_): which one wins must not be left to chance.
            if _parse_scalar(environ[other]) != _parse_scalar(environ[var]):
                problems.append(f"{'.'.join(path)}: set by both environment variables {other} and {var}, to different values; keep one")
            continue
        overrides.append((path, _parse_scalar(environ[var]), f"environment variable {var}"))
    return overrides, problems


# --------------------------------------------------------------------------
# Loading


def read_yaml(path: str) -> Tuple[Any, List[str]]:
    """The parsed file, or problems saying why it cannot be read."""
    try:
        with open(path, "r", encoding="utf-8") as handle:
            text = handle.read()
    except FileNotFoundError:
        return None, [f"config file {path}: does not exist"]
    except IsADirectoryError:
        return None, [f"config file {path}: is a directory"]
    except PermissionError:
        return None, [f"config file {path}: permission denied"]
    except (OSError, UnicodeDecodeError) as exc:
        return None, [f"config file {path}: cannot be read ({exc})"]
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        return None, [f"config file {path}: not valid YAML{where}: {problem}"]
    return data, []


def _merge_tree(raw: Any, tree: Mapping[str, Any], path: Tuple[str, ...], out: MutableMapping[Tuple[str, ...], Tuple[Any, str]], problems: List[str], origin: str) -> None:
    """Walk the user's mapping against the schema, recording leaf values."""
    dotted = ".".join(path) or "top level"
    if raw is None:
        return
    if not isinstance(raw, Mapping):
        problems.append(f"{dotted}: must be a mapping, got {raw!r}")
        return
    for key, value in raw.items():
        if not isinstance(key, str):
            problems.append(f"{dotted}: keys must be strings, got {key!r}")
            continue
        sub = path + (key,)
        if key not in tree:
            problems.append(f"{'.'.join(sub)}: unknown key{_did_you_mean(key, sorted(tree))}")
            continue
        node = tree[key]
        if isinstance(node, Option):
            out[sub] = (value, origin)
        else:
            _merge_tree(value, node, sub, out, problems, origin)


def load(
    path: Optional[str],
    registry: Mapping[str, Type[BaseCollector]],
    environ: Optional[Mapping[str, str]] = None,
    flags: Sequence[Override] = (),
) -> Config:
    """Build the validated Config or raise ConfigError listing every problem."""
    environ = os.environ if environ is None else environ
    tree = schema(registry)
    problems: List[str] = []
    values: Dict[Tuple[str, ...], Tuple[Any, str]] = {}
    source = path or "(defaults)"
    if path:
        data, read_problems = read_yaml(path)
        problems += read_problems
        if not read_problems:
            _merge_tree(data, tree, (), values, problems, "")
    env, env_problems = env_overrides(environ, registry)
    problems += env_problems
    for key_path, value, origin in list(env) + list(flags):
        values[key_path] = (value, origin)

    resolved: Dict[Tuple[str, ...], Any] = {}

    def walk(node: Mapping[str, Any], path_: Tuple[str, ...]) -> None:
        for key, sub in node.items():
            p = path_ + (key,)
            if isinstance(sub, Option):
                if p in values:
                    value, origin = values[p]
                    try:
                        resolved[p] = sub.check(value)
                    except OptionError as exc:
                        via = f" (from {origin})" if origin else ""
                        problems.append(f"{'.'.join(p)}{via}: {exc}")
                else:
                    resolved[p] = sub.default
            else:
                walk(sub, p)

    walk(tree, ())
    if problems:
        raise ConfigError(problems, source, resolved)

    def section(name: str) -> Dict[str, Any]:
        return {key: resolved[(name, key)] for key in tree[name]}

    collectors = {}
    for cname, copts in tree["collectors"].items():
        opts = {key: resolved[("collectors", cname, key)] for key in copts if key not in COLLECTOR_COMMON}
        collectors[cname] = CollectorConfig(cname, resolved[("collectors", cname, "enabled")], resolved[("collectors", cname, "interval")], opts)
    paths = section("paths")
    return Config(
        web=section("web"),
        logging=section("logging"),
        limits=section("limits"),
        paths=Paths(procfs=paths["procfs"], sysfs=paths["sysfs"], rootfs=paths["rootfs"]),
        collectors=collectors,
        source=source,
    )


def flag_name(option_key: str) -> str:
    """``mount_points_exclude`` -> ``mount-points-exclude`` (flag spelling)."""
    return option_key.replace("_", "-")
