"""intervals.slices (one sweep) equals intersect per bucket; takt.targets splits time at target changes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from api.metrics.intervals import intersect, slices
from takt.targets import Change, StationTargets, in_force, window_target

T0 = datetime(2026, 1, 1, tzinfo=UTC)
span_st = st.tuples(st.integers(0, 500), st.integers(1, 100)).map(
    lambda p: (T0 + timedelta(minutes=p[0]), T0 + timedelta(minutes=p[0] + p[1]))
)


@given(spans=st.lists(span_st, max_size=12), step=st.integers(1, 90), start=st.integers(-50, 200))
def test_slices_equal_intersect_per_bucket(
    spans: list[tuple[datetime, datetime]], step: int, start: int
) -> None:
    buckets = [(T0 + timedelta(minutes=start + i * step), T0 + timedelta(minutes=start + (i + 1) * step))
               for i in range(12)]  # fmt: skip
    assert slices(spans, buckets) == [intersect(spans, [b]) for b in buckets]


def test_target_units_follow_changes_and_the_last_of_equal_ones() -> None:
    changes = [Change(T0, 60), Change(T0 + timedelta(hours=1), 30), Change(T0 + timedelta(hours=1), 90)]
    assert in_force(changes, T0 - timedelta(seconds=1)) is None
    assert in_force(changes, T0 + timedelta(hours=2)) == 90  # recorded last at the same instant
    day = [(T0 - timedelta(hours=1), T0 + timedelta(hours=2))]
    wide = StationTargets(changes)
    assert window_target(wide, day) == 60 + 40  # no target before T0: that hour asks for nothing
    assert window_target(wide, [(T0 - timedelta(hours=2), T0)]) is None


def test_window_target_weights_each_period_by_the_sku_mix_made_in_its_planned_time() -> None:
    """Station-wide 60 s a unit, SKU "a" 30 s, "b" 120 s: with nothing made the hour asks for 60
    (station-wide); for 30 a and 10 b made (2,100 s ideal for 40 units) it asks for 3,600 × 40 / 2,100."""
    t = StationTargets([Change(T0, 60)], {"a": [Change(T0, 30)], "b": [Change(T0, 120)]})
    hour = [(T0, T0 + timedelta(hours=1))]
    at = T0 + timedelta(minutes=10)
    assert window_target(t, hour) == 60
    assert window_target(t, hour, [(at, "a", 30), (at, "b", 10)]) == 3600 * 40 / 2100
    # A unit outside the planned time does not weigh; a unit without SKU has the station-wide 60 s.
    late = T0 + timedelta(hours=2)
    assert window_target(t, hour, [(at, "b", 10), (late, "a", 100)]) == 30
    assert window_target(t, hour, [(at, "", 5), (at, "b", 5)]) == 3600 * 10 / 900
    # SKU targets only: a period in which nothing was made asks for nothing.
    only = StationTargets((), {"a": [Change(T0, 30)]})
    assert window_target(only, hour) is None
    assert window_target(only, hour, [(at, "a", 1)]) == 120
