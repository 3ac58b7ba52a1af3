"""Interval maths on half-open ``[start, end)`` intervals: pure, no I/O."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import TypeVar

T = TypeVar("T", float, datetime)


def clip(start: T, end: T, lo: T, hi: T) -> tuple[T, T] | None:
    """The part of [start, end) inside [lo, hi), or None when empty."""
    s, e = max(start, lo), min(end, hi)
    return (s, e) if e > s else None


def union(intervals: Iterable[tuple[T, T]]) -> list[tuple[T, T]]:
    """Sorted, disjoint intervals covering the same time; touching ones merge."""
    merged: list[tuple[T, T]] = []
    for s, e in sorted(i for i in intervals if i[1] > i[0]):
        if merged and s <= merged[-1][1]:
            if e > merged[-1][1]:
                merged[-1] = (merged[-1][0], e)
        else:
            merged.append((s, e))
    return merged


def union_seconds(intervals: Iterable[tuple[datetime, datetime]]) -> float:
    return sum((e - s).total_seconds() for s, e in union(intervals))


def subtract(
    windows: list[tuple[datetime, datetime]], holes: list[tuple[datetime, datetime]]
) -> list[tuple[datetime, datetime]]:
    """``windows`` minus ``holes``, both as half-open intervals."""
    result: list[tuple[datetime, datetime]] = []
    cut = union(holes)
    for s, e in union(windows):
        cursor = s
        for hs, he in cut:
            if he <= cursor or hs >= e:
                continue
            if hs > cursor:
                result.append((cursor, hs))
            cursor = max(cursor, he)
        if cursor < e:
            result.append((cursor, e))
    return result


def intersect(
    a: list[tuple[datetime, datetime]], b: list[tuple[datetime, datetime]]
) -> list[tuple[datetime, datetime]]:
    out = [c for x in union(a) for y in union(b) if (c := clip(x[0], x[1], y[0], y[1])) is not None]
    return union(out)


def hours(seconds: timedelta | float) -> float:
    return (seconds.total_seconds() if isinstance(seconds, timedelta) else seconds) / 3600.0


def slices(
    spans: list[tuple[datetime, datetime]], buckets: list[tuple[datetime, datetime]]
) -> list[list[tuple[datetime, datetime]]]:
    """Per bucket (sorted, disjoint), the parts of ``spans`` inside it: one sweep, not one
    :func:`intersect` per bucket (a month of hours against a month of shifts)."""
    merged = union(spans)
    out: list[list[tuple[datetime, datetime]]] = []
    i = 0
    for lo, hi in buckets:
        while i < len(merged) and merged[i][1] <= lo:
            i += 1
        parts = []
        j = i
        while j < len(merged) and merged[j][0] < hi:
            if (c := clip(merged[j][0], merged[j][1], lo, hi)) is not None:
                parts.append(c)
            j += 1
        out.append(parts)
    return out
