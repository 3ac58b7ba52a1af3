from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta

import orjson
import pytest

from models.samples import (
    CSV_COLUMNS,
    SampleEvent,
    count_disagreements,
    low_confidence,
    select,
    state_disagreements,
    to_csv,
    to_jsonl,
)

T0 = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
_ids = iter(range(1_000_000))


def ev(
    at: float,
    dur: float | None,
    kind: str,
    conf: float = 0.9,
    *,
    shadow: bool = False,
    station: str = "st-1",
    count: int = 0,
) -> SampleEvent:
    return SampleEvent(
        event_id=f"e{next(_ids)}",
        timestamp=T0 + timedelta(seconds=at),
        duration_s=dur,
        camera_id="cam-1",
        station_id=station,
        event_type=kind,
        confidence=conf,
        count=count,
        model_version="cand@2" if shadow else "prod@1",
        shadow=shadow,
    )


@pytest.mark.parametrize(
    ("events", "threshold", "expected_confidences"),
    [
        ([ev(0, 10, "working", 0.3), ev(10, 10, "working", 0.8)], 0.5, [0.3]),
        ([ev(0, 10, "absent", 0.1)], 0.5, []),  # absent: no detection to be unsure of
        ([ev(0, None, "product_count", 0.2, count=1)], 0.5, [0.2]),
        ([ev(0, 10, "idle", 0.5)], 0.5, []),  # strictly below
    ],
)
def test_low_confidence(
    events: list[SampleEvent], threshold: float, expected_confidences: list[float]
) -> None:
    got = low_confidence(events, threshold)
    assert [(s.production or s.candidate).confidence for s in got] == expected_confidences  # type: ignore[union-attr]


def test_low_confidence_point_event_gets_a_window_and_shadow_goes_to_candidate() -> None:
    (s,) = low_confidence([ev(30, None, "product_count", 0.2, shadow=True, count=1)], 0.5)
    assert s.production is None and s.candidate is not None
    assert s.candidate.model_version == "cand@2"
    assert (s.start, s.end) == (T0 + timedelta(seconds=28), T0 + timedelta(seconds=32))


@pytest.mark.parametrize(
    ("production", "candidate", "expected"),
    [
        # identical timelines: nothing to label
        (
            [ev(0, 10, "working"), ev(10, 10, "idle")],
            [ev(0, 10, "working", shadow=True), ev(10, 10, "idle", shadow=True)],
            [],
        ),
        # the candidate says idle where production says working, for 6 s
        (
            [ev(0, 10, "working")],
            [ev(0, 4, "working", shadow=True), ev(4, 6, "idle", shadow=True)],
            [(4, 10, "working", "idle")],
        ),
        # overlap shorter than the minimum is noise
        ([ev(0, 10, "working")], [ev(0, 9.5, "working", shadow=True), ev(9.5, 5, "idle", shadow=True)], []),
        # consecutive disagreeing segments merge into one sample
        (
            [ev(0, 10, "working"), ev(10, 10, "working")],
            [ev(0, 20, "absent", shadow=True)],
            [(0, 20, "working", "absent")],
        ),
        # different stations never compare
        ([ev(0, 10, "working", station="a")], [ev(0, 10, "idle", shadow=True, station="b")], []),
    ],
)
def test_state_disagreements(
    production: list[SampleEvent], candidate: list[SampleEvent], expected: list[tuple[float, float, str, str]]
) -> None:
    got = state_disagreements(production, candidate, min_overlap_s=1.0)
    assert [
        (
            (s.start - T0).total_seconds(),
            (s.end - T0).total_seconds(),
            s.production.event_type if s.production else None,
            s.candidate.event_type if s.candidate else None,
        )
        for s in got
    ] == expected


def test_merged_disagreement_keeps_every_event_id() -> None:
    prod = [ev(0, 10, "working"), ev(10, 10, "working")]
    got = state_disagreements(prod, [ev(0, 20, "absent", shadow=True)])
    assert got[0].production is not None
    assert set(got[0].production.event_ids) == {e.event_id for e in prod}


@pytest.mark.parametrize(
    ("prod_counts", "cand_counts", "expected"),
    [
        ([5, 65], [6, 66], []),  # same count per minute
        ([5, 10], [5], [(0, 2, 1)]),  # production counted one more in minute 0
        ([5], [65], [(0, 1, 0), (60, 0, 1)]),  # same total, different minutes
    ],
)
def test_count_disagreements(
    prod_counts: list[float], cand_counts: list[float], expected: list[tuple[float, int, int]]
) -> None:
    prod = [ev(t, None, "product_count", count=1) for t in prod_counts]
    cand = [ev(t, None, "product_count", count=1, shadow=True) for t in cand_counts]
    got = count_disagreements(prod, cand)
    assert [
        (
            (s.start - T0).total_seconds(),
            s.production.count if s.production else None,
            s.candidate.count if s.candidate else None,
        )
        for s in got
    ] == expected


def test_select_mixes_kinds_and_exports_jsonl_and_csv() -> None:
    events = [
        ev(0, 10, "working", 0.3),
        ev(0, 10, "idle", 0.9, shadow=True),
        ev(20, None, "product_count", 0.9, count=1),
    ]
    samples = select(events, low_confidence_below=0.5)
    assert {s.kind for s in samples} == {"low_confidence", "state_disagreement", "count_disagreement"}
    lines = to_jsonl(samples).splitlines()
    assert len(lines) == len(samples)
    doc = orjson.loads(lines[0])
    assert doc["camera_id"] == "cam-1" and doc["start"].startswith("2026-11-23T08:00:00")
    rows = list(csv.reader(io.StringIO(to_csv(samples))))
    assert tuple(rows[0]) == CSV_COLUMNS
    assert len(rows) == len(samples) + 1
    assert select(events, low_confidence_below=None, limit=1)[0].kind != "low_confidence"


def test_samples_carry_no_frames_unless_given_and_then_name_them() -> None:
    from models.sample_frames import frame_indices
    from models.samples import frame_name, frame_time

    found = low_confidence([ev(10, 4, "working", 0.3), ev(70, None, "product_count", 0.2, count=1)], 0.5)
    assert [frame_time(s) for s in found] == [T0 + timedelta(seconds=12), T0 + timedelta(seconds=70)]
    # A recording that began 5 s after T0, at 10 fps; a sample before it began gets a negative index.
    assert frame_indices(found, T0 + timedelta(seconds=5), 10.0) == [70, 650]
    assert frame_indices(found, T0 + timedelta(seconds=20), 10.0)[0] < 0
    plain = [orjson.loads(line) for line in to_jsonl(found).splitlines()]
    assert not any("frames" in d for d in plain)
    assert next(csv.reader(io.StringIO(to_csv(found)))) == list(CSV_COLUMNS)
    names = [[frame_name(0, found[0])], []]
    assert names[0] == ["00000-low_confidence-st-1.jpg"]
    framed = [orjson.loads(line) for line in to_jsonl(found, names).splitlines()]
    assert [d["frames"] for d in framed] == names
    assert [{k: v for k, v in d.items() if k != "frames"} for d in framed] == plain
    rows = list(csv.DictReader(io.StringIO(to_csv(found, names))))
    assert [r["frames"] for r in rows] == ["00000-low_confidence-st-1.jpg", ""]
    with pytest.raises(ValueError, match="zip"):
        to_jsonl(found, names[:1])  # one list of names per sample
