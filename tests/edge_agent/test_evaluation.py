"""The pure scoring of `takt edge eval`: truth parsing, timelines, agreement, counts, thresholds."""

from __future__ import annotations

import itertools
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge_agent.evaluation import (
    Interval,
    TruthError,
    failures,
    format_table,
    parse_truth,
    score,
    score_station,
    summary,
    timelines,
)
from takt.contract import Event, EventType

ORIGIN = datetime(2026, 3, 4, 5, 6, 30, tzinfo=UTC)


def event(
    state: str,
    start_s: float,
    duration_s: float,
    *,
    station: str = "st-1",
    shadow: bool = False,
    count: int = 0,
) -> Event:
    return Event(
        event_id=uuid.uuid4(),
        timestamp=ORIGIN + timedelta(seconds=start_s),
        worker_id="w-1",
        station_id=station,
        event_type=EventType(state),
        confidence=0.9,
        count=count,
        duration_s=duration_s if state != "product_count" else None,
        model_version="cand@2" if shadow else "prod@1",
        camera_id="cam-1",
        config_version="abc123",
        shadow=shadow,
    )


def I(state: str, a: float, b: float) -> Interval:  # noqa: E743 - reads like the truth file
    return Interval(state, a, b)


@pytest.mark.parametrize(
    ("truth", "predicted", "agreement", "confusion"),
    [
        # Exactly right.
        ([I("working", 0, 10)], [I("working", 0, 10)], 1.0, {"working": {"working": 10.0}}),
        # Half the time idle instead of working.
        ([I("working", 0, 10)], [I("working", 0, 5), I("idle", 5, 10)], 0.5,
         {"working": {"working": 5.0, "idle": 5.0}}),
        # 'present' accepts working and idle alike, not absent.
        ([I("present", 0, 10)], [I("working", 0, 4), I("idle", 4, 8), I("absent", 8, 10)], 0.8,
         {"present": {"working": 4.0, "idle": 4.0, "absent": 2.0}}),
        # Time the agent did not cover is 'none' and counts against it.
        ([I("absent", 0, 10)], [I("absent", 2, 10)], 0.8, {"absent": {"absent": 8.0, "none": 2.0}}),
        # Time the truth does not cover is not scored, whatever the agent said there.
        ([I("idle", 0, 2), I("idle", 8, 10)], [I("working", 0, 8), I("idle", 8, 10)], 0.5,
         {"idle": {"working": 2.0, "idle": 2.0}}),
        # Nothing predicted at all.
        ([I("working", 0, 4)], [], 0.0, {"working": {"none": 4.0}}),
    ],
)  # fmt: skip
def test_agreement_and_confusion(
    truth: list[Interval], predicted: list[Interval], agreement: float, confusion: dict[str, dict[str, float]]
) -> None:
    s = score_station("st-1", truth, predicted, None, 0)
    assert s.agreement == pytest.approx(agreement)
    assert s.confusion.keys() == confusion.keys()
    for state, row in confusion.items():
        assert s.confusion[state] == pytest.approx(row), state
    assert sum(s.predicted_share().values()) == pytest.approx(1.0, abs=1e-3)


def test_shares_of_scored_time() -> None:
    s = score_station("st-1", [I("working", 0, 6), I("absent", 6, 10)], [I("working", 0, 10)], None, 0)
    assert s.truth_share() == {"working": 0.6, "absent": 0.4}
    assert s.predicted_share() == {"working": 1.0, "idle": 0.0, "absent": 0.0, "none": 0.0}


@pytest.mark.parametrize(
    ("truth", "counted", "error"), [(10, 10, 0.0), (10, 8, 0.2), (10, 13, 0.3), (0, 2, 2.0), (None, 4, None)]
)
def test_count_error(truth: int | None, counted: int, error: float | None) -> None:
    s = score_station("st-1", [I("working", 0, 1)], [], truth, counted)
    assert s.count_error == (None if error is None else pytest.approx(error))


def test_timelines_keep_segments_only_relative_to_the_origin() -> None:
    events = [
        event("working", 0, 0),  # a state change: marks a moment, carries no time
        event("working", 0, 4.5),
        event("idle", 4.5, 3),
        event("product_count", 2, 0, count=1),
        event("absent", 1, 2, station="st-2"),
    ]
    assert timelines(events, ORIGIN.timestamp()) == {
        "st-1": [I("working", 0, 4.5), I("idle", 4.5, 7.5)],
        "st-2": [I("absent", 1, 3)],
    }


def _truth(**over: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "format": "takt-truth/1",
        "start_time": ORIGIN.isoformat(),
        "stations": {
            "st-1": {"segments": [{"state": "working", "start_s": 0, "end_s": 10}], "zone": [[0, 0]]},
        },
        "product_counts": {"st-1": 2},
    }
    doc.update(over)
    return doc


def test_score_puts_production_and_shadow_side_by_side() -> None:
    truth = parse_truth(_truth())
    events = [
        event("working", 0, 10),
        event("product_count", 3, 0, count=1),
        event("product_count", 6, 0, count=1),
        event("idle", 0, 10, shadow=True),
        event("product_count", 3, 0, count=1, shadow=True),
    ]
    prod, cand = score(truth, events, ORIGIN.timestamp())
    assert (prod.model_version, prod.shadow, cand.model_version, cand.shadow) == (
        "prod@1",
        False,
        "cand@2",
        True,
    )
    assert prod.stations["st-1"].agreement == 1.0 and cand.stations["st-1"].agreement == 0.0
    assert (prod.stations["st-1"].count_error, cand.stations["st-1"].count_error) == (0.0, 0.5)
    # Thresholds judge production only; the candidate is for comparison.
    assert failures([prod, cand], min_state_agreement=0.9, max_count_error=0.1) == []
    table = format_table([prod, cand])
    assert "prod@1" in table and "cand@2 (shadow)" in table
    doc = summary([prod, cand])
    assert doc["primary"]["stations"]["st-1"]["state_agreement"] == 1.0
    assert doc["shadow"][0]["stations"]["st-1"]["predicted_count"] == 1


def test_failures_name_the_station_and_the_figure() -> None:
    truth = parse_truth(_truth())
    (prod,) = score(
        truth, [event("working", 0, 5), event("product_count", 1, 0, count=1)], ORIGIN.timestamp()
    )
    problems = failures([prod], min_state_agreement=0.9, max_count_error=0.1)
    assert problems == [
        "st-1: state agreement 50.0% < 90.0%",
        "st-1: count error 50.0% > 10.0% (counted 1, truth 2)",
    ]
    assert failures([prod], min_state_agreement=0.5, max_count_error=0.5) == []
    assert failures([prod], min_state_agreement=None, max_count_error=None) == []


def test_a_run_without_events_scores_zero_not_an_error() -> None:
    (only,) = score(parse_truth(_truth()), [], ORIGIN.timestamp())
    assert only.stations["st-1"].agreement == 0.0
    assert failures([only], min_state_agreement=0.1, max_count_error=None)


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        (_truth(stations={}), "stations"),
        (_truth(format="takt-truth/9"), "format"),
        (_truth(stations={"st-1": {"segments": [{"state": "busy", "start_s": 0, "end_s": 1}]}}), "state"),
        (_truth(stations={"st-1": {"segments": [{"state": "idle", "start_s": 3, "end_s": 1}]}}), "not after"),
        (
            _truth(
                stations={
                    "st-1": {
                        "segments": [
                            {"state": "idle", "start_s": 0, "end_s": 5},
                            {"state": "working", "start_s": 4, "end_s": 8},
                        ]
                    }
                }
            ),
            "overlap",
        ),
        (_truth(product_counts={"st-9": 1}), "st-9"),
        ([], "problem"),
    ],
)
def test_bad_truth_is_a_clear_error(doc: Any, message: str) -> None:
    with pytest.raises(TruthError, match=message):
        parse_truth(doc, "t.json")


def test_truth_segments_are_sorted_and_extra_keys_ignored() -> None:
    truth = parse_truth(
        _truth(
            stations={
                "st-1": {
                    "note": "by hand",
                    "segments": [
                        {"state": "idle", "start_s": 5, "end_s": 9},
                        {"state": "present", "start_s": 0, "end_s": 5},
                    ],
                }
            }
        )
    )
    assert truth.stations["st-1"] == (I("present", 0, 5), I("idle", 5, 9))
    assert truth.start_time_s == ORIGIN.timestamp()


def _timeline(draw: st.DrawFn, states: tuple[str, ...]) -> list[Interval]:
    cuts = sorted(set(draw(st.lists(st.integers(1, 99), max_size=8))))
    edges = [0, *cuts, 100]
    return [Interval(draw(st.sampled_from(states)), a / 10, b / 10) for a, b in itertools.pairwise(edges)]


@st.composite
def timelines_pair(draw: st.DrawFn) -> tuple[list[Interval], list[Interval]]:
    truth = _timeline(draw, ("working", "idle", "absent", "present"))
    predicted = _timeline(draw, ("working", "idle", "absent"))
    # The agent may have missed stretches (camera outage): drop some of its intervals.
    keep = draw(st.lists(st.booleans(), min_size=len(predicted), max_size=len(predicted)))
    return truth, [p for p, k in zip(predicted, keep, strict=True) if k]


@given(timelines_pair())
def test_scores_are_shares_of_the_scored_time(pair: tuple[list[Interval], list[Interval]]) -> None:
    truth, predicted = pair
    s = score_station("st", truth, predicted, None, 0)
    assert s.scored_s == pytest.approx(10.0)
    assert 0.0 <= s.agreement <= 1.0 + 1e-9
    assert sum(s.truth_share().values()) == pytest.approx(1.0, abs=1e-3)
    assert sum(s.predicted_share().values()) == pytest.approx(1.0, abs=1e-3)

    # Agreement, checked against a plain tenth-of-a-second walk over both timelines.
    def at(intervals: list[Interval], t: float) -> str | None:
        return next((i.state for i in intervals if i.start_s <= t < i.end_s), None)

    steps = [(k + 0.5) / 10 for k in range(100)]
    agreed = sum(
        1
        for t in steps
        if (p := at(predicted, t)) is not None
        and (p == at(truth, t) or (at(truth, t) == "present" and p != "absent"))
    )
    assert s.agreement == pytest.approx(agreed / 100, abs=1e-6)


@given(timelines_pair())
def test_the_truth_itself_scores_full_agreement(pair: tuple[list[Interval], list[Interval]]) -> None:
    truth, _ = pair
    as_agent = [Interval("idle" if i.state == "present" else i.state, i.start_s, i.end_s) for i in truth]
    assert score_station("st", truth, as_agent, None, 0).agreement == pytest.approx(1.0)
