"""Availability, performance, target units (and OEE) per station from the rollups (docs/metrics.md).

The planned production time is cut where any station's target changes, and
each piece is labelled with the number of changes before it, so one
:func:`api.metrics.engine.station_totals` call gives every station's working
time and units per target period: exact, from rollups, like every figure.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg

from api.metrics.engine import DEFAULT_GAP_S, SiteFilter, StationTotals, station_totals
from takt.targets import Change, Span, boundaries, cut, in_force, target_units


@dataclass(slots=True)
class Oee:
    """Sums behind one station's (or a line's, the factory's) figures; see :meth:`figures`."""

    planned_s: float = 0.0
    working_s: float = 0.0
    # Working seconds in the parts with a target, and Σ ideal cycle time × units made there.
    targeted_working_s: float = 0.0
    ideal_s: float = 0.0
    units: int = 0
    target_units: float | None = None
    targeted: bool = False

    def add(self, other: Oee) -> None:
        self.planned_s += other.planned_s
        self.working_s += other.working_s
        self.targeted_working_s += other.targeted_working_s
        self.ideal_s += other.ideal_s
        self.units += other.units
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
        # Reject counts are not rolled up yet (docs/metrics.md, "Quality").
        return None

    @property
    def oee(self) -> float | None:
        a, p, q = self.availability, self.performance, self.quality
        return None if a is None or p is None or q is None else a * p * q / 10_000


def labelled_pieces(
    planned: Sequence[Span], changes: Mapping[str, Sequence[Change]]
) -> list[tuple[int, datetime, datetime]]:
    """The planned spans cut at every target change, labelled by how many changes precede them."""
    if not planned:
        return []
    lo, hi = planned[0][0], planned[-1][1]
    at = sorted({t for cs in changes.values() for t in boundaries(cs, lo, hi)})
    out = []
    for a, b in cut(planned, at):
        label = sum(1 for t in at if t <= a)
        out.append((label, a, b))
    return out


def from_totals(
    station: str,
    planned: Sequence[Span],
    pieces: Iterable[tuple[int, datetime, datetime]],
    totals: Mapping[tuple[int, str], StationTotals],
    changes: Sequence[Change],
) -> Oee:
    """One station's sums from its per-piece totals."""
    o = Oee(planned_s=sum((b - a).total_seconds() for a, b in planned))
    o.target_units = target_units(changes, planned)
    o.targeted = o.target_units is not None
    seen: set[int] = set()
    for label, a, _b in pieces:
        if label in seen:
            continue
        seen.add(label)
        t = totals.get((label, station))
        if t is None:
            continue
        o.working_s += t.working_s
        o.units += t.units
        ict = in_force(changes, a)
        if ict is not None:
            o.targeted_working_s += t.working_s
            o.ideal_s += ict * t.units
    return o


def station_oee(
    conn: psycopg.Connection[Any],
    planned: Sequence[Span],
    stations: Sequence[str],
    changes: Mapping[str, Sequence[Change]],
    *,
    site_id: SiteFilter = None,
    station_id: str | None = None,
    gap_s: float = DEFAULT_GAP_S,
) -> dict[str, Oee]:
    """Per station of ``stations``: its sums over the planned production time ``planned``."""
    pieces = labelled_pieces(planned, changes)
    totals = (
        station_totals(conn, pieces, site_id=site_id, station_id=station_id, gap_s=gap_s) if pieces else {}
    )
    return {s: from_totals(s, planned, pieces, totals, changes.get(s, ())) for s in stations}


def aggregate(parts: Iterable[Oee]) -> Oee:
    out = Oee()
    for p in parts:
        out.add(p)
    return out
