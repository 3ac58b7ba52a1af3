"""Targets in force, target units, quality and OEE: pure, no I/O (docs/metrics.md, "Targets").

A station's targets are changes ``(effective_from, ideal_cycle_time_s)``, one
list station-wide and one per SKU: the target in force at ``t`` is the change
with the latest ``effective_from`` <= ``t`` (ties: the one recorded last, i.e.
later in the list). The alerts' "behind target" rules use :func:`target_units`
(station-wide); the metrics sum a station's target periods with
:func:`period_target`, which is the same where no SKU has a target.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

Span = tuple[datetime, datetime]


@dataclass(frozen=True, slots=True)
class Change:
    """One target change: from ``effective_from`` on, ``ideal_cycle_time_s`` seconds per unit."""

    effective_from: datetime
    ideal_cycle_time_s: float


def ordered(changes: Iterable[Change]) -> list[Change]:
    """Changes by ``effective_from``; of several at the same instant only the last one given counts."""
    latest: dict[datetime, Change] = {}
    for c in changes:
        latest[c.effective_from] = c
    return [latest[k] for k in sorted(latest)]


def in_force(changes: Sequence[Change], at: datetime) -> float | None:
    """The ideal cycle time in force at ``at`` (None before the first change)."""
    current: float | None = None
    for c in ordered(changes):
        if c.effective_from > at:
            break
        current = c.ideal_cycle_time_s
    return current


def pieces(changes: Sequence[Change], spans: Iterable[Span]) -> list[tuple[datetime, datetime, float | None]]:
    """``spans`` cut where a change takes effect, each piece with the ideal cycle time in force."""
    steps = ordered(changes)
    out: list[tuple[datetime, datetime, float | None]] = []
    for lo, hi in spans:
        a = lo
        while a < hi:
            current: float | None = None
            nxt = hi
            for c in steps:
                if c.effective_from <= a:
                    current = c.ideal_cycle_time_s
                else:
                    nxt = min(nxt, c.effective_from)
                    break
            out.append((a, nxt, current))
            a = nxt
    return out


def target_units(changes: Sequence[Change], spans: Iterable[Span]) -> float | None:
    """Units the targets ask for over ``spans`` (planned production time): Σ seconds / cycle time.

    None when no target is in force anywhere in them (time without a target asks for nothing).
    """
    total = 0.0
    targeted = False
    for a, b, ict in pieces(changes, spans):
        if ict is not None:
            targeted = True
            total += (b - a).total_seconds() / ict
    return total if targeted else None


def boundaries(changes: Iterable[Change], lo: datetime, hi: datetime) -> list[datetime]:
    """The instants inside (lo, hi) where a target changes."""
    return sorted({c.effective_from for c in changes if lo < c.effective_from < hi})


def cut(spans: Iterable[Span], at: Sequence[datetime]) -> list[Span]:
    """``spans`` cut at the instants ``at`` (sorted), so each piece has one target per station."""
    out: list[Span] = []
    for lo, hi in spans:
        a = lo
        for t in at:
            if a < t < hi:
                out.append((a, t))
                a = t
        out.append((a, hi))
    return out


@dataclass(frozen=True, slots=True)
class StationTargets:
    """One station's target changes: station-wide (``station``) and per SKU (``skus``)."""

    station: Sequence[Change] = ()
    skus: Mapping[str, Sequence[Change]] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.station) or any(self.skus.values())

    def instants(self) -> list[datetime]:
        """Every instant where one of the station's targets changes, sorted."""
        return sorted({c.effective_from for cs in (self.station, *self.skus.values()) for c in cs})

    def at(self, t: datetime) -> tuple[float | None, dict[str, float]]:
        """The station-wide ideal cycle time in force at ``t`` and those of the SKUs with one."""
        skus = {k: v for k, cs in self.skus.items() if (v := in_force(cs, t)) is not None}
        return in_force(self.station, t), skus


def unit_ict(station_ict: float | None, sku_icts: Mapping[str, float], sku: str) -> float | None:
    """A unit's ideal cycle time: its SKU's target, else (no SKU: ``sku`` '') the station-wide one."""
    own = sku_icts.get(sku) if sku else None
    return own if own is not None else station_ict


@dataclass(frozen=True, slots=True)
class PeriodTarget:
    """A targeted period's ideal time (Σ ideal cycle time × units) and target units."""

    ideal_s: float
    target_units: float


def period_target(
    station_ict: float | None, sku_icts: Mapping[str, float], units: Mapping[str, int], planned_s: float
) -> PeriodTarget | None:
    """One target period (every target constant in it): None unless it is targeted.

    ``units`` per SKU ('' for none) made in the period's planned production
    time ``planned_s``. Targeted: a station-wide target is in force, or units
    were made and each has an ideal cycle time. Target units: the planned time
    at the mean ideal cycle time of the units made, or, without units, at the
    station-wide one (docs/metrics.md, "Target periods").
    """
    made = {k: n for k, n in units.items() if n > 0}
    if made:
        icts = {k: unit_ict(station_ict, sku_icts, k) for k in made}
        ideal = 0.0
        for k, n in made.items():
            ict = icts[k]
            if ict is None:
                return None  # no station-wide target either (it would have been the fallback)
            ideal += ict * n
        return PeriodTarget(ideal, planned_s * sum(made.values()) / ideal)
    if station_ict is None:
        return None
    return PeriodTarget(0.0, planned_s / station_ict)


def quality(units: int, rejected: int) -> float | None:
    """Good units / all units × 100 (good = units − rejected); None without units."""
    return (units - rejected) / units * 100 if units > 0 else None


def oee(availability: float | None, performance: float | None, quality_: float | None) -> float | None:
    """Availability × performance × quality / 10⁴ (percentages); 0 when performance is 0 (no units made,
    so no quality); None where a figure is missing otherwise."""
    if availability is None or performance is None:
        return None
    if performance == 0:
        return 0.0
    return None if quality_ is None else availability * performance * quality_ / 10_000
