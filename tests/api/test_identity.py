"""Identity over HTTP: event_id alone is the key, derived ids, gateway tokens bound to their gateway."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import psycopg
from click.testing import CliRunner
from fastapi.testclient import TestClient

from api.app import create_app
from api.security import Role, create_token, hash_token
from api.settings import ApiSettings
from takt.cli import main
from takt.store.events import record_seqs_many


def _event(**overrides: Any) -> dict[str, Any]:
    ts = (datetime.now(UTC) - timedelta(hours=1)).replace(microsecond=0)
    base: dict[str, Any] = {
        "event_id": str(uuid.uuid4()),
        "timestamp": ts.isoformat(),
        "worker_id": "W1",
        "station_id": "S1",
        "event_type": "product_count",
        "confidence": 0.9,
        "count": 1,
    }
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


def _rows(dsn: str, sql: str = "SELECT count(*) FROM events") -> list[tuple[Any, ...]]:
    with psycopg.connect(dsn) as conn:
        return conn.execute(sql).fetchall()


def _gateway_token(dsn: str, gateway_id: str = "gw-1", site_id: str = "site-1") -> dict[str, str]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        token = create_token(conn, Role.GATEWAY, "test", gateway_id=gateway_id, site_id=site_id)
    return {"Authorization": f"Bearer {token}"}


def test_an_id_posted_again_a_second_later_is_a_conflict_not_a_second_event(
    client: TestClient, settings: ApiSettings
) -> None:
    event = _event()
    assert client.post("/api/events", json=event).status_code == 201
    assert client.post("/api/events", json=event).status_code == 201  # a retry: harmless
    later = {
        **event,
        "timestamp": (datetime.fromisoformat(event["timestamp"]) + timedelta(seconds=1)).isoformat(),
    }
    r = client.post("/api/events", json=later)
    assert r.status_code == 409
    assert f"conflict: event_id {event['event_id']}" in r.json()["error"] and "timestamp" in r.json()["error"]
    r = client.post("/api/events/batch", json=[{**event, "confidence": 0.5}, _event()])
    body = r.json()
    assert body["success_count"] == 1 and body["errors"][0]["index"] == 0
    assert "confidence differ" in body["errors"][0]["error"]
    assert _rows(settings.database_url) == [(2,)]
    letters = _rows(
        settings.database_url, "SELECT reason FROM dead_letters WHERE source = 'http' ORDER BY id"
    )
    assert len(letters) == 2 and all(str(r[0]).startswith("conflict:") for r in letters)


def test_events_without_an_id_differing_in_any_field_are_distinct(
    client: TestClient, settings: ApiSettings
) -> None:
    """Two units counted at the same second by different models, or with other confidences, are two."""
    base = _event(event_id=None)
    variants = [
        base,
        {**base, "confidence": 0.8},
        {**base, "shadow": True},
        {**base, "config_version": "cfg-2"},
        {**base, "model_version": "person-yolo11s@2026.11.1"},
    ]
    r = client.post("/api/events/batch", json=variants)
    assert r.json()["success_count"] == 5
    # The same content again, the same instant written with another offset, the seed's field name:
    again = {**base, "shadow": False}
    plus_two = timezone(timedelta(hours=2))
    offset = {**base, "timestamp": datetime.fromisoformat(base["timestamp"]).astimezone(plus_two).isoformat()}
    seed = {k: v for k, v in base.items() if k != "station_id"} | {"workstation_id": base["station_id"]}
    assert client.post("/api/events/batch", json=[again, offset, seed]).json()["success_count"] == 3
    assert _rows(settings.database_url) == [(5,)]


def test_gateway_tokens_store_only_their_own_gateways_events(settings: ApiSettings) -> None:
    dsn = settings.database_url
    headers = _gateway_token(dsn, "gw-1", "site-1")
    with TestClient(create_app(settings), headers=headers) as c:
        r = c.post("/api/events", json=_event(gateway_id="gw-2"))
        assert r.status_code == 403 and "bound to 'gw-1' / 'site-1'" in r.json()["error"]
        assert c.post("/api/events", json=_event(gateway_id="gw-1", site_id="site-2")).status_code == 403
        own = _event(gateway_id="gw-1", site_id="site-1", seq=1)
        anonymous = _event(event_id=None)
        r = c.post(
            "/api/events/batch",
            json=[own, _event(gateway_id="gw-2", seq=2), _event(site_id="elsewhere"), anonymous],
        )
        body = r.json()
        assert body["success_count"] == 2
        assert [e["index"] for e in body["errors"]] == [1, 2]
        assert all("bound to 'gw-1'" in e["error"] for e in body["errors"])
        # The token is the origin of events that do not name one.
        assert c.post("/api/events", json=_event(worker_id="W7")).status_code == 201
    origins = _rows(dsn, "SELECT DISTINCT gateway_id, site_id FROM events")
    assert origins == [("gw-1", "site-1")]
    assert _rows(dsn) == [(3,)]
    assert _rows(dsn, "SELECT count(*) FROM dead_letters")[0] == (2,)


def test_unbound_gateway_tokens_are_refused(settings: ApiSettings) -> None:
    """Gateway tokens made before the binding existed must be re-issued."""
    with psycopg.connect(settings.database_url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO api_tokens (token_hash, role, name) VALUES (%s, 'gateway', 'legacy')",
            (hash_token("legacy-token"),),
        )
    with TestClient(create_app(settings), headers={"Authorization": "Bearer legacy-token"}) as c:
        r = c.post("/api/events", json=_event())
        assert r.status_code == 403 and "--gateway GW --site SITE" in r.json()["error"]


def test_token_create_binds_gateway_tokens(settings: ApiSettings) -> None:
    env = {"TAKT_DATABASE_URL": settings.database_url}
    runner = CliRunner()
    refused = runner.invoke(main, ["api", "token", "create", "--role", "gateway"], env=env)
    assert refused.exit_code != 0 and "--gateway GW --site SITE" in refused.output
    assert runner.invoke(
        main, ["api", "token", "create", "--role", "viewer", "--gateway", "g"], env=env
    ).exit_code
    made = runner.invoke(
        main,
        ["api", "token", "create", "--role", "gateway", "--gateway", "gw-9", "--site", "site-9"],
        env=env,
    )
    assert made.exit_code == 0, made.output
    token = made.output.strip().splitlines()[-1]
    assert _rows(settings.database_url, "SELECT role, gateway_id, site_id FROM api_tokens") == [
        ("gateway", "gw-9", "site-9")
    ]
    with TestClient(create_app(settings), headers={"X-API-Key": token}) as c:
        assert c.post("/api/events", json=_event(gateway_id="gw-9")).status_code == 201
        assert c.post("/api/events", json=_event(gateway_id="gw-1")).status_code == 403


def test_seq_reuse_is_shown_beside_the_gaps(client: TestClient, settings: ApiSettings) -> None:
    with psycopg.connect(settings.database_url) as conn:
        record_seqs_many(conn, {"gw-a": range(1, 11)}, {"gw-a": list(range(1, 11))})
        record_seqs_many(conn, {"gw-a": [2, 3], "gw-b": [1, 3]}, {"gw-a": [2, 3], "gw-b": [1, 3]})
    audit = {g["gateway_id"]: g for g in client.get("/api/audit/gaps").json()}
    assert (audit["gw-a"]["reused"], audit["gw-a"]["last_reused_seq"]) == (2, 3)
    assert (audit["gw-b"]["reused"], audit["gw-b"]["missing"]) == (0, 1)
