"""The one state rule (takt.states): its pure form, and its SQL form giving the same answers."""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg

from takt import states
from takt.contract import Event
from takt.states import StateEvent, StateKind
from takt.store.events import write_events

T0 = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)
GAP = 600.0


def _at(s: float) -> datetime:
    return T0 + timedelta(seconds=s)


def test_kinds_follow_duration_s() -> None:
    assert states.kind_of(None) is StateKind.UNTIMED
    assert states.kind_of(0.0) is StateKind.CHANGE
    assert states.kind_of(12.5) is StateKind.SEGMENT


def test_a_change_adds_no_time_but_keeps_its_state_in_force() -> None:
    events = [StateEvent(_at(0), "working", 0.0), StateEvent(_at(0), "working", 10.0, "b")]
    assert states.effective_durations(events, GAP) == [0.0, 10.0]
    # In force after its last segment, until the partition has been silent for max_gap_s.
    assert states.in_force(events, _at(30), GAP) == states.InForce("working", _at(10))
    assert states.in_force(events, _at(10 + GAP), GAP) is None
    # A later change to idle ends it, even before any idle segment arrives.
    later = [*events, StateEvent(_at(12), "idle", 0.0)]
    assert states.in_force(later, _at(13), GAP) == states.InForce("idle", _at(12))
    # Before anything was seen, nothing is in force.
    assert states.in_force(events, _at(-1), GAP) is None


def test_untimed_states_last_until_the_next_capped() -> None:
    events = [StateEvent(_at(0), "working", None), StateEvent(_at(900), "idle", None)]
    assert states.effective_durations(events, GAP) == [GAP, 0.0]
    assert states.in_force(events, _at(100), GAP) == states.InForce("working", _at(0))
    assert states.in_force(events, _at(700), GAP) is None  # silent for longer than max_gap_s
    assert states.in_force(events, _at(950), GAP) == states.InForce("idle", _at(900))


def _random_partition(rng: random.Random, worker: str) -> list[Event]:
    out: list[Event] = []
    t = rng.uniform(0, 300)
    for _ in range(rng.randint(1, 8)):
        kind = rng.choice(["change", "segment", "untimed"])
        duration = {"change": 0.0, "segment": round(rng.uniform(1, 120), 3), "untimed": None}[kind]
        out.append(
            Event.model_validate(
                {
                    "event_id": str(uuid.uuid4()),
                    "timestamp": _at(round(t, 3)),
                    "worker_id": worker,
                    "station_id": "S1",
                    "event_type": rng.choice(states.STATE_TYPES),
                    "confidence": 0.9,
                    "duration_s": duration,
                }
            )
        )
        t += rng.choice([0.0, rng.uniform(1, 400)])
    return out


def test_sql_in_force_matches_the_pure_rule(conn: psycopg.Connection[Any]) -> None:
    rng = random.Random(13)
    events = [e for i in range(40) for e in _random_partition(rng, f"W{i}")]
    write_events(conn, events)
    for probe in (rng.uniform(0, 3000) for _ in range(25)):
        at = _at(probe)
        rows = conn.execute(
            states.in_force_sql(), {"at": at, "gap": GAP, "lookback": states.lookback_s(GAP)}
        ).fetchall()
        got = {r[0]: (r[2], r[3]) for r in rows}
        expected = {}
        for worker in {e.worker_id for e in events}:
            mine = [
                StateEvent(e.timestamp, e.event_type.value, e.duration_s, str(e.event_id))
                for e in events
                if e.worker_id == worker
            ]
            found = states.in_force(mine, at, GAP)
            if found is not None:
                expected[worker] = (found.state, found.heard)
        assert got == expected, at
