"""Model versions for the ML team: deployments, confidence, drift, label samples.

The per-version breakdown of every metric is ``GET /metrics/models``
(``api.routers.metrics``); this router adds what only the ML team asks for.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from fastapi import APIRouter, HTTPException, Query
from fastapi.responses import Response
from pydantic import BaseModel

from api.access import AllSites, Reader
from api.deps import Conn, Settings, Supervisor
from models.drift import WindowStats
from models.quality import (
    Subject,
    Window,
    confidence_distribution,
    deployed_models,
    drift_flags,
    drift_report,
    run_drift_check,
    sample_events,
    schedule_from,
)
from models.samples import select, to_csv, to_jsonl
from takt.contract import UtcTime

router = APIRouter(prefix="/models", tags=["models"])
MAX_WINDOW = timedelta(days=92)


class GatewayOut(BaseModel):
    gateway_id: str
    site_id: str | None
    shadow: bool
    first_seen: datetime
    running_now: bool


class ModelOut(BaseModel):
    model_version: str
    first_seen: datetime
    first_received_at: datetime
    gateways: list[GatewayOut]


class ConfidenceOut(BaseModel):
    model_version: str
    shadow: bool
    station_id: str | None
    day: date | None
    events: int
    mean: float | None
    histogram: list[int]
    quantiles: dict[str, float]


class StatsOut(BaseModel):
    events: int
    histogram: list[int]
    quantiles: dict[str, float]
    state_seconds: dict[str, float]


class FlagOut(BaseModel):
    metric: str
    value: float
    threshold: float


class DriftOut(BaseModel):
    subject_kind: str
    subject_id: str
    baseline_from: datetime
    baseline_to: datetime
    recent_from: datetime
    recent_to: datetime
    enough_data: bool
    confidence_psi: float | None
    quantile_shift: dict[str, float]
    state_mix_psi: float | None
    baseline_mix: dict[str, float]
    recent_mix: dict[str, float]
    baseline: StatsOut
    recent: StatsOut
    flags: list[FlagOut]


class StoredFlagOut(BaseModel):
    id: int
    checked_at: datetime
    site_id: str
    subject_kind: str
    subject_id: str
    metric: str
    value: float
    threshold: float
    recent_from: datetime
    recent_to: datetime
    active: bool
    details: dict[str, object]


class CheckOut(BaseModel):
    subjects: int
    flags: list[StoredFlagOut]


def _window(lo: datetime | None, hi: datetime | None, default: timedelta) -> tuple[datetime, datetime]:
    """``lo``/``hi`` are UtcTime (aware, UTC, in the contract's range) or None for the defaults."""
    hi = hi or datetime.now(UTC)
    lo = lo or hi - default
    if not lo < hi:
        raise HTTPException(422, "'from' must be earlier than 'to'")
    if hi - lo > MAX_WINDOW:
        raise HTTPException(422, f"a window covers at most {MAX_WINDOW.days} days")
    return lo, hi


@router.get("")
def list_models(conn: Conn, access: Reader) -> list[ModelOut]:
    """Every model version seen in events: since when, on which gateways, and which run it now.

    A site-scoped token sees the versions its sites' gateways ran, and those gateways only."""
    out = []
    for m in deployed_models(conn):
        seen = [g for g in m.gateways if access.allows(g.site_id)]
        if access.sites is not None and not seen:
            continue
        out.append(
            ModelOut(
                model_version=m.model_version,
                first_seen=m.first_seen,
                first_received_at=m.first_received_at,
                gateways=[GatewayOut.model_validate(g, from_attributes=True) for g in seen],
            )
        )
    return out


@router.get("/confidence")
def confidence(
    conn: Conn,
    access: Reader,
    from_: Annotated[
        UtcTime | None, Query(alias="from", description="ISO 8601; default: 7 days before 'to'")
    ] = None,
    to: Annotated[UtcTime | None, Query(description="ISO 8601; default: now")] = None,
    site_id: Annotated[str | None, Query(max_length=64)] = None,
    station_id: Annotated[str | None, Query(max_length=64)] = None,
    model_version: Annotated[str | None, Query(max_length=200)] = None,
    timezone: Annotated[str, Query(max_length=64, description="Days are local days of this zone")] = "UTC",
    group: Annotated[
        Literal["station_day", "model"], Query(description="model: one row per version over the window")
    ] = "station_day",
) -> list[ConfidenceOut]:
    """Confidence histogram (10 bins over [0, 1]) and quantiles per model version, station and day."""
    lo, hi = _window(from_, to, timedelta(days=7))
    sites = access.site(site_id)
    if station_id is not None:
        access.check(conn, "station", station_id)
    try:
        ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise HTTPException(422, f"unknown time zone {timezone!r}") from None
    groups = confidence_distribution(
        conn,
        lo,
        hi,
        timezone=timezone,
        site_id=sites,
        station_id=station_id,
        model_version=model_version,
        per_station_day=group == "station_day",
    )
    return [
        ConfidenceOut(
            model_version=g.model_version,
            shadow=g.shadow,
            station_id=g.station_id,
            day=g.day,
            events=g.events,
            mean=None if g.mean is None else round(g.mean, 4),
            histogram=list(g.histogram),
            quantiles={str(q): round(v, 4) for q, v in g.quantiles.items()},
        )
        for g in groups
    ]


def _stats(s: WindowStats) -> StatsOut:
    return StatsOut(
        events=s.events,
        histogram=list(s.histogram),
        quantiles={str(q): round(v, 4) for q, v in s.quantiles.items()},
        state_seconds={k: round(v, 3) for k, v in s.state_seconds.items()},
    )


@router.get("/drift")
def drift(
    conn: Conn,
    settings: Settings,
    access: Reader,
    station_id: Annotated[str | None, Query(max_length=64)] = None,
    camera_id: Annotated[str | None, Query(max_length=64)] = None,
    site_id: Annotated[str | None, Query(max_length=64)] = None,
    model_version: Annotated[
        str | None, Query(max_length=200, description="Only this version's events")
    ] = None,
    shadow: Annotated[bool, Query(description="Compare the shadow candidate's events instead")] = False,
    recent_from: UtcTime | None = None,
    recent_to: UtcTime | None = None,
    baseline_from: UtcTime | None = None,
    baseline_to: UtcTime | None = None,
) -> DriftOut:
    """Compare a recent window with a baseline window for one station or camera.

    Defaults: the scheduled check's windows (recent: the last TAKT_DRIFT_RECENT_HOURS,
    baseline: TAKT_DRIFT_BASELINE_DAYS before it) and thresholds.
    """
    if (station_id is None) == (camera_id is None):
        raise HTTPException(422, "give exactly one of station_id and camera_id")
    site_id = access.one_site(site_id)
    if station_id is not None:
        access.check(conn, "station", station_id)
    schedule = schedule_from(settings)
    r_lo, r_hi = _window(recent_from, recent_to, schedule.recent)
    b_hi = baseline_to or r_lo
    b_lo, b_hi = _window(baseline_from, b_hi, schedule.baseline)
    subject = (
        Subject("station", station_id, site_id)
        if station_id is not None
        else Subject("camera", camera_id or "", site_id)
    )
    b, r, report = drift_report(
        conn,
        subject,
        Window(b_lo, b_hi),
        Window(r_lo, r_hi),
        schedule.thresholds,
        model_version=model_version,
        shadow=shadow,
    )
    return DriftOut(
        subject_kind=subject.kind,
        subject_id=subject.id,
        baseline_from=b_lo,
        baseline_to=b_hi,
        recent_from=r_lo,
        recent_to=r_hi,
        enough_data=report.enough_data,
        confidence_psi=None if report.confidence_psi is None else round(report.confidence_psi, 4),
        quantile_shift={str(q): round(v, 4) for q, v in report.quantile_shift.items()},
        state_mix_psi=None if report.state_mix_psi is None else round(report.state_mix_psi, 4),
        baseline_mix={k: round(v, 4) for k, v in report.baseline_mix.items()},
        recent_mix={k: round(v, 4) for k, v in report.recent_mix.items()},
        baseline=_stats(b),
        recent=_stats(r),
        flags=[
            FlagOut(metric=f.metric, value=round(f.value, 4), threshold=f.threshold) for f in report.flags
        ],
    )


def _flags_out(conn: Conn, active_only: bool, access: Reader | None = None) -> list[StoredFlagOut]:
    return [
        StoredFlagOut.model_validate(f, from_attributes=True)
        for f in drift_flags(conn, active_only=active_only)
        if access is None or access.allows(f.site_id)
    ]


@router.get("/drift/flags")
def flags(
    conn: Conn, access: Reader, active: Annotated[bool, Query(description="false: history too")] = True
) -> list[StoredFlagOut]:
    """Flags recorded by the scheduled drift check (newest first; a site-scoped token: its sites')."""
    return _flags_out(conn, active, access)


@router.post("/drift/check")
def check_now(conn: Conn, settings: Settings, _: Supervisor, __: AllSites) -> CheckOut:
    """Run the scheduled drift check now; returns the active flags afterwards."""
    results = run_drift_check(conn, datetime.now(UTC), schedule_from(settings))
    return CheckOut(subjects=len(results), flags=_flags_out(conn, True))


@router.get("/samples", response_class=Response)
def samples(
    conn: Conn,
    _: Supervisor,
    access: Reader,
    from_: Annotated[
        UtcTime | None, Query(alias="from", description="ISO 8601; default: 1 day before 'to'")
    ] = None,
    to: Annotated[UtcTime | None, Query(description="ISO 8601; default: now")] = None,
    site_id: Annotated[str | None, Query(max_length=64)] = None,
    station_id: Annotated[str | None, Query(max_length=64)] = None,
    camera_id: Annotated[str | None, Query(max_length=64)] = None,
    low_confidence_below: Annotated[float | None, Query(ge=0, le=1)] = 0.5,
    min_overlap_s: Annotated[float, Query(ge=0)] = 1.0,
    limit: Annotated[int, Query(ge=1, le=100_000)] = 10_000,
    format: Literal["jsonl", "csv"] = "jsonl",
) -> Response:
    """Low-confidence and production/shadow disagreement samples for labelling, as JSONL or CSV."""
    lo, hi = _window(from_, to, timedelta(days=1))
    sites = access.site(site_id)
    if station_id is not None:
        access.check(conn, "station", station_id)
    events = sample_events(conn, lo, hi, site_id=sites, station_id=station_id, camera_id=camera_id)
    found = select(
        events, low_confidence_below=low_confidence_below, min_overlap_s=min_overlap_s, limit=limit
    )
    name = f"takt-samples-{lo:%Y%m%dT%H%M}-{hi:%Y%m%dT%H%M}.{format}"
    headers = {"Content-Disposition": f'attachment; filename="{name}"', "X-Sample-Count": str(len(found))}
    if format == "csv":
        return Response(to_csv(found), media_type="text/csv", headers=headers)
    return Response(to_jsonl(found), media_type="application/x-ndjson", headers=headers)
