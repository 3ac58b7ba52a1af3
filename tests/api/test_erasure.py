"""Erasure, retention and the privacy sheet (docs/privacy.md)."""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient

from api.app import create_app
from api.settings import ApiSettings
from devstack.postgres import PostgresServer
from takt.cli import main
from takt.contract import Event
from takt.store.db import upgrade
from takt.store.events import DeadLetter, insert_dead_letters, write_events
from takt.store.privacy import erase_worker
from takt.store.rollups import refresh_all

START = datetime(2026, 11, 2, 6, 0, tzinfo=UTC)
WINDOW = {"from": "2026-11-02T05:00:00Z", "to": "2026-11-03T02:00:00Z"}
GAP_S = 600.0


def _shift(worker: str, station: str, site: str, start: datetime, rng: random.Random) -> list[Event]:
    out = []
    t = start
    for _ in range(40):
        kind = rng.choice(["working", "working", "idle", "absent"])
        out.append(
            Event.model_validate(
                {
                    "event_id": str(uuid.UUID(int=rng.getrandbits(128))),
                    "timestamp": t,
                    "worker_id": worker,
                    "station_id": station,
                    "event_type": kind,
                    "confidence": 0.9,
                    "model_version": "m@1",
                    "site_id": site,
                }
            )
        )
        t += timedelta(seconds=rng.uniform(30, 400))
        if kind == "working":
            out.append(
                Event.model_validate(
                    {
                        "event_id": str(uuid.UUID(int=rng.getrandbits(128))),
                        "timestamp": t,
                        "worker_id": worker,
                        "station_id": station,
                        "event_type": "product_count",
                        "confidence": 0.9,
                        "count": 1,
                        "model_version": "m@1",
                        "site_id": site,
                    }
                )
            )
            t += timedelta(seconds=rng.uniform(5, 60))
    return out


def _data() -> tuple[list[Event], list[Event]]:
    """(W1's events at plant-a, everything else): W1 and W2 share station S1 at plant-a; W1 also
    works at plant-b, which an erasure limited to plant-a must leave alone."""
    rng = random.Random(19)
    w1_a = _shift("W1", "S1", "plant-a", START, rng) + _shift(
        "W1", "S2", "plant-a", START + timedelta(hours=9), rng
    )
    rest = (
        _shift("W2", "S1", "plant-a", START + timedelta(minutes=7), rng)
        + _shift("W3", "S2", "plant-a", START, rng)
        + _shift("W1", "S9", "plant-b", START + timedelta(hours=3), rng)
    )
    return w1_a, rest


@pytest.fixture
def second_database(postgres_server: PostgresServer) -> Iterator[str]:
    name = f"t_{uuid.uuid4().hex[:12]}"
    yield postgres_server.create_database(name, exist_ok=False)
    postgres_server.drop_database(name)


ROUTES = [
    ("/api/v1/metrics/workers", WINDOW),
    ("/api/v1/metrics/workstations", WINDOW),
    ("/api/v1/metrics/factory", WINDOW),
    ("/api/v1/metrics/models", WINDOW),
    ("/api/v1/metrics/timeseries", WINDOW),
    ("/api/v1/metrics/timeseries", {**WINDOW, "by": "workstation"}),
    ("/api/v1/metrics/timeseries", {**WINDOW, "by": "workstation", "bucket": "day", "site_id": "plant-a"}),
    ("/api/v1/metrics/workstations/S1/cycle-time", WINDOW),
    ("/api/v1/workers", {}),
]


def _answers(settings: ApiSettings, dsn: str) -> list[Any]:
    config = settings.model_copy(update={"database_url": dsn, "response_cache_ttl_s": 0})
    with TestClient(create_app(config), headers={"Authorization": "Bearer test-admin-token"}) as c:
        return [c.get(path, params=params).json() for path, params in ROUTES]


def test_metrics_after_erasure_equal_a_database_that_never_held_the_worker(
    settings: ApiSettings, second_database: str
) -> None:
    w1_a, rest = _data()
    erased_db, never_db = settings.database_url, second_database
    upgrade(never_db)
    with psycopg.connect(erased_db, autocommit=True) as conn:
        write_events(conn, w1_a + rest)
        insert_dead_letters(
            conn,
            [
                DeadLetter(
                    source="http", reason="bad", payload=b'{"worker_id": "W1", "site_id": "plant-a", "x": 1}'
                ),
                DeadLetter(
                    source="http", reason="bad", payload=b'{"worker_id": "W2", "site_id": "plant-a", "x": 1}'
                ),
            ],
        )
        refresh_all(conn, max_gap_s=GAP_S)
    with psycopg.connect(never_db, autocommit=True) as conn:
        write_events(conn, rest)
        refresh_all(conn, max_gap_s=GAP_S)
    before = _answers(settings, erased_db)
    assert before != _answers(settings, never_db)  # W1's plant-a events count before the erasure

    env = {"TAKT_DATABASE_URL": erased_db}
    result = CliRunner().invoke(
        main, ["privacy", "erase", "--worker", "W1", "--site", "plant-a", "--yes"], env=env
    )
    assert result.exit_code == 0, result.output
    assert f"erased {len(w1_a)} events and 1 dead letters" in result.output

    assert _answers(settings, erased_db) == _answers(settings, never_db)
    with psycopg.connect(erased_db) as conn:
        assert conn.execute(
            "SELECT count(*) FROM events WHERE worker_id = 'W1' AND site_id = 'plant-b'"
        ).fetchone() == (
            40 + sum(1 for e in rest if e.worker_id == "W1" and e.event_type.value == "product_count"),
        )
        rows = conn.execute(
            "SELECT action, subject, sites, detail FROM privacy_audit WHERE action <> 'read'"
        ).fetchall()
    assert rows == [
        ("erase", "W1", ["plant-a"], {"events": len(w1_a), "dead_letters": 1, "roster_entry": False})
    ]
    # Erasing 'unknown' is refused: it is not a person.
    refused = CliRunner().invoke(main, ["privacy", "erase", "--worker", "unknown", "--yes"], env=env)
    assert refused.exit_code != 0 and "not a person" in refused.output


@pytest.mark.wallclock
def test_retention_removes_old_raw_events_of_one_site_and_keeps_rollups(settings: ApiSettings) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    rng = random.Random(5)
    old = _shift("W1", "S1", "plant-a", now - timedelta(days=40), rng)
    other = _shift("W2", "S2", "plant-b", now - timedelta(days=40), rng)
    recent = _shift("W1", "S1", "plant-a", now - timedelta(days=2), rng)
    with psycopg.connect(settings.database_url, autocommit=True) as conn:
        write_events(conn, old + other + recent)
        insert_dead_letters(conn, [DeadLetter(source="http", reason="bad", payload=b"{}")])
        conn.execute("UPDATE dead_letters SET received_at = now() - interval '20 days'")
        refresh_all(conn, max_gap_s=GAP_S)
    window = {"from": (now - timedelta(days=41)).isoformat(), "to": (now - timedelta(days=30)).isoformat()}
    config = settings.model_copy(update={"response_cache_ttl_s": 0})
    with TestClient(create_app(config), headers={"Authorization": "Bearer test-admin-token"}) as c:
        kept = c.get("/api/v1/metrics/workstations", params=window).json()
    assert {s["station_id"] for s in kept if s["event_count"]} == {"S1", "S2"}
    env = {
        "TAKT_DATABASE_URL": settings.database_url,
        "TAKT_PRIVACY": '{"plant-a": {"retention_days": 30, "dead_letter_retention_days": 10}}',
    }
    result = CliRunner().invoke(main, ["privacy", "retention"], env=env)
    assert result.exit_code == 0, result.output
    assert (
        f"plant-a: removed {len(old)} events" in result.output and "dead letters: removed 1" in result.output
    )
    with psycopg.connect(settings.database_url) as conn:
        counts = dict(conn.execute("SELECT site_id, count(*) FROM events GROUP BY 1").fetchall())
    assert counts == {"plant-a": len(recent), "plant-b": len(other)}
    with TestClient(create_app(config), headers={"Authorization": "Bearer test-admin-token"}) as c:
        # Rollups are kept: the old hours' figures stay as they were rolled up.
        assert c.get("/api/v1/metrics/workstations", params=window).json() == kept


def test_privacy_sheet_follows_the_configuration(settings: ApiSettings, tmp_path: Path) -> None:
    env = {
        "TAKT_DATABASE_URL": settings.database_url,
        "TAKT_PRIVACY": '{"plant-a": {"level": "pseudonymous", "min_group": 7, "retention_days": 90}}',
    }
    runner = CliRunner()
    assert (
        runner.invoke(
            main,
            ["api", "token", "create", "--role", "viewer", "--name", "wall", "--site", "plant-a"],
            env=env,
        ).exit_code
        == 0
    )
    assert (
        runner.invoke(
            main,
            ["api", "token", "create", "--role", "supervisor", "--name", "b-lead", "--site", "plant-b"],
            env=env,
        ).exit_code
        == 0
    )
    out, pdf = tmp_path / "sheet.md", tmp_path / "sheet.pdf"
    result = runner.invoke(
        main, ["privacy", "sheet", "--site", "plant-a", "--out", str(out), "--pdf", str(pdf)], env=env
    )
    assert result.exit_code == 0, result.output
    text = out.read_text()
    assert "Privacy level of this site: **pseudonymous**" in text
    assert "Minimum group size k = 7" in text and "Raw events: 90 days" in text
    assert "| wall | viewer | this site only | no |" in text and "b-lead" not in text
    assert "| worker_id |" in text and "| rejected |" in text  # fields, from the contract
    assert "| product_count |" not in text  # an event type, not a field
    assert pdf.read_bytes().startswith(b"%PDF")
    other = runner.invoke(main, ["privacy", "sheet", "--site", "plant-b"], env=env)
    assert "**named**" in other.output and "Raw events: kept until removed by hand" in other.output
    assert "b-lead" in other.output and "| wall |" not in other.output


def test_erasure_right_after_a_write_of_the_same_hours_widens_the_queued_rows(settings: ApiSettings) -> None:
    """A write and an erasure of the same worker, station and hour within one second share one queue
    row (its unique key): the erasure widens it instead of failing on the key."""
    w1_a, _rest = _data()
    with psycopg.connect(settings.database_url, autocommit=True) as conn:
        conn.execute("TRUNCATE events, event_ids, event_invalidations")
        with conn.transaction():  # one transaction: one slot for the write and the erasure
            write_events(conn, w1_a)
            queued = conn.execute("SELECT count(*) FROM event_invalidations").fetchone()
            result = erase_worker(conn, "W1", actor="test", site_id="plant-a")
            after = conn.execute("SELECT count(*) FROM event_invalidations").fetchone()
        assert result.events == len(w1_a)
        assert queued is not None and after is not None and after[0] == queued[0]
        assert conn.execute("SELECT count(*) FROM events").fetchone() == (0,)
