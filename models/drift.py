"""Drift between a baseline window and a recent one: pure functions over aggregated numbers.

The database aggregates (confidence histogram, quantiles, seconds per state);
this module only compares. Population stability index (PSI) is the usual
yardstick: ``sum((r - b) * ln(r / b))`` over the bins' shares. Rule of thumb
from credit scoring, where it comes from: < 0.1 stable, 0.1-0.25 moderate,
> 0.25 a real shift.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

CONFIDENCE_BINS = 10
QUANTILES: tuple[float, ...] = (0.1, 0.25, 0.5, 0.75, 0.9)
STATES: tuple[str, ...] = ("working", "idle", "absent")
# Bins with no observations would make PSI infinite; this floor keeps one empty
# bin from dominating while still scoring a bin that appeared from nowhere.
PSI_FLOOR = 1e-4


@dataclass(frozen=True, slots=True)
class DriftThresholds:
    confidence_psi: float = 0.2
    # Largest absolute move of any confidence quantile (confidence is in [0, 1]).
    quantile_shift: float = 0.1
    state_mix_psi: float = 0.2
    # Fewer events than this in either window: no verdict, no flags.
    min_events: int = 30


@dataclass(frozen=True, slots=True)
class WindowStats:
    events: int
    histogram: tuple[int, ...]
    quantiles: Mapping[float, float]
    state_seconds: Mapping[str, float]


@dataclass(frozen=True, slots=True)
class Flag:
    metric: str
    value: float
    threshold: float


@dataclass(frozen=True, slots=True)
class DriftReport:
    confidence_psi: float | None
    quantile_shift: dict[float, float]
    state_mix_psi: float | None
    baseline_mix: dict[str, float]
    recent_mix: dict[str, float]
    enough_data: bool
    flags: list[Flag] = field(default_factory=list)


def histogram(values: Sequence[float], bins: int = CONFIDENCE_BINS) -> tuple[int, ...]:
    """Counts over equal bins of [0, 1]; 1.0 falls into the last bin (like SQL width_bucket + clamp)."""
    counts = [0] * bins
    for v in values:
        counts[min(bins - 1, max(0, int(v * bins)))] += 1
    return tuple(counts)


def quantiles(values: Sequence[float], qs: Sequence[float] = QUANTILES) -> dict[float, float]:
    """Linear interpolation between order statistics, as PostgreSQL's percentile_cont."""
    ordered = sorted(values)
    if not ordered:
        return {}
    out: dict[float, float] = {}
    for q in qs:
        pos = q * (len(ordered) - 1)
        lo = math.floor(pos)
        hi = min(lo + 1, len(ordered) - 1)
        out[q] = ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)
    return out


def shares(counts: Sequence[float]) -> list[float]:
    total = sum(counts)
    return [c / total for c in counts] if total > 0 else [0.0 for _ in counts]


def psi(baseline: Sequence[float], recent: Sequence[float], floor: float = PSI_FLOOR) -> float:
    """Population stability index of two distributions given as counts (or weights) per bin."""
    if len(baseline) != len(recent):
        raise ValueError("both distributions need the same bins")
    b_shares, r_shares = shares(baseline), shares(recent)
    total = 0.0
    for b_raw, r_raw in zip(b_shares, r_shares, strict=True):
        b, r = max(b_raw, floor), max(r_raw, floor)
        total += (r - b) * math.log(r / b)
    return total


def state_mix(state_seconds: Mapping[str, float]) -> dict[str, float]:
    return dict(zip(STATES, shares([state_seconds.get(s, 0.0) for s in STATES]), strict=True))


def window_stats(confidences: Sequence[float], state_seconds: Mapping[str, float]) -> WindowStats:
    """Stats from raw values (tests, small windows); the API builds the same from SQL aggregates."""
    return WindowStats(len(confidences), histogram(confidences), quantiles(confidences), dict(state_seconds))


def compare(baseline: WindowStats, recent: WindowStats, thresholds: DriftThresholds) -> DriftReport:
    enough = min(baseline.events, recent.events) >= thresholds.min_events
    conf_psi = psi(baseline.histogram, recent.histogram) if enough else None
    shift = {
        q: recent.quantiles[q] - baseline.quantiles[q]
        for q in baseline.quantiles
        if q in recent.quantiles and enough
    }
    b_mix, r_mix = state_mix(baseline.state_seconds), state_mix(recent.state_seconds)
    has_mix = sum(baseline.state_seconds.values()) > 0 and sum(recent.state_seconds.values()) > 0
    mix_psi = psi(list(b_mix.values()), list(r_mix.values())) if enough and has_mix else None
    flags: list[Flag] = []
    if conf_psi is not None and conf_psi > thresholds.confidence_psi:
        flags.append(Flag("confidence_psi", conf_psi, thresholds.confidence_psi))
    if shift:
        worst = max(shift.values(), key=abs)
        if abs(worst) > thresholds.quantile_shift:
            flags.append(Flag("confidence_quantile_shift", worst, thresholds.quantile_shift))
    if mix_psi is not None and mix_psi > thresholds.state_mix_psi:
        flags.append(Flag("state_mix_psi", mix_psi, thresholds.state_mix_psi))
    return DriftReport(conf_psi, shift, mix_psi, b_mix, r_mix, enough, flags)
