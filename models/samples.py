"""Which stretches of footage are worth labelling: pure selection over stored events.

Two kinds: moments a model was unsure of (low confidence), and moments where
the production model and a shadow candidate, watching the same frames,
disagree (different state for the same station at the same time, or a
different number of units in the same minute). Each sample names the camera,
the time window and both models' outputs, so a labeller can cut the clip.
"""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

import orjson

SampleKind = Literal["low_confidence", "state_disagreement", "count_disagreement"]
STATE_TYPES = frozenset({"working", "idle", "absent"})
_POINT_MARGIN = timedelta(seconds=2)


@dataclass(frozen=True, slots=True)
class SampleEvent:
    event_id: str
    timestamp: datetime
    duration_s: float | None
    camera_id: str | None
    station_id: str
    event_type: str
    confidence: float
    count: int
    model_version: str | None
    shadow: bool

    @property
    def end(self) -> datetime:
        return self.timestamp + timedelta(seconds=self.duration_s or 0.0)


@dataclass(frozen=True, slots=True)
class Output:
    model_version: str | None
    event_ids: tuple[str, ...]
    event_type: str | None
    confidence: float | None
    count: int | None


@dataclass(frozen=True, slots=True)
class Sample:
    kind: SampleKind
    camera_id: str | None
    station_id: str
    start: datetime
    end: datetime
    production: Output | None
    candidate: Output | None

    def as_dict(self) -> dict[str, Any]:
        def out(o: Output | None) -> dict[str, Any] | None:
            if o is None:
                return None
            return {
                "model_version": o.model_version,
                "event_ids": list(o.event_ids),
                "event_type": o.event_type,
                "confidence": o.confidence,
                "count": o.count,
            }

        return {
            "kind": self.kind,
            "camera_id": self.camera_id,
            "station_id": self.station_id,
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "production": out(self.production),
            "candidate": out(self.candidate),
        }


def _output(e: SampleEvent) -> Output:
    return Output(e.model_version, (e.event_id,), e.event_type, e.confidence, e.count)


def low_confidence(events: Iterable[SampleEvent], threshold: float) -> list[Sample]:
    """Events (from either model) below ``threshold``; absent segments carry no detection, so none."""
    out = []
    for e in events:
        if e.event_type != "absent" and e.confidence < threshold:
            if e.duration_s:
                start, end = e.timestamp, e.end
            else:
                # A point event gets a few seconds either side, enough to see what passed.
                start, end = e.timestamp - _POINT_MARGIN, e.timestamp + _POINT_MARGIN
            slot = "candidate" if e.shadow else "production"
            out.append(
                Sample(
                    "low_confidence",
                    e.camera_id,
                    e.station_id,
                    start,
                    end,
                    _output(e) if slot == "production" else None,
                    _output(e) if slot == "candidate" else None,
                )
            )
    return sorted(out, key=lambda s: (s.start, s.station_id))


def _by_key(events: Iterable[SampleEvent]) -> dict[tuple[str | None, str], list[SampleEvent]]:
    groups: dict[tuple[str | None, str], list[SampleEvent]] = defaultdict(list)
    for e in events:
        groups[(e.camera_id, e.station_id)].append(e)
    return groups


def state_disagreements(
    production: Sequence[SampleEvent], candidate: Sequence[SampleEvent], min_overlap_s: float = 1.0
) -> list[Sample]:
    """Overlapping state segments of the same camera and station whose states differ.

    A two-pointer sweep over both timelines sorted by start: O(n + m) per station.
    """
    prod = _by_key(e for e in production if e.event_type in STATE_TYPES and e.duration_s)
    cand = _by_key(e for e in candidate if e.event_type in STATE_TYPES and e.duration_s)
    out: list[Sample] = []
    for key in sorted(prod.keys() & cand.keys(), key=str):
        a = sorted(prod[key], key=lambda e: e.timestamp)
        b = sorted(cand[key], key=lambda e: e.timestamp)
        i = j = 0
        while i < len(a) and j < len(b):
            start, end = max(a[i].timestamp, b[j].timestamp), min(a[i].end, b[j].end)
            if a[i].event_type != b[j].event_type and (end - start).total_seconds() >= min_overlap_s:
                out.append(
                    Sample("state_disagreement", key[0], key[1], start, end, _output(a[i]), _output(b[j]))
                )
            if a[i].end <= b[j].end:
                i += 1
            else:
                j += 1
    return _merge_adjacent(out)


def _merge_adjacent(samples: list[Sample]) -> list[Sample]:
    """Segments are cut every few seconds; one long disagreement should be one sample, not twenty."""
    merged: list[Sample] = []
    for s in sorted(samples, key=lambda s: (str(s.camera_id), s.station_id, s.start)):
        last = merged[-1] if merged else None
        if (
            last is not None
            and (last.camera_id, last.station_id) == (s.camera_id, s.station_id)
            and last.end >= s.start
            and last.production is not None
            and last.candidate is not None
            and s.production is not None
            and s.candidate is not None
            and (last.production.event_type, last.candidate.event_type)
            == (s.production.event_type, s.candidate.event_type)
        ):
            merged[-1] = Sample(
                last.kind,
                last.camera_id,
                last.station_id,
                last.start,
                max(last.end, s.end),
                _join(last.production, s.production),
                _join(last.candidate, s.candidate),
            )
        else:
            merged.append(s)
    return merged


def _join(a: Output, b: Output) -> Output:
    ids = a.event_ids + tuple(i for i in b.event_ids if i not in a.event_ids)
    conf = min(c for c in (a.confidence, b.confidence) if c is not None) if a.confidence is not None else None
    return Output(a.model_version, ids, a.event_type, conf, a.count)


def count_disagreements(
    production: Sequence[SampleEvent], candidate: Sequence[SampleEvent], bucket_s: int = 60
) -> list[Sample]:
    """Buckets (per camera, station) in which the two models counted different numbers of units."""

    def tally(events: Sequence[SampleEvent]) -> dict[tuple[str | None, str, int], list[SampleEvent]]:
        out: dict[tuple[str | None, str, int], list[SampleEvent]] = defaultdict(list)
        for e in events:
            if e.event_type == "product_count":
                out[(e.camera_id, e.station_id, int(e.timestamp.timestamp()) // bucket_s)].append(e)
        return out

    p, c = tally(production), tally(candidate)
    pv = next((e.model_version for e in production), None)
    cv = next((e.model_version for e in candidate), None)
    out = []
    # Only stations both models watched: a station the candidate never saw is not a disagreement.
    watched = {(e.camera_id, e.station_id) for e in production} & {
        (e.camera_id, e.station_id) for e in candidate
    }
    for key in sorted(p.keys() | c.keys(), key=lambda k: (str(k[0]), k[1], k[2])):
        if (key[0], key[1]) not in watched:
            continue
        pe, ce = p.get(key, []), c.get(key, [])
        pn, cn = sum(e.count for e in pe), sum(e.count for e in ce)
        if pn != cn:
            start = datetime.fromtimestamp(key[2] * bucket_s, tz=(pe or ce)[0].timestamp.tzinfo)
            out.append(
                Sample(
                    "count_disagreement",
                    key[0],
                    key[1],
                    start,
                    start + timedelta(seconds=bucket_s),
                    Output(pv, tuple(e.event_id for e in pe), "product_count", None, pn),
                    Output(cv, tuple(e.event_id for e in ce), "product_count", None, cn),
                )
            )
    return out


def select(
    events: Sequence[SampleEvent],
    *,
    low_confidence_below: float | None = 0.5,
    min_overlap_s: float = 1.0,
    limit: int | None = None,
) -> list[Sample]:
    """Every kind of sample from one set of events (production and shadow mixed), in time order."""
    production = [e for e in events if not e.shadow]
    candidate = [e for e in events if e.shadow]
    found: list[Sample] = []
    if low_confidence_below is not None:
        found += low_confidence(events, low_confidence_below)
    found += state_disagreements(production, candidate, min_overlap_s)
    found += count_disagreements(production, candidate)
    found.sort(key=lambda s: (s.start, s.station_id, s.kind))
    return found[:limit] if limit is not None else found


CSV_COLUMNS = (
    "kind",
    "camera_id",
    "station_id",
    "start",
    "end",
    "production_model",
    "production_event_ids",
    "production_type",
    "production_confidence",
    "production_count",
    "candidate_model",
    "candidate_event_ids",
    "candidate_type",
    "candidate_confidence",
    "candidate_count",
)


def _csv_row(s: Sample) -> list[Any]:
    row: list[Any] = [s.kind, s.camera_id or "", s.station_id, s.start.isoformat(), s.end.isoformat()]
    for o in (s.production, s.candidate):
        if o is None:
            row += ["", "", "", "", ""]
        else:
            row += [
                o.model_version or "",
                " ".join(o.event_ids),
                o.event_type or "",
                "" if o.confidence is None else o.confidence,
                "" if o.count is None else o.count,
            ]
    return row


def frame_time(sample: Sample) -> datetime:
    """The moment a sample's picture shows: the middle of its window."""
    return sample.start + (sample.end - sample.start) / 2


def frame_name(index: int, sample: Sample) -> str:
    return f"{index:05d}-{sample.kind}-{sample.station_id}.jpg"


# Samples carry no pictures of people unless the export is asked for them (--with-frames):
# then each gets the file names of its frames, in one more field or column.
Frames = Sequence[Sequence[str]]


def to_jsonl(samples: Iterable[Sample], frames: Frames | None = None) -> bytes:
    docs = [s.as_dict() for s in samples]
    if frames is not None:
        for doc, names in zip(docs, frames, strict=True):
            doc["frames"] = list(names)
    return b"".join(orjson.dumps(doc) + b"\n" for doc in docs)


def to_csv(samples: Iterable[Sample], frames: Frames | None = None) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(CSV_COLUMNS if frames is None else (*CSV_COLUMNS, "frames"))
    rows = [_csv_row(s) for s in samples]
    if frames is not None:
        rows = [[*row, " ".join(names)] for row, names in zip(rows, frames, strict=True)]
    writer.writerows(rows)
    return buf.getvalue()
