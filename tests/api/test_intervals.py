from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from api.metrics.calendar import UnknownShiftError, local_days, windows
from api.metrics.engine import split
from api.metrics.intervals import clip, subtract, union
from api.settings import Break, Shift, SiteCalendar

D = datetime(2026, 1, 5, tzinfo=UTC)


def h(x: float) -> datetime:
    return D + timedelta(hours=x)


@pytest.mark.parametrize(
    ("spans", "expected"),
    [
        ([], []),
        ([(1.0, 2.0), (1.5, 3.0)], [(1.0, 3.0)]),
        ([(1.0, 2.0), (2.0, 3.0)], [(1.0, 3.0)]),
        ([(3.0, 4.0), (1.0, 2.0), (1.2, 1.4)], [(1.0, 2.0), (3.0, 4.0)]),
        ([(1.0, 1.0)], []),
    ],
)
def test_union(spans: list[tuple[float, float]], expected: list[tuple[float, float]]) -> None:
    assert union(spans) == expected


def test_clip_and_subtract() -> None:
    assert clip(0.0, 10.0, 2.0, 5.0) == (2.0, 5.0)
    assert clip(0.0, 1.0, 2.0, 5.0) is None
    assert subtract([(h(0), h(10))], [(h(2), h(3)), (h(9), h(11))]) == [(h(0), h(2)), (h(3), h(9))]


def us(hours: float) -> int:
    return round(hours * 3600 * 1_000_000)


def test_split_uses_whole_days_hours_and_parts_of_hours() -> None:
    parts = split([(7, h(0.5), h(3.25))])
    assert parts.days == []
    assert parts.hours == [(7, h(1), h(3), 1)]
    assert parts.parts == [(7, h(0), us(0.5), us(1)), (7, h(3), 0, us(0.25))]
    assert split([(1, h(0.1), h(0.2))]).parts == [(1, h(0), us(0.1), us(0.2))]
    # Adjacent partial hours with no whole hour between them.
    assert split([(2, h(0.5), h(1.5))]) == split([(2, h(0.5), h(1)), (2, h(1), h(1.5))])
    assert split([(2, h(0.5), h(1.5))]).hours == []
    # Whole days in the middle, whole hours beside them.
    long = split([(3, h(-1.5), h(49.25))])
    assert long.days == [(3, h(0), h(48), 1)]
    assert long.hours == [(3, h(-1), h(0), 1), (3, h(48), h(49), 1)]
    assert long.parts == [(3, h(-2), us(0.5), us(1)), (3, h(49), 0, us(0.25))]
    assert split([(3, h(-1.5), h(49.25))], use_days=False).hours == [(3, h(-1), h(49), 1)]
    assert split([(4, h(1), h(1))]) == split([])


def test_split_subtracts_the_rest_of_a_day_when_that_reads_fewer_rows() -> None:
    # A local day (UTC+1): one day row and two hour rows, not 24 hour rows.
    local_day = split([(5, h(-1), h(23))])
    assert local_day.days == [(5, h(0), h(24), 1)]
    assert local_day.hours == [(5, h(-1), h(0), 1), (5, h(23), h(24), -1)]
    # 18 hours of one day: the day minus the 6 hours outside.
    assert split([(6, h(2), h(20))]).hours == [(6, h(0), h(2), -1), (6, h(20), h(24), -1)]
    # 12 hours or fewer: added.
    assert split([(6, h(2), h(14))]).hours == [(6, h(2), h(14), 1)]
    # Several days: each end separately.
    ends = split([(8, h(4), h(24 * 3 + 20))])
    assert ends.days == [(8, h(0), h(24 * 4), 1)]
    assert ends.hours == [(8, h(0), h(4), -1), (8, h(24 * 3 + 20), h(24 * 4), -1)]


def test_shift_windows_exclude_planned_breaks_in_local_time() -> None:
    cal = SiteCalendar(
        timezone="Europe/Berlin",
        shifts=[
            Shift(name="day", start=time(8), end=time(17), breaks=[Break(start=time(12), end=time(12, 30))])
        ],
    )
    counted, breaks = windows(cal, h(0), h(24), "day")
    # Berlin is UTC+1 in January.
    assert counted == [(h(7), h(11)), (h(11.5), h(16))]
    assert breaks == [(h(11), h(11.5))]
    all_day, _ = windows(cal, h(0), h(24), None)
    assert all_day == [(h(0), h(11)), (h(11.5), h(24))]
    with pytest.raises(UnknownShiftError):
        windows(cal, h(0), h(24), "night")


@pytest.mark.parametrize(
    ("zone", "first_day", "hours"),
    [
        # Spring forward (23 h), an ordinary day, fall back (25 h).
        ("America/Chicago", datetime(2026, 3, 7), [24, 23, 24]),
        ("America/Chicago", datetime(2026, 10, 31), [24, 25, 24]),
        # A half-hour zone keeps its midnights; no change there.
        ("Asia/Kolkata", datetime(2026, 3, 7), [24, 24, 24]),
        # Santiago's clocks jump from 00:00 to 01:00: that day starts at 01:00.
        ("America/Santiago", datetime(2026, 9, 5), [24, 23, 24]),
    ],
)
def test_local_days_run_midnight_to_midnight_across_daylight_saving(
    zone: str, first_day: datetime, hours: list[int]
) -> None:
    tz = ZoneInfo(zone)
    lo = first_day.replace(tzinfo=tz).astimezone(UTC)
    hi = (first_day + timedelta(days=3)).replace(tzinfo=tz).astimezone(UTC)
    days = local_days(lo, hi, tz)
    assert [label for label, _a, _b in days] == [0, 1, 2]
    assert [round((b - a) / timedelta(hours=1)) for _l, a, b in days] == hours
    assert days[0][1] == lo and days[-1][2] == hi
    assert all(days[i][2] == days[i + 1][1] for i in range(len(days) - 1))
    assert [a.astimezone(tz).date() for _l, a, _b in days] == [
        (first_day + timedelta(days=i)).date() for i in range(3)
    ]


def test_local_days_clip_to_the_window() -> None:
    tz = ZoneInfo("Europe/Berlin")
    lo, hi = datetime(2026, 3, 28, 15, tzinfo=UTC), datetime(2026, 3, 29, 10, tzinfo=UTC)
    assert local_days(lo, hi, tz) == [
        (0, lo, datetime(2026, 3, 28, 23, tzinfo=UTC)),
        (1, datetime(2026, 3, 28, 23, tzinfo=UTC), hi),
    ]
