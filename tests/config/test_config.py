"""Configuration: layering, and every validation rule with its key path."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from support import REPO

from hostagent import config as cfgmod
from hostagent.collectors import load_all

REGISTRY = load_all()


def load(tmp_path: Path, text: str, env=None, flags=()):
    path = tmp_path / "agent.yaml"
    path.write_text(text)
    return cfgmod.load(str(path), REGISTRY, env or {}, flags)


def problems(tmp_path: Path, text: str, env=None, flags=()):
    with pytest.raises(cfgmod.ConfigError) as info:
        load(tmp_path, text, env, flags)
    return info.value.problems


def test_defaults_when_file_is_empty(tmp_path):
    cfg = load(tmp_path, "")
    assert cfg.web["listen_address"] == ":9100"
    assert cfg.web["max_requests"] == 40
    assert cfg.logging == {"level": "info", "format": "text"}
    assert cfg.limits["action"] == "log"
    assert cfg.paths.procfs == "/proc"
    assert set(cfg.collectors) == set(REGISTRY)
    assert cfg.collectors["processes"].options["top_n"] == 0
    assert all(c.interval == REGISTRY[c.name].default_interval for c in cfg.collectors.values())


def test_yaml_values_are_applied(tmp_path):
    cfg = load(tmp_path, "web: {listen_address: '127.0.0.1:9200'}\ncollectors:\n  cpu: {interval: 2.5}\n  processes: {enabled: false, top_n: 7}\n")
    assert cfg.web["listen_address"] == "127.0.0.1:9200"
    assert cfg.collectors["cpu"].interval == 2.5
    assert cfg.collectors["processes"].enabled is False
    assert cfg.collectors["processes"].options["top_n"] == 7
    assert "processes" not in [c.name for c in cfg.enabled_collectors()]


def test_precedence_flags_over_env_over_yaml(tmp_path):
    text = "logging: {level: warning}\ncollectors: {cpu: {interval: 30}, memory: {interval: 30}}\n"
    env = {"HOSTAGENT_LOG_LEVEL": "error", "HOSTAGENT_COLLECTOR_CPU_INTERVAL": "7"}
    flags = [(("logging", "level"), "debug", "flag --log.level")]
    cfg = load(tmp_path, text, env, flags)
    assert cfg.logging["level"] == "debug"  # flag beats env and yaml
    assert cfg.collectors["cpu"].interval == 7.0  # env beats yaml
    assert cfg.collectors["memory"].interval == 30.0  # yaml beats default


def test_env_overrides_cover_every_section(tmp_path):
    env = {
        "HOSTAGENT_WEB_LISTEN_ADDRESS": "[::1]:9300",
        "HOSTAGENT_LOGGING_FORMAT": "json",
        "HOSTAGENT_LIMITS_ACTION": "stop",
        "HOSTAGENT_PATHS_PROCFS": "/proc",
        "HOSTAGENT_COLLECTOR_PROCESSES_ENABLED": "false",
        "HOSTAGENT_COLLECTORS_PROCESSES_TOP_N": "3",
        "HOSTAGENT_CONFIG": "ignored: names the file, not a setting",
        "HOSTAGENT_ALERTMANAGER_URL": "http://elsewhere:9093",
    }
    cfg = load(tmp_path, "", env)
    assert cfg.web["listen_address"] == "[::1]:9300"
    assert cfg.logging["format"] == "json"
    assert cfg.limits["action"] == "stop"
    assert cfg.collectors["processes"].enabled is False
    assert cfg.collectors["processes"].options["top_n"] == 3


def test_unknown_keys_with_did_you_mean(tmp_path):
    found = problems(tmp_path, "collectors:\n  cpu: {intervall: 5}\n  procesess: {}\nweb: {listen_adress: ':1'}\nloging: {}\n")
    assert "collectors.cpu.intervall: unknown key (did you mean 'interval'?)" in found
    assert "collectors.procesess: unknown key (did you mean 'processes'?)" in found
    assert "web.listen_adress: unknown key (did you mean 'listen_address'?)" in found
    assert "loging: unknown key (did you mean 'logging'?)" in found


@pytest.mark.parametrize(
    "address, fragment",
    [
        (":0", "port must be a number from 1 to 65535"),
        (":65536", "port must be a number from 1 to 65535"),
        ("localhost", "must be host:port"),
        ("::1:9100", "IPv6 addresses need brackets"),
        (9100, "must be host:port"),
        ("1.2.3.4.5:80", "host '1.2.3.4.5' is not an IPv4 address"),
        ("256.0.0.1:80", "host '256.0.0.1' is not an IPv4 address"),
        ("[zz::1::2]:80", "[zz::1::2] is not an IPv6 address"),
        ("[127.0.0.1]:80", "[127.0.0.1] is not an IPv6 address"),
        ("bad_host-.example:80", "is not a host name"),
        ("exa mple.com:80", "is not a host name"),
        ("host..example:80", "is not a host name"),
        ("host.123:80", "is not a host name"),
        ("x" * 64 + ".example:80", "is not a host name"),
        (":\u00b2", "port must be a number from 1 to 65535"),
        (":" + "9" * 5000, "port must be a number from 1 to 65535"),
    ],
)
def test_listen_address_rules(tmp_path, address, fragment):
    found = problems(tmp_path, f"web: {{listen_address: {address!r}}}\n" if isinstance(address, str) else f"web: {{listen_address: {address}}}\n")
    assert len(found) == 1 and found[0].startswith("web.listen_address: ") and fragment in found[0], found


@pytest.mark.parametrize("good", [
    ":9100", "0.0.0.0:1", "127.0.0.1:65535", "[::]:9100", "[::1]:9100", "localhost:9100", "[fe80::1%eth0]:9100",
    # Syntactically fine names pass without a lookup; one that does not resolve is found when binding.
    "host.invalid:9100", "metrics-1.example.com.:9100", "compose_service_1:9100", "1host.example:9100",
])
def test_listen_address_accepts(tmp_path, good):
    assert load(tmp_path, f"web: {{listen_address: '{good}'}}\n").web["listen_address"] == good


@pytest.mark.parametrize("interval", ["0", "-1", "'soon'", "true", ".inf", ".nan", "86401", "1e-9", "0.09"])
def test_interval_must_be_positive_number(tmp_path, interval):
    found = problems(tmp_path, f"collectors: {{cpu: {{interval: {interval}}}}}\n")
    assert len(found) == 1 and found[0].startswith("collectors.cpu.interval: "), found


@pytest.mark.parametrize("top_n, ok", [(-1, False), (0, True), (100, True), (101, False), ("'ten'", False), (2.5, False)])
def test_top_n_range(tmp_path, top_n, ok):
    text = f"collectors: {{processes: {{top_n: {top_n}}}}}\n"
    if ok:
        assert load(tmp_path, text).collectors["processes"].options["top_n"] == top_n
    else:
        found = problems(tmp_path, text)
        assert found[0].startswith("collectors.processes.top_n: ") and str(top_n).strip("'") in found[0]


def test_regex_that_does_not_compile(tmp_path):
    found = problems(tmp_path, "collectors: {filesystem: {mount_points_exclude: '^/(proc'}}\n")
    assert len(found) == 1
    assert found[0].startswith("collectors.filesystem.mount_points_exclude: is not a valid regular expression")
    assert "'^/(proc'" in found[0]


def test_choices_and_booleans(tmp_path):
    found = problems(tmp_path, "logging: {level: loud, format: xml}\nlimits: {action: panic}\ncollectors: {cpu: {enabled: 'yes please'}}\n")
    assert "logging.level: must be one of debug, info, warning, error, got 'loud'" in found
    assert "logging.format: must be one of text, json, got 'xml'" in found
    assert any(p.startswith("limits.action: must be one of log, disable_collectors, stop") for p in found)
    assert "collectors.cpu.enabled: must be true or false, got 'yes please'" in found


def test_every_problem_is_reported_at_once(tmp_path):
    text = "web: {listen_address: nope, max_requests: 0}\ncollectors: {cpu: {interval: -5}, bogus: {}}\n"
    env = {"HOSTAGENT_COLLECTOR_MEMORY_INTERVAL": "fast", "HOSTAGENT_NO_SUCH_THING": "1"}
    found = problems(tmp_path, text, env)
    keys = sorted(p.split(":")[0].split(" ")[0] for p in found)
    assert keys == sorted(["web.listen_address", "web.max_requests", "collectors.cpu.interval", "collectors.bogus", "collectors.memory.interval", "environment"]), found


def test_env_problems_name_the_variable(tmp_path):
    found = problems(tmp_path, "", {"HOSTAGENT_COLLECTOR_CPU_INTERVAL": "-2", "HOSTAGENT_LOG_LEVL": "debug"})
    assert "collectors.cpu.interval (from environment variable HOSTAGENT_COLLECTOR_CPU_INTERVAL): must be greater than 0, got -2" in found
    assert any(p.startswith("environment variable HOSTAGENT_LOG_LEVL: unknown setting (did you mean 'HOSTAGENT_LOG_LEVEL'") for p in found), found


def test_two_spellings_of_one_setting_must_agree(tmp_path):
    found = problems(tmp_path, "", {"HOSTAGENT_LOG_LEVEL": "debug", "HOSTAGENT_LOGGING_LEVEL": "error"})
    assert found == ["logging.level: set by both environment variables HOSTAGENT_LOGGING_LEVEL and HOSTAGENT_LOG_LEVEL, to different values; keep one"]
    same = load(tmp_path, "", {"HOSTAGENT_COLLECTOR_CPU_INTERVAL": "3", "HOSTAGENT_COLLECTORS_CPU_INTERVAL": "3.0",
                                "HOSTAGENT_COLLECTOR_CPU_ENABLED": "true", "HOSTAGENT_COLLECTORS_CPU_ENABLED": "True"})
    assert same.collectors["cpu"].interval == 3 and same.collectors["cpu"].enabled


def test_flag_problems_name_the_flag(tmp_path):
    found = problems(tmp_path, "", flags=[(("web", "listen_address"), "nowhere", "flag --web.listen-address")])
    assert found == ["web.listen_address (from flag --web.listen-address): must be host:port (e.g. :9100 or 127.0.0.1:9100), got 'nowhere'"]


def test_missing_file(tmp_path):
    with pytest.raises(cfgmod.ConfigError) as info:
        cfgmod.load(str(tmp_path / "absent.yaml"), REGISTRY, {})
    assert info.value.problems == [f"config file {tmp_path / 'absent.yaml'}: does not exist"]


def test_unreadable_file(tmp_path):
    path = tmp_path / "secret.yaml"
    path.write_text("{}")
    path.chmod(0)
    if os.geteuid() != 0:
        with pytest.raises(cfgmod.ConfigError) as info:
            cfgmod.load(str(path), REGISTRY, {})
        assert info.value.problems == [f"config file {path}: permission denied"]
        return
    # Root reads any file: check as an unprivileged user in a child process.
    code = (
        "import os, sys; sys.path.insert(0, sys.argv[2]);"
        "from hostagent import config as c; from hostagent.collectors import load_all; r = load_all();"
        "os.setgid(65534); os.setuid(65534)\n"
        "try:\n    c.load(sys.argv[1], r, {})\n"
        "except c.ConfigError as e:\n    print(e.problems)"
    )
    out = subprocess.run([sys.executable, "-c", code, str(path), str(REPO / "src")], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == repr([f"config file {path}: permission denied"]), out.stdout + out.stderr


def test_directory_instead_of_file(tmp_path):
    with pytest.raises(cfgmod.ConfigError) as info:
        cfgmod.load(str(tmp_path), REGISTRY, {})
    assert info.value.problems == [f"config file {tmp_path}: is a directory"]


def test_yaml_syntax_error_has_position(tmp_path):
    found = problems(tmp_path, "web:\n  listen_address: [unclosed\n")
    assert len(found) == 1 and "not valid YAML at line" in found[0]


@pytest.mark.parametrize("text, expected", [
    ("- a\n- b\n", "top level: must be a mapping, got ['a', 'b']"),
    ("web: 5\n", "web: must be a mapping, got 5"),
    ("collectors: {cpu: [1]}\n", "collectors.cpu: must be a mapping, got [1]"),
    ("collectors: {1: {}}\n", "collectors: keys must be strings, got 1"),
])
def test_wrong_shapes(tmp_path, text, expected):
    assert problems(tmp_path, text) == [expected]


def test_null_sections_mean_defaults(tmp_path):
    cfg = load(tmp_path, "web:\ncollectors:\n  cpu:\n")
    assert cfg.web["listen_address"] == ":9100" and cfg.collectors["cpu"].enabled


def test_paths_must_exist(tmp_path):
    found = problems(tmp_path, f"paths: {{procfs: '{tmp_path}/nope'}}\n")
    assert found == [f"paths.procfs: directory does not exist: '{tmp_path}/nope'"]


def test_procfs_must_look_like_a_procfs(tmp_path):
    # The host's root given where its /proc belongs.
    found = problems(tmp_path, f"paths: {{procfs: '{tmp_path}'}}\n")
    assert found == [f"paths.procfs: not a procfs (no 'stat' file in it): '{tmp_path}'"]
    (tmp_path / "stat").write_text("cpu  1 2 3 4\n")
    assert load(tmp_path, f"paths: {{procfs: '{tmp_path}'}}\n").paths.procfs == str(tmp_path)


@pytest.mark.parametrize("value", ["", "nothing"])
def test_sysfs_must_look_like_a_sysfs(tmp_path, value):
    empty = tmp_path / "empty"
    empty.mkdir()
    target = str(empty) if value == "nothing" else ""
    found = problems(tmp_path, f"paths: {{sysfs: '{target}'}}\n")
    if value:
        assert found == [f"paths.sysfs: not a sysfs (no 'class' directory in it): '{empty}'"]
        (empty / "class").mkdir()
        assert load(tmp_path, f"paths: {{sysfs: '{empty}'}}\n").paths.sysfs == str(empty)
    else:
        assert found == ["paths.sysfs: must be a directory path, got ''"]


def test_web_config_file_must_exist(tmp_path):
    found = problems(tmp_path, "web: {config_file: /nonexistent/web.yml}\n")
    assert found == ["web.config_file: file does not exist: '/nonexistent/web.yml'"]


def test_error_message_lists_problems():
    err = cfgmod.ConfigError(["a: bad", "b: worse"], "x.yaml")
    assert str(err) == "invalid configuration in x.yaml (2 problems):\n  - a: bad\n  - b: worse"
    long = cfgmod.ConfigError(["a: got '" + "9" * 5000 + "'"], "x.yaml")
    line = str(long).splitlines()[1]
    assert len(line) <= cfgmod.MAX_PROBLEM_CHARS + 4 and line.endswith("... (cut: 5009 characters in all)")


@pytest.mark.parametrize(
    "text, env, flags, header",
    [
        ("web: {max_requests: 0}\n", {}, [], "in {file} (1 problem)"),
        ("", {"HOSTAGENT_WEB_MAX_REQUESTS": "0"}, [], "from the environment (1 problem)"),
        ("", {"HOSTAGENT_WEB_MAX_REQUEST": "0"}, [], "from the environment (1 problem)"),
        ("", {}, [(("web", "max_requests"), 0, "flag --web.max-requests")], "from flags (1 problem)"),
        ("web: {max_requests: 0}\n", {"HOSTAGENT_LOG_LEVEL": "x"}, [(("web", "max_connections"), 0, "flag --web.max-connections")],
         "in {file} and from the environment and from flags (3 problems)"),
        # A flag's value replaces the file's: the file is not blamed for a value it no longer gives.
        ("web: {max_requests: 0}\n", {}, [(("web", "max_requests"), -1, "flag --web.max-requests")], "from flags (1 problem)"),
        ("web: {max_requests: 0}\n", {}, [(("logging", "level"), "x", "flag --log.level")], "in {file} and from flags (2 problems)"),
    ],
)
def test_the_header_blames_where_the_problems_come_from(tmp_path, text, env, flags, header):
    with pytest.raises(cfgmod.ConfigError) as info:
        load(tmp_path, text, env, flags)
    first = str(info.value).splitlines()[0]
    assert first == "invalid configuration " + header.format(file=tmp_path / "agent.yaml") + ":"


def test_huge_numbers_are_refused_with_the_key_path(tmp_path):
    """A 400-digit number in any numeric setting: refused, never an OverflowError."""
    numeric = [(".".join(p), opt) for p, opt in leaves(cfgmod.schema(REGISTRY)) if isinstance(opt.default, (int, float)) and not isinstance(opt.default, bool)]
    assert len(numeric) >= 10
    for dotted, _ in numeric:
        *parents, key = dotted.split(".")
        text = "".join(f"{'  ' * i}{part}:\n" for i, part in enumerate(parents)) + f"{'  ' * len(parents)}{key}: {'9' * 400}\n"
        found = problems(tmp_path, text)
        assert len(found) == 1 and found[0].startswith(f"{dotted}: must be ") and "400 digits" in found[0], found


def leaves(tree, path=()):
    for key, node in tree.items():
        if isinstance(node, cfgmod.Option):
            yield path + (key,), node
        else:
            yield from leaves(node, path + (key,))


def test_shipped_configs_are_valid():
    repo = Path(__file__).resolve().parents[2]
    for name in ("agent.yaml", "agent.example.yaml"):
        cfgmod.load(str(repo / "config" / name), REGISTRY, {})
