"""The arithmetic of the report, on plain lists: percentiles, a least-squares
line with its confidence, busiest hours, alert incidents from raw samples.

    >>> percentile([1, 2, 3, 4], 0.5)
    2.5
    >>> fit = linear_fit([(0, 10.0), (1, 8.0), (2, 6.0)])
    >>> fit.slope, fit.at(5), fit.crossing(0)
    (-2.0, 0.0, 5.0)
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

Point = Tuple[float, float]
# Two-sided 95 % for a normal distribution: with hundreds of points the t
# distribution is indistinguishable from it.
Z95 = 1.96


def scaled(value: Optional[float], base: int, units: Sequence[str], sep: str = "", suffix: str = "") -> str:
    """A quantity in the largest unit that keeps it under ``base``: whole
    numbers in the first unit and from 100 up, one decimal otherwise.

    >>> scaled(1536, 1024, ("B", "K", "M")), scaled(8e9, 1000, ("B", "kB", "MB", "GB"), " ", "/day")
    ('1.5K', '8.0 GB/day')
    """
    if value is None:
        return "–"
    v = float(value)
    for i, unit in enumerate(units):
        if abs(v) < base or i == len(units) - 1:
            digits = 0 if i == 0 or abs(v) >= 100 else 1
            return f"{v:.{digits}f}{sep}{unit}{suffix}"
        v /= base
    raise AssertionError("unreachable")


def percentile(values: Sequence[float], q: float) -> float:
    """The q-quantile (0..1) with linear interpolation between ranks (numpy's default)."""
    ordered = sorted(values)
    if not ordered:
        raise ValueError("no values")
    pos = q * (len(ordered) - 1)
    lo = int(math.floor(pos))
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def summary(values: Sequence[float]) -> Optional[Dict[str, float]]:
    """p50, p95, max and mean of finite values; None when there are none."""
    finite = [v for v in values if math.isfinite(v)]
    if not finite:
        return None
    return {"p50": percentile(finite, 0.5), "p95": percentile(finite, 0.95), "max": max(finite), "mean": statistics.fmean(finite)}


@dataclass(frozen=True)
class Fit:
    """y = intercept + slope * (x - x0), fitted by least squares."""

    x0: float
    intercept: float
    slope: float
    slope_stderr: float
    r2: float
    n: int

    def at(self, x: float) -> float:
        return self.intercept + self.slope * (x - self.x0)

    def crossing(self, y: float = 0.0, slope: Optional[float] = None) -> Optional[float]:
        """Where the line (or one through the same centre with ``slope``) reaches y; None if it never does going forward."""
        s = self.slope if slope is None else slope
        if s == 0:
            return None
        return self.x0 + (y - self.intercept) / s


def linear_fit(points: Iterable[Point]) -> Optional[Fit]:
    """Ordinary least squares over (x, y) points; None with fewer than 3 distinct x."""
    pts = [(x, y) for x, y in points if math.isfinite(y)]
    n = len(pts)
    if n < 3:
        return None
    mx = statistics.fmean(x for x, _ in pts)
    my = statistics.fmean(y for _, y in pts)
    sxx = sum((x - mx) ** 2 for x, _ in pts)
    if sxx == 0:
        return None
    sxy = sum((x - mx) * (y - my) for x, y in pts)
    syy = sum((y - my) ** 2 for _, y in pts)
    slope = sxy / sxx
    residual = max(0.0, syy - slope * sxy)
    r2 = 1.0 - residual / syy if syy > 0 else 1.0
    stderr = math.sqrt(residual / (n - 2) / sxx) if n > 2 else math.inf
    # The line through the centre of the points: intercept is the value at mx.
    return Fit(mx, my, slope, stderr, r2, n)


def confidence_word(r2: float) -> str:
    """How far to trust a straight line that explains r2 of the variation."""
    if r2 >= 0.9:
        return "high"
    if r2 >= 0.5:
        return "medium"
    return "low"


def hourly_profile(points: Iterable[Point]) -> List[Optional[float]]:
    """Mean value per UTC hour of day (index 0..23); None for hours without data."""
    sums = [0.0] * 24
    counts = [0] * 24
    for t, v in points:
        if math.isfinite(v):
            h = int(t % 86400) // 3600
            sums[h] += v
            counts[h] += 1
    return [sums[h] / counts[h] if counts[h] else None for h in range(24)]


def busiest_hours(profile: Sequence[Optional[float]], most: int = 3, spread: float = 0.01) -> List[int]:
    """The hours of day with the highest mean, busiest first; none when no
    hour differs from another by ``spread`` (a flat day has no busy hours)."""
    known = [(v, h) for h, v in enumerate(profile) if v is not None]
    if not known or max(v for v, _ in known) - min(v for v, _ in known) < spread:
        return []
    return [h for v, h in sorted(known, key=lambda item: (-item[0], item[1]))[:most]]


def downsample(points: Sequence[Point], bucket: float) -> List[Tuple[float, float, float]]:
    """(bucket start, mean, max) per ``bucket`` seconds, for plots."""
    out: List[Tuple[float, float, float]] = []
    cur: Optional[float] = None
    acc: List[float] = []
    for t, v in points:
        if not math.isfinite(v):
            continue
        b = t - t % bucket
        if cur is not None and b != cur and acc:
            out.append((cur, statistics.fmean(acc), max(acc)))
            acc = []
        cur = b
        acc.append(v)
    if cur is not None and acc:
        out.append((cur, statistics.fmean(acc), max(acc)))
    return out


@dataclass(frozen=True)
class Incident:
    """One stretch of an alert firing, from raw ALERTS samples."""

    labels: Tuple[Tuple[str, str], ...]
    start: float
    end: float  # the last sample plus one evaluation interval
    interval: float
    still_firing: bool

    @property
    def duration(self) -> float:
        return self.end - self.start


def incidents(samples: Dict[Tuple[Tuple[str, str], ...], List[float]], range_end: float, default_interval: float = 60.0) -> List[Incident]:
    """Split each series' firing timestamps into incidents at gaps wider than
    2.5 evaluation intervals (the median spacing of that series' samples)."""
    spacings = [b - a for ts in samples.values() for a, b in zip(sorted(ts), sorted(ts)[1:]) if b > a]
    fallback = statistics.median(spacings) if spacings else default_interval
    out: List[Incident] = []
    for labels, stamps in samples.items():
        ts = sorted(set(stamps))
        own = [b - a for a, b in zip(ts, ts[1:])]
        interval = statistics.median(own) if own else fallback
        first = prev = ts[0]
        for t in ts[1:] + [math.inf]:
            if t - prev > 2.5 * interval:
                end = prev + interval
                out.append(Incident(labels, first, end, interval, still_firing=t == math.inf and range_end - prev <= 2.5 * interval))
                first = t
            prev = t
    return sorted(out, key=lambda i: (i.start, i.labels))
