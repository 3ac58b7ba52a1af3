from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

import pytest

from api.metrics.calendar import UnknownShiftError, windows
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


def test_split_uses_whole_hours_and_edges() -> None:
    parts = split([(7, h(0.5), h(3.25))])
    assert parts.cores == [(7, h(1), h(3))]
    assert parts.edges == [(7, h(0.5), h(1)), (7, h(3), h(3.25))]
    assert split([(1, h(0.1), h(0.2))]).edges == [(1, h(0.1), h(0.2))]


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
