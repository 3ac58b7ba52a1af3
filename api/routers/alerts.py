"""Alert rules (supervisors and admins write them) and incidents (listed, acknowledged with a note)."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

import psycopg
from fastapi import APIRouter, HTTPException, Query, Request, Response
from psycopg.types.json import Jsonb
from pydantic import BaseModel, ConfigDict, Field

from api.alerts.deliver import INCIDENT_SQL, incident_json
from api.alerts.destinations import ForbiddenDestination, check_saved
from api.alerts.evaluate import (
    RULE_COLUMNS,
    UnknownLineError,
    line_stations,
    queue,
    rule_from_row,
    targets,
)
from api.alerts.rules import QuietHours, RuleIn, RuleKind
from api.deps import Conn, Settings, Supervisor, Viewer
from api.security import Caller, Role
from takt.contract import UtcTime

router = APIRouter(tags=["alerts"])


class RuleOut(BaseModel):
    rule_id: int
    kind: RuleKind
    name: str
    site_id: str
    line_id: str | None
    station_id: str | None
    minutes: float
    threshold: float | None
    window_minutes: float | None
    quiet_hours: list[QuietHours]
    enabled: bool
    webhook_url: str | None
    email: list[str]
    mqtt: bool
    escalate_minutes: float | None
    escalate_email: list[str]
    escalate_webhook_url: str | None
    created_at: datetime
    webhook_secret: str | None = Field(
        default=None, description="Only in the answer to POST: the HMAC key, shown once; store it."
    )


class Incident(BaseModel):
    id: int
    rule_id: int
    kind: str
    rule_name: str
    site_id: str
    subject: str
    summary: str
    details: dict[str, Any]
    status: Literal["open", "acknowledged", "resolved"]
    condition_since: str
    started_at: str
    acknowledged_at: str | None
    acknowledged_by: str | None
    ack_note: str | None
    escalated_at: str | None
    resolved_at: str | None


class Ack(BaseModel):
    model_config = ConfigDict(extra="forbid")

    note: str = Field(default="", max_length=2000, description="What is being done about it.")


def caller_sites(request: Request, site_id: str | None) -> list[str] | None:
    """The sites a read is limited to (None: every site): the asked one, which must be among a
    site-scoped token's (404 otherwise, as for any read: api.access), else the token's own.

    Every alerts route resolves its sites here, so site-scoped tokens limit them in one place.
    """
    caller = getattr(request.state, "caller", None)
    allowed = caller.sites if isinstance(caller, Caller) else None
    if allowed is None:
        return None if site_id is None else [site_id]
    if site_id is None:
        return sorted(allowed)
    if site_id not in allowed:
        raise HTTPException(404, f"unknown site {site_id!r}")
    return [site_id]


def caller_site(request: Request, site_id: str | None) -> str | None:
    """One site for a route about one site (a new rule, the wallboard): the asked one, or a
    site-scoped token's only one; 422 for a token of several sites that names none."""
    sites = caller_sites(request, site_id)
    if sites is None or len(sites) == 1:
        return None if sites is None else sites[0]
    raise HTTPException(422, "this token reads several sites: name one with site_id")


def _visible(request: Request, site_id: str) -> bool:
    sites = caller_sites(request, None)
    return sites is None or site_id in sites


def _rule_out(row: dict[str, Any], secret: str | None = None) -> RuleOut:
    rule = rule_from_row(row)
    return RuleOut(
        rule_id=rule.rule_id,
        kind=rule.kind,
        name=rule.name,
        site_id=rule.site_id,
        line_id=rule.line_id,
        station_id=rule.station_id,
        minutes=rule.minutes,
        threshold=rule.threshold,
        window_minutes=rule.window_minutes,
        quiet_hours=list(rule.quiet_hours),
        enabled=bool(row["enabled"]),
        webhook_url=rule.webhook_url,
        email=list(rule.email),
        mqtt=rule.mqtt,
        escalate_minutes=rule.escalate_minutes,
        escalate_email=list(rule.escalate_email),
        escalate_webhook_url=rule.escalate_webhook_url,
        created_at=row["created_at"],
        webhook_secret=secret,
    )


def _dicts(cur: psycopg.Cursor[Any]) -> list[dict[str, Any]]:
    names = [d.name for d in cur.description or []]
    return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]


@router.post("/alerts/rules", status_code=201)
def create_rule(body: RuleIn, conn: Conn, settings: Settings, request: Request, _: Supervisor) -> RuleOut:
    """A new rule; evaluated from the next round on (every TAKT_ALERT_INTERVAL_S). With a webhook and no
    ``webhook_secret``, one is generated and returned here only."""
    site = caller_site(request, body.site_id) or body.site_id or settings.site_id
    if body.line_id is not None:
        try:
            line_stations(conn, body.line_id)
        except UnknownLineError as exc:
            raise HTTPException(404, str(exc)) from None
    for url in (body.webhook_url, body.escalate_webhook_url):
        if url is not None:
            try:
                check_saved(str(url), settings.alert_webhook_allow_networks)
            except ForbiddenDestination as exc:
                raise HTTPException(422, str(exc)) from None
    secret = body.webhook_secret
    if secret is None and (body.webhook_url or body.escalate_webhook_url):
        secret = secrets.token_urlsafe(32)
    rows = _dicts(
        conn.execute(
            "INSERT INTO alert_rules (kind, name, site_id, line_id, station_id, minutes, threshold, "
            "window_minutes, quiet_hours, enabled, webhook_url, webhook_secret, email, mqtt, "
            "escalate_minutes, escalate_email, escalate_webhook_url) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) "
            f"RETURNING {RULE_COLUMNS}, enabled, created_at",
            (
                body.kind.value,
                body.name,
                site,
                body.line_id,
                body.station_id,
                body.minutes,
                body.threshold,
                body.window_minutes,
                Jsonb([q.model_dump(mode="json") for q in body.quiet_hours]),
                body.enabled,
                str(body.webhook_url) if body.webhook_url else None,
                secret,
                body.email,
                body.mqtt,
                body.escalate_minutes,
                body.escalate_email,
                str(body.escalate_webhook_url) if body.escalate_webhook_url else None,
            ),
        )
    )
    return _rule_out(rows[0], secret)


@router.get("/alerts/rules")
def list_rules(conn: Conn, request: Request, _: Supervisor, site_id: str | None = None) -> list[RuleOut]:
    """The rules not deleted (their webhook secrets are never shown again)."""
    site = caller_sites(request, site_id)
    rows = _dicts(
        conn.execute(
            f"SELECT {RULE_COLUMNS}, enabled, created_at FROM alert_rules "
            "WHERE deleted_at IS NULL AND (%(site)s::text[] IS NULL OR site_id = ANY(%(site)s)) "
            "ORDER BY rule_id",
            {"site": site},
        )
    )
    return [_rule_out(r) for r in rows]


def _one_rule(conn: psycopg.Connection[Any], request: Request, rule_id: int) -> dict[str, Any]:
    rows = _dicts(
        conn.execute(
            f"SELECT {RULE_COLUMNS}, enabled, created_at FROM alert_rules "
            "WHERE rule_id = %s AND deleted_at IS NULL",
            (rule_id,),
        )
    )
    if not rows or not _visible(request, rows[0]["site_id"]):
        raise HTTPException(404, f"no alert rule {rule_id}")
    return rows[0]


@router.get("/alerts/rules/{rule_id}")
def get_rule(rule_id: int, conn: Conn, request: Request, _: Supervisor) -> RuleOut:
    return _rule_out(_one_rule(conn, request, rule_id))


@router.delete("/alerts/rules/{rule_id}", status_code=204)
def delete_rule(rule_id: int, conn: Conn, request: Request, _: Supervisor) -> Response:
    """Delete a rule; its open incidents resolve (with a notice) in the next evaluation round.
    Its incidents stay in the history."""
    _one_rule(conn, request, rule_id)
    conn.execute("UPDATE alert_rules SET deleted_at = now() WHERE rule_id = %s", (rule_id,))
    return Response(status_code=204)


Status = Literal["open", "acknowledged", "resolved", "active", "all"]


@router.get("/alerts")
def incidents(
    conn: Conn,
    request: Request,
    _: Viewer,
    *,
    site_id: str | None = None,
    status: Annotated[
        Status,
        Query(description="active: open or acknowledged (not resolved); all: everything."),
    ] = "all",
    start: Annotated[
        UtcTime | None, Query(alias="from", description="Incidents started at or after.")
    ] = None,
    end: Annotated[UtcTime | None, Query(alias="to", description="Incidents started before.")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> list[Incident]:
    """Incidents, newest first, with their start, acknowledgement, escalation and end."""
    site = caller_sites(request, site_id)
    where = ["(%(site)s::text[] IS NULL OR i.site_id = ANY(%(site)s))"]
    if status == "open":
        where.append("i.resolved_at IS NULL AND i.acknowledged_at IS NULL")
    elif status == "acknowledged":
        where.append("i.resolved_at IS NULL AND i.acknowledged_at IS NOT NULL")
    elif status == "active":
        where.append("i.resolved_at IS NULL")
    elif status == "resolved":
        where.append("i.resolved_at IS NOT NULL")
    if start is not None:
        where.append("i.started_at >= %(start)s")
    if end is not None:
        where.append("i.started_at < %(end)s")
    rows = _dicts(
        conn.execute(
            INCIDENT_SQL + f" WHERE {' AND '.join(where)} ORDER BY i.started_at DESC, i.incident_id DESC "
            "LIMIT %(limit)s",
            {"site": site, "start": start, "end": end, "limit": limit},
        )
    )
    return [Incident.model_validate(incident_json(r)) for r in rows]


def _incident(conn: psycopg.Connection[Any], request: Request, incident_id: int) -> dict[str, Any]:
    rows = _dicts(conn.execute(INCIDENT_SQL + " WHERE i.incident_id = %s", (incident_id,)))
    if not rows or not _visible(request, rows[0]["site_id"]):
        raise HTTPException(404, f"no incident {incident_id}")
    return rows[0]


@router.get("/alerts/{incident_id}")
def incident(incident_id: int, conn: Conn, request: Request, _: Viewer) -> Incident:
    return Incident.model_validate(incident_json(_incident(conn, request, incident_id)))


@router.post("/alerts/{incident_id}/ack")
def acknowledge(incident_id: int, body: Ack, conn: Conn, request: Request, role: Supervisor) -> Incident:
    """Acknowledge an open incident with a note: it is no longer escalated; it still resolves by itself
    when its condition clears. Acknowledging twice keeps the first acknowledgement (409)."""
    _incident(conn, request, incident_id)
    caller = getattr(request.state, "caller", None)
    who = caller.role.value if isinstance(caller, Caller) else Role(role).value
    with conn.transaction():
        row = conn.execute(
            # The API's clock, like the evaluator's start and end times.
            "UPDATE alert_incidents SET acknowledged_at = %s, acknowledged_by = %s, ack_note = %s "
            "WHERE incident_id = %s AND acknowledged_at IS NULL AND resolved_at IS NULL "
            "RETURNING rule_id, site_id",
            (datetime.now(UTC), who, body.note, incident_id),
        ).fetchone()
        if row is None:
            raise HTTPException(409, f"incident {incident_id} is already acknowledged or resolved")
        rules = _dicts(conn.execute(f"SELECT {RULE_COLUMNS} FROM alert_rules WHERE rule_id = %s", (row[0],)))
        rule = rule_from_row(rules[0])
        # The retained MQTT message shows the acknowledgement; webhooks and emails are not sent for it.
        queue(
            conn,
            incident_id,
            rule.site_id,
            "acknowledged",
            targets(rule, "ack", escalated=False),
        )
    return Incident.model_validate(incident_json(_incident(conn, request, incident_id)))
