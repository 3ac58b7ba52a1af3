"""Read-only SQL behind the dashboard's own endpoints: timelines, recent events, change marker.

Durations follow the one state rule (``takt.states``, docs/metrics.md): closed
time is ``effective_duration_s`` once the rollup refresher has derived it, and
the same rule applied here until then, so a timeline shows a new event before
the refresher has run; the state in force now is drawn from where its worker
was last heard up to now, flagged ``open``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import psycopg

from takt import states

Subject = Literal["worker", "station"]
# One site, a site-scoped token's set of sites (api.access), or None for all.
SiteFilter = str | frozenset[str] | None


def _sites(site_id: SiteFilter) -> list[str] | None:
    """The filter as the ``%(site)s`` array parameter of ``site_id = ANY(...)`` (None: no filter)."""
    if site_id is None:
        return None
    return [site_id] if isinstance(site_id, str) else sorted(site_id)


@dataclass(frozen=True, slots=True)
class Segment:
    start: datetime
    end: datetime
    state: str
    worker_id: str
    station_id: str
    # The worker's latest state, still going on: not yet counted by the metrics.
    open: bool = False


@dataclass(frozen=True, slots=True)
class RecentEvent:
    event_id: str
    timestamp: datetime
    received_at: datetime
    worker_id: str
    station_id: str
    event_type: str
    confidence: float
    count: int
    duration_s: float | None
    model_version: str | None
    gateway_id: str | None
    site_id: str | None
    shadow: bool


def _scope(subject: Subject, site_id: SiteFilter) -> tuple[str, dict[str, Any]]:
    """SQL selecting the workers whose states make up the subject's timeline.

    A station's timeline needs each of its workers' *whole* state sequence,
    because a state ends at that worker's next state event, wherever it is.
    """
    site = " AND site_id = ANY(%(site)s::text[])" if site_id else ""
    if subject == "worker":
        return "worker_id = %(subject_id)s" + site, {"site": _sites(site_id)}
    return (
        "worker_id IN (SELECT DISTINCT worker_id FROM events WHERE station_id = %(subject_id)s"
        " AND ts >= %(lo)s - %(lookback)s * interval '1 second' AND ts < %(hi)s" + site + ")" + site,
        {"site": _sites(site_id)},
    )


def timeline(
    conn: psycopg.Connection[Any],
    subject: Subject,
    subject_id: str,
    lo: datetime,
    hi: datetime,
    *,
    max_gap_s: float,
    site_id: SiteFilter = None,
) -> list[Segment]:
    """State segments of a worker or station clipped to [lo, hi), adjacent equal states merged."""
    scope, params = _scope(subject, site_id)
    own = "worker_id = %(subject_id)s" if subject == "worker" else "station_id = %(subject_id)s"
    # Closed time, as the metrics count it (the refresher's derived duration, or the same rule
    # applied here until it has run), then the state in force now from where it was last heard.
    derived = states.derived_duration_sql("", "false")
    params = {
        **params,
        "subject_id": subject_id,
        "lo": lo,
        "hi": hi,
        "gap": max_gap_s,
        "lookback": states.lookback_s(max_gap_s),
        "at": datetime.now(UTC),
    }
    rows = conn.execute(
        f"""
        WITH timed AS (
            SELECT ts, worker_id, station_id, event_type, duration_s, effective_duration_s,
                   {states.next_ts_sql()} AS next_ts
            FROM events
            WHERE event_type <> 'product_count' AND NOT shadow
              AND ts >= %(lo)s - %(lookback)s * interval '1 second' AND ts < %(hi)s
              AND {scope}
        ), spans AS (
            SELECT ts AS starts, ts + coalesce(effective_duration_s, {derived}) * interval '1 second' AS ends,
                   event_type, worker_id, station_id, false AS open
            FROM timed WHERE {own}
            UNION ALL
            SELECT heard, %(at)s, event_type, worker_id, station_id, true
            FROM ({states.in_force_sql(scope)}) now_in_force WHERE {own}
        )
        SELECT greatest(starts, %(lo)s), least(ends, %(hi)s), event_type, worker_id, station_id, open
        FROM spans WHERE ends > %(lo)s AND starts < %(hi)s AND ends > starts
        ORDER BY starts, open
        """,
        params,
    ).fetchall()
    segments: list[Segment] = []
    for start, end, state, worker, station, is_open in rows:
        if end <= start:
            continue
        last = segments[-1] if segments else None
        if (
            last is not None
            and last.state == state
            and last.worker_id == worker
            and last.station_id == station
            and start - last.end <= timedelta(seconds=1)
        ):
            segments[-1] = Segment(last.start, max(last.end, end), state, worker, station, bool(is_open))
        else:
            segments.append(Segment(start, end, state, worker, station, bool(is_open)))
    return segments


def working_now(
    conn: psycopg.Connection[Any], *, max_gap_s: float, site_id: SiteFilter = None
) -> list[tuple[str, str]]:
    """(worker, station) of the people working right now: the partitions whose state in force is
    ``working`` (takt.states). A named worker appears once; ``unknown`` once per station."""
    rows = conn.execute(
        states.in_force_sql("e.site_id = ANY(%(site)s::text[])" if site_id else "TRUE"),
        {
            "at": datetime.now(UTC),
            "gap": max_gap_s,
            "lookback": states.lookback_s(max_gap_s),
            "site": _sites(site_id),
        },
    ).fetchall()
    return sorted((str(r[0]), str(r[1])) for r in rows if r[2] == "working")


def workers_at_station(
    conn: psycopg.Connection[Any], station_id: str, lo: datetime, hi: datetime, site_id: SiteFilter = None
) -> list[str]:
    """Workers seen at a station in [lo, hi): what the worker table shows when a station is picked."""
    site = " AND site_id = ANY(%(site)s::text[])" if site_id else ""
    rows = conn.execute(
        f"SELECT DISTINCT worker_id FROM events WHERE station_id = %(station)s AND ts >= %(lo)s "
        f"AND ts < %(hi)s{site} ORDER BY worker_id",
        {"station": station_id, "lo": lo, "hi": hi, "site": _sites(site_id)},
    ).fetchall()
    return [str(r[0]) for r in rows]


def recent_events(
    conn: psycopg.Connection[Any],
    *,
    worker_id: str | None = None,
    station_id: str | None = None,
    site_id: SiteFilter = None,
    lo: datetime | None = None,
    hi: datetime | None = None,
    limit: int = 50,
) -> list[RecentEvent]:
    """Newest events first (by event time), shadow ones included and flagged."""
    where = ["TRUE"]
    if worker_id:
        where.append("worker_id = %(worker)s")
    if station_id:
        where.append("station_id = %(station)s")
    if site_id:
        where.append("site_id = ANY(%(site)s::text[])")
    if lo:
        where.append("ts >= %(lo)s")
    if hi:
        where.append("ts < %(hi)s")
    rows = conn.execute(
        f"""
        SELECT event_id::text, ts, received_at, worker_id, station_id, event_type, confidence, count,
               duration_s, model_version, gateway_id, site_id, shadow
        FROM events WHERE {" AND ".join(where)}
        ORDER BY ts DESC, received_at DESC LIMIT %(limit)s
        """,
        {
            "worker": worker_id,
            "station": station_id,
            "site": _sites(site_id),
            "lo": lo,
            "hi": hi,
            "limit": limit,
        },
    ).fetchall()
    return [
        RecentEvent(
            event_id=r[0],
            timestamp=r[1],
            received_at=r[2],
            worker_id=r[3],
            station_id=r[4],
            event_type=r[5],
            confidence=float(r[6]),
            count=int(r[7]),
            duration_s=r[8],
            model_version=r[9],
            gateway_id=r[10],
            site_id=r[11],
            shadow=bool(r[12]),
        )
        for r in rows
    ]


def marker_sql(has_rollup_meta: bool) -> str:
    """SQL of one row (events, metrics, gateways) of text markers, each changing with its data.

    Cheap enough to poll every second: the invalidation queue's id sequence
    (advanced in the same transaction as every new event, and unlike the
    queue's rows never consumed by the refresher), the same with one row of
    rollup_meta (the refresher's progress) for metrics, and the small gateways table.
    ``rollup_meta`` comes with the API's migration; absent, metrics follow events.
    """
    seq = "(SELECT last_value::text || is_called::text FROM event_invalidations_id_seq)"
    meta = "(SELECT refreshed_at::text FROM rollup_meta WHERE id = 1)" if has_rollup_meta else "''"
    # Metrics read their writes (api.metrics.live): they change with every new event, not only
    # when the refresher has rolled it up.
    return (
        f"SELECT {seq}, "
        f"{seq} || ':' || {meta}, "
        "(SELECT max(last_seen)::text || ':' || count(*) || ':' "
        "        || coalesce(string_agg(state, ',' ORDER BY gateway_id), '') FROM gateways)"
    )


HAS_ROLLUP_META_SQL = "SELECT to_regclass('rollup_meta') IS NOT NULL"
