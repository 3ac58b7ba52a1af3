"""Per-station state machine: absent / idle / working with hysteresis and minute-aligned segments.

Times are float seconds since the Unix epoch (UTC), taken from the frames, never
from the wall clock, so files are processed faster than real time with the same
results.

Hysteresis works by *back-dating*: a new raw state becomes the station's state
only after it has held for its dwell time, and then it starts when it was first
seen. Segment events are emitted only up to the point that is already certain
(the start of a pending candidate), so nothing emitted is ever taken back and
totals are not skewed by the dwell times.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

from takt.contract import EventType

MINUTE_S = 60.0


@dataclass(frozen=True, slots=True)
class Thresholds:
    absent_after_s: float = 5.0
    idle_after_s: float = 3.0
    working_after_s: float = 1.0
    activity_threshold: float = 0.02
    activity_window_s: float = 1.0
    segment_period_s: float = 10.0

    def dwell(self, state: EventType) -> float:
        if state is EventType.ABSENT:
            return self.absent_after_s
        if state is EventType.IDLE:
            return self.idle_after_s
        return self.working_after_s


@dataclass(frozen=True, slots=True)
class Segment:
    """A stretch of one state; never crosses a UTC minute boundary."""

    station_id: str
    state: EventType
    worker_id: str
    start_s: float
    end_s: float
    confidence: float

    @property
    def duration_s(self) -> float:
        return self.end_s - self.start_s


@dataclass(frozen=True, slots=True)
class StateChange:
    station_id: str
    state: EventType
    worker_id: str
    at_s: float
    confidence: float


StationEvent = Segment | StateChange


def split_at_minutes(start_s: float, end_s: float) -> list[tuple[float, float]]:
    """``[start, end)`` cut at every UTC minute boundary inside it."""
    pieces: list[tuple[float, float]] = []
    cursor = start_s
    while cursor < end_s:
        boundary = (math.floor(cursor / MINUTE_S) + 1) * MINUTE_S
        stop = min(boundary, end_s)
        pieces.append((cursor, stop))
        cursor = stop
    return pieces


@dataclass(slots=True)
class _Candidate:
    state: EventType
    since_s: float
    conf_sum: float = 0.0
    conf_n: int = 0


class StationStateMachine:
    def __init__(self, station_id: str, thresholds: Thresholds) -> None:
        self.station_id = station_id
        self.thresholds = thresholds
        self.state: EventType | None = None
        self.worker_id = "unknown"
        self._seg_start = 0.0
        self._conf_sum = 0.0
        self._conf_n = 0
        self._candidate: _Candidate | None = None
        self._activity: deque[tuple[float, float]] = deque()
        self.last_s: float | None = None

    def raw_state(self, timestamp_s: float, present: bool, activity: float) -> EventType:
        if not present:
            self._activity.clear()
            return EventType.ABSENT
        self._activity.append((timestamp_s, activity))
        while self._activity and self._activity[0][0] < timestamp_s - self.thresholds.activity_window_s:
            self._activity.popleft()
        mean = sum(a for _, a in self._activity) / len(self._activity)
        return EventType.WORKING if mean >= self.thresholds.activity_threshold else EventType.IDLE

    def observe(
        self, timestamp_s: float, *, present: bool, activity: float, confidence: float, worker_id: str
    ) -> list[StationEvent]:
        raw = self.raw_state(timestamp_s, present, activity)
        self.last_s = timestamp_s
        out: list[StationEvent] = []
        if self.state is None:
            self._start(raw, timestamp_s, worker_id, out)
        elif worker_id != self.worker_id:
            # A different person at the station: the current segment is theirs no longer.
            out.extend(self._segments_until(timestamp_s))
            self.worker_id = worker_id
            out.append(StateChange(self.station_id, self.state, worker_id, timestamp_s, confidence))
        if raw == self.state:
            if self._candidate is not None:
                # Flicker: the candidate's frames were the current state after all.
                self._conf_sum += self._candidate.conf_sum
                self._conf_n += self._candidate.conf_n
                self._candidate = None
            self._conf_sum += confidence
            self._conf_n += 1
        else:
            if self._candidate is None or self._candidate.state != raw:
                if self._candidate is not None:
                    self._conf_sum += self._candidate.conf_sum
                    self._conf_n += self._candidate.conf_n
                self._candidate = _Candidate(raw, timestamp_s)
            cand = self._candidate
            cand.conf_sum += confidence
            cand.conf_n += 1
            if timestamp_s - cand.since_s >= self.thresholds.dwell(raw):
                out.extend(self._segments_until(cand.since_s))
                self.state = raw
                self._conf_sum, self._conf_n = cand.conf_sum, cand.conf_n
                self._candidate = None
                out.append(
                    StateChange(self.station_id, raw, self.worker_id, cand.since_s, self._confidence())
                )
        out.extend(self._periodic(timestamp_s))
        return out

    def close(self, end_s: float | None = None) -> list[StationEvent]:
        """End of observation (camera lost, agent stopping): emit up to the last good frame, forget state."""
        if self.state is None:
            return []
        end = end_s if end_s is not None else (self.last_s if self.last_s is not None else self._seg_start)
        if self._candidate is not None:
            self._conf_sum += self._candidate.conf_sum
            self._conf_n += self._candidate.conf_n
            self._candidate = None
        out: list[StationEvent] = list(self._segments_until(max(end, self._seg_start)))
        self.state = None
        self._activity.clear()
        return out

    # -- internals -------------------------------------------------------------------
    def _start(self, raw: EventType, at_s: float, worker_id: str, out: list[StationEvent]) -> None:
        self.state = raw
        self.worker_id = worker_id
        self._seg_start = at_s
        self._conf_sum, self._conf_n = 0.0, 0
        self._candidate = None
        out.append(StateChange(self.station_id, raw, worker_id, at_s, 1.0))

    def _confidence(self) -> float:
        return min(1.0, max(0.0, self._conf_sum / self._conf_n)) if self._conf_n else 1.0

    def _segments_until(self, end_s: float) -> list[Segment]:
        assert self.state is not None
        confidence = self._confidence()
        segments = [
            Segment(self.station_id, self.state, self.worker_id, a, b, confidence)
            for a, b in split_at_minutes(self._seg_start, end_s)
        ]
        self._seg_start = max(self._seg_start, end_s)
        self._conf_sum, self._conf_n = 0.0, 0
        return segments

    def _periodic(self, now_s: float) -> list[Segment]:
        if self.state is None:
            return []
        certain = self._candidate.since_s if self._candidate is not None else now_s
        if certain - self._seg_start >= self.thresholds.segment_period_s:
            return self._segments_until(certain)
        last_boundary = math.floor(certain / MINUTE_S) * MINUTE_S
        if last_boundary > self._seg_start:
            return self._segments_until(last_boundary)
        return []
