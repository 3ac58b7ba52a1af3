"""intervals.slices (one sweep) equals intersect per bucket; takt.targets splits time at target changes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from api.metrics.intervals import intersect, slices
from takt.targets import Change, in_force, target_units

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
    assert target_units(changes, day) == 60 + 40  # no target before T0: that hour asks for nothing
    assert target_units(changes, [(T0 - timedelta(hours=2), T0)]) is None
