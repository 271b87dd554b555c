"""Agent configuration: defaults < YAML file < HOSTAGENT_* environment < flags.

Everything is validated before anything starts, and every problem is reported
at once with its key path, the value and (for environment overrides) the
variable it came from.
"""

from __future__ import annotations

import difflib
import ipaddress
import os
import re
import stat
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Mapping, MutableMapping, Optional, Sequence, Set, Tuple, Type

import yaml

from .collectors.base import BaseCollector, Option, OptionError, Paths
from .project import checkout
from .wording import counted

# Used when neither --config nor HOSTAGENT_CONFIG names a file: the checkout's
# own config/agent.yaml when running from a checkout (never a path beside an
# installed package), then the system-wide one.
DEFAULT_CONFIGS = tuple(str(root / "config" / "agent.yaml") for root in (checkout(),) if root) + ("/etc/hostagent/agent.yaml",)


def default_configs_text() -> str:
    """The default config files in words, for --help."""
    if len(DEFAULT_CONFIGS) == 1:
        return f"{DEFAULT_CONFIGS[0]} if it exists"
    return f"the first of {', '.join(DEFAULT_CONFIGS[:-1])} and {DEFAULT_CONFIGS[-1]} that exists"


def default_config_path() -> Optional[str]:
    """The first default config file that exists, or None for built-in defaults."""
    return next((path for path in DEFAULT_CONFIGS if os.path.isfile(path)), None)
MiB = 1024 * 1024
ENV_PREFIX = "HOSTAGENT_"
# HOSTAGENT_* variables the project defines that are not agent settings: the
# config file's path, the client tools' defaults (hostagent alerts/silence,
# top/report/export) and the compose file's external host name. They are
# often exported in the same shell or .env file as the agent's settings, so
# the agent must not refuse to start over them.
ENV_NOT_SETTINGS = frozenset(
    {
        "HOSTAGENT_CONFIG",  # the config file (the agent, healthcheck, top)
        "HOSTAGENT_ALERTMANAGER_URL",  # hostagent alerts / silence
        "HOSTAGENT_PROMETHEUS_URL",  # hostagent report / export / top
        "HOSTAGENT_PASSWORD",  # the client tools' basic auth password
        "HOSTAGENT_EXTERNAL_HOST",  # docker-compose.yml: the monitoring host's name
    }
)


class ConfigError(Exception):
    """The configuration is not usable; ``problems`` lists every reason."""

    def __init__(self, problems: Sequence[str], source: str = "", partial: Optional[Mapping[Tuple[str, ...], Any]] = None, where: Optional[str] = None):
        self.problems = list(problems)
        self.source = source
        # The options that did check out, by key path: enough to go on and
        # check files they name (the web config) in the same run.
        self.partial: Mapping[Tuple[str, ...], Any] = dict(partial or {})
        # Where the problems come from, for the header: "in FILE" unless told.
        where = (f" {where}" if where else "") if where is not None else (f" in {source}" if source else "")
        lines = [f"invalid configuration{where} ({counted(len(self.problems), 'problem')}):"]
        lines += [f"  - {_clipped(p)}" for p in self.problems]
        super().__init__("\n".join(lines))


MAX_PROBLEM_CHARS = 300


def _clipped(problem: str) -> str:
    """A problem line of sensible length: a 5000-character value is cut."""
    if len(problem) <= MAX_PROBLEM_CHARS:
        return problem
    return f"{problem[:MAX_PROBLEM_CHARS - 60]}... (cut: {len(problem)} characters in all)"


def _check_listen_address(value: Any) -> Any:
    parse_listen_address(value)
    return value


_HOST_LABEL = re.compile(r"(?!-)[A-Za-z0-9_-]{1,63}(?<!-)")  # RFC 1123, plus '_' as container names have
_DIGITS = re.compile(r"[0-9]+")


def _host_problem(host: str) -> Optional[str]:
    """Why ``host`` is not an IPv4 address or a host name, or None. Names are
    checked for form only: whether one resolves is found when binding."""
    labels = (host[:-1] if host.endswith(".") else host).split(".")
    if all(_DIGITS.fullmatch(label) for label in labels):
        try:
            ipaddress.IPv4Address(host)
        except ValueError:
            return "is not an IPv4 address (four numbers from 0 to 255, e.g. 127.0.0.1)"
        return None
    if len(host) > 253 or not all(_HOST_LABEL.fullmatch(label) for label in labels) or _DIGITS.fullmatch(labels[-1]):
        return "is not a host name (letters, digits and '-' in dot-separated parts) or an IP address"
    return None


def parse_listen_address(value: Any) -> Tuple[Optional[str], int]:
    """Split ``host:port`` (``:9100``, ``[::1]:9100``) into (host or None, port)."""
    if not isinstance(value, str) or ":" not in value:
        raise OptionError(f"must be host:port (e.g. :9100 or 127.0.0.1:9100), got {value!r}")
    host, _, port_text = value.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise OptionError(f"[{host}] is not an IPv6 address, in {value!r}") from None
    elif ":" in host:
        raise OptionError(f"IPv6 addresses need brackets, e.g. [::1]:9100, got {value!r}")
    elif host:
        problem = _host_problem(host)
        if problem:
            raise OptionError(f"host {host!r} {problem}")
    if not _DIGITS.fullmatch(port_text) or len(port_text) > 5 or not 1 <= int(port_text) <= 65535:
        raise OptionError(f"port must be a number from 1 to 65535, got {value!r}")
    return (host or None), int(port_text)


def _check_optional_file(value: Any) -> Any:
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise OptionError(f"must be a file path, got {value!r}")
    if not os.path.exists(value):
        raise OptionError(f"file does not exist: {value!r}")
    if not os.path.isfile(value):
        raise OptionError(f"not a regular file: {value!r}")
    if not os.access(value, os.R_OK):
        raise OptionError(f"file is not readable: {value!r}")
    return value


def _check_directory(value: Any) -> Any:
    if not isinstance(value, str) or not value:
        raise OptionError(f"must be a directory path, got {value!r}")
    if not os.path.isdir(value):
        raise OptionError(f"directory does not exist: {value!r}")
    return value


def _check_mounted(kind: str, marker: str, is_dir: bool) -> Callable[[Any], Any]:
    """A check that the directory holds what every ``kind`` does: a wrong
    mount point (say /host instead of /host/proc) is caught here rather than
    as every collector failing."""

    def check(value: Any) -> Any:
        _check_directory(value)
        found = (os.path.isdir if is_dir else os.path.isfile)(os.path.join(value, marker))
        if not found:
            raise OptionError(f"not a {kind} (no '{marker}' {'directory' if is_dir else 'file'} in it): {value!r}")
        return value

    return check


_check_procfs = _check_mounted("procfs", "stat", is_dir=False)
_check_sysfs = _check_mounted("sysfs", "class", is_dir=True)


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
        "level": Option.choice(
            "info",
            "Log level: debug adds the settings in effect, the web config, each collector run (duration, series) and each HTTP request answered with an error (with the reason); repeats are capped per minute.",
            ("debug", "info", "warning", "error"),
        ),
        "format": Option.choice("text", "Log format: text lines, or json (one object per line: ts, level, logger, msg).", ("text", "json")),
    },
    "limits": {
        "enabled": Option.boolean(True, "Check the agent's own CPU and memory use against the limits below."),
        "check_interval": Option.seconds(60.0, "Seconds between self-checks."),
        "max_cpu_percent": Option.number(5.0, "CPU limit in percent of one core, averaged over check_interval."),
        "max_rss_bytes": Option.integer(100 * MiB, "Resident memory limit in bytes.", 1, 2**50),
        "action": Option.choice("log", "What to do over a limit: log, disable_collectors (most expensive first) or stop (exit with status 3).", ("log", "disable_collectors", "stop")),
    },
    "paths": {
        "procfs": Option("/proc", "Where the host's /proc is mounted (a container sees the host's at e.g. /host/proc).", _check_procfs),
        "sysfs": Option("/sys", "Where the host's /sys is mounted.", _check_sysfs),
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
    # Why it is off though not switched off (nothing_to_do), else "".
    idle: str = ""

    @property
    def off_because(self) -> str:
        """How the landing page shows a collector that is off."""
        return f"disabled: {self.idle}" if self.idle else "disabled by config"


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
        value = yaml.load(text, Loader=_StrictLoader)
    except (yaml.YAMLError, RecursionError):
        return text
    return value if isinstance(value, (str, int, float, bool)) or value is None else text


def parse_text(text: str, option: Option) -> Any:
    """A value given as text (environment, flag) for ``option``: read as a
    YAML scalar, or taken as the text itself when only that is acceptable
    (a directory named ``123``, a regex ``true``)."""
    value = _parse_scalar(text)
    if value == text:
        # A YAML list or mapping ("[sshd, chronyd]") for an option that takes
        # one; anything else stays text (a regex such as "[a-z]+" included).
        try:
            structured = yaml.load(text, Loader=_StrictLoader)
        except (yaml.YAMLError, RecursionError):
            return value
        if isinstance(structured, (list, dict)):
            try:
                option.check(structured)
            except OptionError:
                return value
            return structured
        return value
    try:
        option.check(value)
    except OptionError:
        try:
            option.check(text)
        except OptionError:
            # Refused either way: a number is reported as read, the rest as typed.
            return value if isinstance(value, (int, float)) else text
        return text
    return value


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
        overrides.append((path, parse_text(environ[var], option_at(tree, path)), f"environment variable {var}"))
    return overrides, problems


# --------------------------------------------------------------------------
# Loading


MAX_YAML_BYTES = MiB  # configuration files are a few KiB; anything near this is a mistake


class ConfigFileError(Exception):
    """A configuration file cannot be taken; ``problems`` says why, one line
    each. ``unreadable`` is true when the file could not be read at all."""

    def __init__(self, problems: Sequence[str], unreadable: bool = False):
        self.problems = list(problems)
        self.unreadable = unreadable
        super().__init__("; ".join(self.problems))


_NOT_REGULAR = (
    (stat.S_ISDIR, "is a directory"),
    (stat.S_ISFIFO, "is a FIFO, not a regular file"),
    (stat.S_ISCHR, "is a character device, not a regular file"),
    (stat.S_ISBLK, "is a block device, not a regular file"),
    (stat.S_ISSOCK, "is a socket, not a regular file"),
)


def read_regular_file(path: str, limit: int) -> bytes:
    """The bytes of a regular file of at most ``limit`` bytes.

    Opened without blocking, so a FIFO is refused instead of waiting for a
    writer, and read no further than the limit, so /dev/zero cannot fill
    memory."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise ConfigFileError(["does not exist"], True) from None
    except IsADirectoryError:
        raise ConfigFileError(["is a directory"], True) from None
    except PermissionError:
        raise ConfigFileError(["permission denied"], True) from None
    except OSError as exc:
        raise ConfigFileError([f"cannot be read ({exc.strerror or exc})"], True) from None
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise ConfigFileError([next((why for test, why in _NOT_REGULAR if test(mode)), "is not a regular file")], True)
        chunks: List[bytes] = []
        size = 0
        while size <= limit:
            chunk = os.read(fd, limit + 1 - size)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    except OSError as exc:
        raise ConfigFileError([f"cannot be read ({exc.strerror or exc})"], True) from None
    finally:
        os.close(fd)
    if size > limit:
        size_text = f"{limit / MiB:g} MiB" if limit >= MiB else f"{limit} bytes"
        raise ConfigFileError([f"is larger than {size_text}, more than any file of settings needs"], True)
    return b"".join(chunks)


_BaseLoader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_MERGE_TAG = "tag:yaml.org,2002:merge"


class _StrictLoader(_BaseLoader):  # type: ignore[misc, valid-type]
    """Safe YAML that notes every repeated mapping key, and turns values
    Python cannot hold (a 5000-digit number, 2001-13-40) into YAML errors."""

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        try:
            return super().construct_object(node, deep)
        except (ValueError, OverflowError) as exc:
            what = "number is too long" if node.tag.endswith(":int") else f"value cannot be taken ({exc})"
            raise yaml.constructor.ConstructorError(None, None, what, node.start_mark) from None

    def duplicate_keys(self, root: Optional[yaml.Node]) -> List[str]:
        """'line N: duplicate key a.b (first at line M)' for every repeat."""
        found: List[Tuple[int, str]] = []
        seen_nodes: Set[int] = set()  # aliases reach one node many times: walk it once
        todo: List[Tuple[Any, Tuple[str, ...]]] = [(root, ())]
        while todo:
            node, path = todo.pop()
            if node is None or id(node) in seen_nodes:
                continue
            seen_nodes.add(id(node))
            if isinstance(node, yaml.SequenceNode):
                todo += reversed([(item, path + (f"[{i}]",)) for i, item in enumerate(node.value)])
            elif isinstance(node, yaml.MappingNode):
                first: Dict[Any, yaml.Node] = {}
                children = []
                for key_node, value_node in node.value:
                    if key_node.tag == _MERGE_TAG:
                        children.append((value_node, path))  # merged in: may repeat keys by design
                        continue
                    if not isinstance(key_node, yaml.ScalarNode):
                        continue
                    key = self.construct_object(key_node)
                    sub = path + (f".{key}",)
                    earlier = first.setdefault(key, key_node)
                    if earlier is not key_node:
                        line = key_node.start_mark.line + 1
                        found.append((line, f"line {line}: duplicate key {''.join(sub).lstrip('.')} (first at line {earlier.start_mark.line + 1}); a key may appear only once"))
                    children.append((value_node, sub))
                # Children in document order, so a node is named where its anchor is.
                todo += reversed(children)
        return [problem for _, problem in sorted(found)]


def load_yaml_file(path: str, limit: int = MAX_YAML_BYTES) -> Any:
    """The parsed YAML of a regular file of bounded size, with no repeated
    keys; raise ConfigFileError saying why not."""
    data = read_regular_file(path, limit)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigFileError([f"is not UTF-8 text (byte {exc.start})"]) from None
    loader = _StrictLoader(text)
    try:
        root = loader.get_single_node()
        duplicates = loader.duplicate_keys(root)
        if duplicates:
            raise ConfigFileError(duplicates)
        return loader.construct_document(root) if root is not None else None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigFileError([f"not valid YAML{where}: {problem}"]) from None
    except RecursionError:
        raise ConfigFileError(["not valid YAML: nested too deeply"]) from None
    finally:
        loader.dispose()


def read_yaml(path: str) -> Tuple[Any, List[str]]:
    """The parsed file, or problems saying why it cannot be taken. Every YAML
    file the agent reads comes through here (see load_yaml_file)."""
    try:
        return load_yaml_file(path), []
    except ConfigFileError as exc:
        return None, [f"config file {path}: {problem}" for problem in exc.problems]


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


# Problem origins ("flag --x", "environment variable X") as the header says them.
_ORIGINS = {"environment": "from the environment", "flag": "from flags"}


def _blame_order(where: str) -> int:
    """The file first, then the environment, then flags."""
    return (where == _ORIGINS["environment"]) + 2 * (where == _ORIGINS["flag"])


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
    blamed: Set[str] = set()  # where the problems come from: the file, the environment, flags
    values: Dict[Tuple[str, ...], Tuple[Any, str]] = {}
    source = path or "(defaults)"
    if path:
        data, read_problems = read_yaml(path)
        problems += read_problems
        if not read_problems:
            _merge_tree(data, tree, (), values, problems, "")
        if problems:
            blamed.add(f"in {path}")
    env, env_problems = env_overrides(environ, registry)
    problems += env_problems
    if env_problems:
        blamed.add(_ORIGINS["environment"])
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
                        blamed.add(_ORIGINS.get(origin.split(" ", 1)[0], f"in {path}"))
                else:
                    resolved[p] = sub.default
            else:
                walk(sub, p)

    walk(tree, ())
    if problems:
        raise ConfigError(problems, source, resolved, " and ".join(sorted(blamed, key=_blame_order)))

    def section(name: str) -> Dict[str, Any]:
        return {key: resolved[(name, key)] for key in tree[name]}

    collectors = {}
    for cname, copts in tree["collectors"].items():
        opts = {key: resolved[("collectors", cname, key)] for key in copts if key not in COLLECTOR_COMMON}
        idle = (registry[cname].nothing_to_do(opts) or "") if resolved[("collectors", cname, "enabled")] else ""
        enabled = resolved[("collectors", cname, "enabled")] and not idle
        collectors[cname] = CollectorConfig(cname, enabled, resolved[("collectors", cname, "interval")], opts, idle)
    paths = section("paths")
    return Config(
        web=section("web"),
        logging=section("logging"),
        limits=section("limits"),
        paths=Paths(procfs=paths["procfs"], sysfs=paths["sysfs"], rootfs=paths["rootfs"]),
        collectors=collectors,
        source=source,
    )


def option_at(tree: Mapping[str, Any], path: Sequence[str]) -> Option:
    """The Option at a key path of the schema."""
    node: Any = tree
    for key in path:
        node = node[key]
    return node


# --------------------------------------------------------------------------
# Command-line flags, derived from the schema: one per setting.

# Flag prefix per section where node_exporter's spelling differs from the
# section's name (--log.level, --path.procfs); other sections use their name.
FLAG_PREFIX = {"logging": "log", "paths": "path"}
# Spellings kept besides the derived one: node_exporter's --web.config.file.
FLAG_ALIASES: Dict[Tuple[str, ...], Tuple[str, ...]] = {("web", "config_file"): ("--web.config.file",)}


def flag_name(option_key: str) -> str:
    """``mount_points_exclude`` -> ``mount-points-exclude`` (flag spelling)."""
    return option_key.replace("_", "-")


@dataclass(frozen=True)
class Flag:
    """The command-line flag of one setting.

    ``names[0]`` is the spelling --help shows first. A true/false setting is
    a switch: ``--NAME`` (or ``--NAME=false``) and ``--no-NAME``."""

    names: Tuple[str, ...]
    path: Tuple[str, ...]
    option: Option

    @property
    def switch(self) -> bool:
        return isinstance(self.option.default, bool)

    @property
    def negation(self) -> str:
        return "--no-" + self.names[0][2:]


def flags(registry: Mapping[str, Type[BaseCollector]]) -> List[Flag]:
    """Every setting's flag: --SECTION.KEY for the sections, and for each
    collector --collector.NAME (on/off) and --collector.NAME.OPTION."""
    out: List[Flag] = []
    tree = schema(registry)
    for section, opts in tree.items():
        if section == "collectors":
            for cname, copts in opts.items():
                for key, opt in copts.items():
                    name = f"--collector.{cname}" if key == "enabled" else f"--collector.{cname}.{flag_name(key)}"
                    out.append(Flag((name,), ("collectors", cname, key), opt))
            continue
        for key, opt in opts.items():
            derived = f"--{FLAG_PREFIX.get(section, section)}.{flag_name(key)}"
            out.append(Flag(FLAG_ALIASES.get((section, key), ()) + (derived,), (section, key), opt))
    return out
