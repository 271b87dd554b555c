"""hostagent hash-password: make the bcrypt hash a web config's
basic_auth_users entry needs.

    $ hostagent hash-password
    Password:
    Confirm password:
    $2b$12$Yx8vM1o0r9C0fQpF4mKk9u0Vv5R8m7h2m1a8Z0oJ0nL3eYb2lQm6.

On a terminal the password is read without echo and asked for twice; piped,
the first line of stdin is the password (``printf %s "$PW" | hostagent
hash-password``). Only the hash goes to stdout.
"""

from __future__ import annotations

import argparse
import getpass
import sys
from typing import BinaryIO, Callable, Optional, Sequence

from .usage import ArgumentParser

DEFAULT_COST = 12  # about a quarter of a second per check; docs/security.md
# What the agent accepts in a web config: each step doubles the work, and a
# check much slower than a scrape's timeout would fail every scrape.
MIN_COST, MAX_COST = 4, 16
MAX_PASSWORD_BYTES = 72  # bcrypt reads no further; longer ones are refused, not cut
MAX_LINE_BYTES = 4096  # a piped "password" longer than this is not one


class Refused(Exception):
    """The password cannot be hashed; the message says why."""


def check(password: bytes) -> bytes:
    """The password if bcrypt can take it whole, else Refused."""
    if not password:
        raise Refused("the password is empty")
    if len(password) > MAX_PASSWORD_BYTES:
        raise Refused(f"the password is {len(password)} bytes long; bcrypt uses at most {MAX_PASSWORD_BYTES} bytes, so use a shorter one")
    if b"\0" in password:
        raise Refused("the password contains a NUL byte, which no HTTP client can send")
    return password


def from_terminal(prompt: Callable[[str], str] = getpass.getpass) -> bytes:
    """Asked twice without echo; Refused when the two differ."""
    first = check(prompt("Password: ").encode("utf-8", "surrogateescape"))
    if prompt("Confirm password: ").encode("utf-8", "surrogateescape") != first:
        raise Refused("the passwords do not match")
    return first


def from_pipe(stream: BinaryIO) -> bytes:
    """The first line, without its line ending."""
    line = stream.readline(MAX_LINE_BYTES + 1)
    if len(line) > MAX_LINE_BYTES:
        raise Refused(f"the first line of stdin is over {MAX_LINE_BYTES} bytes; give the password alone on it")
    return check(line.rstrip(b"\n").rstrip(b"\r"))


def _cost(text: str) -> int:
    if not text.isascii() or not text.isdigit() or not MIN_COST <= int(text) <= MAX_COST:
        raise argparse.ArgumentTypeError(f"must be a whole number from {MIN_COST} to {MAX_COST}, got {text!r}")
    return int(text)


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = ArgumentParser(
        prog="hostagent hash-password",
        description="Print the bcrypt hash of a password, for basic_auth_users in the web config. "
        "On a terminal the password is asked for twice without echo; piped, the first line of stdin is the password.",
    )
    parser.add_argument("--cost", type=_cost, default=DEFAULT_COST, metavar="N",
                        help=f"bcrypt cost from {MIN_COST} to {MAX_COST}: each step doubles the work of every check (default {DEFAULT_COST})")
    args = parser.parse_args(argv)
    import bcrypt  # loaded only here: the agent without basic auth never needs it

    try:
        password = from_terminal() if sys.stdin.isatty() else from_pipe(sys.stdin.buffer)
    except Refused as exc:
        print(f"hostagent hash-password: {exc}", file=sys.stderr)
        return 1
    except (EOFError, KeyboardInterrupt):
        print("\nhostagent hash-password: no password given", file=sys.stderr)
        return 1
    print(bcrypt.hashpw(password, bcrypt.gensalt(args.cost)).decode("ascii"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
