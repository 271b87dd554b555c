"""Small helpers for messages people read."""

from __future__ import annotations

from typing import Optional


def counted(n: int, singular: str, plural: Optional[str] = None) -> str:
    """``n`` with its noun in the right number: "1 host", "2 hosts", "1 family", "3 families"."""
    if n == 1:
        return f"{n} {singular}"
    if plural is None:
        plural = singular[:-1] + "ies" if singular.endswith("y") and singular[-2:-1] not in "aeiou" else singular + "s"
    return f"{n} {plural}"
