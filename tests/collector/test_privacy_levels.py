"""The cloud holds gateways to the site's privacy level (TAKT_PRIVACY): an event naming a roster id at a
pseudonymous or stations-only site is dead-lettered with the reason and the id withheld, its neighbours
stored. Pure rule first, then a real collector (Mosquitto, PostgreSQL) and the HTTP ingestion route."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import psycopg
import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.settings import ApiSettings
from collector.service import Collector
from takt.contract import encode_events_envelope
from takt.privacy import UNKNOWN_WORKER, WITHHELD, PrivacyLevel, pseudonym, worker_problem
from takt.store.db import upgrade
from tests.collector.conftest import stored_ids, wait_for
from tests.collector.gateway_sim import GatewaySim

KEY = b"k" * 32
ROSTER_ID = "maria.keller"


@pytest.mark.parametrize(
    ("level", "worker", "allowed"),
    [
        (PrivacyLevel.NAMED, ROSTER_ID, True),
        (PrivacyLevel.PSEUDONYMOUS, pseudonym(KEY, "plant", ROSTER_ID), True),
        (PrivacyLevel.PSEUDONYMOUS, UNKNOWN_WORKER, True),
        (PrivacyLevel.PSEUDONYMOUS, ROSTER_ID, False),
        (PrivacyLevel.PSEUDONYMOUS, "p-" + "0" * 19, False),  # one digit short
        (PrivacyLevel.PSEUDONYMOUS, "p-" + "A" * 20, False),  # pseudonyms are lower-case hex
        (PrivacyLevel.STATIONS_ONLY, UNKNOWN_WORKER, True),
        (PrivacyLevel.STATIONS_ONLY, pseudonym(KEY, "plant", ROSTER_ID), False),
        (PrivacyLevel.STATIONS_ONLY, ROSTER_ID, False),
    ],
)
def test_the_level_decides_which_worker_ids_a_site_accepts(
    level: PrivacyLevel, worker: str, allowed: bool
) -> None:
    problem = worker_problem(level, worker)
    assert (problem is None) is allowed
    if problem is not None:
        assert level.value in problem and "privacy.level" in problem
        assert worker not in problem  # the reason never repeats the id


def _event(gw: GatewaySim, worker: str) -> dict[str, Any]:
    body = {
        "event_id": str(uuid.uuid4()),
        "timestamp": (datetime.now(UTC) - timedelta(seconds=5)).isoformat(),
        "worker_id": worker,
        "workstation_id": "S1",
        "event_type": "working",
        "confidence": 0.9,
        "seq": gw.next_seq,
    }
    gw.next_seq += 1
    return body


def test_collector_dead_letters_roster_ids_at_a_pseudonymous_site(
    start_collector: Callable[..., Collector],
    gateways: Callable[..., GatewaySim],
    database: str,
    site_id: str,
) -> None:
    start_collector(privacy={site_id: {"level": "pseudonymous"}})
    gw = gateways("gw-misconfigured")
    good = [_event(gw, pseudonym(KEY, site_id, ROSTER_ID)), _event(gw, UNKNOWN_WORKER)]
    bad = _event(gw, ROSTER_ID)
    items = [good[0], bad, good[1]]
    gw.publish_raw(encode_events_envelope(gw.gateway_id, [orjson.dumps(e) for e in items]))

    assert wait_for(lambda: {e["seq"] for e in items} <= gw.acked_seqs), "the envelope was never acknowledged"
    assert set(gw.rejected) == {bad["seq"]}
    assert "the site is pseudonymous" in gw.rejected[bad["seq"]]
    assert stored_ids(database) == {uuid.UUID(e["event_id"]) for e in good}
    with psycopg.connect(database) as conn:
        letters = conn.execute("SELECT seq, reason, payload FROM dead_letters").fetchall()
    assert [(seq, "pseudonymous" in reason) for seq, reason, _ in letters] == [(bad["seq"], True)]
    kept = bytes(letters[0][2])
    # The dead letter keeps the event for the installer, without the roster id it must not hold.
    assert ROSTER_ID.encode() not in kept
    assert orjson.loads(kept)["worker_id"] == WITHHELD
    assert orjson.loads(kept)["event_id"] == bad["event_id"]


def test_http_ingestion_refuses_worker_ids_at_a_stations_only_site(fresh_database: str) -> None:
    upgrade(fresh_database)
    settings = ApiSettings(
        database_url=fresh_database,
        admin_token="privacy-admin",
        refresh_interval_s=0,
        alert_interval_s=0,
        privacy={"line-site": {"level": "stations-only"}},
    )
    now = datetime.now(UTC) - timedelta(seconds=5)

    def item(worker: str, site: str) -> dict[str, Any]:
        return {
            "event_id": str(uuid.uuid4()),
            "timestamp": now.isoformat(),
            "worker_id": worker,
            "workstation_id": "S1",
            "event_type": "working",
            "confidence": 0.9,
            "site_id": site,
        }

    items = [item(UNKNOWN_WORKER, "line-site"), item("W7", "line-site"), item("W7", "other-site")]
    with TestClient(create_app(settings), headers={"Authorization": "Bearer privacy-admin"}) as client:
        answer = client.post("/api/events/batch", json=items)
    assert answer.status_code == 200, answer.text
    result = answer.json()
    assert sorted(a["index"] for a in result["accepted"]) == [0, 2]  # "other-site" is named (the default)
    assert [e["index"] for e in result["errors"]] == [1]
    assert "stations-only" in result["errors"][0]["error"]
    with psycopg.connect(fresh_database) as conn:
        stored = {row[0] for row in conn.execute("SELECT event_id FROM events").fetchall()}
        (payload,) = conn.execute("SELECT payload FROM dead_letters").fetchone() or (b"",)
    assert stored == {uuid.UUID(items[0]["event_id"]), uuid.UUID(items[2]["event_id"])}
    assert orjson.loads(bytes(payload))["worker_id"] == WITHHELD
