"""Alert evaluation and delivery settings (``TAKT_ALERT_*``, ``TAKT_SMTP_*``), part of the API's."""

from __future__ import annotations

from ipaddress import IPv4Network, IPv6Network
from typing import Annotated

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import NoDecode

from takt.settings import CommonSettings, split_networks


class AlertSettings(CommonSettings):
    alert_interval_s: float = Field(
        default=2.0,
        ge=0,
        description="Alert rules are evaluated this often in the API process; 0 disables it.",
    )
    alert_send_interval_s: float = Field(
        default=0.5, gt=0, description="How often the API process looks for notifications to send."
    )
    alert_tries: int = Field(
        default=5,
        ge=1,
        le=20,
        description="Delivery tries per notification (and shift report email) before it is dead-lettered.",
    )
    alert_retry_initial_s: float = Field(
        default=0.5, gt=0, description="First wait between delivery tries; doubles each try (at most 30 s)."
    )
    alert_webhook_timeout_s: float = Field(default=5.0, gt=0, description="Timeout of one webhook POST.")
    alert_webhook_allow_networks: Annotated[list[IPv4Network | IPv6Network], NoDecode] = Field(
        default_factory=list,
        description="Comma-separated IPs/CIDRs that webhooks may reach besides public addresses (an "
        "in-plant receiver, e.g. 10.20.0.0/16). Webhooks to loopback, private, link-local, multicast or "
        "reserved addresses are refused otherwise, when a rule is saved and at each delivery.",
    )
    alert_mqtt_url: str | None = Field(
        default=None,
        description="Broker user that publishes alert messages (`takt broker add-alerts`); "
        "unset: TAKT_MQTT_URL.",
    )
    smtp_host: str | None = Field(default=None, description="SMTP server for alert emails; unset: no email.")
    smtp_port: int = Field(default=25, ge=1, le=65535, description="SMTP port.")
    smtp_username: str | None = Field(default=None, description="SMTP login, if the server wants one.")
    smtp_password: SecretStr | None = Field(default=None, description="SMTP password.")
    smtp_from: str = Field(default="takt@localhost", description="Sender address of alert emails.")
    smtp_starttls: bool = Field(default=False, description="Upgrade the SMTP connection with STARTTLS.")
    smtp_timeout_s: float = Field(default=10.0, gt=0, description="Timeout of one SMTP exchange.")

    @field_validator("alert_webhook_allow_networks", mode="before")
    @classmethod
    def _split_networks(cls, value: object) -> object:
        return split_networks(value)
