"""Targets, availability, performance, quality, OEE (docs/metrics.md, "Targets"): raw events, in Python."""

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


def _overlap(s: datetime, e: datetime, lo: datetime, hi: datetime) -> float:
    return max(0.0, (min(e, hi) - max(s, lo)).total_seconds())


def _clip_union(intervals: list[Span], spans: list[Span]) -> list[Span]:
    """The union of ``intervals`` intersected with the disjoint ``spans``."""
    out: list[Span] = []
    for a, b in spans:
        pieces = sorted((max(s, a), min(e, b)) for s, e in intervals if min(e, b) > max(s, a))
        for s, e in pieces:
            if out and s <= out[-1][1] and out[-1][0] >= a:
                out[-1] = (out[-1][0], max(out[-1][1], e))
            else:
                out.append((s, e))
    return out


Changes = list[tuple[datetime, float]]


def station_figures(
    events: list[Raw],
    changes: dict[str, Changes],
    planned: list[Span],
    gap: float,
    sku_changes: dict[str, dict[str, Changes]] | None = None,
) -> dict[str, dict[str, float | None]]:
    """Per station, the figures of docs/metrics.md, with the sums behind them (``units``, ``good``)."""
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
        wide = changes.get(station, [])
        skus = (sku_changes or {}).get(station, {})
        # Target periods: the planned spans cut at each of the station's change instants.
        cuts = sorted({c[0] for c in wide} | {c[0] for cs in skus.values() for c in cs})
        periods: dict[int, list[Span]] = {}
        for a, b in planned:
            points = [a, *[t for t in cuts if a < t < b], b]
            for s, e in itertools.pairwise(points):
                periods.setdefault(sum(1 for t in cuts if t <= s), []).append((s, e))
        units = good = 0
        target: float | None = None
        ideal = targeted_s = 0.0
        for spans in periods.values():
            at = spans[0][0]
            p_planned = sum((b - a).total_seconds() for a, b in spans)
            p_working = sum(_overlap(s, e, a, b) for a, b in spans for s, e in islands)
            made = [
                e for e in prod if e.event_type == "product_count" and _inside(spans, e.ts) and e.count > 0
            ]
            units += sum(e.count for e in made)
            good += sum(e.count - (e.rejected or 0) for e in made)
            station_ict = _ict(wide, at)
            icts = [(_ict(skus.get(e.sku, []), at) if e.sku else None) or station_ict for e in made]
            n = sum(e.count for e in made)
            if made and all(i is not None for i in icts):
                p_ideal = sum(e.count * (i or 0.0) for e, i in zip(made, icts, strict=True))
                p_target = p_planned * n / p_ideal
            elif not made and station_ict is not None:
                p_ideal, p_target = 0.0, p_planned / station_ict
            else:
                continue
            target = (target or 0.0) + p_target
            ideal += p_ideal
            targeted_s += p_working
        availability = working_s / planned_s * 100 if planned_s > 0 else None
        performance = ideal / targeted_s * 100 if target is not None and targeted_s > 0 else None
        quality = good / units * 100 if units else None
        oee: float | None = None
        if availability is not None and performance is not None:
            if performance == 0:
                oee = 0.0
            elif quality is not None:
                oee = availability * performance * quality / 1e4
        out[station] = {
            "target_units": target,
            "availability_percentage": availability,
            "performance_percentage": performance,
            "quality_percentage": quality,
            "oee_percentage": oee,
            "rejected_units": units - good,
            "units": units,
            "good": good,
        }
    return out
