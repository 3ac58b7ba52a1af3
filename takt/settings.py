"""Service configuration from ``TAKT_*`` environment variables (pydantic-settings).

Every cloud role has one settings class; all of them are listed in
:data:`SETTINGS_CLASSES` so tooling (``takt config show``, the compose-file
test) knows every variable that exists. Edge agents read a YAML file instead
(:mod:`edge_agent.config`).
"""

from __future__ import annotations

import json
from datetime import timedelta
from ipaddress import IPv4Network, IPv6Network, ip_network
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit, urlunsplit

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from takt.contract.events import PlausibilityWindow
from takt.privacy import SiteLevels, SitePrivacy

ENV_PREFIX = "TAKT_"


def mask_url(url: str) -> str:
    """The URL with its password replaced by ``***``."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = f"{parts.username}:***@{parts.hostname}"
    if parts.port:
        netloc += f":{parts.port}"
    return urlunsplit(parts._replace(netloc=netloc))


def split_networks(value: object) -> object:
    """``a,b`` or a JSON list of IPs/CIDRs (an env variable's forms) as networks; other values as given."""
    if isinstance(value, str):
        parts = json.loads(value) if value.lstrip().startswith("[") else value.split(",")
        return [ip_network(str(part).strip(), strict=False) for part in parts if str(part).strip()]
    return value


def networks_text(networks: list[IPv4Network | IPv6Network]) -> str:
    """Networks in the comma-separated form their env variable is written in."""
    return ",".join(str(net) for net in networks)


class CommonSettings(BaseSettings):
    """Settings every cloud role reads."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore")

    site_id: str = Field(default="site-1", description="Default site for this deployment.")
    privacy: dict[str, SitePrivacy] = Field(
        default_factory=dict,
        description='JSON, per site (docs/privacy.md): {"plant-a": {"level": "pseudonymous", "min_group": 5, '
        '"retention_days": 90, "dead_letter_retention_days": 30}, "*": {"min_group": 3}}; "*" applies to '
        'sites not named; without it a site is "named", k = 5, kept for good. The collector and the '
        "API refuse events whose worker ids break the site's level.",
    )
    mqtt_url: str = Field(
        default="mqtt://127.0.0.1:18830",
        description="mqtt://user:pass@host:port, or mqtts:// for TLS.",
    )
    database_url: str = Field(
        default="postgresql://takt@127.0.0.1:15432/takt", description="postgresql://user:pass@host:port/db"
    )
    log_level: str = Field(default="INFO", description="DEBUG, INFO, WARNING or ERROR.")
    log_format: Literal["text", "json"] = Field(default="text", description="json for log shippers.")
    state_dir: Path = Field(default=Path(".takt"), description="Local state (dev stack, secrets).")
    # Part of the metric definitions (docs/metrics.md), so every role that
    # derives durations (collector and API refreshers) must use the same value.
    max_state_gap_s: float = Field(
        default=600.0, gt=0, le=86_400, description="Cap on a state's length when it has no duration_s."
    )
    # The plausibility window of event times, one for both transports (MQTT and HTTP).
    max_clock_skew_s: float = Field(
        default=300.0,
        ge=0,
        le=86_400 * 366,
        description="Events further than this in the future are dead-lettered (MQTT) or rejected (HTTP).",
    )
    max_event_age_days: float = Field(
        default=30.0,
        gt=0,
        le=36_600,
        description="Events older than this are dead-lettered (MQTT) or rejected (HTTP).",
    )
    refresh_max_share: float = Field(
        default=0.1,
        gt=0,
        le=1,
        description="Largest share of wall time a rollup refresher spends in rounds; under heavy ingest "
        "rounds are spaced out so storing events keeps the CPU (rollups then trail a little more).",
    )

    @property
    def max_future(self) -> timedelta:
        return timedelta(seconds=self.max_clock_skew_s)

    @property
    def max_age(self) -> timedelta:
        return timedelta(days=self.max_event_age_days)

    @property
    def plausibility(self) -> PlausibilityWindow:
        return PlausibilityWindow(self.max_future, self.max_age)

    def site_privacy(self, site_id: str) -> SitePrivacy:
        """A site's privacy configuration: its own, else the "*" entry, else the defaults."""
        return self.privacy.get(site_id) or self.privacy.get("*") or SitePrivacy()

    def privacy_levels(self) -> SiteLevels:
        """Each configured site's level, and the level of the others."""
        named = {site: p.level for site, p in self.privacy.items() if site != "*"}
        return SiteLevels(named, self.site_privacy("*").level)

    @field_validator("mqtt_url")
    @classmethod
    def _check_mqtt_url(cls, value: str) -> str:
        if urlsplit(value).scheme not in ("mqtt", "mqtts"):
            raise ValueError("TAKT_MQTT_URL must start with mqtt:// or mqtts://")
        return value

    @field_validator("database_url")
    @classmethod
    def _normalise_database_url(cls, value: str) -> str:
        # Accept SQLAlchemy-style URLs too; store the libpq form psycopg takes.
        for prefix in ("postgresql+psycopg://", "postgres://"):
            if value.startswith(prefix):
                value = "postgresql://" + value[len(prefix) :]
        if not value.startswith("postgresql://"):
            raise ValueError("TAKT_DATABASE_URL must be a postgresql:// URL")
        return value

    def masked(self) -> dict[str, object]:
        """The effective settings as plain values, with secrets masked."""
        shown: dict[str, object] = {}
        for name, value in self.model_dump().items():
            if isinstance(value, SecretStr):
                shown[name] = "***" if value.get_secret_value() else ""
            elif name.endswith("_url") and isinstance(value, str):
                shown[name] = mask_url(value)
            elif isinstance(value, Path):
                shown[name] = str(value)
            else:
                shown[name] = value
        return shown


SETTINGS_CLASSES: list[type[CommonSettings]] = [CommonSettings]


def register_settings(cls: type[CommonSettings]) -> type[CommonSettings]:
    """Class decorator: list a role's settings so tooling knows its variables."""
    SETTINGS_CLASSES.append(cls)
    return cls


def setting_env_names() -> set[str]:
    """Every ``TAKT_*`` variable some role reads."""
    names: set[str] = set()
    for cls in SETTINGS_CLASSES:
        names.update(ENV_PREFIX + name.upper() for name in cls.model_fields)
    return names
