"""Worker, workstation and factory metrics (definitions in docs/metrics.md)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

import psycopg
from fastapi import APIRouter, Depends, HTTPException, Query, Response
from pydantic import BaseModel, Field, TypeAdapter
from typing_extensions import TypedDict

from api.access import Access, Kind, Reader
from api.csv_export import CsvRoute
from api.deps import Conn, Settings
from api.metrics.calendar import UnknownShiftError, local_days, planned, windows
from api.metrics.engine import (
    Labelled,
    SiteFilter,
    WorkerTotals,
    bucket_windows,
    cycle_times,
    model_totals,
    snapshot,
    station_totals,
    worker_totals,
)
from api.metrics.groups import people, reader_k
from api.metrics.intervals import intersect
from api.metrics.oee import Oee, aggregate, station_oee
from takt.contract import MAX_TIME, MIN_TIME, UtcTime
from takt.store.rollups import HOUR, ceil_hour, floor_hour
from takt.store.targets import load_targets, stations_elsewhere

router = APIRouter(prefix="/metrics", tags=["metrics"], route_class=CsvRoute)
DIGITS = 4


@dataclass(frozen=True, slots=True)
class Scope:
    """The counted windows (after shift and planned-break handling) and filters of a request."""

    lo: datetime
    hi: datetime
    counted: list[tuple[datetime, datetime]]
    breaks: list[tuple[datetime, datetime]]
    # The request's site, or the token's sites when it names none (api.access).
    site_id: SiteFilter
    timezone: str
    # TAKT_MAX_STATE_GAP_S: the engine derives the pending tail's durations with it.
    gap_s: float = 600.0
    # Planned production time: the window within the site's shifts, minus planned breaks, up to
    # now (time still to come is not planned time yet: a target asks for what has elapsed).
    planned: list[tuple[datetime, datetime]] = field(default_factory=list)
    access: Access | None = None
    # The minimum group size for this reader (0: none; it has the per-person right).
    k: int = 0
    # The plan: planned production time over the whole window, the future included (the
    # hour-by-hour board's targets for the hours to come).
    plan: list[tuple[datetime, datetime]] = field(default_factory=list)


MAX_WINDOW = timedelta(days=3660)
# Stored times are clamped into the contract's range for the defaults, so a
# stray event stored before that range was enforced cannot push the default
# window past what datetime can represent.
_DEFAULTS = """
SELECT min(ts) IS NULL, greatest(min(ts), %(lo)s),
       least(max(ts), %(hi)s) + least(coalesce((SELECT max_duration_s FROM rollup_meta WHERE id = 1), 0),
                                      86400) * interval '1 second'
FROM events
"""


def scope(
    conn: Conn,
    settings: Settings,
    access: Reader,
    from_: Annotated[
        UtcTime | None, Query(alias="from", description="ISO 8601 with a UTC offset, inclusive")
    ] = None,
    to: Annotated[UtcTime | None, Query(description="ISO 8601 with a UTC offset, exclusive")] = None,
    site_id: Annotated[str | None, Query(max_length=64)] = None,
    shift: Annotated[str | None, Query(max_length=64, description="A shift of the site's calendar")] = None,
) -> Scope:
    lo, hi = from_, to
    if lo is None or hi is None:
        # Defaults: all stored data, at most ten years up to the newest. min/max(ts)
        # are read off the ts index; the last state ends at most the longest
        # derived duration later (the exact max(ts + duration) would scan every event).
        row = conn.execute(_DEFAULTS, {"lo": MIN_TIME, "hi": MAX_TIME - timedelta(days=2)}).fetchone()
        first, last = (row[1], row[2]) if row and not row[0] else (datetime.now(UTC), datetime.now(UTC))
        hi = hi or ceil_hour(last) + HOUR
        lo = lo or max(floor_hour(first), hi - MAX_WINDOW)
    if not lo < hi:
        raise HTTPException(422, "'from' must be earlier than 'to'")
    if hi - lo > MAX_WINDOW:
        raise HTTPException(422, "window longer than ten years")
    sites = access.site(site_id)
    # One site's calendar: the named one, the token's only one, else TAKT_SITE_ID's.
    only = sites if isinstance(sites, str) else next(iter(sites)) if sites and len(sites) == 1 else None
    calendar = settings.calendars.get(only or settings.site_id)
    try:
        counted, breaks = windows(calendar, lo, hi, shift)
    except UnknownShiftError as exc:
        raise HTTPException(404, str(exc)) from exc
    k = reader_k(settings, access.per_person, sites)
    plan = planned(calendar, lo, hi, shift)
    now = datetime.now(UTC)
    return Scope(
        lo,
        hi,
        counted,
        breaks,
        sites,
        calendar.timezone if calendar else "UTC",
        settings.max_state_gap_s,
        intersect(plan, [(lo, now)]) if lo < now else [],
        access,
        k,
        plan,
    )


WITHHELD_HEADER = "X-Takt-Withheld"


def _groups(
    conn: Conn, s: Scope, windows: list[Labelled]
) -> tuple[dict[tuple[int, str], int], dict[int, int]]:
    return people(conn, windows, s.site_id)


def _require_group(conn: Conn, s: Scope, station_id: str | None, has_data: bool) -> None:
    """403 for a reader without the per-person right when the figure is about fewer than k people
    (a figure with data but no raw events left to count people by, after retention, counts as 0)."""
    if s.k <= 1 or not has_data:
        return
    per_station, total = _groups(conn, s, [(0, a, b) for a, b in s.counted])
    n = total.get(0, 0) if station_id is None else per_station.get((0, station_id), 0)
    if n < s.k:
        raise HTTPException(
            403, f"withheld: this figure is about fewer than {s.k} people (minimum group size)"
        )


ScopeDep = Annotated[Scope, Depends(scope)]


class WorkerMetrics(BaseModel):
    worker_id: str
    name: str
    total_active_time_hours: float
    total_idle_time_hours: float
    total_absent_time_hours: float
    planned_break_hours: float
    utilization_percentage: float
    total_units_produced: int
    units_per_hour: float
    event_count: int


class WorkstationMetrics(BaseModel):
    station_id: str
    name: str
    type: str | None
    occupancy_time_hours: float
    utilization_percentage: float
    total_units_produced: int
    throughput_rate: float
    event_count: int
    target_units: float | None = Field(
        default=None,
        description="Units the targets in force ask for in the planned production time (up to now).",
    )
    availability_percentage: float | None = Field(
        default=None, description="Working time / planned production time (up to now) × 100."
    )
    performance_percentage: float | None = Field(
        default=None, description="Ideal cycle time × units / working time × 100; null without a target."
    )
    quality_percentage: float | None = Field(
        default=None,
        description=(
            "Good / all units made in the planned production time × 100 (good = count − rejected; "
            "units whose event reports no `rejected` count as good); null without units."
        ),
    )
    rejected_units: int = Field(default=0, description="Rejected units in the planned production time.")
    quality_reported_percentage: float | None = Field(
        default=None,
        description="Share of those units whose event reported `rejected` × 100; null without units.",
    )
    oee_percentage: float | None = Field(
        default=None,
        description=(
            "Availability × performance × quality; 0 when performance is 0, else null where one is missing."
        ),
    )


class OeeFigures(BaseModel):
    """Targets and OEE figures of a line or the factory, summed over stations before dividing."""

    planned_production_hours: float
    target_units: float | None
    units_in_planned_time: int
    availability_percentage: float | None
    performance_percentage: float | None
    quality_percentage: float | None
    rejected_units: int
    quality_reported_percentage: float | None
    oee_percentage: float | None


def _opt(x: float | None) -> float | None:
    return None if x is None else round(x, DIGITS)


def oee_figures(o: Oee, planned_s: float) -> OeeFigures:
    return OeeFigures(
        planned_production_hours=round(planned_s / 3600, DIGITS),
        target_units=_opt(o.target_units),
        units_in_planned_time=o.units,
        availability_percentage=_opt(o.availability),
        performance_percentage=_opt(o.performance),
        quality_percentage=_opt(o.quality),
        rejected_units=o.rejected,
        quality_reported_percentage=_opt(o.quality_reported),
        oee_percentage=_opt(o.oee),
    )


class FactoryMetrics(BaseModel):
    total_productive_time_hours: float
    total_production_count: int
    average_production_rate: float
    average_utilization_percentage: float
    worker_count: int = Field(
        description="Workers known: registered, or seen in any event (auto-registered); 'unknown' excluded."
    )
    station_count: int = Field(description="Workstations known: registered, or seen in any event.")
    active_worker_count: int = Field(
        description=(
            "Workers with activity in the window (state time or production events); 'unknown' excluded."
        )
    )
    active_station_count: int = Field(
        description="Workstations with activity in the window (observed state time or production events)."
    )
    total_events: int
    planned_break_hours: float
    targets: OeeFigures | None = Field(
        default=None,
        description="Targets and OEE over the stations with a target in force in the window (none: null).",
    )


class CycleTime(BaseModel):
    station_id: str
    cycles: int
    median_s: float | None
    p90_s: float | None


class ModelBreakdown(BaseModel):
    model_version: str
    shadow: bool
    event_count: int
    total_units: int
    working_hours: float
    idle_hours: float
    absent_hours: float
    utilization_percentage: float
    units_per_working_hour: float
    mean_confidence: float


# A TypedDict, not a model: a series has thousands of points, serialized in one
# pass by pydantic-core (see timeseries) instead of one model object each.
class SeriesPoint(TypedDict):
    bucket_start: datetime
    id: str
    active_hours: float
    idle_hours: float
    utilization_percentage: float
    units: int
    event_count: int


_SERIES = TypeAdapter(list[SeriesPoint])


def _r(x: float) -> float:
    return round(x, DIGITS)


def _pct(part: float, whole: float) -> float:
    return _r(part / whole * 100) if whole > 0 else 0.0


def _rate(units: int, seconds: float) -> float:
    return _r(units / (seconds / 3600)) if seconds > 0 else 0.0


def _labelled(s: Scope) -> list[Labelled]:
    return [(0, a, b) for a, b in s.counted] + [(1, a, b) for a, b in s.breaks]


_KINDS: dict[str, Kind] = {"workers": "worker", "workstations": "station"}
# Fixed statements per table: every name list, and one id's row.
_ALL_SQL = {
    "workers": "SELECT worker_id, name FROM workers ORDER BY worker_id",
    "workstations": "SELECT station_id, name, type FROM workstations ORDER BY station_id",
}
_ONE_SQL = {
    "workers": "SELECT worker_id, name FROM workers WHERE worker_id = %s",
    "workstations": "SELECT station_id, name, type FROM workstations WHERE station_id = %s",
}


def _names(
    conn: psycopg.Connection[Any],
    table: Literal["workers", "workstations"],
    key: str,
    one: str | None,
    access: Access | None = None,
    seen: set[str] | frozenset[str] = frozenset(),
) -> list[tuple[Any, ...]]:
    """Registered or auto-registered ids with their names: all of them, or ``one`` (404 if unknown).

    A site-scoped token sees only ids seen at its sites, plus ``seen`` (ids the site-filtered
    totals found); one from elsewhere is unknown (404)."""
    if one is None:
        rows = conn.execute(_ALL_SQL[table]).fetchall()
        visible = access.visible(conn, _KINDS[table], seen) if access is not None else None
        return rows if visible is None else [r for r in rows if r[0] in visible]
    if access is not None:
        access.check(conn, _KINDS[table], one)
    rows = conn.execute(_ONE_SQL[table], (one,)).fetchall()
    if not rows:
        raise HTTPException(404, f"unknown {key} {one!r}")
    return rows


def _worker_metrics(conn: Conn, s: Scope, worker_id: str | None) -> list[WorkerMetrics]:
    if s.access is not None:
        s.access.require_per_person()
    totals = worker_totals(conn, _labelled(s), site_id=s.site_id, gap_s=s.gap_s, worker_id=worker_id)
    names = _names(conn, "workers", "worker_id", worker_id, s.access, {w for _label, w in totals})
    out = []
    for wid, name in names:
        t = totals.get((0, wid))
        b = totals.get((1, wid))
        active, idle = (t.working_s, t.idle_s) if t else (0.0, 0.0)
        units, events = (t.units, t.events) if t else (0, 0)
        out.append(
            WorkerMetrics(
                worker_id=wid,
                name=name,
                total_active_time_hours=_r(active / 3600),
                total_idle_time_hours=_r(idle / 3600),
                total_absent_time_hours=_r(t.absent_s / 3600 if t else 0.0),
                planned_break_hours=_r((b.working_s + b.idle_s + b.absent_s) / 3600 if b else 0.0),
                utilization_percentage=_pct(active, active + idle),
                total_units_produced=units,
                units_per_hour=_rate(units, active),
                event_count=events,
            )
        )
    return out


@router.get("/workers", responses={403: {"description": "Per-person figures need the supervisor role."}})
def workers(conn: Conn, s: ScopeDep, response: Response) -> list[WorkerMetrics]:
    out = _worker_metrics(conn, s, None)
    if s.access is not None:
        s.access.audited(conn, response)
    return out


@router.get(
    "/workers/{worker_id}",
    responses={
        403: {"description": "Per-person figures need the supervisor role."},
        404: {"description": "Unknown worker, or not seen at the token's sites."},
    },
)
def worker(worker_id: str, conn: Conn, s: ScopeDep, response: Response) -> WorkerMetrics:
    out = _worker_metrics(conn, s, worker_id)[0]
    if s.access is not None:
        s.access.audited(conn, response, worker_id)
    return out


def _station_metrics(conn: Conn, s: Scope, station_id: str | None) -> list[WorkstationMetrics]:
    with snapshot(conn):  # one tail for the totals and the OEE sums
        totals = station_totals(
            conn, [(0, a, b) for a, b in s.counted], site_id=s.site_id, gap_s=s.gap_s, station_id=station_id
        )
        names = _names(conn, "workstations", "station_id", station_id, s.access, {k for _label, k in totals})
        ids = [n[0] for n in names]
        oee = station_oee(
            conn,
            s.planned,
            ids,
            load_targets(conn, None if station_id is None else ids),
            site_id=s.site_id,
            station_id=station_id,
            gap_s=s.gap_s,
        )
    out = []
    for sid, name, kind in names:
        t = totals.get((0, sid))
        occupied = t.occupied_s if t else 0.0
        units = t.units if t else 0
        out.append(
            WorkstationMetrics(
                station_id=sid,
                name=name,
                type=kind,
                occupancy_time_hours=_r(occupied / 3600),
                utilization_percentage=_pct(t.working_s, t.observed_s) if t else 0.0,
                total_units_produced=units,
                throughput_rate=_rate(units, occupied),
                event_count=t.events if t else 0,
                target_units=_opt(oee[sid].target_units),
                availability_percentage=_opt(oee[sid].availability),
                performance_percentage=_opt(oee[sid].performance),
                quality_percentage=_opt(oee[sid].quality),
                rejected_units=oee[sid].rejected,
                quality_reported_percentage=_opt(oee[sid].quality_reported),
                oee_percentage=_opt(oee[sid].oee),
            )
        )
    return out


@router.get("/workstations")
def workstations(conn: Conn, s: ScopeDep, response: Response) -> list[WorkstationMetrics]:
    """Every workstation's figures. For readers without the per-person right, stations whose
    figures are about fewer than k people are left out (header ``X-Takt-Withheld``: how many)."""
    rows = _station_metrics(conn, s, None)
    if s.k > 1:
        per_station, _ = _groups(conn, s, [(0, a, b) for a, b in s.counted])
        kept = [
            r
            for r in rows
            if per_station.get((0, r.station_id), 0) >= s.k
            or (r.event_count == 0 and r.occupancy_time_hours == 0)
        ]
        response.headers[WITHHELD_HEADER] = str(len(rows) - len(kept))
        rows = kept
    return rows


@router.get("/workstations/{station_id}")
def workstation(station_id: str, conn: Conn, s: ScopeDep) -> WorkstationMetrics:
    out = _station_metrics(conn, s, station_id)[0]
    _require_group(conn, s, station_id, out.event_count > 0 or out.occupancy_time_hours > 0)
    return out


@router.get("/workstations/{station_id}/cycle-time")
def cycle_time(station_id: str, conn: Conn, s: ScopeDep) -> CycleTime:
    """Median and p90 seconds between consecutive product_count events (count > 0) at the station."""
    _names(conn, "workstations", "station_id", station_id, s.access)
    n, median, p90 = cycle_times(
        conn, [(0, a, b) for a, b in s.counted], station_id=station_id, site_id=s.site_id, gap_s=s.gap_s
    )
    _require_group(conn, s, station_id, n > 0)
    return CycleTime(
        station_id=station_id,
        cycles=n,
        median_s=None if median is None else _r(median),
        p90_s=None if p90 is None else _r(p90),
    )


def _active(t: WorkerTotals) -> bool:
    return t.working_s + t.idle_s + t.absent_s > 0 or t.events > 0


@router.get("/factory")
def factory(conn: Conn, s: ScopeDep) -> FactoryMetrics:
    with snapshot(conn):  # one tail for the worker, station and OEE totals
        return _factory(conn, s)


def _factory(conn: Conn, s: Scope) -> FactoryMetrics:
    totals = worker_totals(conn, _labelled(s), site_id=s.site_id, gap_s=s.gap_s)
    counted = [t for (label, _w), t in totals.items() if label == 0]
    active = sum(t.working_s for t in counted)
    units = sum(t.units for t in counted)
    utilizations = [
        t.working_s / (t.working_s + t.idle_s) * 100 for t in counted if t.working_s + t.idle_s > 0
    ]
    row = conn.execute(
        "SELECT (SELECT count(*) FROM workers WHERE worker_id <> 'unknown'), "
        "(SELECT count(*) FROM workstations)"
    ).fetchone()
    stations = station_totals(conn, [(0, a, b) for a, b in s.counted], site_id=s.site_id, gap_s=s.gap_s)
    assert row is not None
    changes = load_targets(conn)
    if s.site_id is not None:
        # A site's figures count its own stations' targets only.
        elsewhere = stations_elsewhere(conn, s.site_id)
        changes = {k: v for k, v in changes.items() if k not in elsewhere}
    targeted = station_oee(conn, s.planned, sorted(changes), changes, site_id=s.site_id, gap_s=s.gap_s)
    in_force = [o for o in targeted.values() if o.targeted]
    known = (int(row[0]), int(row[1]))
    if s.access is not None and s.access.sites is not None:
        # Only what was seen at the token's sites counts as known.
        people = s.access.visible(conn, "worker", {w for _label, w in totals}) or set()
        places = s.access.visible(conn, "station", {k for _label, k in stations}) or set()
        known = (len(people - {"unknown"}), len(places))
    breaks = sum(t.working_s + t.idle_s + t.absent_s for (label, _w), t in totals.items() if label == 1)
    _require_group(conn, s, None, any(t.events or t.working_s or t.idle_s or t.absent_s for t in counted))
    return FactoryMetrics(
        total_productive_time_hours=_r(active / 3600),
        total_production_count=units,
        average_production_rate=_rate(units, active),
        average_utilization_percentage=_r(sum(utilizations) / len(utilizations)) if utilizations else 0.0,
        worker_count=known[0],
        station_count=known[1],
        active_worker_count=sum(
            1 for (label, w), t in totals.items() if label == 0 and w != "unknown" and _active(t)
        ),
        active_station_count=sum(1 for t in stations.values() if t.observed_s > 0 or t.events > 0),
        total_events=sum(t.events for t in counted),
        planned_break_hours=_r(breaks / 3600),
        targets=oee_figures(aggregate(in_force), sum(o.planned_s for o in in_force)) if in_force else None,
    )


@router.get("/models")
def models(conn: Conn, s: ScopeDep) -> list[ModelBreakdown]:
    """Per model_version (and shadow flag): events, units, state hours, utilization, rate, mean confidence.

    The ML team's before/after view of a rollout, and production vs shadow candidate.
    """
    totals = model_totals(conn, [(0, a, b) for a, b in s.counted], site_id=s.site_id, gap_s=s.gap_s)
    _require_group(conn, s, None, bool(totals))
    return [
        ModelBreakdown(
            model_version=model,
            shadow=shadow,
            event_count=t.events,
            total_units=t.units,
            working_hours=_r(t.working_s / 3600),
            idle_hours=_r(t.idle_s / 3600),
            absent_hours=_r(t.absent_s / 3600),
            utilization_percentage=_pct(t.working_s, t.working_s + t.idle_s),
            units_per_working_hour=_rate(t.units, t.working_s),
            mean_confidence=_r(t.conf_sum / t.events) if t.events else 0.0,
        )
        for (_, model, shadow), t in sorted(totals.items())
    ]


@router.get("/timeseries", response_model=list[SeriesPoint])
def timeseries(
    conn: Conn,
    s: ScopeDep,
    bucket: Literal["hour", "day"] = "hour",
    by: Literal["worker", "workstation"] = "worker",
    id: Annotated[str | None, Query(max_length=64, description="One worker or station")] = None,
) -> Response:
    """Per bucket and worker or workstation, for charts: whole UTC hours, or days from one
    midnight to the next in the site's time zone (23 or 25 h across a daylight-saving change).

    ``by=worker`` needs the per-person right (supervisor and above; 403 otherwise)."""
    if s.access is not None:
        if by == "worker":
            s.access.require_per_person()
        if id is not None:
            s.access.check(conn, "worker" if by == "worker" else "station", id)
    if bucket == "hour":
        buckets = bucket_windows(s.lo, s.hi, HOUR, datetime(2000, 1, 1, tzinfo=UTC))
    else:
        buckets = local_days(s.lo, s.hi, ZoneInfo(s.timezone))
    if len(buckets) > 5000:
        raise HTTPException(422, "too many buckets; narrow the window or use day buckets")
    starts = {label: a for label, a, _b in buckets}
    labelled = [(label, a, b) for label, lo, hi in buckets for a, b in intersect(s.counted, [(lo, hi)])]
    out: list[SeriesPoint] = []
    if by == "worker":
        wt = worker_totals(conn, labelled, site_id=s.site_id, gap_s=s.gap_s, worker_id=id)
        for (label, wid), t in sorted(wt.items()):
            out.append(
                {
                    "bucket_start": starts[label],
                    "id": wid,
                    "active_hours": _r(t.working_s / 3600),
                    "idle_hours": _r(t.idle_s / 3600),
                    "utilization_percentage": _pct(t.working_s, t.working_s + t.idle_s),
                    "units": t.units,
                    "event_count": t.events,
                }
            )
    else:
        st = station_totals(conn, labelled, site_id=s.site_id, gap_s=s.gap_s, station_id=id)
        if s.k > 1:
            # Per bucket: a station-hour about fewer than k people is left out for this reader.
            per_station, _ = _groups(conn, s, labelled)
            st = {key: u for key, u in st.items() if per_station.get(key, 0) >= s.k}
        for (label, sid), u in sorted(st.items()):
            out.append(
                {
                    "bucket_start": starts[label],
                    "id": sid,
                    "active_hours": _r(u.working_s / 3600),
                    "idle_hours": _r(max(u.occupied_s - u.working_s, 0) / 3600),
                    "utilization_percentage": _pct(u.working_s, u.observed_s),
                    "units": u.units,
                    "event_count": u.events,
                }
            )
    answer = Response(_SERIES.dump_json(out), media_type="application/json")
    if by == "worker" and s.access is not None:
        s.access.audited(conn, answer, id)
    return answer
