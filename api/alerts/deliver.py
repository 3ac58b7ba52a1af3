"""Sending queued alert notifications: signed webhooks, SMTP email, retained MQTT messages.

The sender claims one pending row of ``alert_notifications`` at a time
(``FOR UPDATE SKIP LOCKED``, so several API processes never send the same
row), delivers it with retries and exponential backoff (tenacity), and marks
it ``sent``, or ``dead`` with the reason after ``TAKT_ALERT_TRIES`` tries (or
at once when the receiver refuses it for good: a 4xx other than 408/429).
Delivery is at least once: a process killed between a receiver's 2xx and the
commit sends that one notification again after its restart; receivers
de-duplicate by the ``X-Takt-Delivery`` header (the notification id).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import smtplib
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from typing import Any

import httpx
import orjson
import psycopg
from tenacity import RetryError, Retrying, retry_if_exception, stop_after_attempt, wait_exponential

from api.alerts.destinations import ForbiddenDestination, pin
from api.alerts.rules import utc
from api.alerts.settings import AlertSettings
from takt.mqtt import MqttEndpoint, make_client
from takt.periodic import PeriodicDatabaseTask

logger = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Takt-Signature"


class PermanentError(Exception):
    """The receiver refused the notification; trying again cannot help."""


def sign(secret: str, body: bytes) -> str:
    """The signature header's value: ``sha256=<hex HMAC-SHA256 of the body>``."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify(secret: str, body: bytes, header: str) -> bool:
    return hmac.compare_digest(sign(secret, body), header)


@dataclass(frozen=True, slots=True)
class Outgoing:
    notification_id: int
    event: str
    channel: str
    target: str
    incident: dict[str, Any]
    secret: str | None
    attempts: int


def incident_status(row: Mapping[str, Any]) -> str:
    if row.get("resolved_at"):
        return "resolved"
    return "acknowledged" if row.get("acknowledged_at") else "open"


def incident_json(row: Mapping[str, Any]) -> dict[str, Any]:
    """An incident as the API, webhooks and MQTT messages show it."""

    def t(v: Any) -> str | None:
        return utc(v) if isinstance(v, datetime) else None

    return {
        "id": int(row["incident_id"]),
        "rule_id": int(row["rule_id"]),
        "kind": row["kind"],
        "rule_name": row.get("name") or "",
        "site_id": row["site_id"],
        "subject": row["subject"],
        "summary": row["summary"],
        "details": row["details"] or {},
        "status": incident_status(row),
        "condition_since": t(row["condition_since"]),
        "started_at": t(row["started_at"]),
        "acknowledged_at": t(row.get("acknowledged_at")),
        "acknowledged_by": row.get("acknowledged_by"),
        "ack_note": row.get("ack_note"),
        "escalated_at": t(row.get("escalated_at")),
        "resolved_at": t(row.get("resolved_at")),
    }


INCIDENT_SQL = (
    "SELECT i.incident_id, i.rule_id, r.kind, r.name, i.site_id, i.subject, i.summary, i.details, "
    "i.condition_since, i.started_at, i.acknowledged_at, i.acknowledged_by, i.ack_note, i.escalated_at, "
    "i.resolved_at FROM alert_incidents i JOIN alert_rules r USING (rule_id)"
)


def body(out: Outgoing) -> bytes:
    return orjson.dumps({"event": out.event, "incident": out.incident, "sent_at": utc(datetime.now(UTC))})


class Sender:
    """Delivers one notification per channel; the methods raise on failure (the caller retries)."""

    def __init__(self, settings: AlertSettings) -> None:
        self.settings = settings
        self._http = httpx.Client(timeout=settings.alert_webhook_timeout_s, follow_redirects=False)
        self._mqtt_lock = threading.Lock()

    def close(self) -> None:
        self._http.close()

    def send(self, out: Outgoing) -> None:
        if out.channel == "webhook":
            self.webhook(out)
        elif out.channel == "email":
            self.email(out)
        elif out.channel == "mqtt":
            self.mqtt(out)
        else:
            raise PermanentError(f"unknown channel {out.channel!r}")

    def webhook(self, out: Outgoing) -> None:
        payload = body(out)
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "takt-alerts/1",
            "X-Takt-Event": out.event,
            "X-Takt-Delivery": str(out.notification_id),
        }
        if out.secret:
            headers[SIGNATURE_HEADER] = sign(out.secret, payload)
        try:
            targets = pin(out.target, self.settings.alert_webhook_allow_networks)
        except ForbiddenDestination as exc:
            raise PermanentError(str(exc)) from None
        for n, target in enumerate(targets, 1):
            try:
                response = self._http.post(
                    target.url,
                    content=payload,
                    headers={**headers, **target.headers},
                    extensions=target.extensions,
                )
                break
            except httpx.ConnectError:
                if n == len(targets):
                    raise
        code = response.status_code
        if 200 <= code < 300:
            return
        reason = f"webhook answered {code}: {response.text[:200]}"
        if 400 <= code < 500 and code not in (408, 429):
            raise PermanentError(reason)
        raise RuntimeError(reason)

    def email(self, out: Outgoing) -> None:
        s = self.settings
        inc = out.incident
        msg = EmailMessage()
        msg["From"] = s.smtp_from
        msg["To"] = out.target
        word = {"opened": "ALERT", "escalated": "ESCALATED", "resolved": "RESOLVED"}.get(out.event, out.event)
        msg["Subject"] = f"[Takt {word}] {inc['summary']}"
        msg["X-Takt-Incident"] = str(inc["id"])
        lines = [
            f"{word}: {inc['summary']}",
            "",
            f"Site: {inc['site_id']}",
            f"Subject: {inc['subject']}",
            f"Rule: {inc['rule_name'] or inc['kind']} (#{inc['rule_id']})",
            f"Condition since: {inc['condition_since']}",
            f"Incident opened: {inc['started_at']}",
        ]
        if inc["acknowledged_at"]:
            lines.append(f"Acknowledged: {inc['acknowledged_at']} {inc['ack_note'] or ''}".rstrip())
        if inc["resolved_at"]:
            lines.append(f"Resolved: {inc['resolved_at']}")
        msg.set_content("\n".join(lines) + "\n")
        send_email(s, msg)

    def mqtt(self, out: Outgoing) -> None:
        """The incident's retained message while it is open; on resolve, the notice and then an
        empty retained message, so a board that subscribes later sees open incidents only."""
        endpoint = MqttEndpoint.from_url(self.settings.alert_mqtt_url or self.settings.mqtt_url)
        client = make_client(endpoint, f"takt-alerts-{out.notification_id}")
        with self._mqtt_lock:
            rc = client.connect(endpoint.host, endpoint.port, keepalive=10)
            if rc != 0:
                raise RuntimeError(f"MQTT connect failed: {rc}")
            client.loop_start()
            try:
                payload = body(out)
                resolved = out.event == "resolved"
                info = client.publish(out.target, payload, qos=1, retain=not resolved)
                info.wait_for_publish(timeout=5)
                if resolved:
                    info = client.publish(out.target, b"", qos=1, retain=True)
                    info.wait_for_publish(timeout=5)
                if not info.is_published():
                    raise RuntimeError("MQTT publish not acknowledged within 5 s (is the ACL right?)")
            finally:
                client.disconnect()
                client.loop_stop()


def _transient(error: BaseException) -> bool:
    return not isinstance(error, PermanentError)


def send_email(s: AlertSettings, msg: EmailMessage) -> None:
    """One message over SMTP (``TAKT_SMTP_*``); raises on failure, :class:`PermanentError` without a host."""
    if not s.smtp_host:
        raise PermanentError("TAKT_SMTP_HOST is not set")
    with smtplib.SMTP(s.smtp_host, s.smtp_port, timeout=s.smtp_timeout_s) as smtp:
        if s.smtp_starttls:
            smtp.starttls()
        if s.smtp_username:
            password = s.smtp_password.get_secret_value() if s.smtp_password else ""
            smtp.login(s.smtp_username, password)
        smtp.send_message(msg)


def deliver(send: Callable[[], None], s: AlertSettings) -> tuple[int, str | None]:
    """Call ``send`` with retries and exponential backoff: (tries made, None when it succeeded, else the
    dead letter's reason). A :class:`PermanentError` stops at once; other errors retry up to
    ``TAKT_ALERT_TRIES`` times."""
    tries = 0
    try:
        for attempt in Retrying(
            stop=stop_after_attempt(s.alert_tries),
            wait=wait_exponential(multiplier=s.alert_retry_initial_s, max=30),
            retry=retry_if_exception(_transient),
            reraise=False,
        ):
            with attempt:
                tries += 1
                send()
    except RetryError as exc:
        return tries, f"after {tries} tries: {exc.last_attempt.exception()}"
    except PermanentError as exc:
        return tries, str(exc)
    return tries, None


class OutboxSender(PeriodicDatabaseTask):
    """A background thread of the API draining an outbox table: up to ``batch`` rows a round, each
    claimed, sent and marked in its own transaction by :meth:`send_one`."""

    def __init__(self, name: str, database_url: str, interval_s: float, *, batch: int) -> None:
        super().__init__(name, database_url, interval_s)
        self._batch = batch
        self.sent = 0
        self.dead = 0

    def send_one(self, conn: psycopg.Connection[Any]) -> bool:
        """Claim, send and mark one pending row; False when none is waiting."""
        raise NotImplementedError

    def run_round(self, conn: psycopg.Connection[Any]) -> None:
        for _ in range(self._batch):
            if not self.send_one(conn):
                return


class NotificationSender(OutboxSender):
    """Background thread of the API: sends pending notifications, one row lock each."""

    def __init__(self, database_url: str, settings: AlertSettings, *, batch: int = 50) -> None:
        super().__init__("alert-sender", database_url, settings.alert_send_interval_s, batch=batch)
        self.settings = settings
        self.sender = Sender(settings)

    def stop(self, timeout_s: float = 10) -> None:
        super().stop(timeout_s)
        self.sender.close()

    def send_one(self, conn: psycopg.Connection[Any]) -> bool:
        """Claim, send and mark one pending notification; False when none is waiting."""
        with conn.transaction():
            cur = conn.execute(
                "SELECT n.notification_id, n.event, n.channel, n.target, n.attempts, r.webhook_secret, "
                "n.incident_id FROM alert_notifications n JOIN alert_incidents i USING (incident_id) "
                "JOIN alert_rules r USING (rule_id) WHERE n.status = 'pending' "
                "ORDER BY n.notification_id LIMIT 1 FOR UPDATE OF n SKIP LOCKED"
            )
            row = cur.fetchone()
            if row is None:
                return False
            nid, event, channel, target, attempts, secret, incident_id = row
            inc_cur = conn.execute(INCIDENT_SQL + " WHERE i.incident_id = %s", (incident_id,))
            names = [d.name for d in inc_cur.description or []]
            incident = incident_json(dict(zip(names, inc_cur.fetchone() or (), strict=True)))
            out = Outgoing(nid, event, channel, target, incident, secret, attempts)
            tries, failure = deliver(lambda: self.sender.send(out), self.settings)
            if failure is not None:
                self._dead(conn, nid, attempts + tries, failure)
            else:
                conn.execute(
                    "UPDATE alert_notifications SET status = 'sent', attempts = %s, sent_at = now() "
                    "WHERE notification_id = %s",
                    (attempts + tries, nid),
                )
                self.sent += 1
        return True

    def _dead(self, conn: psycopg.Connection[Any], nid: int, attempts: int, reason: str) -> None:
        logger.error("alert notification %d dead-lettered: %s", nid, reason)
        conn.execute(
            "UPDATE alert_notifications SET status = 'dead', attempts = %s, reason = %s "
            "WHERE notification_id = %s",
            (attempts, reason[:2000], nid),
        )
        self.dead += 1
