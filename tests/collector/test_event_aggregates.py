"""On plain PostgreSQL, events_minute/events_hour are views with the continuous aggregates' columns."""

from __future__ import annotations

import psycopg

from takt.store.events import write_events
from tests.collector.test_timescale import AGGREGATE_CHECK, _aggregate_events, _expected, _observed


def test_views_match_the_events(database: str) -> None:
    events = _aggregate_events("W-view")
    with psycopg.connect(database, autocommit=True) as conn:
        write_events(conn, events)
        minute = conn.execute(AGGREGATE_CHECK.format(view="events_minute"), ("W-view",)).fetchall()
        hour = conn.execute(AGGREGATE_CHECK.format(view="events_hour"), ("W-view",)).fetchall()
        kinds = conn.execute(
            "SELECT table_name FROM information_schema.views WHERE table_name LIKE 'events_%' ORDER BY 1"
        ).fetchall()
    assert kinds == [("events_hour",), ("events_minute",)]
    assert _observed(minute) == _expected(events, "minute")
    assert _observed(hour) == _expected(events, "hour")
