from __future__ import annotations

import math
import random

import numpy as np
import pytest

from models.drift import DriftThresholds, compare, histogram, psi, quantiles, state_mix, window_stats


@pytest.mark.parametrize(
    ("baseline", "recent", "expected"),
    [
        ([50, 50], [50, 50], 0.0),
        ([10, 10], [1000, 1000], 0.0),  # shares, not counts
        ([50, 50], [90, 10], 0.4 * math.log(1.8) + 0.4 * math.log(5)),
        ([90, 10], [50, 50], 0.4 * math.log(1.8) + 0.4 * math.log(5)),  # symmetric
        # An empty bin is floored, not infinite.
        ([100, 0], [50, 50], (0.5 - 1) * math.log(0.5) + (0.5 - 1e-4) * math.log(0.5 / 1e-4)),
    ],
)
def test_psi(baseline: list[int], recent: list[int], expected: float) -> None:
    assert psi(baseline, recent) == pytest.approx(expected, abs=1e-9)


def test_psi_needs_the_same_bins() -> None:
    with pytest.raises(ValueError, match="same bins"):
        psi([1, 2], [1, 2, 3])


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ([0.0], (1, 0, 0, 0, 0, 0, 0, 0, 0, 0)),
        ([1.0, 0.95, 0.9], (0, 0, 0, 0, 0, 0, 0, 0, 0, 3)),
        ([0.1, 0.099, 0.55], (1, 1, 0, 0, 0, 1, 0, 0, 0, 0)),
        ([], (0,) * 10),
    ],
)
def test_histogram_bins(values: list[float], expected: tuple[int, ...]) -> None:
    assert histogram(values) == expected


@pytest.mark.parametrize("n", [1, 2, 7, 100])
def test_quantiles_match_linear_interpolation(n: int) -> None:
    rng = random.Random(n)
    values = [rng.random() for _ in range(n)]
    got = quantiles(values)
    for q, v in got.items():
        assert v == pytest.approx(float(np.quantile(values, q)))


@pytest.mark.parametrize(
    ("seconds", "expected"),
    [
        ({"working": 30, "idle": 10, "absent": 60}, {"working": 0.3, "idle": 0.1, "absent": 0.6}),
        ({"working": 5}, {"working": 1.0, "idle": 0.0, "absent": 0.0}),
        ({}, {"working": 0.0, "idle": 0.0, "absent": 0.0}),
    ],
)
def test_state_mix(seconds: dict[str, float], expected: dict[str, float]) -> None:
    assert state_mix(seconds) == pytest.approx(expected)


def _confidences(seed: int, n: int = 400, shift: float = 0.0) -> list[float]:
    rng = random.Random(seed)
    return [min(1.0, max(0.0, rng.gauss(0.8, 0.06) - shift)) for _ in range(n)]


MIX = {"working": 600.0, "idle": 200.0, "absent": 200.0}


@pytest.mark.parametrize(
    ("recent_conf", "recent_mix", "flagged"),
    [
        (_confidences(1), MIX, set()),  # identical windows
        (_confidences(2), MIX, set()),  # same distribution, other sample
        (_confidences(2, shift=0.3), MIX, {"confidence_psi", "confidence_quantile_shift"}),
        (_confidences(2, shift=0.01), MIX, set()),  # small move below both thresholds
        (_confidences(1), {"working": 200.0, "idle": 200.0, "absent": 600.0}, {"state_mix_psi"}),
    ],
)
def test_compare_flags_what_crosses_thresholds(
    recent_conf: list[float], recent_mix: dict[str, float], flagged: set[str]
) -> None:
    report = compare(
        window_stats(_confidences(1), MIX), window_stats(recent_conf, recent_mix), DriftThresholds()
    )
    assert report.enough_data
    assert {f.metric for f in report.flags} == flagged
    for f in report.flags:
        assert abs(f.value) > f.threshold


def test_confidence_drop_shows_as_negative_quantile_shift() -> None:
    report = compare(
        window_stats(_confidences(1), MIX),
        window_stats(_confidences(1, shift=0.3), MIX),
        DriftThresholds(),
    )
    assert report.quantile_shift[0.5] == pytest.approx(-0.3, abs=0.01)


def test_too_few_events_gives_no_verdict() -> None:
    report = compare(
        window_stats(_confidences(1, n=10), MIX),
        window_stats(_confidences(1, n=10, shift=0.5), MIX),
        DriftThresholds(min_events=30),
    )
    assert not report.enough_data
    assert report.flags == []
    assert report.confidence_psi is None


def test_thresholds_are_configurable() -> None:
    base, recent = window_stats(_confidences(1), MIX), window_stats(_confidences(2, shift=0.01), MIX)
    strict = DriftThresholds(confidence_psi=0.01, quantile_shift=0.01)
    assert {f.metric for f in compare(base, recent, strict).flags} == {
        "confidence_psi",
        "confidence_quantile_shift",
    }
