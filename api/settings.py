"""Settings of the metrics API (``TAKT_*`` environment variables)."""

from __future__ import annotations

from datetime import time
from ipaddress import IPv4Network, IPv6Network
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator
from pydantic_settings import NoDecode

from api.alerts.settings import AlertSettings
from api.shift_report.settings import ReportSettings
from models.settings import DriftSettings
from takt.settings import networks_text, register_settings, split_networks


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
class ApiSettings(DriftSettings, AlertSettings, ReportSettings):
    """The metrics and ingestion API."""

    host: str = Field(default="127.0.0.1", description="Address `takt api` listens on.")
    port: int = Field(default=8000, ge=1, le=65535, description="Port `takt api` listens on.")
    admin_token: SecretStr | None = Field(
        default=None, description="Accepted as an admin bearer token on every route, ingestion included."
    )
    rate_limit_per_minute: int = Field(
        default=1000, ge=1, description="Authenticated requests per client IP per minute; /health* is exempt."
    )
    auth_failures_per_minute: int = Field(
        default=30,
        ge=1,
        description="Requests with a missing or invalid token per client IP per minute (a separate budget); "
        "beyond it every request of that client gets 429 for the rest of the minute.",
    )
    trusted_proxies: Annotated[list[IPv4Network | IPv6Network], NoDecode] = Field(
        default_factory=list,
        description="Comma-separated IPs/CIDRs of reverse proxies whose X-Forwarded-For and "
        "X-Forwarded-Proto are believed; from anyone else these headers are ignored.",
    )
    max_body_bytes: int = Field(
        default=2_097_152,
        ge=1024,
        description="Larger request bodies get 413, counted while reading (chunked bodies too).",
    )
    db_pool_timeout_s: float = Field(
        default=5.0, gt=0, description="Longest wait for a pooled database connection before 503."
    )
    request_queue_size: int = Field(
        default=64,
        ge=0,
        description="Database requests waiting for one of the TAKT_DB_POOL_SIZE slots; more get 503 at once.",
    )
    request_queue_timeout_s: float = Field(
        default=2.0, gt=0, description="Longest wait in that queue before 503 with Retry-After."
    )
    response_cache_ttl_s: float = Field(
        default=1.0,
        ge=0,
        description="GET /api/metrics/* and /api/now answers are shared for this long between callers of "
        "the same role and query (one computation at a time per query); 0 disables the cache.",
    )
    token_cache_ttl_s: float = Field(
        default=5.0,
        ge=0,
        description="Token lookups are cached this long: a revoked token stops working within it.",
    )
    refresh_interval_s: float = Field(
        default=2.0, ge=0, description="Rollup refresher period in the API process; 0 disables it."
    )
    db_pool_size: int = Field(
        default=8,
        ge=1,
        description="Database connections per API process; also how many requests use the database at once.",
    )
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

    @field_validator("trusted_proxies", mode="before")
    @classmethod
    def _split_proxies(cls, value: object) -> object:
        return split_networks(value)

    def masked(self) -> dict[str, object]:
        shown = super().masked()
        shown["trusted_proxies"] = networks_text(self.trusted_proxies)
        shown["alert_webhook_allow_networks"] = networks_text(self.alert_webhook_allow_networks)
        return shown
