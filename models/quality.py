"""Model versions in the database: deployments, confidence distributions, drift checks, label samples.

The comparisons themselves are pure (:mod:`models.drift`, :mod:`models.samples`);
this module only aggregates in SQL and records what the drift check flagged.
The API serves it; ``takt models`` runs it from the command line.

Confidence statistics leave out ``absent`` events: an absent segment means the
model saw nobody, and its confidence is a placeholder, not a detection score.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any, Literal

import psycopg
from psycopg.types.json import Jsonb

from models.drift import CONFIDENCE_BINS, QUANTILES, DriftReport, DriftThresholds, WindowStats, compare
from models.samples import SampleEvent
from models.settings import DriftSettings
from takt.periodic import PeriodicDatabaseTask

logger = logging.getLogger(__name__)

SubjectKind = Literal["station", "camera"]
_DRIFT_LOCK = 0x74616B74_6472  # pg advisory lock key of the scheduled drift check ("takt" "dr")
_SUBJECT_COLUMN: dict[str, str] = {"station": "station_id", "camera": "camera_id"}
_SCORED = "event_type <> 'absent'"
_HIST_SQL = ", ".join(
    f"count(*) FILTER (WHERE {_SCORED} AND least(floor(confidence * {CONFIDENCE_BINS}), "
    f"{CONFIDENCE_BINS - 1}) = {i})"
    for i in range(CONFIDENCE_BINS)
)
_QUANTILES_SQL = (
    f"percentile_cont(ARRAY[{', '.join(str(q) for q in QUANTILES)}]::float8[]) "
    f"WITHIN GROUP (ORDER BY confidence) FILTER (WHERE {_SCORED})"
)


# -- deployed versions ---------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class ModelGateway:
    gateway_id: str
    site_id: str | None
    shadow: bool
    first_seen: datetime
    running_now: bool


@dataclass(frozen=True, slots=True)
class DeployedModel:
    model_version: str
    first_seen: datetime
    first_received_at: datetime
    gateways: list[ModelGateway]


def deployed_models(conn: psycopg.Connection[Any]) -> list[DeployedModel]:
    """Every version seen in events, with the gateways that ran it and whether they still report it."""
    models = conn.execute(
        "SELECT model_version, first_seen, first_received_at FROM cv_models "
        "ORDER BY first_seen, model_version"
    ).fetchall()
    # What each gateway says it runs now (status heartbeat) marks current deployments.
    rows = conn.execute(
        "SELECT m.model_version, m.gateway_id, m.site_id, m.shadow, m.first_seen, "
        "  coalesce(g.status->>CASE WHEN m.shadow THEN 'shadow_model_version' ELSE 'model_version' END "
        "           = m.model_version AND g.state = 'online', false) "
        "FROM cv_model_gateways m LEFT JOIN gateways g ON g.gateway_id = m.gateway_id "
        "ORDER BY m.model_version, m.gateway_id, m.shadow"
    ).fetchall()
    by_model: dict[str, list[ModelGateway]] = defaultdict(list)
    for mv, gw, site, shadow, first, now in rows:
        by_model[mv].append(ModelGateway(gw, site, bool(shadow), first, bool(now)))
    return [DeployedModel(mv, first, received, by_model.get(mv, [])) for mv, first, received in models]


# -- confidence distributions ---------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class ConfidenceGroup:
    model_version: str
    shadow: bool
    station_id: str | None
    day: date | None
    events: int
    mean: float | None
    histogram: tuple[int, ...]
    quantiles: dict[float, float]


def confidence_distribution(
    conn: psycopg.Connection[Any],
    lo: datetime,
    hi: datetime,
    *,
    timezone: str = "UTC",
    site_id: str | frozenset[str] | None = None,
    station_id: str | None = None,
    model_version: str | None = None,
    per_station_day: bool = True,
) -> list[ConfidenceGroup]:
    """Histogram and quantiles of confidence per model version, shadow flag, station and local day
    (or, with ``per_station_day=False``, per version and shadow flag over the whole window)."""
    where, params = _filters(site_id=site_id, station_id=station_id, model_version=model_version)
    keys = "station_id, (ts AT TIME ZONE %(tz)s)::date" if per_station_day else "NULL::text, NULL::date"
    rows = conn.execute(
        f"SELECT coalesce(model_version, ''), shadow, {keys}, "
        f"count(*) FILTER (WHERE {_SCORED}), avg(confidence) FILTER (WHERE {_SCORED}), "
        f"{_QUANTILES_SQL}, {_HIST_SQL} "
        f"FROM events WHERE ts >= %(lo)s AND ts < %(hi)s {where} "
        f"GROUP BY 1, 2, 3, 4 HAVING count(*) FILTER (WHERE {_SCORED}) > 0 ORDER BY 1, 2, 3, 4",
        {**params, "lo": lo, "hi": hi, "tz": timezone},
    ).fetchall()
    out = []
    for mv, shadow, station, day, n, mean, qs, *hist in rows:
        out.append(
            ConfidenceGroup(
                mv,
                bool(shadow),
                station,
                day,
                int(n),
                None if mean is None else float(mean),
                tuple(int(h) for h in hist),
                dict(zip(QUANTILES, (float(q) for q in qs or []), strict=False)),
            )
        )
    return out


def _filters(**values: str | frozenset[str] | None) -> tuple[str, dict[str, Any]]:
    """AND clauses; a set of values (a site-scoped token's sites) matches any of them."""
    clauses = []
    params: dict[str, Any] = {}
    for column, value in values.items():
        if isinstance(value, frozenset):
            clauses.append(f"AND coalesce({column}, '') = ANY(%({column})s::text[])")
            params[column] = sorted(value)
        elif value is not None:
            clauses.append(f"AND coalesce({column}, '') = %({column})s")
            params[column] = value
    return " ".join(clauses), params


# -- drift -------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Window:
    lo: datetime
    hi: datetime


@dataclass(frozen=True, slots=True)
class Subject:
    kind: SubjectKind
    id: str
    site_id: str | None = None


def window_stats(
    conn: psycopg.Connection[Any],
    subject: Subject,
    window: Window,
    *,
    model_version: str | None = None,
    shadow: bool = False,
) -> WindowStats:
    """Confidence histogram and quantiles, and seconds per state, of one subject in one window.

    State seconds are each segment's (derived) duration, attributed to the window
    its start falls in: drift compares shares, so the edges hardly matter.
    """
    column = _SUBJECT_COLUMN[subject.kind]
    where, params = _filters(site_id=subject.site_id, model_version=model_version)
    row = conn.execute(
        f"SELECT count(*) FILTER (WHERE {_SCORED}), {_QUANTILES_SQL}, {_HIST_SQL}, "
        + ", ".join(
            f"coalesce(sum(coalesce(duration_s, effective_duration_s)) FILTER (WHERE event_type = '{s}'), 0)"
            for s in ("working", "idle", "absent")
        )
        + f" FROM events WHERE {column} = %(subject)s AND shadow = %(shadow)s "
        f"AND ts >= %(lo)s AND ts < %(hi)s {where}",
        {**params, "subject": subject.id, "shadow": shadow, "lo": window.lo, "hi": window.hi},
    ).fetchone()
    assert row is not None
    n, qs, *rest = row
    hist, seconds = rest[:CONFIDENCE_BINS], rest[CONFIDENCE_BINS:]
    return WindowStats(
        int(n),
        tuple(int(h) for h in hist),
        dict(zip(QUANTILES, (float(q) for q in qs or []), strict=False)),
        dict(zip(("working", "idle", "absent"), (float(s) for s in seconds), strict=True)),
    )


def drift_report(
    conn: psycopg.Connection[Any],
    subject: Subject,
    baseline: Window,
    recent: Window,
    thresholds: DriftThresholds,
    *,
    model_version: str | None = None,
    shadow: bool = False,
) -> tuple[WindowStats, WindowStats, DriftReport]:
    b = window_stats(conn, subject, baseline, model_version=model_version, shadow=shadow)
    r = window_stats(conn, subject, recent, model_version=model_version, shadow=shadow)
    return b, r, compare(b, r, thresholds)


@dataclass(frozen=True, slots=True)
class DriftSchedule:
    recent: timedelta = timedelta(hours=24)
    baseline: timedelta = timedelta(days=7)
    thresholds: DriftThresholds = field(default_factory=DriftThresholds)

    def windows(self, now: datetime) -> tuple[Window, Window]:
        recent = Window(now - self.recent, now)
        return Window(recent.lo - self.baseline, recent.lo), recent


def schedule_from(settings: DriftSettings) -> DriftSchedule:
    """The schedule that ``TAKT_DRIFT_*`` describe."""
    return DriftSchedule(
        recent=timedelta(hours=settings.drift_recent_hours),
        baseline=timedelta(days=settings.drift_baseline_days),
        thresholds=DriftThresholds(
            confidence_psi=settings.drift_confidence_psi,
            quantile_shift=settings.drift_quantile_shift,
            state_mix_psi=settings.drift_state_mix_psi,
            min_events=settings.drift_min_events,
        ),
    )


@dataclass(frozen=True, slots=True)
class CheckResult:
    subject: Subject
    report: DriftReport


def run_drift_check(
    conn: psycopg.Connection[Any],
    now: datetime,
    schedule: DriftSchedule,
    *,
    kinds: tuple[SubjectKind, ...] = ("station", "camera"),
) -> list[CheckResult]:
    """Compare the recent window with the baseline for every station and camera with production
    events in the recent window; record what crosses a threshold in ``drift_flags``.

    A flag stays ``active`` until a later check of the same subject and metric
    finds it back under its threshold. Only production events count: a shadow
    candidate is compared on its own, not mixed into production's drift.
    """
    baseline, recent = schedule.windows(now)
    results: list[CheckResult] = []
    for kind in kinds:
        column = _SUBJECT_COLUMN[kind]
        subjects = conn.execute(
            f"SELECT DISTINCT coalesce(site_id, ''), {column} FROM events "
            f"WHERE ts >= %s AND ts < %s AND NOT shadow AND {column} IS NOT NULL ORDER BY 1, 2",
            (recent.lo, recent.hi),
        ).fetchall()
        for site, subject_id in subjects:
            subject = Subject(kind, subject_id, site)
            b, r, report = drift_report(conn, subject, baseline, recent, schedule.thresholds)
            _record(conn, subject, baseline, recent, b, r, report, now)
            results.append(CheckResult(subject, report))
    flagged = sum(len(r.report.flags) for r in results)
    logger.info("drift check: %d subjects, %d flags", len(results), flagged)
    return results


def _record(
    conn: psycopg.Connection[Any],
    subject: Subject,
    baseline: Window,
    recent: Window,
    b: WindowStats,
    r: WindowStats,
    report: DriftReport,
    now: datetime,
) -> None:
    if not report.enough_data:
        # No verdict is not an all-clear: leave earlier flags as they are.
        return
    with conn.transaction():
        # The newest verdict replaces the subject's active flags; older rows stay as history.
        conn.execute(
            "UPDATE drift_flags SET active = false WHERE active AND site_id = %s AND subject_kind = %s "
            "AND subject_id = %s",
            (subject.site_id or "", subject.kind, subject.id),
        )
        details = {
            "quantile_shift": {str(q): v for q, v in report.quantile_shift.items()},
            "baseline_quantiles": {str(q): v for q, v in b.quantiles.items()},
            "recent_quantiles": {str(q): v for q, v in r.quantiles.items()},
            "baseline_mix": report.baseline_mix,
            "recent_mix": report.recent_mix,
            "baseline_events": b.events,
            "recent_events": r.events,
        }
        for flag in report.flags:
            conn.execute(
                "INSERT INTO drift_flags (checked_at, site_id, subject_kind, subject_id, metric, value, "
                "threshold, baseline_from, baseline_to, recent_from, recent_to, details) "
                "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                (
                    now,
                    subject.site_id or "",
                    subject.kind,
                    subject.id,
                    flag.metric,
                    flag.value,
                    flag.threshold,
                    baseline.lo,
                    baseline.hi,
                    recent.lo,
                    recent.hi,
                    Jsonb(details),
                ),
            )


@dataclass(frozen=True, slots=True)
class StoredFlag:
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
    details: dict[str, Any]


def drift_flags(
    conn: psycopg.Connection[Any], *, active_only: bool = True, limit: int = 500
) -> list[StoredFlag]:
    rows = conn.execute(
        "SELECT id, checked_at, site_id, subject_kind, subject_id, metric, value, threshold, "
        "recent_from, recent_to, active, details FROM drift_flags "
        + ("WHERE active " if active_only else "")
        + "ORDER BY checked_at DESC, id DESC LIMIT %s",
        (limit,),
    ).fetchall()
    return [StoredFlag(*row) for row in rows]


class DriftChecker(PeriodicDatabaseTask):
    """Background thread: a drift check every ``interval_s`` seconds until stopped."""

    def __init__(self, database_url: str, schedule: DriftSchedule, interval_s: float) -> None:
        super().__init__("drift-checker", database_url, interval_s)
        self._schedule = schedule

    def run_round(self, conn: psycopg.Connection[Any]) -> None:
        # Several API processes share one database: one check per round is enough,
        # and two at once would each replace the other's active flags.
        row = conn.execute("SELECT pg_try_advisory_lock(%s)", (_DRIFT_LOCK,)).fetchone()
        if not row or not row[0]:
            return
        try:
            run_drift_check(conn, datetime.now(UTC), self._schedule)
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (_DRIFT_LOCK,))


# -- label samples ---------------------------------------------------------------------------
def sample_events(
    conn: psycopg.Connection[Any],
    lo: datetime,
    hi: datetime,
    *,
    site_id: str | frozenset[str] | None = None,
    station_id: str | None = None,
    camera_id: str | None = None,
    limit: int = 200_000,
) -> list[SampleEvent]:
    """Production and shadow events of a window, as the sample selection reads them."""
    where, params = _filters(site_id=site_id, station_id=station_id, camera_id=camera_id)
    rows = conn.execute(
        "SELECT event_id::text, ts, coalesce(duration_s, effective_duration_s), camera_id, station_id, "
        "event_type, confidence, count, model_version, shadow FROM events "
        f"WHERE ts >= %(lo)s AND ts < %(hi)s {where} ORDER BY ts LIMIT %(limit)s",
        {**params, "lo": lo, "hi": hi, "limit": limit},
    ).fetchall()
    return [
        SampleEvent(eid, ts, dur, cam, st, et, float(conf), int(cnt), mv, bool(sh))
        for eid, ts, dur, cam, st, et, conf, cnt, mv, sh in rows
    ]
