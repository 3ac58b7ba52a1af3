"""Targets in force, target units, quality and OEE: pure, no I/O (docs/metrics.md, "Targets").

A station's targets are changes ``(effective_from, ideal_cycle_time_s)``, one
list station-wide and one per SKU: the target in force at ``t`` is the change
with the latest ``effective_from`` <= ``t`` (ties: the one recorded last, i.e.
later in the list). Every figure that asks what the targets ask for (station
metrics, the hour-by-hour board, the andon wallboard, the alerts' "behind
target" rules) sums a station's target periods with :class:`Periods`, and
:func:`period_target` gives each period's target: SKU-weighted by the units
made (docs/metrics.md, "Target periods").
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Iterator, Mapping, Sequence
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


@dataclass(slots=True)
class Period:
    """One target period's sums: planned production time, working time, units per SKU ('' for none).

    ``at`` is an instant inside it (every target is constant in a period)."""

    at: datetime
    planned_s: float = 0.0
    working_s: float = 0.0
    units: dict[str, int] = field(default_factory=dict)


class Periods:
    """A station's target periods, summed as time and units are added: its planned production
    time cut at every instant where one of its own targets changes (docs/metrics.md, "Target
    periods"). Time and units are added at an instant of the piece they belong to; a piece must
    not straddle a change of the station's targets (cut it at :meth:`StationTargets.instants`)."""

    def __init__(self, targets: StationTargets) -> None:
        self._targets = targets
        self._own = targets.instants()
        self._by: dict[int, Period] = {}

    def _period(self, t: datetime) -> Period:
        k = bisect.bisect_right(self._own, t)
        p = self._by.get(k)
        if p is None:
            p = self._by[k] = Period(t)
        return p

    def add_planned(self, a: datetime, b: datetime) -> None:
        self._period(a).planned_s += (b - a).total_seconds()

    def add_working(self, at: datetime, seconds: float) -> None:
        self._period(at).working_s += seconds

    def add_units(self, at: datetime, sku: str, units: int) -> None:
        made = self._period(at).units
        made[sku] = made.get(sku, 0) + units

    def targets(self) -> Iterator[tuple[Period, PeriodTarget | None]]:
        """Each period with its target (None: not targeted)."""
        for p in self._by.values():
            station_ict, sku_icts = self._targets.at(p.at)
            yield p, period_target(station_ict, sku_icts, p.units, p.planned_s)

    def target_units(self) -> float | None:
        """Σ target units of the targeted periods; None without one."""
        asked = [t.target_units for _, t in self.targets() if t is not None]
        return sum(asked) if asked else None


def window_target(
    targets: StationTargets, planned: Sequence[Span], units: Iterable[tuple[datetime, str, int]] = ()
) -> float | None:
    """The target units of a station over the planned production time ``planned`` (sorted, disjoint
    spans), given the units it made: ``(instant, SKU, units)``, counted where the instant lies
    inside ``planned`` (their SKU mix weights each period's target). None when no period is targeted.
    """
    spans = cut(planned, targets.instants())
    periods = Periods(targets)
    for a, b in spans:
        periods.add_planned(a, b)
    starts = [a for a, _ in planned]
    for t, sku, n in units:
        i = bisect.bisect_right(starts, t) - 1
        if i >= 0 and t < planned[i][1]:
            periods.add_units(t, sku, n)
    return periods.target_units()


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
