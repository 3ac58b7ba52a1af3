"""Scoring an offline run against ground truth: pure functions, no I/O.

The truth file (``takt-truth/1``, docs/edge-agent.md "Evaluation") gives, per station,
intervals of the state a person would write down, in seconds of the video timeline
(the agent stamps frame ``i`` of a file at ``start + i / fps``). Time the truth does not
cover is not scored, so a hand-written truth may skip what cannot be told from the frames.
A truth state ``present`` accepts ``working`` and ``idle`` alike (someone is there; whether
they are busy cannot be told from the frames).

The agent's events are turned back into timelines (its segments: ``duration_s`` > 0) and
compared with the truth second by second: the share of scored time in each state on both
sides, the share where they agree, and how many units each counted.
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError, model_validator

from edge_agent import EdgeError
from takt.contract import Event, EventType

TRUTH_FORMAT = "takt-truth/1"
STATES = ("working", "idle", "absent")
TruthState = Literal["working", "idle", "absent", "present"]
# What the agent emitted over a scored second: a state, or nothing (not observed).
NOT_OBSERVED = "none"
_ACCEPTS: dict[str, frozenset[str]] = {
    "working": frozenset({"working"}),
    "idle": frozenset({"idle"}),
    "absent": frozenset({"absent"}),
    "present": frozenset({"working", "idle"}),
}


class TruthError(EdgeError):
    """The truth file cannot be used; the message lists every problem with its location."""


class _TruthSegment(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    state: TruthState
    start_s: float = Field(ge=0)
    end_s: float

    @model_validator(mode="after")
    def _ordered(self) -> _TruthSegment:
        if self.end_s <= self.start_s:
            raise ValueError(f"end_s {self.end_s} is not after start_s {self.start_s}")
        return self


class _TruthStation(BaseModel):
    # Extra keys (the synthetic footage's zone and totals, a note) are allowed and ignored.
    model_config = ConfigDict(extra="allow", frozen=True)
    segments: list[_TruthSegment]

    @model_validator(mode="after")
    def _no_overlap(self) -> _TruthStation:
        ordered = sorted(self.segments, key=lambda s: s.start_s)
        for a, b in itertools.pairwise(ordered):
            if b.start_s < a.end_s - 1e-9:
                raise ValueError(f"segments overlap at {b.start_s} s")
        return self


class _TruthFile(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)
    format: Literal["takt-truth/1"] = "takt-truth/1"
    start_time: AwareDatetime | None = None
    duration_s: float | None = Field(default=None, gt=0)
    stations: dict[str, _TruthStation] = Field(min_length=1)
    product_counts: dict[str, int] = Field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Interval:
    state: str
    start_s: float
    end_s: float


@dataclass(frozen=True, slots=True)
class Truth:
    stations: dict[str, tuple[Interval, ...]]
    product_counts: dict[str, int]
    start_time_s: float | None = None
    duration_s: float | None = None


def parse_truth(data: Any, source: str = "truth") -> Truth:
    try:
        parsed = _TruthFile.model_validate(data)
    except ValidationError as exc:
        problems = [f"{source}: {exc.error_count()} problem(s)"]
        for item in exc.errors(include_url=False):
            loc = ".".join(str(p) for p in item["loc"]) or "(top level)"
            problems.append(f"  {loc}: {item['msg']}")
        raise TruthError("\n".join(problems)) from None
    unknown = set(parsed.product_counts) - set(parsed.stations)
    if unknown:
        raise TruthError(f"{source}: product_counts names stations without segments: {sorted(unknown)}")
    return Truth(
        stations={
            sid: tuple(
                Interval(s.state, s.start_s, s.end_s) for s in sorted(st.segments, key=lambda s: s.start_s)
            )
            for sid, st in parsed.stations.items()
        },
        product_counts=dict(parsed.product_counts),
        start_time_s=None if parsed.start_time is None else parsed.start_time.timestamp(),
        duration_s=parsed.duration_s,
    )


def timelines(events: Iterable[Event], origin_s: float) -> dict[str, list[Interval]]:
    """Per station, the agent's state segments in seconds from ``origin_s``, in time order."""
    out: dict[str, list[Interval]] = defaultdict(list)
    for e in events:
        if e.event_type.value in STATES and e.duration_s:
            start = e.timestamp.timestamp() - origin_s
            out[e.station_id].append(Interval(e.event_type.value, start, start + e.duration_s))
    for intervals in out.values():
        intervals.sort(key=lambda i: i.start_s)
    return dict(out)


def _overlap(a: Interval, b: Interval) -> float:
    return max(0.0, min(a.end_s, b.end_s) - max(a.start_s, b.start_s))


@dataclass(frozen=True, slots=True)
class StationScore:
    station_id: str
    scored_s: float
    # Seconds of scored time: per truth state, what the agent said (a state or ``none``).
    confusion: dict[str, dict[str, float]]
    truth_count: int | None
    predicted_count: int

    @property
    def agreement(self) -> float:
        """Share of scored time where the agent's state is one the truth accepts."""
        if self.scored_s <= 0:
            return 0.0
        agreed = sum(s for t, row in self.confusion.items() for p, s in row.items() if p in _ACCEPTS[t])
        return agreed / self.scored_s

    def truth_share(self) -> dict[str, float]:
        total = self.scored_s or 1.0
        return {
            t: round(sum(self.confusion[t].values()) / total, 4)
            for t in (*STATES, "present")
            if t in self.confusion
        }

    def predicted_share(self) -> dict[str, float]:
        total = self.scored_s or 1.0
        out = dict.fromkeys((*STATES, NOT_OBSERVED), 0.0)
        for row in self.confusion.values():
            for p, s in row.items():
                out[p] += s
        return {p: round(s / total, 4) for p, s in out.items()}

    @property
    def count_error(self) -> float | None:
        """|predicted - truth| / truth (truth 0: the predicted count itself); None without a truth count."""
        if self.truth_count is None:
            return None
        return abs(self.predicted_count - self.truth_count) / max(self.truth_count, 1)

    def as_dict(self) -> dict[str, Any]:
        return {
            "scored_s": round(self.scored_s, 3),
            "state_agreement": round(self.agreement, 4),
            "truth_share": self.truth_share(),
            "predicted_share": self.predicted_share(),
            "confusion_s": {t: {p: round(s, 3) for p, s in row.items()} for t, row in self.confusion.items()},
            "truth_count": self.truth_count,
            "predicted_count": self.predicted_count,
            "count_error": None if self.count_error is None else round(self.count_error, 4),
        }


def score_station(
    station_id: str,
    truth: Sequence[Interval],
    predicted: Sequence[Interval],
    truth_count: int | None,
    count: int,
) -> StationScore:
    confusion: dict[str, dict[str, float]] = {}
    for t in truth:
        row = confusion.setdefault(t.state, {})
        covered = 0.0
        for p in predicted:
            if p.start_s >= t.end_s:
                break
            seconds = _overlap(t, p)
            if seconds > 0:
                row[p.state] = row.get(p.state, 0.0) + seconds
                covered += seconds
        gap = (t.end_s - t.start_s) - covered
        if gap > 1e-9:
            row[NOT_OBSERVED] = row.get(NOT_OBSERVED, 0.0) + gap
    scored = sum(t.end_s - t.start_s for t in truth)
    return StationScore(station_id, scored, confusion, truth_count, count)


@dataclass(frozen=True, slots=True)
class ModelScore:
    model_version: str
    shadow: bool
    stations: dict[str, StationScore] = field(default_factory=dict)

    @property
    def state_agreement(self) -> float:
        """Over all stations, weighted by scored time."""
        total = sum(s.scored_s for s in self.stations.values())
        return sum(s.agreement * s.scored_s for s in self.stations.values()) / total if total else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "model_version": self.model_version,
            "shadow": self.shadow,
            "state_agreement": round(self.state_agreement, 4),
            "stations": {sid: s.as_dict() for sid, s in self.stations.items()},
        }


def score(truth: Truth, events: Sequence[Event], origin_s: float) -> list[ModelScore]:
    """One score per model that made events: production first, then the shadow candidate."""
    by_model: dict[tuple[bool, str], list[Event]] = defaultdict(list)
    for e in events:
        by_model[(e.shadow, e.model_version or "")].append(e)
    if not by_model:
        by_model[(False, "")] = []
    out: list[ModelScore] = []
    for (shadow, version), mine in sorted(by_model.items()):
        lines = timelines(mine, origin_s)
        counts: dict[str, int] = defaultdict(int)
        for e in mine:
            if e.event_type is EventType.PRODUCT_COUNT:
                counts[e.station_id] += e.count
        stations = {
            sid: score_station(sid, intervals, lines.get(sid, []), truth.product_counts.get(sid), counts[sid])
            for sid, intervals in truth.stations.items()
        }
        out.append(ModelScore(version, shadow, stations))
    return out


def failures(
    scores: Sequence[ModelScore], *, min_state_agreement: float | None, max_count_error: float | None
) -> list[str]:
    """Why the production model falls short of the thresholds (empty: it passes)."""
    out: list[str] = []
    for model in scores:
        if model.shadow:
            continue
        for sid, s in model.stations.items():
            if min_state_agreement is not None and s.agreement < min_state_agreement:
                out.append(f"{sid}: state agreement {s.agreement:.1%} < {min_state_agreement:.1%}")
            error = s.count_error
            if max_count_error is not None and error is not None and error > max_count_error:
                out.append(
                    f"{sid}: count error {error:.1%} > {max_count_error:.1%} "
                    f"(counted {s.predicted_count}, truth {s.truth_count})"
                )
    return out


def summary(scores: Sequence[ModelScore]) -> dict[str, Any]:
    primary = next((m for m in scores if not m.shadow), None)
    return {
        "format": "takt-eval/1",
        "primary": None if primary is None else primary.as_dict(),
        "shadow": [m.as_dict() for m in scores if m.shadow],
    }


def _pct(value: float) -> str:
    return f"{value * 100:5.1f}%"


def format_table(scores: Sequence[ModelScore]) -> str:
    """One row per station and model: truth and agent shares (W/I/A, – = not observed), agreement, counts."""
    header = (
        "station", "model", "truth W / I / A / P", "agent W / I / A / –", "agree", "count", "error",
    )  # fmt: skip
    rows: list[tuple[str, ...]] = [header]
    station_ids = sorted({sid for m in scores for sid in m.stations})
    for sid in station_ids:
        for m in scores:
            s = m.stations.get(sid)
            if s is None:
                continue
            t, p = s.truth_share(), s.predicted_share()
            name = m.model_version + (" (shadow)" if m.shadow else "")
            rows.append(
                (
                    sid,
                    name,
                    " ".join(_pct(t.get(k, 0.0)) for k in (*STATES, "present")),
                    " ".join(_pct(p[k]) for k in (*STATES, NOT_OBSERVED)),
                    _pct(s.agreement),
                    f"{s.predicted_count}/{'-' if s.truth_count is None else s.truth_count}",
                    "-" if s.count_error is None else _pct(s.count_error),
                )
            )
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    lines = ("  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip() for r in rows)
    return "\n".join(lines)
