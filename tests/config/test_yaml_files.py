"""Every YAML file the agent and its generators read goes through one reader
(config.load_yaml_file): a regular file of bounded size, UTF-8, safe YAML,
with no key given twice. Each refusal names the file and the reason, never
hangs and never raises anything else."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Callable, Dict

import pytest

from support import REPO

from hostagent import config as cfgmod
from hostagent.alerting import thresholds
from hostagent.collectors import load_all
from hostagent.webconfig import load_web_config

REGISTRY = load_all()
AGENT = [sys.executable, str(REPO / "run_agent.py")]


def agent_config(path: str) -> str:
    cfgmod.load(path, REGISTRY, {})
    return ""


def web_config(path: str) -> str:
    load_web_config(path)
    return ""


def thresholds_file(path: str) -> str:
    thresholds.load_config(Path(path))
    return ""


READERS: Dict[str, Callable[[str], str]] = {"agent config": agent_config, "web config": web_config, "thresholds": thresholds_file}


def refusal(reader: str, path: str) -> str:
    """The reader's whole message for ``path``; fails if it took the file."""
    try:
        READERS[reader](path)
    except (cfgmod.ConfigError, thresholds.ThresholdsError) as exc:
        return str(exc)
    raise AssertionError(f"{reader} took {path}")


@pytest.fixture(params=sorted(READERS))
def reader(request):
    return request.param


def test_a_fifo_is_refused_without_waiting_for_a_writer(tmp_path, reader):
    fifo = tmp_path / "agent.yaml"
    os.mkfifo(fifo)
    message = refusal(reader, str(fifo))
    assert f"{fifo}: " in message and "is a FIFO, not a regular file" in message


def test_a_device_is_refused_before_reading(reader):
    message = refusal(reader, "/dev/zero")
    assert "/dev/zero: " in message and "is a character device, not a regular file" in message


def test_a_file_over_the_limit_is_refused(tmp_path, reader):
    big = tmp_path / "big.yaml"
    line = "# " + "x" * 1021 + "\n"
    big.write_text(line * (cfgmod.MAX_YAML_BYTES // len(line)))
    assert big.stat().st_size == cfgmod.MAX_YAML_BYTES  # exactly the limit: taken
    assert cfgmod.load_yaml_file(str(big)) is None
    with big.open("a") as f:
        f.write("\n")
    message = refusal(reader, str(big))
    assert "is larger than 1 MiB" in message


@pytest.mark.parametrize(
    "text, problem",
    [
        ("a: 1\n" + "b: " + "9" * 5000 + "\n", "not valid YAML at line 2, column 4: number is too long"),
        ("a: 2001-13-40\n", "not valid YAML at line 1, column 4: value cannot be taken (month must be in 1..12)"),
        ("[" * 100000, "not valid YAML"),
        ("a: [unclosed\n", "not valid YAML at line 2"),
        ("a: !!python/object:os.system {}\n", "not valid YAML"),
    ],
)
def test_yaml_python_cannot_hold_is_a_yaml_problem(tmp_path, reader, text, problem):
    path = tmp_path / "file.yaml"
    path.write_text(text)
    assert problem in refusal(reader, str(path))


def test_bytes_that_are_not_utf8(tmp_path, reader):
    path = tmp_path / "file.yaml"
    path.write_bytes(b"a: 1\nb: \xff\xfe\n")
    assert "is not UTF-8 text (byte 8)" in refusal(reader, str(path))


DUPLICATES = {
    "agent config": ("web:\n  listen_address: ':1'\n  max_requests: 5\n  listen_address: ':2'\nweb: {}\n",
                     ["line 4: duplicate key web.listen_address (first at line 2)", "line 5: duplicate key web (first at line 1)"]),
    "web config": ("basic_auth_users:\n  alice: $2b$04$abcdefghijklmnopqrstuu5sHIl7bOOiVg4yTBr0k7SI4wrdqOsq\n  alice: x\n",
                   ["line 3: duplicate key basic_auth_users.alice (first at line 2)"]),
    "thresholds": ("alerts:\n  cpu_usage: {levels: []}\n  memory_usage: {}\n  cpu_usage: {levels: []}\n",
                   ["line 4: duplicate key alerts.cpu_usage (first at line 2)"]),
}


def test_every_repeated_key_is_named_with_its_line(tmp_path, reader):
    text, expected = DUPLICATES[reader]
    path = tmp_path / "file.yaml"
    path.write_text(text)
    message = refusal(reader, str(path))
    for problem in expected:
        assert problem + "; a key may appear only once" in message, message


def test_merge_keys_and_aliases_are_not_repeats(tmp_path):
    path = tmp_path / "file.yaml"
    path.write_text("base: &b {a: 1, b: 2}\nx: {<<: *b, a: 3}\ny: *b\nz: [*b, *b]\n")
    assert cfgmod.load_yaml_file(str(path))["x"] == {"a": 3, "b": 2}
    path.write_text("base: &b {a: 1, a: 2}\ny: *b\nz: [*b, *b]\n")
    with pytest.raises(cfgmod.ConfigFileError) as info:
        cfgmod.load_yaml_file(str(path))
    # Named once, where it is written, however often it is referred to.
    assert info.value.problems == ["line 1: duplicate key base.a (first at line 1); a key may appear only once"]


def run_agent(*args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOSTAGENT_")}
    return subprocess.run([*AGENT, *args], capture_output=True, text=True, timeout=60, env=env)


@pytest.mark.parametrize("special", ["fifo", "/dev/zero"])
def test_the_agent_refuses_special_files_at_once(tmp_path, special):
    if special == "fifo":
        special = str(tmp_path / "fifo")
        os.mkfifo(special)
    for args in (["--config", special, "--check-config"], ["--config", special, "--web.listen-address=127.0.0.1:1"]):
        out = run_agent(*args)
        assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr
        assert f"config file {special}: is " in out.stderr and "not a regular file" in out.stderr
    out = run_agent("--check-config", f"--web.config.file={special}")
    assert out.returncode == 2 and f"web.config_file (from flag --web.config.file): not a regular file: '{special}'" in out.stderr, out.stderr


def test_the_agent_names_repeated_keys(tmp_path):
    path = tmp_path / "agent.yaml"
    path.write_text("collectors:\n  cpu: {interval: 5}\n  cpu: {interval: 50}\n")
    out = run_agent("--config", str(path), "--check-config")
    assert out.returncode == 2 and out.stderr == (
        f"invalid configuration in {path} (1 problem):\n"
        f"  - config file {path}: line 3: duplicate key collectors.cpu (first at line 2); a key may appear only once\n"
    )
