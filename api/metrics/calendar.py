"""Shift and planned-break windows from a site calendar: pure, no I/O."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from api.metrics.intervals import intersect, subtract, union
from api.settings import Shift, SiteCalendar

Span = tuple[datetime, datetime]


class UnknownShiftError(ValueError):
    pass


def _local(day: date, at: object, tz: ZoneInfo) -> datetime:
    return datetime.combine(day, at, tzinfo=tz).astimezone(UTC)  # type: ignore[arg-type]


def _shift_spans(shift: Shift, lo: datetime, hi: datetime, tz: ZoneInfo) -> tuple[list[Span], list[Span]]:
    """The shift's occurrences and its breaks overlapping [lo, hi), in UTC."""
    spans: list[Span] = []
    breaks: list[Span] = []
    day = lo.astimezone(tz).date() - timedelta(days=1)
    last = hi.astimezone(tz).date()
    while day <= last:
        start = _local(day, shift.start, tz)
        end_day = day + timedelta(days=1) if shift.end <= shift.start else day
        spans.append((start, _local(end_day, shift.end, tz)))
        for brk in shift.breaks:
            b_day = day if brk.start >= shift.start else end_day
            b_end_day = b_day + timedelta(days=1) if brk.end <= brk.start else b_day
            breaks.append((_local(b_day, brk.start, tz), _local(b_end_day, brk.end, tz)))
        day += timedelta(days=1)
    return spans, breaks


def windows(
    calendar: SiteCalendar | None, lo: datetime, hi: datetime, shift: str | None
) -> tuple[list[Span], list[Span]]:
    """(counted windows, planned-break windows) for [lo, hi) and an optional shift."""
    if calendar is None:
        if shift is not None:
            raise UnknownShiftError(f"no shift calendar is configured, so there is no shift {shift!r}")
        return [(lo, hi)], []
    tz = ZoneInfo(calendar.timezone)
    selected = [s for s in calendar.shifts if shift is None or s.name == shift]
    if shift is not None and not selected:
        raise UnknownShiftError(f"unknown shift {shift!r}")
    spans: list[Span] = []
    breaks: list[Span] = []
    for s in selected:
        sp, br = _shift_spans(s, lo, hi, tz)
        spans += sp
        breaks += br
    base = intersect([(lo, hi)], spans) if shift is not None else [(lo, hi)]
    planned = intersect(base, breaks)
    return subtract(base, planned), union(planned)


def local_days(lo: datetime, hi: datetime, tz: ZoneInfo) -> list[tuple[int, datetime, datetime]]:
    """One labelled window per day of the site's calendar (midnight to midnight in
    ``tz``), clipped to [lo, hi). A day across a daylight-saving change lasts 23
    or 25 hours; a day whose midnight does not exist starts at its first instant."""
    out: list[tuple[int, datetime, datetime]] = []
    day = lo.astimezone(tz).date()
    start = _local(day, time(0), tz)
    while start < hi:
        day += timedelta(days=1)
        end = _local(day, time(0), tz)
        out.append((len(out), max(start, lo), min(end, hi)))
        start = end
    return out


def planned(calendar: SiteCalendar | None, lo: datetime, hi: datetime, shift: str | None) -> list[Span]:
    """Planned production time of [lo, hi): within the site's shifts (or ``shift``), minus planned breaks.

    Without a calendar (or one without shifts), the whole window (docs/metrics.md, "Targets").
    """
    counted, _breaks = windows(calendar, lo, hi, shift)
    if calendar is None or shift is not None or not calendar.shifts:
        return counted
    tz = ZoneInfo(calendar.timezone)
    spans: list[Span] = []
    for s in calendar.shifts:
        spans += _shift_spans(s, lo, hi, tz)[0]
    return intersect(counted, spans)


def occurrences(calendar: SiteCalendar, lo: datetime, hi: datetime) -> list[tuple[str, datetime, datetime]]:
    """(shift name, start, end) of each occurrence of the calendar's shifts ending in (lo, hi], by end.

    The shift reports' schedule (api/shift_report/schedule.py): a shift is due once its end has passed.
    """
    tz = ZoneInfo(calendar.timezone)
    out: list[tuple[str, datetime, datetime]] = []
    for s in calendar.shifts:
        # Occurrences start at most a day before they end: look from a day before lo.
        spans, _breaks = _shift_spans(s, lo - timedelta(days=1), hi, tz)
        out += [(s.name, a, b) for a, b in spans if lo < b <= hi]
    return sorted(out, key=lambda x: (x[2], x[0]))


def local_day(calendar: SiteCalendar, at: datetime) -> date:
    return at.astimezone(ZoneInfo(calendar.timezone)).date()
