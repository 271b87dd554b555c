"""Command line: flags, exit statuses, messages without tracebacks."""

from __future__ import annotations

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


def test_unknown_flag_is_a_usage_error():
    out = run("--web.listen-adress=:1")
    assert out.returncode == 2 and "unrecognized arguments" in out.stderr


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
