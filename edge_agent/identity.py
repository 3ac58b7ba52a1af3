"""Who works at a station, without faces: badges seen in the zone win over the shift roster."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, time, tzinfo

UNKNOWN_WORKER = "unknown"


@dataclass(frozen=True, slots=True)
class RosterEntry:
    station_id: str
    worker_id: str
    start: time
    end: time  # may be before start: a night shift across midnight
    weekdays: frozenset[int] = frozenset(range(7))  # Monday = 0

    def covers(self, local: datetime) -> bool:
        t = local.time()
        if self.start <= self.end:
            return local.weekday() in self.weekdays and self.start <= t < self.end
        if t >= self.start:
            return local.weekday() in self.weekdays
        # After midnight the shift belongs to the day it started on.
        return (local.weekday() - 1) % 7 in self.weekdays and t < self.end


class IdentityResolver:
    def __init__(
        self,
        roster: list[RosterEntry],
        badges: dict[int, str],
        tz: tzinfo,
        *,
        badge_hold_s: float = 30.0,
        outgoing: Callable[[str], str] | None = None,
    ) -> None:
        # The site's privacy level (takt.privacy): the id an event carries for a roster id.
        self.outgoing = outgoing or (lambda worker: worker)
        self.roster = roster
        self.badges = badges
        self.tz = tz
        self.badge_hold_s = badge_hold_s
        self._seen: dict[str, tuple[str, float]] = {}

    def badge_seen(self, station_id: str, marker_id: int, timestamp_s: float) -> None:
        worker = self.badges.get(marker_id)
        if worker is not None:
            self._seen[station_id] = (worker, timestamp_s)

    def resolve(self, station_id: str, timestamp_s: float) -> str:
        """The worker id the station's events carry now, as the site's privacy level has it."""
        return self.outgoing(self._worker(station_id, timestamp_s))

    def _worker(self, station_id: str, timestamp_s: float) -> str:
        seen = self._seen.get(station_id)
        # A badge is not seen on every frame (turned away, occluded), so it holds a while.
        if seen is not None and timestamp_s - seen[1] <= self.badge_hold_s:
            return seen[0]
        local = datetime.fromtimestamp(timestamp_s, self.tz)
        for entry in self.roster:
            if entry.station_id == station_id and entry.covers(local):
                return entry.worker_id
        return UNKNOWN_WORKER
