"""Operator tools: ``hostagent top``, ``hostagent report`` and ``hostagent export``.

Client programs that read an agent's ``/metrics`` or Prometheus' HTTP API.
The agent daemon never imports this package. The libraries that draw a
screen (rich) or plots (matplotlib) are optional extras, imported only by the
subcommand that needs them.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import sys
import tempfile
from types import ModuleType
from typing import IO, Callable, Iterator, List, NoReturn, Optional, Sequence


def plural(n: int, noun: str, many: str = "") -> str:
    """A count and its noun, singular for one: ``1 host``, ``3 hosts``, ``2 matches`` (``many``)."""
    return f"{n} {noun if n == 1 else (many or noun + 's')}"


class ToolError(Exception):
    """A problem the user can fix: one line, and the exit status to leave with
    (1 for what went wrong at run time, 2 for bad usage or configuration)."""

    def __init__(self, message: str, status: int = 1):
        super().__init__(message)
        self.status = status


def require_extra(command: str, extra: str, module: str) -> ModuleType:
    """Import ``module`` from an optional extra, or say which extra to install."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise ToolError(f"hostagent {command} needs the '{extra}' extra: pip install 'hostagent[{extra}]'", 2) from None


def run(command: str, body: Callable[[List[str]], int], argv: Optional[Sequence[str]]) -> int:
    """Run a tool's main body; a ToolError becomes one line on stderr and its status."""
    try:
        return int(body(list(sys.argv[1:] if argv is None else argv)) or 0)
    except ToolError as exc:
        text = str(exc)
        prefix = f"hostagent {command}"
        print(text if text.startswith(prefix) else f"{prefix}: {text}", file=sys.stderr)
        return exc.status
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader went away (`| head`): nothing more to say to it.
        try:
            sys.stdout = open("/dev/null", "w")  # noqa: SIM115  # silence the flush at exit
        except OSError:
            pass
        return 1


class ArgumentParser(argparse.ArgumentParser):
    """argparse that reports a bad command line as one ToolError line (exit 2)."""

    def error(self, message: str) -> NoReturn:
        raise ToolError(f"{message} (see {self.prog} --help)", 2)


@contextlib.contextmanager
def replaced_on_success(path: str) -> Iterator[IO[bytes]]:
    """A binary file written beside ``path`` and moved onto it only when the
    block ends without an exception: a failed run leaves ``path`` as it was."""
    folder = os.path.dirname(os.path.abspath(path))
    try:
        fd, tmp = tempfile.mkstemp(prefix=".hostagent-", dir=folder)
    except OSError as exc:
        raise ToolError(f"cannot write {path}: {exc.strerror or exc}", 2) from None
    umask = os.umask(0)
    os.umask(umask)
    os.fchmod(fd, 0o666 & ~umask)  # as a plain open() would create it
    fh = os.fdopen(fd, "wb")
    try:
        yield fh
        fh.close()
        os.replace(tmp, path)
    except BaseException:
        fh.close()
        os.unlink(tmp)
        raise
