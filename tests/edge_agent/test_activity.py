from __future__ import annotations

import itertools
import math
from collections import defaultdict

import pytest

from edge_agent.activity import (
    Segment,
    StateChange,
    StationEvent,
    StationStateMachine,
    Thresholds,
    split_at_minutes,
)
from takt.contract import EventType

W, IDLE, A = EventType.WORKING, EventType.IDLE, EventType.ABSENT
T0 = 1_790_000_000.0 - 1_790_000_000.0 % 60  # a minute boundary
TH = Thresholds(
    absent_after_s=5, idle_after_s=3, working_after_s=1, activity_window_s=0.01, segment_period_s=10
)


def feed(obs: list[tuple[float, str]], *, fps: float = 5, thresholds: Thresholds = TH) -> list[StationEvent]:
    """obs: (seconds, kind) runs; kind is 'W' (present+active), 'I' (present, still), 'A' (no one)."""
    sm = StationStateMachine("st-1", thresholds)
    out: list[StationEvent] = []
    t = 0.0
    for length, kind in obs:
        end = t + length
        while t < end - 1e-9:
            out += sm.observe(
                T0 + t,
                present=kind != "A",
                activity=0.5 if kind == "W" else 0.0,
                confidence=0.9,
                worker_id="w-1",
            )
            t += 1 / fps
    out += sm.close(T0 + t)
    return out


def totals(events: list[StationEvent]) -> dict[EventType, float]:
    sums: dict[EventType, float] = defaultdict(float)
    for e in events:
        if isinstance(e, Segment):
            sums[e.state] += e.duration_s
    return dict(sums)


def changes(events: list[StationEvent]) -> list[EventType]:
    return [e.state for e in events if isinstance(e, StateChange)]


@pytest.mark.parametrize(
    ("name", "obs", "expected_changes", "expected_totals"),
    [
        ("steady work", [(30, "W")], [W], {W: 30}),
        (
            "work then idle then leave",
            [(20, "W"), (10, "I"), (10, "A")],
            [W, IDLE, A],
            {W: 20, IDLE: 10, A: 10},
        ),
        # Occlusion: the person vanishes for 2 s (< absent_after_s): still working, no absent.
        ("short occlusion", [(10, "W"), (2, "A"), (10, "W")], [W], {W: 22}),
        # A still moment shorter than idle_after_s is not idle.
        ("brief pause", [(10, "W"), (2, "I"), (10, "W")], [W], {W: 22}),
        ("absent at start, arrives", [(10, "A"), (20, "W")], [A, W], {A: 10, W: 20}),
        # Flicker back and forth between idle and working each second: no new state sticks.
        ("flicker", [(10, "W")] + [(0.6, "I"), (0.6, "W")] * 10, [W], {W: 22}),
    ],
)
def test_state_machine(
    name: str,
    obs: list[tuple[float, str]],
    expected_changes: list[EventType],
    expected_totals: dict[EventType, float],
) -> None:
    events = feed(obs)
    assert changes(events) == expected_changes, name
    got = totals(events)
    assert set(got) == set(expected_totals), name
    for state, seconds in expected_totals.items():
        # Back-dating makes totals exact to within one frame (0.2 s).
        assert got[state] == pytest.approx(seconds, abs=0.25), (name, state)


def test_segments_never_cross_a_minute_and_tile_the_timeline() -> None:
    events = feed([(50, "W"), (40, "I"), (45, "A"), (30, "W")])
    segments = [e for e in events if isinstance(e, Segment)]
    for seg in segments:
        assert seg.end_s > seg.start_s
        assert math.floor(seg.start_s / 60) == math.floor((seg.end_s - 1e-6) / 60)
        assert 0 <= seg.confidence <= 1
    # Contiguous, no overlaps, no holes.
    for a, b in itertools.pairwise(segments):
        assert b.start_s == pytest.approx(a.end_s)
    assert segments[0].start_s == T0
    assert segments[-1].end_s == pytest.approx(T0 + 165, abs=0.01)


def test_periodic_segments_keep_metrics_current() -> None:
    sm = StationStateMachine("st-1", TH)
    emitted: list[StationEvent] = []
    for i in range(5 * 25):  # 25 s of work
        emitted += sm.observe(T0 + 10 + i / 5, present=True, activity=1.0, confidence=1.0, worker_id="w")
    segs = [e for e in emitted if isinstance(e, Segment)]
    # Without closing anything, segments up to within a period of "now" are out already.
    assert segs and segs[-1].end_s >= T0 + 10 + 25 - 10 - 0.2


def test_worker_change_cuts_the_segment() -> None:
    sm = StationStateMachine("st-1", TH)
    out: list[StationEvent] = []
    for i in range(20):
        out += sm.observe(T0 + i, present=True, activity=1, confidence=1, worker_id="a" if i < 10 else "b")
    out += sm.close()
    workers = {(e.worker_id, round(e.duration_s)) for e in out if isinstance(e, Segment)}
    assert workers == {("a", 10), ("b", 9)}


def test_close_ends_at_last_good_frame_and_outage_adds_no_time() -> None:
    sm = StationStateMachine("st-1", TH)
    out: list[StationEvent] = []
    for i in range(10):
        out += sm.observe(T0 + i, present=True, activity=1, confidence=1, worker_id="w")
    out += sm.close()  # camera died after the frame at T0 + 9
    for i in range(100, 110):  # back 91 s later
        out += sm.observe(T0 + i, present=True, activity=1, confidence=1, worker_id="w")
    out += sm.close()
    assert totals(out) == {W: pytest.approx(18)}


@pytest.mark.parametrize(
    ("start", "end", "pieces"),
    [
        (0.0, 30.0, [(0.0, 30.0)]),
        (50.0, 70.0, [(50.0, 60.0), (60.0, 70.0)]),
        (59.5, 181.0, [(59.5, 60.0), (60.0, 120.0), (120.0, 180.0), (180.0, 181.0)]),
        (60.0, 60.0, []),
    ],
)
def test_split_at_minutes(start: float, end: float, pieces: list[tuple[float, float]]) -> None:
    assert split_at_minutes(start, end) == pieces
