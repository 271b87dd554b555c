"""hostagent hash-password on a real pseudo-terminal and through a pipe."""

from __future__ import annotations

import fcntl
import os
import select
import subprocess
import sys
import termios
import time
from typing import List, Optional

import bcrypt
import pytest

from support import REPO

from hostagent import cli, hashpassword

COMMAND = [sys.executable, str(REPO / "run_agent.py"), "hash-password"]


def piped(data: bytes, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*COMMAND, *args], input=data, capture_output=True, timeout=60)


class Terminal:
    """The command on a pseudo-terminal that is its controlling terminal, as
    when a person runs it; stdout may go elsewhere."""

    def __init__(self, *args: str, stdout_to_pipe: bool = False):
        self.master, slave = os.openpty()

        def take_terminal() -> None:
            os.setsid()
            fcntl.ioctl(0, termios.TIOCSCTTY, 0)

        self.proc = subprocess.Popen(
            [*COMMAND, *args], stdin=slave, stdout=subprocess.PIPE if stdout_to_pipe else slave, stderr=slave,
            preexec_fn=take_terminal, close_fds=True,
        )
        os.close(slave)
        self.seen = b""

    def read_until(self, text: bytes, deadline: float = 30.0) -> bytes:
        end = time.monotonic() + deadline
        while text not in self.seen:
            left = end - time.monotonic()
            assert left > 0, f"no {text!r} in {self.seen!r}"
            if select.select([self.master], [], [], left)[0]:
                try:
                    chunk = os.read(self.master, 4096)
                except OSError:  # EIO: the other side closed
                    chunk = b""
                if not chunk:
                    assert text in self.seen, f"ended without {text!r}: {self.seen!r}"
                self.seen += chunk
        return self.seen

    def type(self, line: bytes) -> None:
        os.write(self.master, line + b"\r")

    def finish(self) -> int:
        code = self.proc.wait(timeout=60)
        while True:  # the rest of the output
            try:
                ready = select.select([self.master], [], [], 0.5)[0]
                chunk = os.read(self.master, 4096) if ready else b""
            except OSError:
                chunk = b""
            if not chunk:
                break
            self.seen += chunk
        os.close(self.master)
        return code


def hashes_in(text: bytes) -> List[bytes]:
    return [word for word in text.split() if word.startswith(b"$2b$")]


def test_on_a_terminal_it_asks_twice_without_echo():
    term = Terminal("--cost", "4")
    term.read_until(b"Password: ")
    term.type(b"correct horse")
    term.read_until(b"Confirm password: ")
    term.type(b"correct horse")
    assert term.finish() == 0
    assert b"correct horse" not in term.seen  # never echoed
    (found,) = hashes_in(term.seen)
    assert found.startswith(b"$2b$04$") and bcrypt.checkpw(b"correct horse", found)


def test_on_a_terminal_only_the_hash_goes_to_stdout():
    term = Terminal(stdout_to_pipe=True)  # hostagent hash-password > file
    term.read_until(b"Password: ")
    term.type(b"s3cret")
    term.read_until(b"Confirm password: ")
    term.type(b"s3cret")
    assert term.proc.stdout is not None
    out = term.proc.stdout.read()
    assert term.finish() == 0
    assert out.count(b"\n") == 1 and out.startswith(b"$2b$12$")  # the default cost
    assert bcrypt.checkpw(b"s3cret", out.strip())
    assert not hashes_in(term.seen)


@pytest.mark.parametrize(
    "first, second, message",
    [
        (b"one", b"two", b"hostagent hash-password: the passwords do not match"),
        (b"x" * 73, None, b"hostagent hash-password: the password is 73 bytes long; bcrypt uses at most 72 bytes, so use a shorter one"),
        (b"", None, b"hostagent hash-password: the password is empty"),
    ],
)
def test_on_a_terminal_a_bad_password_is_refused_in_one_line(first: bytes, second: Optional[bytes], message: bytes):
    term = Terminal("--cost", "4")
    term.read_until(b"Password: ")
    term.type(first)
    if second is not None:
        term.read_until(b"Confirm password: ")
        term.type(second)
    assert term.finish() == 1
    assert message in term.seen and b"Traceback" not in term.seen and not hashes_in(term.seen)


def test_ctrl_c_at_the_prompt_ends_quietly():
    term = Terminal()
    term.read_until(b"Password: ")
    os.write(term.master, b"\x03")
    assert term.finish() == 1
    assert b"no password given" in term.seen and b"Traceback" not in term.seen


@pytest.mark.parametrize("data", [b"pa ss:word\n", b"pa ss:word\r\nsecond line, ignored\n", b"pa ss:word"])
def test_piped_the_first_line_is_the_password(data):
    out = piped(data, "--cost", "5")
    assert out.returncode == 0, out.stderr
    assert out.stderr == b"" and out.stdout.startswith(b"$2b$05$") and out.stdout.count(b"\n") == 1
    assert bcrypt.checkpw(b"pa ss:word", out.stdout.strip())


def test_a_72_byte_password_is_taken_and_73_refused():
    out = piped("é".encode() * 36 + b"\n", "--cost", "4")
    assert out.returncode == 0 and bcrypt.checkpw("é".encode() * 36, out.stdout.strip())
    out = piped(b"y" * 73 + b"\n")
    assert out.returncode == 1 and out.stdout == b""
    assert out.stderr == b"hostagent hash-password: the password is 73 bytes long; bcrypt uses at most 72 bytes, so use a shorter one\n"


@pytest.mark.parametrize(
    "data, args, code, message",
    [
        (b"", [], 1, "the password is empty"),
        (b"\n", [], 1, "the password is empty"),
        (b"a\0b\n", [], 1, "the password contains a NUL byte"),
        (b"z" * 10000, [], 1, "the first line of stdin is over 4096 bytes"),
        (b"pw\n", ["--cost", "17"], 2, "argument --cost: must be a whole number from 4 to 16, got '17'"),
        (b"pw\n", ["--cost", "3"], 2, "argument --cost: must be a whole number from 4 to 16, got '3'"),
        (b"pw\n", ["--cots", "5"], 2, "unknown flag --cots (did you mean --cost?)"),
        (b"pw\n", ["alice"], 2, "unexpected argument 'alice'"),
    ],
)
def test_piped_problems_are_one_line(data, args, code, message):
    out = piped(data, *args)
    assert out.returncode == code and out.stdout == b""
    lines = out.stderr.decode().splitlines()
    assert len(lines) == 1 and lines[0].startswith("hostagent hash-password: ") and message in lines[0], out.stderr


def test_the_default_cost_is_the_one_the_docs_recommend_and_the_agent_takes():
    assert "hash-password" in cli.SUBCOMMANDS
    assert hashpassword.DEFAULT_COST == 12
    assert hashpassword.MIN_COST <= hashpassword.DEFAULT_COST <= hashpassword.MAX_COST
