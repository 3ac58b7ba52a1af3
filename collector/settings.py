"""The collector's ``TAKT_*`` settings."""

from __future__ import annotations

import socket

from pydantic import Field, field_validator

from takt.contract.topics import check_topic_id
from takt.settings import CommonSettings, register_settings
from takt.store.events import WriteMethod


def _default_client_id() -> str:
    # Stable across restarts of the same host, so the broker hands a restarted
    # collector the session (and the messages) its predecessor left.
    host = "".join(c if c.isalnum() or c in "_.-" else "-" for c in socket.gethostname())
    return f"takt-collector-{host or 'local'}"[:64]


@register_settings
class CollectorSettings(CommonSettings):
    """Settings of ``takt collector``."""

    collector_client_id: str = Field(
        default_factory=_default_client_id,
        description="MQTT client id; must be stable across restarts and unique per collector process.",
    )
    collector_share_group: str = Field(
        default="takt-collectors",
        description="MQTT v5 shared-subscription group; collectors in it split the load.",
    )
    collector_sites: str = Field(default="+", description="Site id to subscribe to, or '+' for every site.")
    collector_session_expiry_s: int = Field(
        default=7 * 86_400, ge=1, description="How long the broker keeps this collector's session and queue."
    )
    collector_receive_maximum: int = Field(
        default=200,
        ge=1,
        le=65_535,
        description="MQTT v5 Receive Maximum: unacknowledged messages the broker may send at once.",
    )
    collector_batch_max_messages: int = Field(
        default=20, ge=1, description="MQTT messages committed together in one transaction."
    )
    collector_batch_max_wait_ms: int = Field(
        default=20, ge=0, description="How long a partial batch waits for more messages."
    )
    collector_decode_processes: int = Field(
        default=1,
        ge=0,
        le=16,
        description="Processes that decode batches beside the writer (0: a thread of the collector itself).",
    )
    collector_write_method: WriteMethod = Field(
        default=WriteMethod.COPY, description="copy (PostgreSQL) or unnest (engines without COPY)."
    )
    collector_metrics_port: int = Field(
        default=9464, ge=0, le=65_535, description="Prometheus metrics port; 0 turns the endpoint off."
    )
    collector_metrics_host: str = Field(
        default="127.0.0.1",
        description="Address the metrics endpoint binds (it has no authentication: loopback unless a "
        "scraper elsewhere needs it, then a private address).",
    )
    collector_db_retry_max_s: float = Field(
        default=30.0, gt=0, description="Longest wait between reconnection attempts to the database."
    )
    collector_refresh_interval_s: float = Field(
        default=2.0, ge=0, description="Rollup refresher period in the collector process; 0 disables it."
    )
    collector_audit_interval_s: float = Field(
        default=30.0, gt=0, description="How often open sequence gaps are re-counted for the metrics."
    )

    @field_validator("collector_client_id", "collector_share_group")
    @classmethod
    def _check_ids(cls, value: str) -> str:
        return check_topic_id(value, "collector id")

    @field_validator("collector_sites")
    @classmethod
    def _check_sites(cls, value: str) -> str:
        return value if value == "+" else check_topic_id(value, "site id")


def get_settings() -> CollectorSettings:
    return CollectorSettings()
