"""A station idle beyond N minutes: one signed webhook, one email, a retained MQTT message; one resolved
notice each when work resumes. Real HTTP receiver, SMTP server (aiosmtpd), Mosquitto and PostgreSQL."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import paho.mqtt.client as mqtt
import psycopg
import pytest
from fastapi.testclient import TestClient

from api.alerts.deliver import SIGNATURE_HEADER, verify
from api.app import create_app
from api.security import Role, create_token
from api.settings import ApiSettings
from takt.contract.topics import site_alerts_filter
from takt.mqtt import MqttEndpoint, make_client
from takt.store.db import upgrade
from tests.alerts.conftest import AlertBroker, SmtpSink, WebhookReceiver, wait_for

ADMIN = "alerts-admin"
# 3 s: short enough for a test, long enough that every round before it must not fire.
IDLE_MINUTES = 0.05

pytestmark = pytest.mark.wallclock


def event(kind: str, at: datetime, site: str, station: str = "S1", worker: str = "W1") -> dict[str, Any]:
    return {
        "event_id": str(uuid.uuid4()),
        "timestamp": at.isoformat().replace("+00:00", "Z"),
        "worker_id": worker,
        "workstation_id": station,
        "event_type": kind,
        "confidence": 0.9,
        "site_id": site,
    }


def alert_settings(dsn: str, **overrides: Any) -> ApiSettings:
    base: dict[str, Any] = {
        "database_url": dsn,
        "admin_token": ADMIN,
        "refresh_interval_s": 0,
        "drift_check_interval_s": 0,
        "alert_interval_s": 0.2,
        "alert_send_interval_s": 0.1,
        "alert_retry_initial_s": 0.05,
        # A receiver stalled past the timeout would get the POST again (at least once): long here.
        "alert_webhook_timeout_s": 60,
        "rate_limit_per_minute": 100_000,
        # The receivers below listen on loopback, which webhooks may not reach by default.
        "alert_webhook_allow_networks": "127.0.0.0/8",
    }
    return ApiSettings(**{**base, **overrides})


@pytest.fixture
def dsn(fresh_database: str) -> str:
    upgrade(fresh_database)
    return fresh_database


class Andon:
    """An andon board: the `andon` broker user subscribed to one site's incidents."""

    def __init__(self, url: str, site: str) -> None:
        self.messages: list[tuple[str, bytes, bool]] = []
        self._ready = threading.Event()
        endpoint = MqttEndpoint.from_url(url)
        self.client = make_client(endpoint, f"andon-{uuid.uuid4().hex[:6]}")

        def on_connect(client: mqtt.Client, *_: Any) -> None:
            client.subscribe(site_alerts_filter(site), qos=1)

        def on_subscribe(*_: Any) -> None:
            self._ready.set()

        def on_message(_c: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
            self.messages.append((msg.topic, msg.payload, bool(msg.retain)))

        self.client.on_connect = on_connect
        self.client.on_subscribe = on_subscribe
        self.client.on_message = on_message
        self.client.connect(endpoint.host, endpoint.port)
        self.client.loop_start()
        assert self._ready.wait(10)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def andon(alert_broker: AlertBroker, site_id: str) -> Iterator[Andon]:
    board = Andon(alert_broker.andon_url, site_id)
    yield board
    board.close()


def _db_now(dsn: str) -> datetime:
    with psycopg.connect(dsn) as conn:
        row = conn.execute("SELECT statement_timestamp()").fetchone()
    assert row is not None
    return row[0].astimezone(UTC)  # type: ignore[no-any-return]


def test_idle_station_one_signed_post_email_mqtt_then_one_resolved_notice(
    dsn: str,
    site_id: str,
    webhook: WebhookReceiver,
    smtp: SmtpSink,
    alert_broker: AlertBroker,
    andon: Andon,
) -> None:
    settings = alert_settings(
        dsn,
        smtp_host="127.0.0.1",
        smtp_port=smtp.port,
        smtp_from="takt@plant.example",
        alert_mqtt_url=alert_broker.alerts_url,
    )
    with TestClient(create_app(settings), headers={"Authorization": f"Bearer {ADMIN}"}) as client:
        rule = client.post(
            "/api/v1/alerts/rules",
            json={
                "kind": "station_idle",
                "site_id": site_id,
                "station_id": "S1",
                "minutes": IDLE_MINUTES,
                "webhook_url": webhook.url,
                "email": ["lead@plant.example"],
                "mqtt": True,
            },
        )
        assert rule.status_code == 201, rule.text
        secret = rule.json()["webhook_secret"]
        assert secret and len(secret) >= 32
        # The secret is shown once: never again in a listing.
        assert client.get("/api/v1/alerts/rules").json()[0]["webhook_secret"] is None

        # The evaluator judges by the database's clock: so do the events and the check below
        # (under scripts/moved_clock.py the two clocks may differ by a second).
        now = _db_now(dsn)
        batch = [event("working", now - timedelta(minutes=2), site_id), event("idle", now, site_id)]
        assert client.post("/api/v1/events/batch", json=batch).status_code == 200
        # Not before N minutes of idleness.
        wait_for(lambda: client.get("/api/v1/alerts").json(), 20, "the incident")
        opened_at = _db_now(dsn)
        assert opened_at - now >= timedelta(minutes=IDLE_MINUTES)

        posts = wait_for(lambda: webhook.events("opened"), 10, "the webhook POST")
        # Many more rounds pass: still exactly one.
        evaluator = client.app.state.alert_evaluator  # type: ignore[attr-defined]
        rounds = evaluator.rounds
        wait_for(lambda: evaluator.rounds >= rounds + 5, 10, "five more rounds")
        assert len(webhook.events("opened")) == 1
        post = posts[0]
        assert verify(secret, post.body, post.headers[SIGNATURE_HEADER.lower()])
        assert not verify("another secret, not the rule's", post.body, post.headers[SIGNATURE_HEADER.lower()])
        assert post.headers["x-takt-event"] == "opened"
        incident = post.json["incident"]
        assert incident["subject"] == "S1"
        assert incident["status"] == "open"
        assert incident["kind"] == "station_idle"
        assert "Station S1 idle" in incident["summary"]

        mail = wait_for(lambda: smtp.messages, 10, "the email")
        assert len(mail) == 1
        assert smtp.recipients[0] == ["lead@plant.example"]
        assert mail[0]["Subject"].startswith("[Takt ALERT] Station S1 idle")
        assert "Site: " + site_id in mail[0].get_payload()

        topic = f"takt/v1/{site_id}/alerts/{incident['id']}"
        wait_for(lambda: [m for m in andon.messages if m[0] == topic], 10, "the MQTT message")
        # A board that subscribes now still sees the open incident: the message is retained.
        late = Andon(alert_broker.late_andon_url, site_id)
        try:
            retained = wait_for(
                lambda: [m for m in late.messages if m[0] == topic], 10, "the retained message"
            )
            assert retained[0][2] is True
        finally:
            late.close()

        listed = client.get("/api/v1/alerts", params={"status": "open", "site_id": site_id}).json()
        assert [i["id"] for i in listed] == [incident["id"]]
        assert listed[0]["resolved_at"] is None

        # Work resumes: one resolved notice on every channel.
        assert (
            client.post("/api/v1/events", json=event("working", datetime.now(UTC), site_id)).status_code
            == 201
        )
        resolved = wait_for(lambda: webhook.events("resolved"), 10, "the resolved notice")
        rounds = evaluator.rounds
        wait_for(lambda: evaluator.rounds >= rounds + 5, 10, "five more rounds")
        assert len(webhook.events("resolved")) == 1
        assert len(webhook.events("opened")) == 1
        assert verify(secret, resolved[0].body, resolved[0].headers[SIGNATURE_HEADER.lower()])
        assert resolved[0].json["incident"]["status"] == "resolved"
        wait_for(lambda: len(smtp.messages) == 2, 10, "the resolved email")
        assert smtp.messages[1]["Subject"].startswith("[Takt RESOLVED]")
        wait_for(
            lambda: any(m[0] == topic and m[1] == b"" for m in andon.messages), 10, "the cleared message"
        )

        done = client.get(f"/api/v1/alerts/{incident['id']}").json()
        assert done["status"] == "resolved"
        assert done["started_at"] <= done["resolved_at"]
        # Cleared: a board subscribing after the end sees no retained message of it.
        after = Andon(alert_broker.late_andon_url, site_id)
        try:
            rounds = evaluator.rounds
            wait_for(lambda: evaluator.rounds >= rounds + 3, 10, "three more rounds")
            assert [m for m in after.messages if m[0] == topic] == []
        finally:
            after.close()


def test_failing_receiver_is_retried_then_dead_lettered_with_the_reason(
    dsn: str, site_id: str, webhook: WebhookReceiver
) -> None:
    webhook.status = 503
    settings = alert_settings(dsn, alert_tries=3)
    with TestClient(create_app(settings), headers={"Authorization": f"Bearer {ADMIN}"}) as client:
        body = {"kind": "gateway_offline", "site_id": site_id, "minutes": 1, "webhook_url": webhook.url}
        assert client.post("/api/v1/alerts/rules", json=body).status_code == 201
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(
                "INSERT INTO gateways (gateway_id, site_id, state, last_seen) "
                "VALUES ('gw-1', %s, 'offline', %s)",
                (site_id, datetime.now(UTC) - timedelta(minutes=5)),
            )

            def dead() -> Any:
                return conn.execute(
                    "SELECT attempts, reason FROM alert_notifications WHERE status = 'dead'"
                ).fetchall()

            rows = wait_for(dead, 20, "the dead letter")
        assert rows[0][0] == 3
        assert "after 3 tries" in rows[0][1] and "503" in rows[0][1]
        assert len(webhook.events("opened")) == 3


def test_a_refusing_receiver_is_dead_lettered_at_once(
    dsn: str, site_id: str, webhook: WebhookReceiver
) -> None:
    webhook.status = 410
    settings = alert_settings(dsn, alert_tries=5)
    with TestClient(create_app(settings), headers={"Authorization": f"Bearer {ADMIN}"}) as client:
        body = {"kind": "gateway_offline", "site_id": site_id, "minutes": 1, "webhook_url": webhook.url}
        assert client.post("/api/v1/alerts/rules", json=body).status_code == 201
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(
                "INSERT INTO gateways (gateway_id, site_id, state, last_seen) "
                "VALUES ('gw-1', %s, 'online', %s)",
                (site_id, datetime.now(UTC) - timedelta(minutes=5)),
            )
            rows = wait_for(
                lambda: conn.execute(
                    "SELECT attempts, reason FROM alert_notifications WHERE status = 'dead'"
                ).fetchall(),
                20,
                "the dead letter",
            )
        assert rows[0][0] == 1
        assert "410" in rows[0][1]
        assert len(webhook.received) == 1


def test_unacknowledged_incident_escalates_once_and_acknowledging_takes_a_note(
    dsn: str, site_id: str, webhook: WebhookReceiver, smtp: SmtpSink
) -> None:
    settings = alert_settings(dsn, smtp_host="127.0.0.1", smtp_port=smtp.port)
    with TestClient(create_app(settings), headers={"Authorization": f"Bearer {ADMIN}"}) as client:
        body = {
            "kind": "gateway_offline",
            "site_id": site_id,
            "minutes": 1,
            "email": ["lead@plant.example"],
            "escalate_minutes": IDLE_MINUTES,
            "escalate_email": ["manager@plant.example"],
        }
        assert client.post("/api/v1/alerts/rules", json=body).status_code == 201
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(
                "INSERT INTO gateways (gateway_id, site_id, state, last_seen) VALUES "
                "('gw-1', %s, 'offline', %s), ('gw-2', %s, 'offline', %s)",
                (
                    site_id,
                    datetime.now(UTC) - timedelta(minutes=5),
                    site_id,
                    datetime.now(UTC) - timedelta(minutes=9),
                ),
            )
        incidents = wait_for(
            lambda: len(client.get("/api/v1/alerts").json()) == 2 and client.get("/api/v1/alerts").json(),
            20,
            "two incidents",
        )
        gw2 = next(i for i in incidents if i["subject"] == "gw-2")
        acked = client.post(f"/api/v1/alerts/{gw2['id']}/ack", json={"note": "electrician on the way"})
        assert acked.status_code == 200, acked.text
        assert acked.json()["status"] == "acknowledged"
        assert acked.json()["ack_note"] == "electrician on the way"
        assert acked.json()["acknowledged_at"] is not None
        assert client.post(f"/api/v1/alerts/{gw2['id']}/ack", json={"note": "again"}).status_code == 409

        wait_for(lambda: [r for r in smtp.recipients if r == ["manager@plant.example"]], 20, "the escalation")
        evaluator = client.app.state.alert_evaluator  # type: ignore[attr-defined]
        rounds = evaluator.rounds
        wait_for(lambda: evaluator.rounds >= rounds + 5, 10, "five more rounds")
        escalations = [
            m for m, r in zip(smtp.messages, smtp.recipients, strict=True) if r == ["manager@plant.example"]
        ]
        # Only the unacknowledged one escalates, once.
        assert len(escalations) == 1
        assert escalations[0]["Subject"].startswith("[Takt ESCALATED] Gateway gw-1 offline")
        states = {i["subject"]: i for i in client.get("/api/v1/alerts").json()}
        assert states["gw-1"]["escalated_at"] is not None
        assert states["gw-2"]["escalated_at"] is None


def test_rules_api_roles_and_bad_input(dsn: str, site_id: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        viewer = create_token(conn, Role.VIEWER, "v")
        supervisor = create_token(conn, Role.SUPERVISOR, "s")
    settings = alert_settings(dsn, alert_interval_s=0)
    with TestClient(create_app(settings)) as client:
        rule = {"kind": "station_idle", "site_id": site_id, "station_id": "S1", "minutes": 10}
        as_viewer = {"Authorization": f"Bearer {viewer}"}
        as_supervisor = {"Authorization": f"Bearer {supervisor}"}
        assert client.post("/api/v1/alerts/rules", json=rule).status_code == 401
        assert client.post("/api/v1/alerts/rules", json=rule, headers=as_viewer).status_code == 403
        assert client.get("/api/v1/alerts/rules", headers=as_viewer).status_code == 403
        created = client.post("/api/v1/alerts/rules", json=rule, headers=as_supervisor)
        assert created.status_code == 201
        # No webhook: no secret.
        assert created.json()["webhook_secret"] is None
        # Viewers read incidents (the wallboard does).
        assert client.get("/api/v1/alerts", headers=as_viewer).status_code == 200
        for bad, words in (
            ({**rule, "minutes": 0}, "minutes > 0"),
            ({**rule, "kind": "nonsense"}, "kind"),
            ({"kind": "rate_below", "site_id": site_id}, "threshold"),
            ({**rule, "email": ["not-an-address"]}, "email address"),
            ({**rule, "site_id": "no/slashes"}, "site_id"),
            ({**rule, "webhook_url": "ftp://x"}, "webhook_url"),
            ({**rule, "escalate_minutes": 5}, "escalate_email"),
        ):
            answer = client.post("/api/v1/alerts/rules", json=bad, headers=as_supervisor)
            assert answer.status_code == 422, (bad, answer.text)
            assert words in answer.text, (words, answer.text)
        rule_id = created.json()["rule_id"]
        assert client.get(f"/api/v1/alerts/rules/{rule_id}", headers=as_supervisor).json()["minutes"] == 10
        assert client.delete(f"/api/v1/alerts/rules/{rule_id}", headers=as_viewer).status_code == 403
        assert client.delete(f"/api/v1/alerts/rules/{rule_id}", headers=as_supervisor).status_code == 204
        assert client.get(f"/api/v1/alerts/rules/{rule_id}", headers=as_supervisor).status_code == 404
        assert client.get("/api/v1/alerts/rules", headers=as_supervisor).json() == []
        assert client.post("/api/v1/alerts/999/ack", json={}, headers=as_supervisor).status_code == 404
