"""Settings of the drift check (``TAKT_DRIFT_*``), read by the API and ``takt models drift-check``."""

from __future__ import annotations

from pydantic import Field

from takt.settings import CommonSettings


class DriftSettings(CommonSettings):
    """The drift check's windows and thresholds; the API's settings include them."""

    drift_recent_hours: float = Field(default=24.0, gt=0, description="Drift: the recent window, ending now.")
    drift_baseline_days: float = Field(
        default=7.0, gt=0, description="Drift: the baseline window, ending where the recent one starts."
    )
    drift_confidence_psi: float = Field(
        default=0.2, gt=0, description="Drift: flag a confidence-histogram PSI above this."
    )
    drift_quantile_shift: float = Field(
        default=0.1, gt=0, le=1, description="Drift: flag a confidence quantile moving more than this."
    )
    drift_state_mix_psi: float = Field(
        default=0.2, gt=0, description="Drift: flag a working/idle/absent-mix PSI above this."
    )
    drift_min_events: int = Field(
        default=30, ge=1, description="Drift: no verdict with fewer scored events in either window."
    )
