"""Targets, availability and performance (docs/metrics.md, "Targets") straight from raw events, in Python."""

from __future__ import annotations

import itertools
from datetime import datetime, time, timedelta

from tests.api.reference import STATES, Raw, effective_durations

Span = tuple[datetime, datetime]


def day_shift(lo: datetime, hi: datetime, start: time, end: time, brk: tuple[time, time]) -> list[Span]:
    """Planned production time of [lo, hi) for one UTC day shift with one break (same day, end > start)."""
    out: list[Span] = []
    day = (lo - timedelta(days=1)).date()
    while day <= hi.date():
        bounds = [datetime.combine(day, t, tzinfo=lo.tzinfo) for t in (start, *brk, end)]
        for s, e in ((bounds[0], bounds[1]), (bounds[2], bounds[3])):
            a, b = max(s, lo), min(e, hi)
            if a < b:
                out.append((a, b))
        day += timedelta(days=1)
    return out


def _ict(changes: list[tuple[datetime, float]], at: datetime) -> float | None:
    best: tuple[datetime, float] | None = None
    for c in changes:  # the last change given wins among equal effective_from
        if c[0] <= at and (best is None or c[0] >= best[0]):
            best = c
    return None if best is None else best[1]


def _inside(spans: list[Span], at: datetime) -> bool:
    return any(a <= at < b for a, b in spans)


def _clip_union(intervals: list[Span], spans: list[Span]) -> list[Span]:
    """The union of ``intervals`` intersected with the disjoint ``spans``."""
    out = []
    for a, b in spans:
        pieces = sorted((max(s, a), min(e, b)) for s, e in intervals if min(e, b) > max(s, a))
        for s, e in pieces:
            if out and s <= out[-1][1] and out[-1][0] >= a:
                out[-1] = (out[-1][0], max(out[-1][1], e))
            else:
                out.append((s, e))
    return out


def station_figures(
    events: list[Raw], changes: dict[str, list[tuple[datetime, float]]], planned: list[Span], gap: float
) -> dict[str, dict[str, float | None]]:
    unique = list({e.event_id: e for e in events}.values())
    eff = effective_durations(unique, gap)
    planned_s = sum((b - a).total_seconds() for a, b in planned)
    out: dict[str, dict[str, float | None]] = {}
    for station in sorted({e.station_id for e in unique}):
        prod = [e for e in unique if e.station_id == station and not e.shadow]
        working = [
            (e.ts, e.ts + timedelta(seconds=eff[e.event_id]))
            for e in prod
            if e.event_type == "working" and e.event_type in STATES
        ]
        islands = _clip_union(working, planned)
        working_s = sum((b - a).total_seconds() for a, b in islands)
        cs = changes.get(station, [])
        first = min((c[0] for c in cs), default=None)
        targeted_s = (
            0.0 if first is None else sum(max(0.0, (b - max(a, first)).total_seconds()) for a, b in islands)
        )
        ideal = 0.0
        for e in prod:
            if e.event_type == "product_count" and _inside(planned, e.ts):
                ict = _ict(cs, e.ts)
                if ict is not None:
                    ideal += ict * e.count
        target: float | None = None
        if cs:
            # Integrate 1 / cycle time second by second's boundaries: cut at every change.
            cuts = sorted({c[0] for c in cs})
            for a, b in planned:
                points = [a, *[t for t in cuts if a < t < b], b]
                for s, e in itertools.pairwise(points):
                    ict = _ict(cs, s)
                    if ict is not None:
                        target = (target or 0.0) + (e - s).total_seconds() / ict
        out[station] = {
            "target_units": target,
            "availability_percentage": working_s / planned_s * 100 if planned_s > 0 else None,
            "performance_percentage": (
                ideal / targeted_s * 100 if target is not None and targeted_s > 0 else None
            ),
        }
    return out
