"""Settings of the metrics API (``TAKT_*`` environment variables)."""

from __future__ import annotations

from datetime import time

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from models.settings import DriftSettings
from takt.settings import register_settings


class Break(BaseModel):
    model_config = ConfigDict(extra="forbid")

    start: time
    end: time


class Shift(BaseModel):
    """A daily shift in the site's local time; ``end <= start`` crosses midnight."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=64)
    start: time
    end: time
    breaks: list[Break] = Field(default_factory=list, description="Planned breaks, not counted as idle.")


class SiteCalendar(BaseModel):
    model_config = ConfigDict(extra="forbid")

    timezone: str = "UTC"
    shifts: list[Shift] = Field(default_factory=list)


@register_settings
class ApiSettings(DriftSettings):
    """The metrics and ingestion API."""

    host: str = Field(default="127.0.0.1", description="Address `takt api` listens on.")
    port: int = Field(default=8000, ge=1, le=65535, description="Port `takt api` listens on.")
    admin_token: SecretStr | None = Field(
        default=None, description="Accepted as an admin bearer token on every route, ingestion included."
    )
    rate_limit_per_minute: int = Field(default=1000, ge=1, description="Requests per client IP per minute.")
    max_body_bytes: int = Field(default=2_097_152, ge=1024, description="Larger request bodies get 413.")
    refresh_interval_s: float = Field(
        default=2.0, ge=0, description="Rollup refresher period in the API process; 0 disables it."
    )
    db_pool_size: int = Field(default=8, ge=1, description="Database connections per API process.")
    calendars: dict[str, SiteCalendar] = Field(
        default_factory=dict,
        description='JSON: {"site-1": {"timezone": "Europe/Berlin", "shifts": [{"name": "day", '
        '"start": "08:00", "end": "17:00", "breaks": [{"start": "12:00", "end": "12:30"}]}]}}',
    )
    compress_after_days: float | None = Field(
        default=14.0,
        description="TimescaleDB: compress event and rollup chunks older than this (>= 7, the replay limit).",
    )
    rollup_retention_days: float | None = Field(
        default=None, description="TimescaleDB: drop rollup chunks older than this; unset keeps them."
    )
    drift_check_interval_s: float = Field(
        default=3600.0, ge=0, description="Drift check period in the API process; 0 disables it."
    )
