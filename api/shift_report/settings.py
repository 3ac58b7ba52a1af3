"""Settings of the scheduled shift reports (``TAKT_REPORT_*``), part of the API's.

The emails go out through the alerts' SMTP settings (``TAKT_SMTP_*``) with their retries
(``TAKT_ALERT_TRIES``, ``TAKT_ALERT_RETRY_INITIAL_S``).
"""

from __future__ import annotations

from pydantic import Field, model_validator

from takt.settings import CommonSettings


class ReportSettings(CommonSettings):
    report_interval_s: float = Field(
        default=15.0,
        ge=0,
        description="How often the API process looks for shifts that have ended (their reports are due); "
        "0 disables scheduled shift reports.",
    )
    report_delay_s: float = Field(
        default=120.0,
        ge=0,
        le=86_400,
        description="A shift's report is made this long after the shift ends, so events the gateways "
        "still buffer at the end are counted.",
    )
    report_catchup_hours: float = Field(
        default=24.0,
        gt=0,
        le=24 * 31,
        description="After an outage, reports of shifts that ended up to this long ago are still made.",
    )
    report_send_interval_s: float = Field(
        default=2.0, gt=0, description="How often the API process looks for shift report emails to send."
    )

    @model_validator(mode="after")
    def _catchup_covers_the_delay(self) -> ReportSettings:
        if self.report_catchup_hours * 3600 <= self.report_delay_s:
            raise ValueError(
                "TAKT_REPORT_CATCHUP_HOURS must reach further back than TAKT_REPORT_DELAY_S, "
                "or no shift report is ever due"
            )
        return self
