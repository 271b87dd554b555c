"""Property-based tests of configuration loading: random and mutated configs,
environment overrides with bad values, and the real agent refusing them.

The promise: never a traceback; an invalid configuration is refused with the
key path of every problem (exit 2) and nothing starts; a valid one is taken
(exit 0)."""

from __future__ import annotations

import os
import re
import sys
import tempfile
from typing import Any, Dict, Iterator, List, Optional, Set, Tuple

import pytest
import yaml
from faultagent import run_refused
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support import REPO, free_port

from hostagent import config as cfgmod
from hostagent.collectors import load_all
from hostagent.collectors.base import Option

REGISTRY = load_all()
SCHEMA = cfgmod.schema(REGISTRY)
AGENT = [sys.executable, str(REPO / "run_agent.py")]
FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

Path_ = Tuple[str, ...]


def leaves(tree: Dict[str, Any] = SCHEMA, path: Path_ = ()) -> Iterator[Tuple[Path_, Option]]:
    for key, node in tree.items():
        if isinstance(node, Option):
            yield path + (key,), node
        else:
            yield from leaves(node, path + (key,))


LEAVES = dict(leaves())
MAPPINGS: List[Path_] = [()] + [("collectors",)] + [(s,) for s in SCHEMA if s != "collectors"] + [("collectors", c) for c in SCHEMA["collectors"]]


def full_config() -> Dict[str, Any]:
    """Every setting spelled out with its default: a valid config to mutate."""
    out: Dict[str, Any] = {}
    for path, opt in LEAVES.items():
        node = out
        for key in path[:-1]:
            node = node.setdefault(key, {})
        node[path[-1]] = opt.default
    return out


def node_at(doc: Dict[str, Any], path: Path_) -> Any:
    for key in path:
        doc = doc[key]
    return doc


def load_text(text: str, environ: Optional[Dict[str, str]] = None) -> cfgmod.Config:
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as f:
        f.write(text)
    try:
        return cfgmod.load(f.name, REGISTRY, environ or {}, [])
    finally:
        os.unlink(f.name)


PATH_OF_PROBLEM = re.compile(r"^([A-Za-z0-9_.\-]+)(?: \(from [^)]*\))?: ")


def problem_paths(error: cfgmod.ConfigError) -> Set[str]:
    """The key path each problem starts with; fails on a problem without one."""
    out = set()
    for problem in error.problems:
        m = PATH_OF_PROBLEM.match(problem)
        assert m, f"problem without a key path: {problem!r}"
        out.add(m.group(1))
    return out


# --------------------------------------------------------------------------
# Strategies

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    # Past what a float holds: refused with the key path, never an OverflowError.
    st.integers(min_value=300, max_value=1200).flatmap(lambda digits: st.sampled_from([10**digits - 1, -(10**digits)])),
    st.floats(),
    st.text(max_size=12),
    st.sampled_from(["", "15", "0", "-1", "true", ":9100", "127.0.0.1:0", "[::1]:9100", "/", "/nonexistent", "(", ".*", "debug", "stop"]),
)
containers = st.one_of(st.lists(scalars, max_size=3), st.dictionaries(st.text(max_size=5), scalars, max_size=2))
new_keys = st.text(alphabet="abcdefghijklmnopqrstuvwxyz_", min_size=1, max_size=12)
# The settings that take a list (of group matchers, of group names).
LIST_SETTINGS = {"collectors.processes.groups", "collectors.processes.pinned_groups"}


@st.composite
def mutated_configs(draw) -> Tuple[Dict[str, Any], Set[str], Set[str]]:
    """(config, paths that must be reported, paths that may be reported)."""
    doc = full_config()
    must: Set[str] = set()
    may: Set[str] = set()
    paths = draw(st.lists(st.sampled_from(sorted(LEAVES)), unique=True, max_size=4))
    for path in paths:
        parent, key = node_at(doc, path[:-1]), path[-1]
        action = draw(st.sampled_from(["scalar", "container", "delete", "default"]))
        if action == "scalar":
            parent[key] = draw(scalars)
            may.add(".".join(path))
        elif action == "container":
            parent[key] = draw(containers)  # no other setting takes a list or a mapping
            (may if ".".join(path) in LIST_SETTINGS else must).add(".".join(path))
        elif action == "delete":
            del parent[key]  # falls back to the default
        # "default": left as is, spelled out
    for parent_path in draw(st.lists(st.sampled_from(MAPPINGS), unique=True, max_size=2)):
        parent = node_at(doc, parent_path)
        key = draw(new_keys.filter(lambda k, p=parent: k not in p))
        parent[key] = draw(scalars)
        must.add(".".join(parent_path + (key,)))
    if draw(st.booleans()):
        section = draw(st.sampled_from(MAPPINGS[1:]))
        value = draw(st.one_of(st.integers(), st.text(min_size=1, max_size=5), st.lists(scalars, min_size=1, max_size=2)))
        parent = node_at(doc, section[:-1])
        parent[section[-1]] = value
        dotted = ".".join(section)
        # Whatever was mutated below the replaced section is gone with it.
        must = {p for p in must if not p.startswith(dotted + ".")} | {dotted}
        may = {p for p in may if not p.startswith(dotted + ".")}
    return doc, must, may


def resolved(config: cfgmod.Config, path: Path_) -> Any:
    if path[0] == "collectors":
        cc = config.collectors[path[1]]
        return getattr(cc, path[2]) if path[2] in cfgmod.COLLECTOR_COMMON else cc.options[path[2]]
    if path[0] == "paths":
        return getattr(config.paths, path[1])
    return getattr(config, path[0])[path[1]]


def taken_as_given(value: Any, got: Any) -> bool:
    """Equal, or normalised: "" and null mean "none", whole seconds become floats."""
    if got == value:
        return True
    if value in ("", None):
        return got is None
    return isinstance(value, int) and not isinstance(value, bool) and got == float(value)


# --------------------------------------------------------------------------
# In process: many examples


@FAST
@given(mutated_configs())
def test_mutated_config_is_taken_or_refused_with_every_key_path(case):
    doc, must, may = case
    try:
        config = load_text(yaml.safe_dump(doc))
    except cfgmod.ConfigError as exc:
        reported = problem_paths(exc)
        assert must <= reported, f"not reported: {must - reported}\n{exc}"
        assert reported <= must | may, f"reported but not mutated: {reported - must - may}\n{exc}"
        assert len(exc.problems) >= len(must)
    else:
        assert not must, f"accepted a config with problems at {must}"
        for dotted in may:
            path = tuple(dotted.split("."))
            value = node_at(doc, path)
            got = resolved(config, path)
            assert taken_as_given(value, got), (dotted, value, got)


documents = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.one_of(st.text(max_size=8), st.integers(), st.sampled_from(list(SCHEMA))), children, max_size=4),
    max_leaves=12,
)


@FAST
@given(st.one_of(documents.map(yaml.safe_dump), st.text(max_size=200)))
def test_random_documents_never_crash_the_loader(text):
    try:
        load_text(text)
    except cfgmod.ConfigError as exc:
        for problem in exc.problems:
            assert problem.startswith(("config file ", "top level: ")) or PATH_OF_PROBLEM.match(problem) or ": keys must be strings" in problem or ": unknown key" in problem, problem


@FAST
@given(st.binary(max_size=64))
def test_unreadable_bytes_are_a_config_file_problem(data):
    with tempfile.NamedTemporaryFile("wb", suffix=".yaml", delete=False) as f:
        f.write(data)
    try:
        cfgmod.load(f.name, REGISTRY, {}, [])
    except cfgmod.ConfigError as exc:
        assert all(PATH_OF_PROBLEM.match(p) or p.startswith(("config file ", "top level: ")) or ": " in p for p in exc.problems)
    finally:
        os.unlink(f.name)


ENV_NAMES = sorted(f"HOSTAGENT_{'_'.join(p).upper()}" if p[0] != "collectors" else f"HOSTAGENT_COLLECTOR_{p[1]}_{p[2]}".upper() for p in LEAVES)
env_values = st.one_of(st.text(alphabet=st.characters(blacklist_categories=["Cs"], blacklist_characters="\x00"), max_size=12), st.sampled_from(["[1, 2]", "{a: 1}", "-5", "0", "1e999", "yes", "null", ".nan"]))


@FAST
@given(st.dictionaries(st.one_of(st.sampled_from(ENV_NAMES), new_keys.map(lambda k: "HOSTAGENT_" + k.upper())), env_values, min_size=1, max_size=3))
def test_environment_overrides_with_bad_values_are_reported_like_yaml(environ):
    try:
        load_text("{}\n", environ)
    except cfgmod.ConfigError as exc:
        for problem in exc.problems:
            var = re.search(r"environment variable (HOSTAGENT_\w+)", problem)
            assert var and var.group(1) in environ, f"problem does not name its variable: {problem}"
            if var.group(1) in ENV_NAMES:
                assert PATH_OF_PROBLEM.match(problem), f"problem without a key path: {problem}"


def test_environment_problem_reads_like_a_yaml_problem(tmp_path):
    with pytest.raises(cfgmod.ConfigError) as from_env:
        load_text("{}\n", {"HOSTAGENT_WEB_MAX_REQUESTS": "lots"})
    with pytest.raises(cfgmod.ConfigError) as from_yaml:
        load_text("web:\n  max_requests: lots\n")
    assert from_env.value.problems == ["web.max_requests (from environment variable HOSTAGENT_WEB_MAX_REQUESTS): must be a whole number, got 'lots'"]
    assert from_yaml.value.problems == ["web.max_requests: must be a whole number, got 'lots'"]


# --------------------------------------------------------------------------
# The real agent: a handful of examples


def agent_argv(tmp_dir: str, text: str, *extra: str) -> List[str]:
    path = os.path.join(tmp_dir, "agent.yaml")
    with open(path, "w") as f:
        f.write(text)
    if "--check-config" in extra:
        # Nothing listens, and a listen flag would hide a bad listen_address
        # in the file from the comparison with the loader.
        return [*AGENT, "--config", path, *extra]
    return [*AGENT, "--config", path, f"--web.listen-address=127.0.0.1:{free_port()}", *extra]


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_configs())
def test_agent_check_config_agrees_with_the_loader(case):
    doc, must, _ = case
    text = yaml.safe_dump(doc)
    try:
        load_text(text)
        expected: Optional[cfgmod.ConfigError] = None
    except cfgmod.ConfigError as exc:
        expected = exc
    with tempfile.TemporaryDirectory() as tmp:
        code, out, err = run_refused(agent_argv(tmp, text, "--check-config"))
    assert "Traceback" not in err + out
    if expected is None:
        assert code == 0 and "configuration OK" in out, err
    else:
        assert code == 2, out
        for problem in expected.problems:
            assert problem[: cfgmod.MAX_PROBLEM_CHARS // 2] in err  # a long line is cut


INVALID = [
    ("web:\n  listen_adress: ':9100'\n", [], {}, "web.listen_adress: unknown key (did you mean 'listen_address'?)"),
    ("web: [1\n", [], {}, "not valid YAML at line"),
    ("collectors:\n  cpu:\n    interval: -1\n", [], {}, "collectors.cpu.interval: must be greater than 0, got -1"),
    ("{}\n", ["--web.max-requests=lots"], {}, "web.max_requests (from flag --web.max-requests): must be a whole number"),
    ("{}\n", [], {"HOSTAGENT_COLLECTOR_PROCESSES_TOP_N": "-1"}, "collectors.processes.top_n (from environment variable HOSTAGENT_COLLECTOR_PROCESSES_TOP_N)"),
    ("logging:\n  level: loud\npaths:\n  procfs: /nonexistent\n", [], {}, "(2 problems)"),
]


@pytest.mark.parametrize("text, flags, env, message", INVALID)
def test_agent_refuses_invalid_config_before_binding(tmp_path, monkeypatch, text, flags, env, message):
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    code, out, err = run_refused(agent_argv(str(tmp_path), text, *flags))
    assert code == 2, out + err
    assert message in err
    assert "Traceback" not in err + out


@pytest.mark.parametrize("setting", ["collectors.cpu.interval: .inf", "collectors.cpu.interval: 1.0e+12", "collectors.filesystem.statvfs_timeout: .inf"])
def test_numbers_the_agent_cannot_wait_for_are_refused(tmp_path, setting):
    dotted, value = setting.split(": ")
    section, name, key = dotted.split(".")
    code, out, err = run_refused(agent_argv(str(tmp_path), f"{section}:\n  {name}:\n    {key}: {value}\n", "--check-config"))
    assert code == 2 and dotted in err, out + err


# --------------------------------------------------------------------------
# Repeated keys: named with their line and key path


def key_paths_by_line(text: str) -> List[str]:
    """The dotted key path each line of a block-style YAML mapping sets."""
    stack: List[Tuple[int, str]] = []
    out = []
    for line in text.splitlines():
        indent = len(line) - len(line.lstrip(" "))
        key = line.strip().split(":", 1)[0]
        while stack and stack[-1][0] >= indent:
            stack.pop()
        stack.append((indent, key))
        out.append(".".join(k for _, k in stack))
    return out


@FAST
@given(st.data())
def test_any_repeated_key_is_named_with_both_lines(data):
    text = yaml.safe_dump(full_config(), default_flow_style=False, sort_keys=False, width=10000)
    lines = text.splitlines()
    paths = key_paths_by_line(text)
    leaf_lines = [i for i, line in enumerate(lines) if not line.endswith(":")]
    repeated = set(data.draw(st.lists(st.sampled_from(leaf_lines), max_size=3, unique=True)))
    section = data.draw(st.one_of(st.none(), st.sampled_from([i for i, line in enumerate(lines) if not line.startswith(" ")])))
    out: List[str] = []
    expected = []
    for i, line in enumerate(lines):
        out.append(line)
        if i in repeated:  # a setting given again just below itself
            out.append(line)
            expected.append(f"line {len(out)}: duplicate key {paths[i]} (first at line {len(out) - 1})")
    if section is not None:  # a whole section given again at the end, empty
        out.append(lines[section].rstrip(":") + ": {}")
        first = out.index(lines[section]) + 1
        expected.append(f"line {len(out)}: duplicate key {paths[section]} (first at line {first})")
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as f:
        f.write("\n".join(out) + "\n")
    try:
        if not expected:
            assert load_text("\n".join(out))
            return
        with pytest.raises(cfgmod.ConfigError) as info:
            cfgmod.load(f.name, REGISTRY, {}, [])
    finally:
        os.unlink(f.name)
    assert info.value.problems == [f"config file {f.name}: {problem}; a key may appear only once" for problem in expected]


# --------------------------------------------------------------------------
# Flags: any text for any setting is taken or refused by the flag's name

FLAGS = cfgmod.flags(REGISTRY)


@FAST
@given(st.lists(st.tuples(st.sampled_from(FLAGS), env_values | st.integers(min_value=10**300, max_value=10**400).map(str)), min_size=1, max_size=4))
def test_flags_with_any_text_are_taken_or_refused_by_name(given_flags):
    from hostagent import cli

    argv = []
    for flag, text in given_flags:
        argv.append(f"{flag.names[-1]}={text}" if not flag.switch or text in ("true", "false") else flag.negation)
    overrides = cli.flag_overrides(cli.build_parser(REGISTRY).parse_args(argv))
    try:
        load_text("{}\n", {}) if not overrides else cfgmod.load(None, REGISTRY, {}, overrides)
    except cfgmod.ConfigError as exc:
        assert str(exc).startswith("invalid configuration from flags ("), str(exc)
        for problem in exc.problems:
            m = re.match(r"^([a-z0-9_.]+) \(from flag (--[a-z0-9.-]+)\): ", problem)
            assert m, problem
            assert any(m.group(2) in f.names + (f.negation,) and ".".join(f.path) == m.group(1) for f, _ in given_flags), problem
