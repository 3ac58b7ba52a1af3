"""The hour-by-hour board and the line view (docs/metrics.md, "Hour by hour" and "Line view")."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated
from zoneinfo import ZoneInfo

from fastapi import APIRouter, HTTPException, Query
from pydantic import BaseModel, Field

from api.csv_export import CsvRoute
from api.deps import Conn, Viewer
from api.metrics.engine import bucket_windows, cycle_times, station_totals
from api.metrics.intervals import slices
from api.metrics.oee import aggregate, group_oee, station_oee
from api.routers.metrics import DIGITS, OeeFigures, ScopeDep, oee_figures
from api.routers.targets import get_line_row, require_station
from takt.store.targets import load_targets

router = APIRouter(prefix="/metrics", tags=["metrics"], route_class=CsvRoute)
MAX_HOURS = 24 * 31


class HourRow(BaseModel):
    hour_start: datetime
    hour_end: datetime
    planned_minutes: float = Field(description="Planned production time in the hour (breaks excluded).")
    target_units: float | None = Field(description="Null where no target is in force in the hour.")
    actual_units: int
    cumulative_target: float | None
    cumulative_actual: int
    cumulative_gap: float | None = Field(
        description="cumulative_actual - cumulative_target; null before a target is in force and for "
        "hours still to come (their target is the plan)."
    )


class HourByHour(BaseModel):
    station_id: str = Field(
        description="The station counted (for a line: its last station, the line's output)."
    )
    line_id: str | None
    timezone: str
    hours: list[HourRow]


def _r(x: float | None) -> float | None:
    return None if x is None else round(x, DIGITS)


@router.get("/hour-by-hour")
def hour_by_hour(
    conn: Conn,
    s: ScopeDep,
    _: Viewer,
    station_id: Annotated[str | None, Query(max_length=64, description="One station")] = None,
    line_id: Annotated[
        str | None, Query(max_length=64, description="A line: counts its last station")
    ] = None,
) -> HourByHour:
    """Each hour (in the site's time zone) of the window: target vs actual units, cumulative gap.

    The target moves with time: it counts the planned production time of each hour (planned
    breaks excluded) at the ideal cycle time in force (with SKU targets: the mean of the mix made
    in the hour's planned time; docs/metrics.md). Actual units are those made in the hour
    (within the shift when ``shift`` is given).
    """
    if (station_id is None) == (line_id is None):
        raise HTTPException(422, "give exactly one of station_id and line_id")
    if line_id is not None:
        stations = get_line_row(conn, line_id, s.site_id).stations
        station = stations[-1]
    else:
        assert station_id is not None
        station = station_id
        require_station(conn, station, s.site_id)
    local = s.lo.astimezone(ZoneInfo(s.timezone))
    origin = local.replace(minute=0, second=0, microsecond=0).astimezone(UTC)
    buckets = bucket_windows(s.lo, s.hi, timedelta(hours=1), origin)
    if len(buckets) > MAX_HOURS:
        raise HTTPException(422, f"at most {MAX_HOURS} hours; narrow the window")
    hours = [(lo, hi) for _label, lo, hi in buckets]
    inside = slices(s.counted + s.breaks, hours)
    labelled = [
        (label, a, b) for (label, _lo, _hi), parts in zip(buckets, inside, strict=True) for a, b in parts
    ]
    totals = station_totals(conn, labelled, site_id=s.site_id, station_id=station, gap_s=s.gap_s)
    # Every hour's target from the plan, the hours still to come included (the board's plan).
    planned_hours = slices(s.plan, hours)
    per_hour = group_oee(
        conn,
        planned_hours,
        [station],
        load_targets(conn, [station]),
        site_id=s.site_id,
        station_id=station,
        gap_s=s.gap_s,
    )
    rows: list[HourRow] = []
    now = datetime.now(UTC)
    cum_target: float | None = None
    cum_actual = 0
    for (label, lo, hi), planned, figures in zip(buckets, planned_hours, per_hour, strict=True):
        target = figures[station].target_units
        t = totals.get((label, station))
        actual = t.units if t else 0
        cum_actual += actual
        if target is not None:
            cum_target = (cum_target or 0.0) + target
        rows.append(
            HourRow(
                hour_start=lo,
                hour_end=hi,
                planned_minutes=round(sum((b - a).total_seconds() for a, b in planned) / 60, DIGITS),
                target_units=_r(target),
                actual_units=actual,
                cumulative_target=_r(cum_target),
                cumulative_actual=cum_actual,
                cumulative_gap=None if cum_target is None or lo > now else _r(cum_actual - cum_target),
            )
        )
    return HourByHour(station_id=station, line_id=line_id, timezone=s.timezone, hours=rows)


class LineStation(BaseModel):
    position: int
    station_id: str
    total_units_produced: int
    working_hours: float
    units_per_working_hour: float
    median_cycle_time_s: float | None
    target_units: float | None
    availability_percentage: float | None
    performance_percentage: float | None
    quality_percentage: float | None
    oee_percentage: float | None


class LineView(BaseModel):
    line_id: str
    site_id: str
    name: str
    stations: list[LineStation] = Field(description="In line order.")
    bottleneck_station_id: str | None = Field(
        description=(
            "The station with the longest median cycle time (the slowest); without cycle times, the one "
            "with the fewest units per working hour among stations that worked. Null when none did."
        )
    )
    targets: OeeFigures


@router.get("/lines/{line_id}")
def line_view(line_id: str, conn: Conn, s: ScopeDep, _: Viewer) -> LineView:
    """Throughput and cycle time per station in line order, the bottleneck, and the line's target figures."""
    line = get_line_row(conn, line_id, s.site_id)
    oee = station_oee(
        conn, s.planned, line.stations, load_targets(conn, line.stations), site_id=s.site_id, gap_s=s.gap_s
    )
    counted = [(0, a, b) for a, b in s.counted]
    totals = station_totals(conn, counted, site_id=s.site_id, gap_s=s.gap_s)
    out: list[LineStation] = []
    for i, sid in enumerate(line.stations):
        t = totals.get((0, sid))
        working = t.working_s if t else 0.0
        units = t.units if t else 0
        _n, median, _p90 = cycle_times(conn, counted, station_id=sid, site_id=s.site_id, gap_s=s.gap_s)
        o = oee[sid]
        out.append(
            LineStation(
                position=i,
                station_id=sid,
                total_units_produced=units,
                working_hours=round(working / 3600, DIGITS),
                units_per_working_hour=round(units / (working / 3600), DIGITS) if working > 0 else 0.0,
                median_cycle_time_s=_r(median),
                target_units=_r(o.target_units),
                availability_percentage=_r(o.availability),
                performance_percentage=_r(o.performance),
                quality_percentage=_r(o.quality),
                oee_percentage=_r(o.oee),
            )
        )
    timed = [x for x in out if x.median_cycle_time_s is not None]
    worked = [x for x in out if x.working_hours > 0]
    if timed:
        bottleneck: str | None = max(
            timed, key=lambda x: (x.median_cycle_time_s or 0.0, -x.position)
        ).station_id
    elif worked:
        bottleneck = min(worked, key=lambda x: (x.units_per_working_hour, x.position)).station_id
    else:
        bottleneck = None
    total = aggregate(oee.values())
    return LineView(
        line_id=line.line_id,
        site_id=line.site_id,
        name=line.name,
        stations=out,
        bottleneck_station_id=bottleneck,
        targets=oee_figures(total, total.planned_s),
    )
