"""Alert evaluation: each round reads live data, opens and resolves incidents, queues notifications.

A round runs in one transaction holding a transaction-level advisory lock
(``pg_try_advisory_xact_lock``): of several API processes, one evaluates per
round and the others skip it. Incidents and the notifications they queue are
written in that transaction, so a crash or restart loses nothing and repeats
nothing: the next round (in any process) starts from what is stored. The
partial unique index on open incidents (rule, subject) backs the lock: an
episode is one row whatever happens.

Conditions read the events table directly (read-your-writes: nothing waits for
the rollup refresher) and the gateways, drift_flags tables.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from api.alerts.rules import (
    SHIFT_KINDS,
    Finding,
    QuietHours,
    Rule,
    RuleKind,
    ShiftTime,
    Verdict,
    counted_seconds,
    due_for_escalation,
    in_quiet_hours,
    plan,
    shift_time,
)
from api.settings import SiteCalendar
from takt import states
from takt.contract.topics import alerts_topic
from takt.periodic import PeriodicDatabaseTask
from takt.store.targets import load_targets, stations_elsewhere
from takt.targets import Span, window_target

logger = logging.getLogger(__name__)

# pg_advisory locks are keyed by one bigint; this one is "takt-alerts" in ASCII, truncated.
ALERT_LOCK = 0x74616B742D616C


class UnknownLineError(ValueError):
    """A rule or wallboard names a line the lines API does not know (or one without stations)."""


def line_stations(conn: psycopg.Connection[Any], line_id: str) -> list[str]:
    """The stations of a line in line order (``PUT /api/v1/lines/{line_id}``)."""
    rows = conn.execute(
        "SELECT station_id FROM line_stations WHERE line_id = %s ORDER BY position", (line_id,)
    ).fetchall()
    if not rows:
        raise UnknownLineError(
            f"unknown line_id {line_id!r} (or a line without stations): see PUT /api/v1/lines"
        )
    return [str(r[0]) for r in rows]


def rule_from_row(row: Mapping[str, Any]) -> Rule:
    return Rule(
        rule_id=int(row["rule_id"]),
        kind=RuleKind(row["kind"]),
        site_id=str(row["site_id"]),
        name=str(row["name"] or ""),
        line_id=row["line_id"],
        station_id=row["station_id"],
        minutes=float(row["minutes"]),
        threshold=row["threshold"],
        window_minutes=row["window_minutes"],
        quiet_hours=tuple(QuietHours.model_validate(q) for q in row["quiet_hours"] or []),
        webhook_url=row["webhook_url"],
        webhook_secret=row["webhook_secret"],
        email=tuple(row["email"] or ()),
        mqtt=bool(row["mqtt"]),
        escalate_minutes=row["escalate_minutes"],
        escalate_email=tuple(row["escalate_email"] or ()),
        escalate_webhook_url=row["escalate_webhook_url"],
    )


RULE_COLUMNS = (
    "rule_id, kind, site_id, name, line_id, station_id, minutes, threshold, window_minutes, quiet_hours, "
    "webhook_url, webhook_secret, email, mqtt, escalate_minutes, escalate_email, escalate_webhook_url"
)


def _rows(cur: psycopg.Cursor[Any]) -> list[dict[str, Any]]:
    names = [d.name for d in cur.description or []]
    return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]


def _span(seconds: float) -> str:
    return f"{seconds / 60:.0f} min" if seconds >= 60 else f"{seconds:.0f} s"


def _stations(conn: psycopg.Connection[Any], rule: Rule) -> list[str] | None:
    """The rule's stations (None: every station of its site)."""
    if rule.station_id is not None:
        return [rule.station_id]
    if rule.line_id is not None:
        return line_stations(conn, rule.line_id)
    return None


@dataclass(frozen=True, slots=True)
class ScopeTarget:
    """What a scope's targets ask for over each of some planned times, and the stations with a target."""

    target_units: list[float | None]
    stations: list[str]


def scope_target(
    conn: psycopg.Connection[Any], site_id: str, stations: list[str] | None, *plans: Sequence[Span]
) -> ScopeTarget:
    """The units the targets of ``stations`` (None: every station with a target, less those
    known only at other sites) ask for over each of ``plans`` (planned times: sorted, disjoint
    spans), in order: per station :func:`takt.targets.window_target`, the rule of the station
    metrics (SKU-weighted by the units made in each target period; docs/metrics.md, "Target
    periods"), summed; None for a plan in which no period is targeted.

    Units are read from the ``product_count`` events themselves (read-your-writes, as every
    condition), grouped by station, SKU and the pieces of all ``plans`` cut at every span edge
    and target change, so one short aggregate serves every plan of the whole scope.
    """
    targets = load_targets(conn, stations)
    if stations is None:
        elsewhere = stations_elsewhere(conn, site_id)
        targets = {k: v for k, v in targets.items() if k not in elsewhere}
    ids = sorted(targets)
    spans = [span for planned in plans for span in planned]
    if not ids or not spans:
        return ScopeTarget([None] * len(plans), ids)
    lo, hi = min(a for a, _ in spans), max(b for _, b in spans)
    cuts = sorted(
        {lo}
        | {t for span in spans for t in span if t < hi}
        | {t for st in targets.values() for t in st.instants() if lo < t < hi}
    )
    made: dict[str, list[tuple[datetime, str, int]]] = {}
    for station, sku, k, units in conn.execute(
        "SELECT e.station_id, coalesce(e.sku, ''), width_bucket(e.ts, %(cuts)s::timestamptz[]), "
        "sum(e.count)::bigint FROM events e "
        "WHERE e.site_id = %(site)s AND NOT e.shadow AND e.event_type = 'product_count' "
        "AND e.station_id = ANY(%(ids)s) AND e.ts >= %(lo)s AND e.ts <= %(hi)s GROUP BY 1, 2, 3",
        {"cuts": cuts, "site": site_id, "ids": ids, "lo": lo, "hi": hi},
    ).fetchall():
        # Bucket k (>= 1: ts >= lo) is the piece from cuts[k - 1] on: an instant of that piece.
        made.setdefault(str(station), []).append((cuts[int(k) - 1], str(sku), int(units)))
    out: list[float | None] = []
    for planned in plans:
        asked = [t for st in ids if (t := window_target(targets[st], planned, made.get(st, ()))) is not None]
        out.append(sum(asked) if asked else None)
    return ScopeTarget(out, ids)


# -- conditions ------------------------------------------------------------------------------------


def _station_idle(
    conn: psycopg.Connection[Any], rule: Rule, at: datetime, calendar: SiteCalendar | None, max_gap_s: float
) -> Verdict:
    """Stations where no worker is working now, for more than ``minutes`` of counted shift time."""
    stations = _stations(conn, rule)
    where = "e.site_id = %(site)s" + ("" if stations is None else " AND e.station_id = ANY(%(stations)s)")
    params = {
        "site": rule.site_id,
        "stations": stations,
        "at": at,
        "gap": max_gap_s,
        "lookback": states.lookback_s(max_gap_s),
    }
    in_force: dict[str, set[str]] = {}
    for _worker, station, state, _heard in conn.execute(states.in_force_sql(where), params).fetchall():
        in_force.setdefault(str(station), set()).add(str(state))
    quiet = [s for s, kinds in in_force.items() if "working" not in kinds]
    if not quiet:
        return Verdict()
    # Since when: the end of the station's last working time, or its first idle/absent event after it.
    rows = conn.execute(
        """
        WITH recent AS (
            SELECT station_id, event_type, ts,
                   ts + coalesce(effective_duration_s, duration_s, 0) * interval '1 second' AS reach
            FROM events
            WHERE site_id = %(site)s AND station_id = ANY(%(quiet)s) AND NOT shadow
              AND event_type <> 'product_count'
              AND ts <= %(at)s AND ts > %(at)s - %(lookback)s * interval '1 second'
        ), w AS (
            SELECT station_id, max(ts) AS last_ts, max(reach) AS reach
            FROM recent WHERE event_type = 'working' GROUP BY 1
        )
        SELECT r.station_id, greatest(max(w.reach), min(r.ts)), bool_or(r.event_type = 'absent')
        FROM recent r LEFT JOIN w USING (station_id)
        WHERE r.event_type <> 'working' AND (w.last_ts IS NULL OR r.ts >= w.last_ts)
        GROUP BY 1
        """,
        {**params, "quiet": quiet},
    ).fetchall()
    firing: dict[str, Finding] = {}
    held: set[str] = set()
    needed = rule.minutes * 60
    for station, first, absent in rows:
        since = min(first, at)
        seconds = counted_seconds(calendar, since, at)
        if seconds >= needed:
            what = "idle or absent" if absent else "idle"
            firing[station] = Finding(
                station,
                since,
                f"Station {station} {what} for {_span(seconds)}",
                {
                    "station_id": station,
                    "idle_minutes": round(seconds / 60, 1),
                    "threshold_minutes": rule.minutes,
                },
            )
        else:
            held.add(station)
    return Verdict(firing=firing, held=frozenset(held))


def _rate_below(
    conn: psycopg.Connection[Any], rule: Rule, at: datetime, calendar: SiteCalendar | None, max_gap_s: float
) -> Verdict:
    """Units per hour of the scope over the window, when the whole window is counted shift time."""
    window = timedelta(minutes=rule.window_minutes or 60)
    lo = at - window
    subject = rule.station_id or (f"line:{rule.line_id}" if rule.line_id else f"site:{rule.site_id}")
    if counted_seconds(calendar, lo, at) < window.total_seconds() - 1:
        return Verdict(held=frozenset({subject}))
    threshold = rule.threshold
    if threshold is None:
        return Verdict(held=frozenset({subject}))
    stations = _stations(conn, rule)
    row = conn.execute(
        "SELECT coalesce(sum(count), 0) FROM events WHERE site_id = %(site)s AND NOT shadow "
        "AND event_type = 'product_count' AND ts > %(lo)s AND ts <= %(at)s"
        + ("" if stations is None else " AND station_id = ANY(%(stations)s)"),
        {"site": rule.site_id, "lo": lo, "at": at, "stations": stations},
    ).fetchone()
    units = int(row[0]) if row else 0
    rate = units * 3600 / window.total_seconds()
    if rate >= threshold:
        return Verdict()
    return Verdict(
        firing={
            subject: Finding(
                subject,
                lo,
                f"{subject}: {rate:.1f} units/h over {window.total_seconds() / 60:.0f} min, "
                f"below {threshold:g}",
                {"units": units, "rate_per_hour": round(rate, 2), "threshold_per_hour": threshold},
            )
        }
    )


def _behind_target(
    conn: psycopg.Connection[Any], rule: Rule, at: datetime, calendar: SiteCalendar | None, max_gap_s: float
) -> Verdict:
    """Units over the window below (100 - threshold) % of what the stations' targets ask for
    (:func:`scope_target`: the station metrics' target units, SKU-weighted), in counted shift time."""
    window = timedelta(minutes=rule.window_minutes or 60)
    lo = at - window
    subject = rule.station_id or (f"line:{rule.line_id}" if rule.line_id else f"site:{rule.site_id}")
    if counted_seconds(calendar, lo, at) < window.total_seconds() - 1 or rule.threshold is None:
        return Verdict(held=frozenset({subject}))
    scope = scope_target(conn, rule.site_id, _stations(conn, rule), [(lo, at)])
    [target] = scope.target_units
    if target is None:
        return Verdict(held=frozenset({subject}))  # no target in force: nothing to be behind
    row = conn.execute(
        "SELECT coalesce(sum(count), 0) FROM events WHERE site_id = %(site)s AND NOT shadow "
        "AND event_type = 'product_count' AND ts > %(lo)s AND ts <= %(at)s "
        "AND station_id = ANY(%(stations)s)",
        {"site": rule.site_id, "lo": lo, "at": at, "stations": scope.stations},
    ).fetchone()
    units = int(row[0]) if row else 0
    floor = target * (1 - rule.threshold / 100)
    if units >= floor:
        return Verdict()
    behind = (1 - units / target) * 100
    return Verdict(
        firing={
            subject: Finding(
                subject,
                lo,
                f"{subject}: {units} units in {window.total_seconds() / 60:.0f} min against a target of "
                f"{target:.1f}, {behind:.0f} % behind",
                {"units": units, "target_units": round(target, 2), "behind_percentage": round(behind, 1)},
            )
        }
    )


def _gateways(conn: psycopg.Connection[Any], rule: Rule) -> list[dict[str, Any]]:
    cur = conn.execute(
        "SELECT gateway_id, state, last_seen, status FROM gateways WHERE site_id = %s ORDER BY 1",
        (rule.site_id,),
    )
    return _rows(cur)


def _gateway_offline(
    conn: psycopg.Connection[Any], rule: Rule, at: datetime, calendar: SiteCalendar | None, max_gap_s: float
) -> Verdict:
    """Gateways not heard from (offline by their last will, or silent) for ``minutes``."""
    firing = {}
    for g in _gateways(conn, rule):
        if g["last_seen"] is None:
            continue
        silent = (at - g["last_seen"]).total_seconds()
        # An offline will updates last_seen too: either way, not heard from since then.
        if silent >= rule.minutes * 60:
            gw = str(g["gateway_id"])
            firing[gw] = Finding(
                gw,
                g["last_seen"],
                f"Gateway {gw} offline for {_span(silent)}",
                {"gateway_id": gw, "state": g["state"], "last_seen": g["last_seen"].isoformat()},
            )
    return Verdict(firing=firing)


def _gateway_backlog(
    conn: psycopg.Connection[Any], rule: Rule, at: datetime, calendar: SiteCalendar | None, max_gap_s: float
) -> Verdict:
    """Gateways whose buffer holds events older than ``minutes`` (a backlog that is not draining)."""
    firing = {}
    for g in _gateways(conn, rule):
        status = g["status"] if isinstance(g["status"], dict) else {}
        backlog, age = status.get("backlog"), status.get("oldest_buffered_age_s")
        if not isinstance(backlog, int | float) or not isinstance(age, int | float):
            continue
        if backlog > (rule.threshold or 0) and age >= rule.minutes * 60:
            gw = str(g["gateway_id"])
            firing[gw] = Finding(
                gw,
                at - timedelta(seconds=float(age)),
                f"Gateway {gw}: {int(backlog)} events buffered, oldest {_span(float(age))}",
                {"gateway_id": gw, "backlog": backlog, "oldest_buffered_age_s": age},
            )
    return Verdict(firing=firing)


def _camera_view_wrong(
    conn: psycopg.Connection[Any], rule: Rule, at: datetime, calendar: SiteCalendar | None, max_gap_s: float
) -> Verdict:
    """Cameras a gateway reports as not seeing what they should.

    Read defensively from the stored status JSON: a ``cameras`` list (or
    object keyed by camera id) whose entries carry ``view`` (anything but
    ``ok``: wrong) or ``view_ok: false``; the gateway's own ``camera_state``
    ``failed`` counts for its camera as well. Entries of any other shape are
    skipped.
    """
    firing = {}
    for g in _gateways(conn, rule):
        status = g["status"] if isinstance(g["status"], dict) else {}
        gw = str(g["gateway_id"])
        cameras = status.get("cameras")
        entries: list[tuple[str, Any]] = []
        if isinstance(cameras, dict):
            entries = [(str(k), v) for k, v in cameras.items()]
        elif isinstance(cameras, list):
            entries = [(str(c.get("camera_id", i)), c) for i, c in enumerate(cameras) if isinstance(c, dict)]
        for camera, info in entries:
            if not isinstance(info, dict):
                continue
            view = info.get("view")
            wrong = info.get("view_ok") is False or (isinstance(view, str) and view != "ok")
            if wrong:
                subject = f"{gw}/{camera}"
                firing[subject] = Finding(
                    subject,
                    at,
                    f"Camera {camera} on {gw}: view {view or 'wrong'}",
                    {"gateway_id": gw, "camera_id": camera, "view": view},
                )
        if status.get("camera_state") == "failed":
            subject = f"{gw}/camera"
            firing[subject] = Finding(
                subject, at, f"Camera on {gw} failed", {"gateway_id": gw, "camera_state": "failed"}
            )
    return Verdict(firing=firing)


def _drift_flag(
    conn: psycopg.Connection[Any], rule: Rule, at: datetime, calendar: SiteCalendar | None, max_gap_s: float
) -> Verdict:
    """Active drift flags (models/quality.py) of the site, or of the rule's station."""
    stations = _stations(conn, rule)
    rows = conn.execute(
        "SELECT subject_kind, subject_id, metric, min(checked_at), max(value), max(threshold) "
        "FROM drift_flags WHERE active AND site_id = %(site)s"
        + ("" if stations is None else " AND subject_kind = 'station' AND subject_id = ANY(%(stations)s)")
        + " GROUP BY 1, 2, 3",
        {"site": rule.site_id, "stations": stations},
    ).fetchall()
    firing = {}
    for kind, sid, metric, since, value, threshold in rows:
        if (at - since).total_seconds() < rule.minutes * 60:
            continue
        subject = f"{kind}:{sid}:{metric}"
        firing[subject] = Finding(
            subject,
            since,
            f"Drift on {kind} {sid}: {metric} {value:.3g} above {threshold:.3g}",
            {
                "subject_kind": kind,
                "subject_id": sid,
                "metric": metric,
                "value": value,
                "threshold": threshold,
            },
        )
    return Verdict(firing=firing)


Condition = Callable[[psycopg.Connection[Any], Rule, datetime, SiteCalendar | None, float], Verdict]
CONDITIONS: dict[RuleKind, Condition] = {
    RuleKind.STATION_IDLE: _station_idle,
    RuleKind.RATE_BELOW: _rate_below,
    RuleKind.BEHIND_TARGET: _behind_target,
    RuleKind.GATEWAY_OFFLINE: _gateway_offline,
    RuleKind.GATEWAY_BACKLOG: _gateway_backlog,
    RuleKind.CAMERA_VIEW_WRONG: _camera_view_wrong,
    RuleKind.DRIFT_FLAG: _drift_flag,
}


def verdict(
    conn: psycopg.Connection[Any], rule: Rule, at: datetime, calendar: SiteCalendar | None, max_gap_s: float
) -> Verdict:
    """The rule's condition now; shift-bound kinds hold in planned breaks and clear off shift."""
    if rule.kind in SHIFT_KINDS:
        when = shift_time(calendar, at)
        if when is ShiftTime.BREAK:
            return Verdict(hold_all=True)
        if when is ShiftTime.OFF:
            return Verdict()
    return CONDITIONS[rule.kind](conn, rule, at, calendar, max_gap_s)


# -- incidents and the outbox ----------------------------------------------------------------------


def targets(rule: Rule, event: str, *, escalated: bool) -> list[tuple[str, str]]:
    """(channel, target) of the notifications an incident event goes to."""
    out: list[tuple[str, str]] = []
    if event in ("opened", "resolved"):
        if rule.webhook_url:
            out.append(("webhook", rule.webhook_url))
        out += [("email", e) for e in rule.email]
    if event == "escalated" or (event == "resolved" and escalated):
        if rule.escalate_webhook_url:
            out.append(("webhook", rule.escalate_webhook_url))
        out += [("email", e) for e in rule.escalate_email]
    if rule.mqtt:
        out.append(("mqtt", ""))
    return list(dict.fromkeys(out))


def queue(
    conn: psycopg.Connection[Any], incident_id: int, site_id: str, event: str, to: list[tuple[str, str]]
) -> None:
    if not to:
        return
    conn.execute(
        "INSERT INTO alert_notifications (incident_id, event, channel, target) "
        "SELECT %s, %s, c, t FROM unnest(%s::text[], %s::text[]) AS x(c, t)",
        (
            incident_id,
            event,
            [c for c, _ in to],
            [t if c != "mqtt" else alerts_topic(site_id, incident_id) for c, t in to],
        ),
    )


def _open(conn: psycopg.Connection[Any], rule: Rule, finding: Finding, at: datetime) -> int | None:
    row = conn.execute(
        "INSERT INTO alert_incidents (rule_id, site_id, subject, summary, details, condition_since, "
        "started_at) "
        "VALUES (%s, %s, %s, %s, %s, %s, %s) "
        "ON CONFLICT (rule_id, subject) WHERE resolved_at IS NULL DO NOTHING RETURNING incident_id",
        (
            rule.rule_id,
            rule.site_id,
            finding.subject,
            finding.summary,
            Jsonb(dict(finding.details)),
            finding.since,
            at,
        ),
    ).fetchone()
    if row is None:
        return None
    incident_id = int(row[0])
    queue(conn, incident_id, rule.site_id, "opened", targets(rule, "opened", escalated=False))
    return incident_id


def _resolve(conn: psycopg.Connection[Any], rule: Rule, incident_id: int, at: datetime, why: str) -> None:
    row = conn.execute(
        "UPDATE alert_incidents SET resolved_at = %s, details = details || %s "
        "WHERE incident_id = %s AND resolved_at IS NULL RETURNING escalated_at IS NOT NULL",
        (at, Jsonb({"resolved_because": why}), incident_id),
    ).fetchone()
    if row is not None:
        queue(conn, incident_id, rule.site_id, "resolved", targets(rule, "resolved", escalated=bool(row[0])))


def evaluate(
    conn: psycopg.Connection[Any],
    at: datetime,
    calendars: Mapping[str, SiteCalendar],
    max_gap_s: float,
) -> dict[str, int]:
    """One round, inside the caller's transaction: open, resolve and escalate incidents of every rule."""
    counts = {"opened": 0, "resolved": 0, "escalated": 0, "failed_rules": 0}
    # Incidents of rules deleted or disabled since: resolved, with a notice.
    gone = conn.execute(
        f"SELECT i.incident_id, {', '.join('r.' + c.strip() for c in RULE_COLUMNS.split(','))} "
        "FROM alert_incidents i JOIN alert_rules r USING (rule_id) "
        "WHERE i.resolved_at IS NULL AND (r.deleted_at IS NOT NULL OR NOT r.enabled)"
    )
    for row in _rows(gone):
        _resolve(conn, rule_from_row(row), int(row["incident_id"]), at, "rule disabled or deleted")
        counts["resolved"] += 1
    rules = [
        rule_from_row(r)
        for r in _rows(
            conn.execute(
                f"SELECT {RULE_COLUMNS} FROM alert_rules WHERE enabled AND deleted_at IS NULL "
                "ORDER BY rule_id"
            )
        )
    ]
    for rule in rules:
        calendar = calendars.get(rule.site_id)
        try:
            # A rule that fails (bad data, a missing table) costs its own round only.
            with conn.transaction():
                v = verdict(conn, rule, at, calendar, max_gap_s)
                open_rows = conn.execute(
                    "SELECT subject, incident_id FROM alert_incidents "
                    "WHERE rule_id = %s AND resolved_at IS NULL",
                    (rule.rule_id,),
                ).fetchall()
                open_ids = {str(s): int(i) for s, i in open_rows}
                quiet = in_quiet_hours(rule.quiet_hours, calendar.timezone if calendar else "UTC", at)
                p = plan(list(open_ids), v, allow_new=not quiet)
                for finding in p.open:
                    if _open(conn, rule, finding, at) is not None:
                        counts["opened"] += 1
                for subject in p.resolve:
                    _resolve(conn, rule, open_ids[subject], at, "condition cleared")
                    counts["resolved"] += 1
        except (psycopg.Error, ValueError, KeyError, TypeError, ArithmeticError):
            counts["failed_rules"] += 1
            logger.exception("alert rule %d (%s) could not be evaluated", rule.rule_id, rule.kind.value)
    by_id = {r.rule_id: r for r in rules}
    pending = conn.execute(
        "SELECT incident_id, rule_id, started_at FROM alert_incidents "
        "WHERE resolved_at IS NULL AND acknowledged_at IS NULL AND escalated_at IS NULL"
    ).fetchall()
    for incident_id, rule_id, started_at in pending:
        owner = by_id.get(rule_id)
        if owner is None or not due_for_escalation(
            started_at, owner.escalate_minutes, acknowledged=False, escalated=False, at=at
        ):
            continue
        conn.execute("UPDATE alert_incidents SET escalated_at = %s WHERE incident_id = %s", (at, incident_id))
        queue(conn, incident_id, owner.site_id, "escalated", targets(owner, "escalated", escalated=True))
        counts["escalated"] += 1
    return counts


def _db_now(conn: psycopg.Connection[Any]) -> datetime:
    """The database's clock: one clock for every API process, so the instants successive rounds
    judge never step back when the rounds alternate between hosts whose clocks differ (an
    incident would close on one host's round and open again on the next host's)."""
    row = conn.execute("SELECT statement_timestamp()").fetchone()
    assert row is not None and isinstance(row[0], datetime)
    return row[0].astimezone(UTC)


class AlertEvaluator(PeriodicDatabaseTask):
    """Background thread of the API: :func:`evaluate` every ``interval_s`` under the advisory lock."""

    def __init__(
        self,
        database_url: str,
        interval_s: float,
        calendars: Mapping[str, SiteCalendar],
        max_gap_s: float,
        *,
        clock: Callable[[], datetime] | None = None,
        on_change: Callable[[], None] | None = None,
    ) -> None:
        # A round reads up to a day of the site's state events (the states in force): on a busy
        # site it may take longer than interval_s; spaced out, it leaves the database to others.
        super().__init__("alert-evaluator", database_url, interval_s, max_share=0.5)
        self._calendars = dict(calendars)
        self._max_gap_s = max_gap_s
        self._clock = clock
        self._on_change = on_change
        self.skipped = 0
        self.evaluated = threading.Event()

    def run_round(self, conn: psycopg.Connection[Any]) -> None:
        with conn.transaction():
            row = conn.execute("SELECT pg_try_advisory_xact_lock(%s)", (ALERT_LOCK,)).fetchone()
            if not row or not row[0]:
                self.skipped += 1
                return
            counts = evaluate(
                conn, self._clock() if self._clock else _db_now(conn), self._calendars, self._max_gap_s
            )
        self.evaluated.set()
        if any(counts[k] for k in ("opened", "resolved", "escalated")):
            logger.info("alerts: %s", counts)
            if self._on_change is not None:
                self._on_change()
