"""The shared writer: COPY text lines and UNNEST store the same values."""

from __future__ import annotations

import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest

from devstack import PostgresServer
from takt.contract import Event, EventType
from takt.store.db import upgrade
from takt.store.events import (
    SeenSeqs,
    WriteMethod,
    WriteResult,
    copy_batch,
    insert_copy_batch,
    insert_events,
)


def _events() -> list[Event]:
    now = datetime(2026, 11, 23, 8, 0, 0, 123456, tzinfo=UTC)
    tricky = "\\N back\\slash é ✓"
    return [
        Event(
            event_id=uuid.uuid4(),
            timestamp=now - timedelta(seconds=i),
            worker_id=f"w:{i}@x",
            station_id="s.1",
            event_type=EventType.PRODUCT_COUNT if i % 2 else EventType.IDLE,
            confidence=0.1 + i / 10,
            count=i,
            duration_s=None if i % 2 else 1.5 + i,
            model_version=tricky if i == 0 else None,
            config_version="\\N" if i == 1 else None,
            camera_id="cam-1" if i else None,
            seq=i or None,
            shadow=i == 2,
        )
        for i in range(4)
    ]


@pytest.mark.parametrize("method", list(WriteMethod))
def test_methods_store_identical_values(database: str, method: WriteMethod) -> None:
    events = _events()
    with psycopg.connect(database) as conn:
        first = insert_events(conn, events, method)
        again = insert_events(conn, events, method)
        rows = conn.execute(
            "SELECT event_id, ts, worker_id, event_type, confidence, count, duration_s, "
            "effective_duration_s, model_version, config_version, camera_id, seq, shadow FROM events"
        ).fetchall()
    assert (first.inserted, again.inserted, again.duplicates) == (4, 0, 4)
    stored: dict[Any, tuple[Any, ...]] = {r[0]: r[1:] for r in rows}
    for e in events:
        ts, worker, etype, conf, count, dur, eff, model, config, camera, seq, shadow = stored[e.event_id]
        assert (ts, worker, etype, count, dur, model, config, camera, seq, shadow) == (
            e.timestamp,
            e.worker_id,
            e.event_type.value,
            e.count,
            e.duration_s,
            e.model_version,
            e.config_version,
            e.camera_id,
            e.seq,
            e.shadow,
        )
        assert conf == pytest.approx(e.confidence, rel=1e-6)
        assert eff == (e.duration_s if e.is_state else None)


@pytest.mark.parametrize("method", list(WriteMethod))
def test_tiny_confidence_is_stored_exactly(database: str, method: WriteMethod) -> None:
    """Any confidence the contract accepts fits its column (a real would underflow on 1e-125)."""
    event = _events()[0].model_copy(update={"event_id": uuid.uuid4(), "confidence": 1e-125})
    with psycopg.connect(database) as conn:
        assert insert_events(conn, [event], method).inserted == 1
        row = conn.execute("SELECT confidence FROM events WHERE event_id = %s", (event.event_id,)).fetchone()
    assert row == (1e-125,)


def _registered(conn: psycopg.Connection[Any]) -> tuple[Any, ...]:
    return (
        conn.execute("SELECT worker_id, registered FROM workers ORDER BY 1").fetchall(),
        conn.execute("SELECT station_id FROM workstations ORDER BY 1").fetchall(),
        conn.execute(
            "SELECT worker_id, station_id, min(min_ts), max(max_ts) FROM event_invalidations GROUP BY 1, 2 "
            "ORDER BY 1, 2"
        ).fetchall(),
        conn.execute("SELECT model_version, first_seen FROM cv_models ORDER BY 1").fetchall(),
        conn.execute(
            "SELECT model_version, gateway_id, shadow, site_id, first_seen FROM cv_model_gateways "
            "ORDER BY 1, 2, 3"
        ).fetchall(),
    )


def _models_events() -> list[Event]:
    base = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
    return [
        Event(
            event_id=uuid.uuid4(),
            timestamp=base + timedelta(seconds=i),
            worker_id=f"w{i % 3}",
            station_id=f"s{i % 2}",
            event_type=EventType.WORKING,
            confidence=0.9,
            duration_s=1.0,
            model_version=f"m@{i % 2}",
            gateway_id=f"gw{i % 2}",
            site_id="site-a",
            shadow=i % 4 == 3,
            seq=i + 1,
        )
        for i in range(12)
    ]


def test_copy_and_unnest_register_the_same(postgres_server: PostgresServer) -> None:
    """The direct COPY registers workers, stations, invalidations and models as the merge does."""
    results = []
    for method in WriteMethod:
        url = postgres_server.create_database(f"reg_{method.value}_{uuid.uuid4().hex[:8]}")
        upgrade(url)
        with psycopg.connect(url) as conn:
            insert_events(conn, _models_events(), method)
            results.append(_registered(conn))
    assert results[0] == results[1]
    workers, stations, spans, models, _ = results[0]
    assert workers == [("w0", False), ("w1", False), ("w2", False)]
    assert stations == [("s0",), ("s1",)]
    assert len(spans) == 6 and len(models) == 2


def test_partial_duplicates_store_only_the_new(database: str) -> None:
    events = _models_events()
    with psycopg.connect(database) as conn:
        assert insert_events(conn, events[:8]).inserted == 8
        result = insert_events(conn, events[4:])
        count = conn.execute("SELECT count(*), count(DISTINCT event_id) FROM events").fetchone()
    assert (result.inserted, result.duplicates) == (4, 4)
    assert count == (12, 12)


def test_a_concurrent_writer_storing_the_same_events_falls_back_to_the_merge(database: str) -> None:
    """Rows stored by another transaction after the check make the COPY fail; the merge then skips them."""
    events = _models_events()
    batch = copy_batch(events)
    with psycopg.connect(database) as other, psycopg.connect(database) as conn:
        other.execute("BEGIN")
        insert_events(other, events[:5])  # not committed yet: invisible to conn's check
        outcome: list[WriteResult] = []

        def write() -> None:
            with conn.transaction():
                outcome.append(insert_copy_batch(conn, batch))

        writer = threading.Thread(target=write)
        writer.start()
        time.sleep(0.5)  # conn's COPY now waits on other's uncommitted keys
        other.commit()
        writer.join(10)
        count = conn.execute("SELECT count(*), count(DISTINCT event_id) FROM events").fetchone()
    assert outcome == [WriteResult(inserted=7, duplicates=5)]
    assert count == (12, 12)


def _probed(batch_ids: str) -> int:
    return 0 if batch_ids == "{}" else batch_ids.count(",") + 1


def test_only_events_a_decoder_has_not_seen_skip_the_lookup() -> None:
    """New to the decoder: a gateway it knows, numbered above what it has seen."""
    events = _models_events()  # gw0: seq 1, 3, ... 11; gw1: seq 2, 4, ... 12
    seen = SeenSeqs()
    first = copy_batch(events[:6], seen)  # unknown gateways: every event is looked up
    assert _probed(first.probe_ids) == 6
    seen.advance({"gw0": [1, 5, 3], "gw1": [2, 4, 6], "gw2": []})
    assert seen.highest == {"gw0": 5, "gw1": 6}
    resent = copy_batch([*events[6:], events[0], events[5]], seen)  # 7..12 are new; 1 and 6 re-sent
    assert _probed(resent.probe_ids) == 2
    assert {events[0].event_id.hex, events[5].event_id.hex} == set(resent.probe_ids.strip("{}").split(","))
    assert _probed(copy_batch(events).probe_ids) == 12  # no decoder state: all


def test_a_wrong_guess_that_events_are_new_falls_back_to_the_merge(database: str) -> None:
    """Stored by another collector, so new only to this decoder: the COPY fails, the merge skips them."""
    events = _models_events()
    seen = SeenSeqs({"gw0": 0, "gw1": 0})
    batch = copy_batch(events, seen)
    assert batch.probe_ids == "{}"
    with psycopg.connect(database) as conn:
        insert_events(conn, events[:5])
        result = insert_copy_batch(conn, batch)
        count = conn.execute("SELECT count(*), count(DISTINCT event_id) FROM events").fetchone()
    assert result == WriteResult(inserted=7, duplicates=5)
    assert count == (12, 12)


def test_copy_batch_aggregates_like_the_merge_statement() -> None:
    """Spans per worker and station; per model, gateway and shadow flag: min(site), min(ts), NULLs ignored."""
    base = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)

    def event(second: int, site: str | None, worker: str = "w1") -> Event:
        return Event(
            event_id=uuid.uuid4(),
            timestamp=base + timedelta(seconds=second),
            worker_id=worker,
            station_id="s1",
            event_type=EventType.IDLE,
            confidence=0.5,
            model_version="m@1",
            gateway_id="gw1",
            site_id=site,
        )

    batch = copy_batch([event(5, "site-b"), event(1, None), event(9, "site-a", "w2"), event(3, "site-c")])
    assert batch.rows == 4 and batch.data.count(b"\n") == 4
    assert sorted(batch.registration.spans) == [
        ("w1", "s1", base + timedelta(seconds=1), base + timedelta(seconds=5)),
        ("w2", "s1", base + timedelta(seconds=9), base + timedelta(seconds=9)),
    ]
    assert batch.registration.models == (("m@1", "gw1", False, "site-a", base + timedelta(seconds=1)),)


@pytest.mark.parametrize("path", ["looked up", "guessed new", "unnest"])
def test_an_id_stored_under_another_time_or_content_is_a_conflict(database: str, path: str) -> None:
    """event_id alone is the key: a re-send one second later is not a second event but a conflict."""
    events = _events()
    moved = events[1].model_copy(update={"timestamp": events[1].timestamp + timedelta(seconds=1)})
    changed = events[3].model_copy(update={"confidence": 0.05, "shadow": True})
    with psycopg.connect(database) as conn:
        insert_events(conn, events)
        batch = [moved, changed, events[0]]  # two conflicts and a true duplicate
        if path == "looked up":
            result = insert_copy_batch(conn, copy_batch(batch))
        elif path == "guessed new":  # the decoder takes them for new: the COPY fails, the merge decides
            result = insert_copy_batch(conn, copy_batch(batch, SeenSeqs({"": -1})))
        else:
            result = insert_events(conn, batch, WriteMethod.UNNEST)
        count = conn.execute("SELECT count(*), count(DISTINCT event_id) FROM events").fetchone()
        kept = conn.execute("SELECT ts FROM events WHERE event_id = %s", (events[1].event_id,)).fetchall()
    assert (result.inserted, result.duplicates) == (0, 1)
    reasons = {c.event_id: c.reason for c in result.conflicts}
    assert set(reasons) == {moved.event_id, changed.event_id}
    assert "(timestamp differ)" in reasons[moved.event_id]
    assert "(confidence, shadow differ)" in reasons[changed.event_id]
    assert count == (4, 4) and kept == [(events[1].timestamp,)]
    conflict = next(c for c in result.conflicts if c.event_id == moved.event_id)
    assert conflict.seq == moved.seq and b'"timestamp"' in conflict.payload


def test_an_id_repeated_in_one_batch_with_other_content_is_a_conflict(database: str) -> None:
    events = _events()
    twin = events[2].model_copy(update={"count": 99})
    with psycopg.connect(database) as conn:
        result = insert_events(conn, [*events, events[2], twin])
        count = conn.execute("SELECT count(*) FROM events").fetchone()
    assert (result.inserted, result.duplicates, len(result.conflicts)) == (4, 1, 1)
    assert "appears earlier in the batch" in result.conflicts[0].reason
    assert "count differ" in result.conflicts[0].reason
    assert count == (4,)


def test_fresh_seqs_leave_out_resends_and_conflicts(database: str) -> None:
    events = _events()  # seq None, 1, 2, 3
    with psycopg.connect(database) as conn:
        first = insert_copy_batch(conn, copy_batch(events[:2]))
        changed = events[1].model_copy(update={"confidence": 0.01})
        again = insert_copy_batch(conn, copy_batch([changed, *events[2:]]))
    assert dict(first.fresh_seqs) == {"": [1]}
    assert dict(again.fresh_seqs) == {"": [2, 3]}


def test_the_identity_migration_keeps_the_first_received_copy_of_an_id(fresh_database: str) -> None:
    """Ids stored twice under two times before 0007 (the bug it fixes) keep their first row."""
    upgrade(fresh_database, "0005_rollup_detail")
    twice, once = uuid.uuid4(), uuid.uuid4()
    ts = datetime(2026, 11, 23, 8, tzinfo=UTC)
    rows = [(twice, ts, 0.9, 0), (twice, ts + timedelta(seconds=1), 0.8, 5), (once, ts, 0.7, 0)]
    with psycopg.connect(fresh_database, autocommit=True) as conn:
        for event_id, at, confidence, received in rows:
            conn.execute(
                "INSERT INTO events (event_id, ts, worker_id, station_id, event_type, confidence, "
                "received_at) VALUES (%s, %s, 'w', 's', 'working', %s, now() + %s * interval '1 second')",
                (event_id, at, confidence, received),
            )
    upgrade(fresh_database)
    with psycopg.connect(fresh_database) as conn:
        kept = conn.execute("SELECT event_id, ts, confidence FROM events ORDER BY confidence").fetchall()
        registry = conn.execute("SELECT event_id, ts FROM event_ids ORDER BY ts, event_id").fetchall()
        queued = conn.execute("SELECT min_ts FROM event_invalidations").fetchall()
    assert kept == [(once, ts, 0.7), (twice, ts, 0.9)]
    assert sorted(registry) == sorted([(twice, ts), (once, ts)])
    assert queued == [(ts + timedelta(seconds=1),)]


@pytest.mark.parametrize("path", ["looked up", "guessed new", "unnest"])
def test_events_deleted_behind_the_registrys_back_are_stored_again(database: str, path: str) -> None:
    """Rows removed by hand (or with their chunks) leave stale registrations, which a re-send clears."""
    events = _events()
    with psycopg.connect(database) as conn:
        insert_events(conn, events)
        conn.execute("DELETE FROM events WHERE event_id = ANY(%s)", ([e.event_id for e in events[:2]],))
        if path == "looked up":
            result = insert_copy_batch(conn, copy_batch(events))
        elif path == "guessed new":
            result = insert_copy_batch(conn, copy_batch(events, SeenSeqs({"": -1})))
        else:
            result = insert_events(conn, events, WriteMethod.UNNEST)
        count = conn.execute("SELECT count(*), count(DISTINCT event_id) FROM events").fetchone()
        registry = conn.execute("SELECT count(*) FROM event_ids").fetchone()
    assert (result.inserted, result.duplicates, result.conflicts) == (2, 2, ())
    assert count == (4, 4) and registry == (4,)
