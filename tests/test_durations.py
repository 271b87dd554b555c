"""Prometheus-style durations on command lines (``hostagent.durations``)."""

from __future__ import annotations

import pytest

from hostagent import durations


@pytest.mark.parametrize("text, seconds", [("90s", 90), ("5m", 300), ("1h30m", 5400), ("30d", 2592000), ("2w", 1209600), ("1y", 31536000), ("500ms", 0.5), (" 2h ", 7200), ("0s", 0)])
def test_durations(text: str, seconds: float) -> None:
    assert durations.seconds(text) == seconds
    assert durations.seconds(text, fractions=True) == seconds


def test_fractions_only_when_asked() -> None:
    assert durations.seconds("1.5h", fractions=True) == 5400
    assert durations.seconds("0.5d12h", fractions=True) == 86400
    with pytest.raises(ValueError):
        durations.seconds("1.5h")


@pytest.mark.parametrize("text", ["", " ", "2", "h", "2 h", "-1h", "2hours", "1h30", "1h 30m", "1e3s", ".5h"])
def test_not_durations(text: str) -> None:
    with pytest.raises(ValueError):
        durations.seconds(text, fractions=True)
