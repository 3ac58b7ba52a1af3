"""Alert rules and the pure decisions behind incidents: shift time, quiet hours, open / resolve / hold.

No I/O here: :mod:`api.alerts.evaluate` reads the database and applies these.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from enum import StrEnum
from typing import Any
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field, HttpUrl, field_validator, model_validator

from api.metrics.calendar import Span, windows
from api.metrics.intervals import intersect, union
from api.settings import SiteCalendar
from takt.contract.topics import TOPIC_ID_PATTERN


class RuleKind(StrEnum):
    STATION_IDLE = "station_idle"
    RATE_BELOW = "rate_below"
    BEHIND_TARGET = "behind_target"
    GATEWAY_OFFLINE = "gateway_offline"
    GATEWAY_BACKLOG = "gateway_backlog"
    DRIFT_FLAG = "drift_flag"
    CAMERA_VIEW_WRONG = "camera_view_wrong"


# Kinds judged against the site's shifts: they fire only in shift time outside planned breaks.
SHIFT_KINDS = frozenset({RuleKind.STATION_IDLE, RuleKind.RATE_BELOW, RuleKind.BEHIND_TARGET})
_EMAIL = re.compile(r"^[^@\s,;<>]+@[^@\s,;<>]+\.[^@\s,;<>]+$")


class QuietHours(BaseModel):
    """A daily span in the site's local time (``end <= start`` crosses midnight) without new incidents."""

    model_config = ConfigDict(extra="forbid")

    start: time
    end: time


def _emails(values: list[str]) -> list[str]:
    for value in values:
        if not _EMAIL.match(value):
            raise ValueError(f"{value!r} is not an email address")
    return values


class RuleIn(BaseModel):
    """A new alert rule (``POST /api/v1/alerts/rules``)."""

    model_config = ConfigDict(extra="forbid")

    kind: RuleKind
    name: str = Field(default="", max_length=200)
    site_id: str | None = Field(
        default=None, pattern=TOPIC_ID_PATTERN, description="Defaults to the deployment's TAKT_SITE_ID."
    )
    line_id: str | None = Field(
        default=None, max_length=64, description="Scope to one line's stations (PUT /api/v1/lines)."
    )
    station_id: str | None = Field(default=None, min_length=1, max_length=128)
    minutes: float = Field(
        default=0,
        ge=0,
        le=7 * 24 * 60,
        description="How long the condition must hold before an incident opens (station_idle, "
        "gateway_offline, gateway_backlog: required, > 0).",
    )
    threshold: float | None = Field(
        default=None,
        ge=0,
        description="rate_below: units per hour; behind_target: percent behind the stations' targets "
        "(10: fires below 90 % of the target units); gateway_backlog: buffered events above which it counts.",
    )
    window_minutes: float | None = Field(
        default=None,
        gt=0,
        le=24 * 60,
        description="rate_below, behind_target: the window measured (60 minutes).",
    )
    quiet_hours: list[QuietHours] = Field(default_factory=list, max_length=8)
    enabled: bool = True
    webhook_url: HttpUrl | None = None
    webhook_secret: str | None = Field(
        default=None,
        min_length=16,
        max_length=256,
        description="HMAC-SHA256 key of the X-Takt-Signature header; generated (and shown once) if omitted.",
    )
    email: list[str] = Field(default_factory=list, max_length=50)
    mqtt: bool = Field(
        default=False, description="A retained message per incident on takt/v1/<site>/alerts/<id>."
    )
    escalate_minutes: float | None = Field(
        default=None,
        gt=0,
        le=7 * 24 * 60,
        description="Unacknowledged this long: tell the escalation recipients.",
    )
    escalate_email: list[str] = Field(default_factory=list, max_length=50)
    escalate_webhook_url: HttpUrl | None = None

    _check_email = field_validator("email", "escalate_email")(_emails)

    @model_validator(mode="after")
    def _consistent(self) -> RuleIn:
        timed = (RuleKind.STATION_IDLE, RuleKind.GATEWAY_OFFLINE, RuleKind.GATEWAY_BACKLOG)
        if self.kind in timed and self.minutes <= 0:
            raise ValueError(f"a {self.kind.value} rule needs minutes > 0")
        if self.kind is RuleKind.RATE_BELOW and self.threshold is None:
            raise ValueError("a rate_below rule needs threshold (units per hour)")
        if self.kind is RuleKind.BEHIND_TARGET and (self.threshold is None or not 0 < self.threshold < 100):
            raise ValueError(
                "a behind_target rule needs threshold: the percent behind target, between 0 and 100"
            )
        if self.line_id is not None and self.station_id is not None:
            raise ValueError("scope a rule to a site, a line or a station, not both a line and a station")
        if self.escalate_minutes is not None and not (self.escalate_email or self.escalate_webhook_url):
            raise ValueError("escalate_minutes needs escalate_email or escalate_webhook_url")
        return self


@dataclass(frozen=True, slots=True)
class Rule:
    """A stored rule, as the evaluator sees it."""

    rule_id: int
    kind: RuleKind
    site_id: str
    name: str = ""
    line_id: str | None = None
    station_id: str | None = None
    minutes: float = 0
    threshold: float | None = None
    window_minutes: float | None = None
    quiet_hours: tuple[QuietHours, ...] = ()
    webhook_url: str | None = None
    webhook_secret: str | None = None
    email: tuple[str, ...] = ()
    mqtt: bool = False
    escalate_minutes: float | None = None
    escalate_email: tuple[str, ...] = ()
    escalate_webhook_url: str | None = None


class ShiftTime(StrEnum):
    COUNTED = "counted"  # in a shift, not in a planned break
    BREAK = "break"
    OFF = "off"  # outside every shift


def _all_shift_spans(calendar: SiteCalendar, lo: datetime, hi: datetime) -> tuple[list[Span], list[Span]]:
    counted: list[Span] = []
    breaks: list[Span] = []
    for shift in calendar.shifts:
        c, b = windows(calendar, lo, hi, shift.name)
        counted += c
        breaks += b
    return union(counted), union(breaks)


def shift_time(calendar: SiteCalendar | None, at: datetime) -> ShiftTime:
    """Whether ``at`` is counted shift time, a planned break or off shift (no shifts: always counted)."""
    if calendar is None or not calendar.shifts:
        return ShiftTime.COUNTED
    counted, breaks = _all_shift_spans(calendar, at, at + timedelta(seconds=1))
    if counted:
        return ShiftTime.COUNTED
    return ShiftTime.BREAK if breaks else ShiftTime.OFF


def counted_seconds(calendar: SiteCalendar | None, lo: datetime, hi: datetime) -> float:
    """Seconds of [lo, hi) in shift time outside planned breaks (no shifts: all of it)."""
    if hi <= lo:
        return 0.0
    if calendar is None or not calendar.shifts:
        return (hi - lo).total_seconds()
    counted, _ = _all_shift_spans(calendar, lo, hi)
    return sum((b - a).total_seconds() for a, b in intersect([(lo, hi)], counted))


def in_quiet_hours(quiet: Sequence[QuietHours], timezone: str, at: datetime) -> bool:
    local = at.astimezone(ZoneInfo(timezone)).time()
    for q in quiet:
        if q.start < q.end:
            if q.start <= local < q.end:
                return True
        elif local >= q.start or local < q.end:  # crosses midnight (start == end: all day)
            return True
    return False


@dataclass(frozen=True, slots=True)
class Finding:
    """A subject whose condition holds now, since when, and what to say about it."""

    subject: str
    since: datetime
    summary: str
    details: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Verdict:
    """One rule's evaluation: subjects firing now, and subjects neither firing nor clear (held:
    a planned break, quiet hours, missing data), whose open incidents stay open."""

    firing: Mapping[str, Finding] = field(default_factory=dict)
    held: frozenset[str] = frozenset()
    hold_all: bool = False


@dataclass(frozen=True, slots=True)
class Plan:
    open: list[Finding]
    resolve: list[str]


def plan(open_subjects: Sequence[str], verdict: Verdict, *, allow_new: bool = True) -> Plan:
    """Which incidents to open (subjects firing without one) and resolve (open but no longer firing).

    ``allow_new=False`` (quiet hours) opens nothing; held subjects keep what they have.
    """
    current = set(open_subjects)
    opened = [f for s, f in sorted(verdict.firing.items()) if s not in current] if allow_new else []
    if verdict.hold_all:
        return Plan(opened, [])
    resolved = sorted(s for s in current if s not in verdict.firing and s not in verdict.held)
    return Plan(opened, resolved)


def due_for_escalation(
    started_at: datetime, escalate_minutes: float | None, *, acknowledged: bool, escalated: bool, at: datetime
) -> bool:
    if escalate_minutes is None or acknowledged or escalated:
        return False
    return at - started_at >= timedelta(minutes=escalate_minutes)


def utc(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
