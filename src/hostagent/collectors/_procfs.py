"""Reading the small text files of /proc and /sys that collectors parse.

Two outcomes are kept apart: a file the kernel does not have here (no PSI, no
conntrack module) is :class:`NotAvailable` when the caller says what its
absence means; a file that exists but cannot be read or parsed is an error
whose message names the file.
"""

from __future__ import annotations

import os
from typing import Callable, Optional, TypeVar

from . import base
from .base import NotAvailable

T = TypeVar("T")

# Bytes per page of memory: /proc counts some sizes in pages.
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def read_text(path: str, absent: Optional[str] = None) -> str:
    """The whole text of ``path``. With ``absent`` (the reason, e.g. "the
    nf_conntrack module is not loaded"), a missing file raises NotAvailable;
    every other error names the file."""
    try:
        return base.read_text(path)
    except FileNotFoundError:
        if absent is None:
            raise
        raise NotAvailable(f"no {path}: {absent}") from None
    except OSError as exc:
        if exc.filename is None:  # os.read's errors do not name the file
            raise OSError(exc.errno, exc.strerror, path) from None
        raise


def parse_file(path: str, parse: Callable[[str], T], absent: Optional[str] = None) -> T:
    """``parse`` applied to the text of ``path``; a ValueError names the file."""
    text = read_text(path, absent)
    try:
        return parse(text)
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from None


def read_int(path: str, absent: Optional[str] = None) -> int:
    """The single whole number a /proc/sys or /sys file holds."""
    return parse_file(path, lambda text: parse_int(text.strip(), "the value"), absent)


def parse_int(text: str, what: str) -> int:
    """``int(text)``, with an error saying which field was not a number."""
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"{what} is not a whole number: {text!r}") from None
