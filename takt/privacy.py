"""Privacy levels of a site and the gateway's worker pseudonyms (docs/privacy.md).

Shared by the edge agent (which applies the level before an event is made) and
the cloud (which shows the level, keeps to the retention and writes the privacy
sheet). Pure: no I/O.

- ``named``: the roster's or badge's worker id, as configured.
- ``pseudonymous``: ``p-`` and the first 20 hex digits of HMAC-SHA256(key, site
  + NUL + worker id), made on the gateway with the site's key; the cloud never
  receives the roster's ids. Whoever holds the key can check one candidate id
  against a pseudonym (:func:`resolve`).
- ``stations-only``: no worker id leaves the gateway: every event names
  ``unknown`` (the contract's id for an unidentified worker).
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

UNKNOWN_WORKER = "unknown"
PSEUDONYM_PREFIX = "p-"
PSEUDONYM_HEX = 20
MIN_KEY_BYTES = 16
WITHHELD = "(withheld: against the site's privacy level)"
_PSEUDONYM = re.compile(rf"{PSEUDONYM_PREFIX}[0-9a-f]{{{PSEUDONYM_HEX}}}")


class PrivacyLevel(StrEnum):
    NAMED = "named"
    PSEUDONYMOUS = "pseudonymous"
    STATIONS_ONLY = "stations-only"


class SitePrivacy(BaseModel):
    """One site's privacy configuration (``TAKT_PRIVACY`` in the cloud)."""

    model_config = ConfigDict(extra="forbid")

    level: PrivacyLevel = PrivacyLevel.NAMED
    min_group: int = Field(
        default=5,
        ge=1,
        description="k: figures about fewer people are withheld from readers without the "
        "per-person right (docs/metrics.md)",
    )
    retention_days: float | None = Field(
        default=None, gt=0, description="Raw events older than this are removed; unset keeps them"
    )
    dead_letter_retention_days: float | None = Field(
        default=None, gt=0, description="Dead letters older than this are removed; unset keeps them"
    )


@dataclass(frozen=True, slots=True)
class SiteLevels:
    """Each site's level (picklable: the collector's decoding processes get it)."""

    levels: Mapping[str, PrivacyLevel] = field(default_factory=dict)
    default: PrivacyLevel = PrivacyLevel.NAMED

    def __call__(self, site_id: str) -> PrivacyLevel:
        return self.levels.get(site_id, self.default)


def pseudonym(key: bytes, site_id: str, worker_id: str) -> str:
    """The pseudonym of ``worker_id`` at ``site_id`` under ``key`` (``unknown`` stays ``unknown``)."""
    if worker_id == UNKNOWN_WORKER:
        return UNKNOWN_WORKER
    if len(key) < MIN_KEY_BYTES:
        raise ValueError(f"a pseudonym key needs at least {MIN_KEY_BYTES} bytes")
    digest = hmac.new(key, f"{site_id}\0{worker_id}".encode(), hashlib.sha256).hexdigest()
    return PSEUDONYM_PREFIX + digest[:PSEUDONYM_HEX]


def outgoing_worker(level: PrivacyLevel, worker_id: str, *, key: bytes | None, site_id: str) -> str:
    """The worker id an event of a site at ``level`` carries."""
    if level is PrivacyLevel.STATIONS_ONLY:
        return UNKNOWN_WORKER
    if level is PrivacyLevel.PSEUDONYMOUS:
        if key is None:
            raise ValueError("the pseudonymous level needs the site's key")
        return pseudonym(key, site_id, worker_id)
    return worker_id


def resolve(key: bytes, site_id: str, pseudonym_id: str, candidates: Iterable[str]) -> str | None:
    """The one candidate roster id whose pseudonym is ``pseudonym_id``, or None."""
    for candidate in candidates:
        if hmac.compare_digest(pseudonym(key, site_id, candidate), pseudonym_id):
            return candidate
    return None


def worker_problem(level: PrivacyLevel, worker_id: str) -> str | None:
    """Why an event naming ``worker_id`` may not be stored for a site at ``level``, or None.

    The cloud's check that the gateways apply the level it is configured with:
    at ``pseudonymous`` only pseudonyms (and ``unknown``) are accepted, at
    ``stations-only`` only ``unknown``. The reason never repeats the id.
    """
    if worker_id == UNKNOWN_WORKER or level is PrivacyLevel.NAMED:
        return None
    if level is PrivacyLevel.PSEUDONYMOUS:
        if _PSEUDONYM.fullmatch(worker_id):
            return None
        return (
            "the site is pseudonymous, but the worker id is not a pseudonym "
            f"({PSEUDONYM_PREFIX} and {PSEUDONYM_HEX} hex digits): set privacy.level on the gateway"
        )
    return (
        f"the site is stations-only, so events must name worker {UNKNOWN_WORKER!r}: "
        "set privacy.level on the gateway"
    )
