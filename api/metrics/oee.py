"""Availability, performance, quality, target units and OEE per station from the rollups (docs/metrics.md).

Each planned production time ("group": a window, or one hour of a board) is
cut where any station's target (station-wide or SKU) changes, and each piece
is labelled, so one :func:`api.metrics.engine.station_totals` call (working
time) and one :func:`api.metrics.units.unit_totals` call (units, rejects per
SKU) give every station's sums per piece: exact, from rollups, like every
figure. A station's pieces are then summed per target period (its own
changes only, :class:`takt.targets.Periods`) and
:func:`takt.targets.period_target` gives each period's ideal time and target
units: the one rule the andon wallboard and the alerts use too.
"""

from __future__ import annotations

import bisect
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg

from api.metrics.engine import DEFAULT_GAP_S, Labelled, SiteFilter, snapshot, station_totals
from api.metrics.units import UnitTotals, unit_totals
from takt import targets as math
from takt.targets import Span, StationTargets, cut


@dataclass(slots=True)
class Oee:
    """Sums behind one station's (or a line's, the factory's) figures."""

    planned_s: float = 0.0
    working_s: float = 0.0
    # Working seconds in the targeted periods, and their ideal time (Σ ideal cycle time × units).
    targeted_working_s: float = 0.0
    ideal_s: float = 0.0
    # Units made in the planned production time, of them rejected, and of them with a reported reject count.
    units: int = 0
    rejected: int = 0
    reported: int = 0
    target_units: float | None = None
    targeted: bool = False

    def add(self, other: Oee) -> None:
        self.planned_s += other.planned_s
        self.working_s += other.working_s
        self.targeted_working_s += other.targeted_working_s
        self.ideal_s += other.ideal_s
        self.units += other.units
        self.rejected += other.rejected
        self.reported += other.reported
        if other.target_units is not None:
            self.target_units = (self.target_units or 0.0) + other.target_units
        self.targeted = self.targeted or other.targeted

    @property
    def availability(self) -> float | None:
        return self.working_s / self.planned_s * 100 if self.planned_s > 0 else None

    @property
    def performance(self) -> float | None:
        if not self.targeted or self.targeted_working_s <= 0:
            return None
        return self.ideal_s / self.targeted_working_s * 100

    @property
    def quality(self) -> float | None:
        return math.quality(self.units, self.rejected)

    @property
    def quality_reported(self) -> float | None:
        """The share of units whose event reported a reject count (docs/metrics.md, "Units, rejects")."""
        return self.reported / self.units * 100 if self.units > 0 else None

    @property
    def oee(self) -> float | None:
        return math.oee(self.availability, self.performance, self.quality)


def labelled_pieces(
    groups: Sequence[Sequence[Span]], instants: Sequence[datetime]
) -> tuple[list[Labelled], dict[int, int]]:
    """Each group's spans cut at ``instants`` (sorted); a label per group and number of instants
    before the piece, and the group of each label."""
    pieces: list[Labelled] = []
    group_of: dict[int, int] = {}
    base = 0
    for g, planned in enumerate(groups):
        if not planned:
            continue
        lo, hi = planned[0][0], planned[-1][1]
        at = [t for t in instants if lo < t < hi]
        for a, b in cut(planned, at):
            label = base + bisect.bisect_right(at, a)
            group_of[label] = g
            pieces.append((label, a, b))
        base += len(at) + 1
    return pieces, group_of


def from_pieces(
    station: str,
    pieces: Iterable[Labelled],
    working: Mapping[int, float],
    units: Mapping[int, Mapping[str, UnitTotals]],
    targets: StationTargets,
) -> Oee:
    """One station's sums over one group's pieces (per label: its working seconds and unit totals)."""
    o = Oee()
    periods = math.Periods(targets)
    seen: set[int] = set()
    for label, a, b in pieces:
        periods.add_planned(a, b)
        if label in seen:
            continue
        seen.add(label)
        periods.add_working(a, working.get(label, 0.0))
        for sku, u in units.get(label, {}).items():
            periods.add_units(a, sku, u.units)
            o.units += u.units
            o.rejected += u.rejected
            o.reported += u.reported
    for p, t in periods.targets():
        o.planned_s += p.planned_s
        o.working_s += p.working_s
        if t is None:
            continue
        o.targeted = True
        o.targeted_working_s += p.working_s
        o.ideal_s += t.ideal_s
        o.target_units = (o.target_units or 0.0) + t.target_units
    return o


def group_oee(
    conn: psycopg.Connection[Any],
    groups: Sequence[Sequence[Span]],
    stations: Sequence[str],
    targets: Mapping[str, StationTargets],
    *,
    site_id: SiteFilter = None,
    station_id: str | None = None,
    gap_s: float = DEFAULT_GAP_S,
) -> list[dict[str, Oee]]:
    """Per group of planned spans (e.g. the hours of a board), per station of ``stations``: its sums."""
    instants = sorted({t for st in stations for t in targets.get(st, StationTargets()).instants()})
    pieces, group_of = labelled_pieces(groups, instants)
    working: dict[str, dict[int, float]] = defaultdict(dict)
    units: dict[str, dict[int, dict[str, UnitTotals]]] = defaultdict(lambda: defaultdict(dict))
    if pieces:
        with snapshot(conn):
            totals = station_totals(conn, pieces, site_id=site_id, station_id=station_id, gap_s=gap_s)
            made = unit_totals(conn, pieces, site_id=site_id, station_id=station_id)
        for (label, st), t in totals.items():
            working[st][label] = t.working_s
        for (label, st, sku), u in made.items():
            units[st][label][sku] = u
    by_group: dict[int, list[Labelled]] = defaultdict(list)
    for piece in pieces:
        by_group[group_of[piece[0]]].append(piece)
    none = StationTargets()
    return [
        {
            st: from_pieces(st, by_group.get(g, []), working[st], units[st], targets.get(st, none))
            for st in stations
        }
        for g in range(len(groups))
    ]


def station_oee(
    conn: psycopg.Connection[Any],
    planned: Sequence[Span],
    stations: Sequence[str],
    targets: Mapping[str, StationTargets],
    *,
    site_id: SiteFilter = None,
    station_id: str | None = None,
    gap_s: float = DEFAULT_GAP_S,
) -> dict[str, Oee]:
    """Per station of ``stations``: its sums over the planned production time ``planned``."""
    return group_oee(conn, [planned], stations, targets, site_id=site_id, station_id=station_id, gap_s=gap_s)[
        0
    ]


def aggregate(parts: Iterable[Oee]) -> Oee:
    out = Oee()
    for p in parts:
        out.add(p)
    return out
