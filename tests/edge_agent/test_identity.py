from __future__ import annotations

from datetime import UTC, datetime, time

import pytest

from edge_agent.identity import IdentityResolver, RosterEntry

ROSTER = [
    RosterEntry("st-1", "alice", time(6), time(14)),
    RosterEntry("st-1", "bob", time(14), time(22)),
    RosterEntry("st-1", "night", time(22), time(6), frozenset({0, 1, 2, 3, 4})),  # Mon-Fri nights
]


def ts(day: int, hour: int, minute: int = 0) -> float:
    # 2026-11-23 is a Monday.
    return datetime(2026, 11, day, hour, minute, tzinfo=UTC).timestamp()


@pytest.mark.parametrize(
    ("when", "worker"),
    [
        (ts(23, 7), "alice"),
        (ts(23, 14), "bob"),
        (ts(23, 23), "night"),
        (ts(24, 3), "night"),  # Monday's night shift, after midnight
        (ts(29, 3), "unknown"),  # Sunday 03:00: Saturday has no night shift
        (ts(28, 23), "unknown"),  # Saturday 23:00
    ],
)
def test_roster_by_shift(when: float, worker: str) -> None:
    assert IdentityResolver(ROSTER, {}, UTC).resolve("st-1", when) == worker


def test_badge_wins_over_roster_and_expires() -> None:
    resolver = IdentityResolver(ROSTER, {7: "carol"}, UTC, badge_hold_s=30)
    t = ts(23, 8)
    resolver.badge_seen("st-1", 7, t)
    assert resolver.resolve("st-1", t + 10) == "carol"
    assert resolver.resolve("st-2", t + 10) == "unknown"  # other station, no roster
    assert resolver.resolve("st-1", t + 31) == "alice"


def test_unknown_marker_is_ignored() -> None:
    resolver = IdentityResolver([], {7: "carol"}, UTC)
    resolver.badge_seen("st-1", 99, 0.0)
    assert resolver.resolve("st-1", 1.0) == "unknown"
