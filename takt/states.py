"""How state events become time: the one rule every state view follows (docs/metrics.md, "States").

A state event (``working``, ``idle``, ``absent``) is one of three kinds, told
apart by its ``duration_s`` (docs/contract.md):

* **change** (``duration_s == 0``): the state *began* at ``timestamp`` and was
  still going on when the gateway sent it. It adds no time by itself: the
  segments that follow carry the time. It keeps the state in force.
* **segment** (``duration_s > 0``): closed time, ``[timestamp, timestamp + duration_s)``.
* **untimed** (no ``duration_s``; HTTP clients, the seed): lasts until the
  same partition's next state event, capped at ``max_gap_s``; the latest one
  lasts 0 until a later one arrives (``max_gap_s`` when a later one exists
  beyond the rows looked at).

Totals (rollups, metrics) count only closed time: segments, and untimed states
once their successor is known. "Now" views ask which state is **in force** at
an instant ``at`` in each partition: the state of the latest state event that
began at or before ``at`` (on a tie, the one reaching furthest), provided the
partition was last heard from less than ``max_gap_s`` before ``at`` (heard =
the latest end of its segments, or timestamp of its other events, up to
``at``). A gateway that falls silent therefore keeps its workers' last states
in force for at most ``max_gap_s``.

The partition ("the same worker") is ``(worker_id, shadow, model_version if
shadow)``, and per ``station_id`` too when ``worker_id = 'unknown'``.

This module holds the rule twice, in the same words: as pure Python (the
reference, and what the tests compare against) and as SQL fragments for the
queries that apply it inside PostgreSQL (the rollup refresher, the dashboard's
timelines and "now" view).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

STATE_TYPES = ("working", "idle", "absent")
# The longest state an explicit duration_s can describe (takt.contract.MAX_DURATION_S).
MAX_DURATION_S = 86_400.0


class StateKind(StrEnum):
    CHANGE = "change"
    SEGMENT = "segment"
    UNTIMED = "untimed"


def kind_of(duration_s: float | None) -> StateKind:
    if duration_s is None:
        return StateKind.UNTIMED
    return StateKind.CHANGE if duration_s == 0 else StateKind.SEGMENT


def effective_duration(
    duration_s: float | None, next_gap_s: float | None, *, has_later: bool, max_gap_s: float
) -> float:
    """Seconds a state event counts in totals.

    ``next_gap_s``: seconds to the partition's next state event among the rows
    looked at (None: none there); ``has_later``: a later one exists beyond them.
    """
    if duration_s is not None:
        return duration_s
    if next_gap_s is not None:
        return min(next_gap_s, max_gap_s)
    return max_gap_s if has_later else 0.0


@dataclass(frozen=True, slots=True)
class StateEvent:
    """One state event of one partition."""

    ts: datetime
    state: str
    duration_s: float | None
    order: str = ""  # tie-break among equal timestamps (the event id)

    @property
    def reach(self) -> datetime:
        """The latest instant this event says something about."""
        return self.ts + timedelta(seconds=self.duration_s or 0.0)


def effective_durations(events: Sequence[StateEvent], max_gap_s: float) -> list[float]:
    """Durations of one partition's events (in the given order), as the refresher derives them."""
    ordered = sorted(range(len(events)), key=lambda i: (events[i].ts, events[i].order))
    out = [0.0] * len(events)
    for pos, i in enumerate(ordered):
        nxt = events[ordered[pos + 1]].ts if pos + 1 < len(ordered) else None
        gap = None if nxt is None else (nxt - events[i].ts).total_seconds()
        out[i] = effective_duration(events[i].duration_s, gap, has_later=False, max_gap_s=max_gap_s)
    return out


@dataclass(frozen=True, slots=True)
class InForce:
    """The state in force at an instant, and when its partition was last heard from (at most then)."""

    state: str
    heard: datetime


def in_force(events: Iterable[StateEvent], at: datetime, max_gap_s: float) -> InForce | None:
    """The state in force at ``at`` in one partition, or None (nothing recent enough)."""
    seen = [e for e in events if e.ts <= at]
    if not seen:
        return None
    heard = min(max(e.reach for e in seen), at)
    if (at - heard).total_seconds() >= max_gap_s:
        return None
    latest = max(seen, key=lambda e: (e.ts, e.reach, e.order))
    return InForce(latest.state, heard)


# -- SQL ------------------------------------------------------------------------------------------


def partition_sql(alias: str = "") -> str:
    """The partition as SQL expressions (for PARTITION BY / DISTINCT ON)."""
    a = f"{alias}." if alias else ""
    return (
        f"{a}worker_id, CASE WHEN {a}worker_id = 'unknown' THEN {a}station_id ELSE '' END, {a}shadow, "
        f"CASE WHEN {a}shadow THEN coalesce({a}model_version, '') ELSE '' END"
    )


def effective_duration_sql(duration: str, ts: str, next_ts: str, has_later: str, gap: str) -> str:
    """:func:`effective_duration` as a SQL expression over the given column expressions."""
    return (
        f"CASE WHEN {duration} IS NOT NULL THEN {duration} "
        f"WHEN {next_ts} IS NOT NULL "
        f"THEN least(extract(epoch FROM {next_ts} - {ts})::double precision, {gap}) "
        f"WHEN {has_later} THEN {gap} ELSE 0 END"
    )


def next_ts_sql(alias: str = "", partition_by: str | None = None) -> str:
    """The timestamp of the partition's next state event (ties broken by event id), over state events
    of the given alias: ``partition_by`` None is :func:`partition_sql`, '' a single partition."""
    a = f"{alias}." if alias else ""
    by = partition_sql(alias) if partition_by is None else partition_by
    over = f"PARTITION BY {by} " if by else ""
    return f"lead({a}ts) OVER ({over}ORDER BY {a}ts, {a}event_id)"


def later_sql(same_partition: str, alias: str = "p") -> str:
    """A later state event exists in the partition of the row ``alias`` (which has ``ts`` and
    ``event_id``): ``same_partition`` restricts events ``l`` to that partition."""
    return (
        f"EXISTS (SELECT 1 FROM events l WHERE {same_partition} AND l.event_type <> 'product_count' "
        f"AND l.ts >= {alias}.ts AND (l.ts, l.event_id) > ({alias}.ts, {alias}.event_id))"
    )


def derived_duration_sql(alias: str, has_later: str, gap: str = "%(gap)s") -> str:
    """:func:`effective_duration` of the row ``alias`` (columns ``duration_s``, ``ts``, ``next_ts``
    from :func:`next_ts_sql`), ``has_later`` (:func:`later_sql`, or ``false``)."""
    a = f"{alias}." if alias else ""
    return effective_duration_sql(f"{a}duration_s", f"{a}ts", f"{a}next_ts", has_later, gap)


def reach_sql(alias: str = "") -> str:
    a = f"{alias}." if alias else ""
    return f"{a}ts + coalesce({a}duration_s, 0) * interval '1 second'"


def in_force_sql(where: str = "TRUE") -> str:
    """Rows (worker_id, station_id, state, heard): the production partitions with a state in force
    at ``%(at)s`` (:func:`in_force`), among state events matching ``where`` (alias ``e``).

    Parameters: ``at``, ``gap`` (max_gap_s), ``lookback`` (:func:`lookback_s`)."""
    return f"""
    SELECT worker_id, station_id, event_type, heard FROM (
        SELECT e.worker_id, e.station_id, e.event_type,
               least(max({reach_sql("e")}) OVER p, %(at)s) AS heard,
               row_number() OVER (p ORDER BY e.ts DESC, {reach_sql("e")} DESC, e.event_id::text DESC) AS rank
        FROM events e
        WHERE e.event_type <> 'product_count' AND NOT e.shadow AND ({where})
          AND e.ts <= %(at)s AND e.ts > %(at)s - %(lookback)s * interval '1 second'
        WINDOW p AS (PARTITION BY e.worker_id, CASE WHEN e.worker_id = 'unknown' THEN e.station_id END)
    ) ranked
    WHERE rank = 1 AND %(at)s - heard < %(gap)s * interval '1 second'
    """


def lookback_s(max_gap_s: float) -> float:
    """How far before an instant a state event may begin and still be in force at it."""
    return MAX_DURATION_S + max_gap_s
