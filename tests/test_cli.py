"""Command line: flags, exit statuses, messages without tracebacks."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from support import REPO, require_tool

from hostagent import __version__, cli
from hostagent.collectors import load_all

AGENT = [sys.executable, str(REPO / "run_agent.py")]


def run(*args, env=None, input_=None):
    import os

    full_env = {k: v for k, v in os.environ.items() if not k.startswith("HOSTAGENT_")}
    full_env.update(env or {})
    return subprocess.run(AGENT + list(args), capture_output=True, text=True, timeout=60, env=full_env, input=input_)


def test_version():
    out = run("--version")
    assert out.returncode == 0 and out.stdout.startswith(f"hostagent {__version__} (python ")


def test_the_version_is_the_same_wherever_it_is_stated():
    import re

    from hostagent import docsgen

    # The catalog's changelog is newest first; its newest entry is this version.
    assert docsgen.CHANGES and docsgen.CHANGES[0][0] == __version__
    stated = {}
    for path in [REPO / "README.md", REPO / "Dockerfile", *REPO.glob("docker-compose*.yml"), *(REPO / "docs").glob("*.md"), *(REPO / "src").rglob("*.py")]:
        for found in re.findall(r"hostagent[:-]([0-9]+\.[0-9]+\.[0-9]+)\b", path.read_text()):
            stated.setdefault(found, set()).add(path.name)
    assert "docker-compose.yml" in stated.get(__version__, ())  # the image tag the compose file builds
    assert set(stated) == {__version__}, stated


def test_check_config_ok():
    out = run("--config", str(REPO / "config" / "agent.yaml"), "--check-config")
    assert out.returncode == 0, out.stderr
    assert "configuration OK" in out.stdout and "processes" in out.stdout


def test_check_config_bad_exits_2_with_all_problems_and_no_traceback(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("web: {listen_address: ':70000'}\ncollectors: {cpu: {interval: 0}, processes: {top_n: 500}}\n")
    out = run("--config", str(bad), "--check-config", env={"HOSTAGENT_COLLECTOR_MEMORY_ENABLED": "maybe"})
    assert out.returncode == 2
    assert "Traceback" not in out.stderr
    for fragment in (
        "web.listen_address: port must be a number from 1 to 65535",
        "collectors.cpu.interval: must be greater than 0",
        "collectors.processes.top_n: must be between 0 and 100, got 500",
        "collectors.memory.enabled (from environment variable HOSTAGENT_COLLECTOR_MEMORY_ENABLED): must be true or false",
    ):
        assert fragment in out.stderr, out.stderr


def test_bad_config_also_stops_the_daemon_before_it_starts(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("collectors: {cpu: {intervl: 5}}\n")
    out = run("--config", str(bad), "--web.listen-address=127.0.0.1:1")
    assert out.returncode == 2
    assert "collectors.cpu.intervl: unknown key (did you mean 'interval'?)" in out.stderr
    assert "listening" not in out.stderr


def test_missing_config_file(tmp_path):
    out = run("--config", str(tmp_path / "nope.yaml"), "--check-config")
    assert out.returncode == 2 and f"config file {tmp_path / 'nope.yaml'}: does not exist" in out.stderr


def test_flags_map_to_config():
    registry = load_all()
    args = cli.build_parser(registry).parse_args([
        "--web.listen-address=127.0.0.1:9999", "--log.level=debug", "--no-collector.processes", "--collector.cpu",
        "--collector.processes.top-n=5", "--collector.cpu.interval=2", "--web.max-requests=7", "--path.procfs=/proc",
    ])
    got = {path: (value, origin) for path, value, origin in cli.flag_overrides(args)}
    assert got[("web", "listen_address")] == ("127.0.0.1:9999", "flag --web.listen-address")
    assert got[("logging", "level")] == ("debug", "flag --log.level")
    assert got[("collectors", "processes", "enabled")] == (False, "flag --no-collector.processes")
    assert got[("collectors", "cpu", "enabled")] == (True, "flag --collector.cpu")
    assert got[("collectors", "processes", "top_n")] == (5, "flag --collector.processes.top-n")
    assert got[("collectors", "cpu", "interval")] == (2, "flag --collector.cpu.interval")
    assert got[("web", "max_requests")] == (7, "flag --web.max-requests")
    assert got[("paths", "procfs")] == ("/proc", "flag --path.procfs")


def test_flag_beats_environment_end_to_end(tmp_path):
    cfg = tmp_path / "a.yaml"
    cfg.write_text("collectors: {processes: {enabled: true}}\n")
    out = run("--config", str(cfg), "--check-config", "--no-collector.processes", env={"HOSTAGENT_COLLECTOR_PROCESSES_ENABLED": "true"})
    assert out.returncode == 0 and "processes" not in out.stdout.split("collectors:")[1]


def test_once_prints_a_clean_exposition(tmp_path):
    promtool = require_tool("promtool")
    out = run("--config", str(REPO / "config" / "agent.yaml"), "--once")
    assert out.returncode == 0, out.stderr
    assert "host_cpu_seconds_total{" in out.stdout and "hostagent_collector_up{collector=\"processes\"} 1.0" in out.stdout
    lint = subprocess.run([promtool, "check", "metrics"], input=out.stdout, capture_output=True, text=True, timeout=30)
    assert lint.returncode == 0 and lint.stdout == "" and lint.stderr == "", lint.stdout + lint.stderr


def test_once_with_only_some_collectors():
    out = run("--config", str(REPO / "config" / "agent.yaml"), "--once", *[f"--no-collector.{n}" for n in load_all() if n != "memory"])
    assert out.returncode == 0
    names = {line.split("{")[0].split(" ")[0] for line in out.stdout.splitlines() if line.startswith("host_")}
    assert names and all(n.startswith(("host_memory_", "host_swap_")) for n in names), names


@pytest.mark.parametrize(
    "argv, line",
    [
        (["--web.listen-adress=:1"], "hostagent: unknown flag --web.listen-adress (did you mean --web.listen-address?)"),
        (["--web.listen_address", ":1"], "hostagent: unknown flag --web.listen_address (did you mean --web.listen-address?)"),
        (["--check-config", "--collector.proceses"], "hostagent: unknown flag --collector.proceses (did you mean --collector.processes?)"),
        (["--no-collector.cpu.interval"], "hostagent: unknown flag --no-collector.cpu.interval (did you mean --collector.cpu.interval?)"),
        (["--zzzz"], "hostagent: unknown flag --zzzz (see hostagent --help)"),
        (["rulez"], "hostagent: unknown command 'rulez' (did you mean 'rules'?); commands: " + ", ".join(cli.SUBCOMMANDS)),
        (["--config"], "hostagent: argument --config: expected one argument (see hostagent --help)"),
        (["--web.max-req=3"], "hostagent: unknown flag --web.max-req (did you mean --web.max-requests?)"),
    ],
)
def test_usage_errors_are_one_line_with_the_nearest_spelling(argv, line):
    out = run(*argv)
    assert out.returncode == 2 and out.stdout == ""
    assert out.stderr == line + "\n"


def section_leaves():
    from hostagent import config as cfgmod

    for section, opts in cfgmod.schema(load_all()).items():
        if section != "collectors":
            for key, opt in opts.items():
                yield (section, key), opt


def test_every_setting_has_a_flag_derived_from_the_schema():
    registry = load_all()
    from hostagent import config as cfgmod

    tree = cfgmod.schema(registry)
    leaves = {(s, k) for s, opts in tree.items() if s != "collectors" for k in opts}
    leaves |= {("collectors", c, k) for c, opts in tree["collectors"].items() for k in opts}
    table = {flag.path: flag for flag in cfgmod.flags(registry)}
    assert set(table) == leaves
    parser = cli.build_parser(registry)
    for path, flag in table.items():
        opt = flag.option
        if flag.switch:
            for argv, want in (([flag.names[0]], True), ([flag.negation], False), ([f"{flag.names[0]}=false"], False), ([f"{flag.names[0]}=true"], True)):
                got = cli.flag_overrides(parser.parse_args(argv))
                assert got == [(path, want, f"flag {argv[0].split('=')[0]}")], (argv, got)
            continue
        if isinstance(opt.default, (list, dict)):
            text = json.dumps(opt.default)  # YAML's flow style: a list flag reads "[sshd, chronyd]"
        elif isinstance(opt.default, (int, float)) and not isinstance(opt.default, bool):
            text = repr(opt.default)
        else:
            text = {None: "", True: "true", False: "false"}.get(opt.default, str(opt.default))
        for name in flag.names:
            got = cli.flag_overrides(parser.parse_args([f"{name}={text}"]))
            assert len(got) == 1 and got[0][0] == path and got[0][2] == f"flag {name}", (name, got)
            assert opt.check(got[0][1]) == opt.check(opt.default) if opt.default is not None else got[0][1] in (None, ""), (name, got)


def test_flag_names_follow_one_pattern():
    from hostagent import config as cfgmod

    names = {name for flag in cfgmod.flags(load_all()) for name in flag.names}
    for name in (
        "--web.listen-address", "--web.config.file", "--web.config-file", "--web.max-requests", "--web.max-connections",
        "--web.read-timeout", "--web.idle-timeout", "--web.write-timeout", "--web.access-log", "--log.level", "--log.format",
        "--limits.enabled", "--limits.check-interval", "--limits.max-cpu-percent", "--limits.max-rss-bytes", "--limits.action",
        "--path.procfs", "--path.sysfs", "--path.rootfs", "--collector.cpu", "--collector.cpu.interval",
        "--collector.processes.top-n", "--collector.filesystem.mount-points-exclude",
    ):
        assert name in names, name
    for (section, key), _ in section_leaves():
        prefix = cfgmod.FLAG_PREFIX.get(section, section)
        assert f"--{prefix}.{key.replace('_', '-')}" in names


def test_flags_for_every_section_reach_the_agent_end_to_end(tmp_path):
    (tmp_path / "empty.yaml").write_text("")
    out = run(
        "--check-config", "--config", str(tmp_path / "empty.yaml"), "--web.read-timeout=abc", "--no-web.access-log",
        "--web.max-connections=0", "--limits.max-rss-bytes=" + "9" * 400, "--path.sysfs=", "--log.format=xml",
    )
    assert out.returncode == 2 and "Traceback" not in out.stderr
    for fragment in (
        "web.read_timeout (from flag --web.read-timeout): must be a number, got 'abc'",
        "web.max_connections (from flag --web.max-connections): must be between 1 and",
        "limits.max_rss_bytes (from flag --limits.max-rss-bytes): must be between 1 and 1125899906842624, got a number of 400 digits",
        "paths.sysfs (from flag --path.sysfs): must be a directory path, got ''",
        "logging.format (from flag --log.format): must be one of text, json, got 'xml'",
    ):
        assert fragment in out.stderr, out.stderr
    assert out.stderr.startswith("invalid configuration from flags (5 problems):\n"), out.stderr


def test_text_values_are_taken_as_text_when_only_that_fits(tmp_path, monkeypatch):
    # A directory named 123 and a regex "true": YAML would read a number and a boolean.
    from hostagent import config as cfgmod

    (tmp_path / "123").mkdir()
    monkeypatch.chdir(tmp_path)
    cfg = cfgmod.load(None, load_all(), {"HOSTAGENT_PATHS_ROOTFS": "123", "HOSTAGENT_COLLECTOR_DISKIO_DEVICE_INCLUDE": "null"})
    assert cfg.paths.rootfs == "123" and cfg.collectors["diskio"].options["device_include"] is None
    registry = load_all()
    args = cli.build_parser(registry).parse_args(["--collector.network.device-exclude=true", "--collector.cpu.interval=2"])
    assert dict((p, v) for p, v, _ in cli.flag_overrides(args)) == {("collectors", "network", "device_exclude"): "true", ("collectors", "cpu", "interval"): 2}


@pytest.mark.parametrize("sub", sorted(cli.SUBCOMMANDS))
def test_subcommands_answer_help(sub):
    out = run(sub, "--help")
    assert out.returncode == 0, out.stderr
    assert "usage:" in out.stdout.lower()


def test_without_a_config_file_anywhere_the_defaults_are_used(monkeypatch, tmp_path, capsys):
    # An installed copy has no checkout config/agent.yaml beside it.
    from hostagent import config as cfgmod

    monkeypatch.delenv("HOSTAGENT_CONFIG", raising=False)
    monkeypatch.setattr(cfgmod, "DEFAULT_CONFIGS", (str(tmp_path / "none.yaml"), str(tmp_path / "etc.yaml")))
    assert cli.main(["--check-config"]) == 0
    assert "configuration OK: (defaults)" in capsys.readouterr().out
    (tmp_path / "etc.yaml").write_text("collectors: {processes: {enabled: false}}\n")
    assert cli.main(["--check-config"]) == 0
    out = capsys.readouterr().out
    assert f"configuration OK: {tmp_path / 'etc.yaml'}" in out and "processes" not in out.split("collectors:")[1]


def test_config_from_environment_variable(tmp_path):
    cfg = tmp_path / "env.yaml"
    cfg.write_text("collectors: {cpu: {enabled: false}}\n")
    out = run("--check-config", env={"HOSTAGENT_CONFIG": str(cfg)})
    assert out.returncode == 0 and f"configuration OK: {cfg}" in out.stdout
    missing = run("--check-config", env={"HOSTAGENT_CONFIG": str(tmp_path / "gone.yaml")})
    assert missing.returncode == 2 and "gone.yaml: does not exist" in missing.stderr


def test_main_and_web_config_problems_come_in_one_run(tmp_path):
    web = tmp_path / "web.yml"
    web.write_text("basic_auth_users:\n  alice: not-a-bcrypt-hash\ntls_server_confg: {}\n")
    bad = tmp_path / "bad.yaml"
    bad.write_text(f"web: {{config_file: '{web}'}}\ncollectors: {{cpu: {{intervl: 5}}}}\n")
    out = run("--config", str(bad), "--check-config")
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert f"invalid configuration in {bad} (1 problem):" in out.stderr, out.stderr
    assert "collectors.cpu.intervl: unknown key" in out.stderr
    assert f"invalid configuration in {web} (2 problems):" in out.stderr, out.stderr
    assert "tls_server_confg: unknown key (did you mean 'tls_server_config'?)" in out.stderr
    assert "basic_auth_users.alice: " in out.stderr and "not-a-bcrypt-hash" not in out.stderr

    # With the main file fixed, the web file's problems alone stop the start.
    bad.write_text(f"web: {{config_file: '{web}'}}\n")
    out = run("--config", str(bad), "--check-config")
    assert out.returncode == 2 and f"invalid configuration in {web} (2 problems):" in out.stderr
    assert "invalid configuration in " + str(bad) not in out.stderr


def test_help_names_the_switches_every_collector_takes():
    out = run("--help")
    assert out.returncode == 0
    text = " ".join(out.stdout.split())
    for fragment in ("--collector.NAME and --no-collector.NAME", "--collector.NAME.interval=SECONDS", "HOSTAGENT_COLLECTOR_NAME_OPTION"):
        assert fragment in text, out.stdout


def test_check_config_ok_line_names_the_web_config_it_checked(tmp_path):
    import bcrypt

    web = tmp_path / "web.yml"
    web.write_text(f"basic_auth_users:\n  alice: {bcrypt.hashpw(b'pw', bcrypt.gensalt(10)).decode()}\n")
    cfg = tmp_path / "agent.yaml"
    cfg.write_text(f"web: {{config_file: '{web}'}}\n")
    out = run("--config", str(cfg), "--check-config")
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith(f"configuration OK: {cfg}, web config {web} (basic auth) (collectors: "), out.stdout


def test_a_host_name_that_does_not_resolve_is_found_at_bind_time():
    # The form is fine, so --check-config takes it (no name lookups there) ...
    out = run("--check-config", "--web.listen-address=host.invalid:9100")
    assert out.returncode == 0, out.stderr
    # ... and the start says what is wrong with it, exit 1.
    out = run("--web.listen-address=host.invalid:9100", "--no-collector.processes")
    assert out.returncode == 1 and "Traceback" not in out.stderr
    assert "cannot listen on host.invalid:9100: host name 'host.invalid' does not resolve" in out.stderr, out.stderr


def test_list_settings_take_yaml_flow_lists_from_flags_and_environment():
    from hostagent import config as cfgmod

    registry = load_all()
    parser = cli.build_parser(registry)
    flags = cli.flag_overrides(parser.parse_args(["--collector.processes.pinned-groups=[sshd, chronyd]", "--collector.network.device-include=[a-z]+"]))
    environ = {"HOSTAGENT_COLLECTOR_PROCESSES_PINNED_GROUPS": "[cron]"}
    config = cfgmod.load(None, registry, environ, flags)
    assert config.collectors["processes"].options["pinned_groups"] == ["sshd", "chronyd"]  # flags win
    assert config.collectors["network"].options["device_include"] == "[a-z]+"  # a regex stays text
    assert cfgmod.load(None, registry, environ, []).collectors["processes"].options["pinned_groups"] == ["cron"]
    with pytest.raises(cfgmod.ConfigError, match="pinned_groups"):
        cfgmod.load(None, registry, {"HOSTAGENT_COLLECTOR_PROCESSES_PINNED_GROUPS": "sshd"}, [])


def test_help_lists_the_values_of_every_choice_from_the_option_itself():
    from hostagent import config as cfgmod

    out = run("--help")
    text = " ".join(out.stdout.split())
    for section, key in (("logging", "level"), ("logging", "format"), ("limits", "action")):
        choices = cfgmod.SECTIONS[section][key].choices
        assert choices, (section, key)
        flag = f"--{'log' if section == 'logging' else section}.{key}"
        assert f"{flag} {{{','.join(choices)}}}" in text, (flag, choices)


def test_debug_logs_settings_collector_runs_and_refused_requests_and_info_does_not(tmp_path):
    import re

    import requests

    from support import agent_server, wait_until

    config = "collectors: {processes: {enabled: false}}\n"
    (tmp_path / "debug").mkdir()
    with agent_server(tmp_path / "debug", config, extra_args=["--log.level=debug"]) as agent:
        agent.start()
        assert requests.get(agent.base_url + "/nope", timeout=10).status_code == 404
        assert requests.post(agent.base_url + "/metrics", timeout=10).status_code == 405
        wait_until(lambda: "405 to POST /metrics from 127.0.0.1:" in agent.log(), 30, "the 405 in the log")
        log = agent.log()
    assert "DEBUG hostagent: settings web: listen_address=127.0.0.1:" in log
    assert "DEBUG hostagent: collector textfile: disabled: no directory configured" in log
    assert re.search(r"DEBUG hostagent.agent: collector cpu ran in [0-9.]+ ms: [0-9]+ families, [0-9]+ series", log), log
    assert re.search(r"DEBUG hostagent.web: 404 to GET /nope from 127.0.0.1:[0-9]+: not found", log), log
    (tmp_path / "info").mkdir()
    with agent_server(tmp_path / "info", config) as agent:
        agent.start()
        # The line would be written before the answer is sent: none once it is here.
        assert requests.get(agent.base_url + "/nope", timeout=10).status_code == 404
        log = agent.log()
    assert "listening on" in log
    assert "DEBUG" not in log and " ran in " not in log and "/nope" not in log and "settings web" not in log


def test_debug_repeats_are_capped_per_minute_and_the_gap_is_counted():
    import logging

    from hostagent.logsetup import RepeatLimit

    now = [0.0]
    limit = RepeatLimit(repeats=3, window=60, clock=lambda: now[0])

    def record(level, msg, *args):
        return logging.LogRecord("hostagent.web", level, __file__, 1, msg, args, None)

    passed = [limit.filter(record(logging.DEBUG, "%d to %s: %s", 401, f"GET / from 10.0.0.{i}", "unauthorized")) for i in range(10)]
    assert passed == [True] * 3 + [False] * 7
    # Another kind (status) and other levels are not held back by it.
    assert limit.filter(record(logging.DEBUG, "%d to %s: %s", 404, "GET /x", "not found"))
    assert all(limit.filter(record(logging.WARNING, "%d to %s", 401, "x")) for _ in range(10))
    now[0] = 61.0
    late = record(logging.DEBUG, "%d to %s: %s", 401, "GET / from 10.0.0.99", "unauthorized")
    assert limit.filter(late)
    assert late.getMessage() == "401 to GET / from 10.0.0.99: unauthorized [7 more like this left out]"


def test_once_names_a_collector_failure_in_words_not_python_class_names(tmp_path):
    proc = tmp_path / "proc"
    proc.mkdir()
    (proc / "stat").write_text("")  # enough to pass for a procfs; meminfo is missing
    cfg = tmp_path / "agent.yaml"
    cfg.write_text("{}\n")
    only = [f"--no-collector.{name}" for name in load_all() if name != "memory"]
    out = run("--config", str(cfg), "--once", f"--path.procfs={proc}", *only)
    assert out.returncode == 1
    assert f"collector memory failed: No such file or directory: {proc / 'meminfo'}" in out.stderr.splitlines(), out.stderr
    assert "FileNotFoundError" not in out.stderr and "Errno" not in out.stderr and "Traceback" not in out.stderr


def test_describe_error_says_what_and_where():
    from hostagent.collectors.base import describe_error

    assert describe_error(PermissionError(13, "Permission denied", "/proc/net/nf_conntrack")) == "Permission denied: /proc/net/nf_conntrack"
    assert describe_error(FileNotFoundError("textfile directory /x does not exist")) == "textfile directory /x does not exist"
    assert describe_error(OSError(5, "Input/output error")) == "Input/output error"
    assert describe_error(ValueError("not a number: 'x'")) == "not a number: 'x'"
    assert describe_error(KeyError("cpu")) == "KeyError: 'cpu'"
    assert describe_error(RuntimeError()) == "RuntimeError"


def test_counts_take_the_right_number():
    from hostagent.wording import counted

    assert [counted(n, "host") for n in (0, 1, 2)] == ["0 hosts", "1 host", "2 hosts"]
    assert [counted(n, "family") for n in (1, 3)] == ["1 family", "3 families"]
    assert counted(1, "failed run") == "1 failed run" and counted(2, "key") == "2 keys" and counted(2, "series", "series") == "2 series"


def test_one_problem_and_one_failure_read_in_the_singular(tmp_path):
    cfg = tmp_path / "agent.yaml"
    cfg.write_text("web: {max_requests: 0}\n")
    out = run("--config", str(cfg), "--check-config")
    assert out.returncode == 2 and out.stderr.startswith(f"invalid configuration in {cfg} (1 problem):"), out.stderr


def test_stale_after_one_failed_run_says_run_not_runs():
    from hostagent.agent import Runner

    from support import FakeClock

    class Failing:
        def collect(self):
            raise OSError("device gone")

    clock = FakeClock(100.0)
    runner = Runner("x", Failing(), 1, clock=clock)
    runner.run_once()
    assert runner.stale_reason(clock()) == "the last run failed (device gone)"
