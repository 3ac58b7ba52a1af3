"""The writer mirrors deployed model versions into cv_models in the statement that stores events."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from alembic import command

from takt.contract import Event, EventType
from takt.store import db
from takt.store.events import WriteMethod, write_events

T0 = datetime(2026, 11, 23, 8, tzinfo=UTC)


def _event(i: int, model: str | None, gateway: str | None, *, shadow: bool = False) -> Event:
    return Event(
        event_id=uuid.uuid4(),
        timestamp=T0 + timedelta(minutes=i),
        worker_id="w-1",
        station_id="st-1",
        event_type=EventType.WORKING,
        confidence=0.9,
        duration_s=60.0,
        model_version=model,
        gateway_id=gateway,
        site_id="site-a" if gateway else None,
        shadow=shadow,
    )


@pytest.mark.parametrize("method", list(WriteMethod))
def test_versions_and_their_gateways_are_recorded_once(database: str, method: WriteMethod) -> None:
    with psycopg.connect(database) as conn:
        write_events(
            conn,
            [
                _event(5, "person-yolo11n@2026.11.1", "gw-1"),
                _event(3, "person-yolo11n@2026.11.1", "gw-1"),
                _event(4, "person-yolo11n@2026.12.1", "gw-1", shadow=True),
                _event(9, None, "gw-1"),
            ],
            method,
        )
        # Later batches: a known version on a new gateway, and HTTP events naming no gateway.
        write_events(
            conn,
            [_event(20, "person-yolo11n@2026.11.1", "gw-2"), _event(1, "person-yolo11n@2026.11.1", None)],
            method,
        )
        models = conn.execute("SELECT model_version, first_seen FROM cv_models ORDER BY 1").fetchall()
        gateways = conn.execute(
            "SELECT model_version, gateway_id, shadow, site_id, first_seen FROM cv_model_gateways "
            "ORDER BY 1, 2, 3"
        ).fetchall()
    assert models == [
        # first_seen is from the batch that brought the version; an older event later does not move it
        ("person-yolo11n@2026.11.1", T0 + timedelta(minutes=3)),
        ("person-yolo11n@2026.12.1", T0 + timedelta(minutes=4)),
    ]
    assert gateways == [
        ("person-yolo11n@2026.11.1", "", False, None, T0 + timedelta(minutes=1)),
        ("person-yolo11n@2026.11.1", "gw-1", False, "site-a", T0 + timedelta(minutes=3)),
        ("person-yolo11n@2026.11.1", "gw-2", False, "site-a", T0 + timedelta(minutes=20)),
        ("person-yolo11n@2026.12.1", "gw-1", True, "site-a", T0 + timedelta(minutes=4)),
    ]


def test_upgrade_backfills_from_stored_events(database: str) -> None:
    with psycopg.connect(database) as conn:
        write_events(conn, [_event(2, "m@1", "gw-1"), _event(7, "m@2", "gw-2", shadow=True)])
    command.downgrade(db.alembic_config(database), "0003_event_aggregates")
    with psycopg.connect(database) as conn:
        assert conn.execute("SELECT to_regclass('cv_models')").fetchone() == (None,)
    db.upgrade(database)
    with psycopg.connect(database) as conn:
        rows = conn.execute(
            "SELECT model_version, gateway_id, shadow FROM cv_model_gateways ORDER BY 1"
        ).fetchall()
    assert rows == [("m@1", "gw-1", False), ("m@2", "gw-2", True)]
