"""Real receivers for alert notifications: an HTTP server for webhooks, an SMTP server (aiosmtpd)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from broker.acl import alerts_rules, andon_rules
from broker.passwords import generate_password
from devstack import MosquittoServer
from devstack.system import free_port


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> dict[str, Any]:
        parsed: dict[str, Any] = json.loads(self.body)
        return parsed


@dataclass
class WebhookReceiver:
    """A real HTTP server on loopback; answers ``status`` to every POST and records it."""

    server: ThreadingHTTPServer
    received: list[Received] = field(default_factory=list)
    status: int = 200

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def events(self, kind: str) -> list[Received]:
        return [r for r in self.received if r.json["event"] == kind]


@pytest.fixture
def webhook() -> Iterator[WebhookReceiver]:
    receiver: WebhookReceiver

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            body = self.rfile.read(length)
            receiver.received.append(Received({k.lower(): v for k, v in self.headers.items()}, body))
            self.send_response(receiver.status)
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
    receiver = WebhookReceiver(server)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield receiver
    server.shutdown()
    server.server_close()


@dataclass
class SmtpSink:
    port: int
    messages: list[Message] = field(default_factory=list)
    recipients: list[list[str]] = field(default_factory=list)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(message_from_bytes(envelope.content))
        self.recipients.append(list(envelope.rcpt_tos))
        return "250 OK"


@pytest.fixture
def smtp() -> Iterator[SmtpSink]:
    """A real SMTP server (aiosmtpd) on loopback, keeping every message it is given."""
    sink = SmtpSink(free_port())
    controller = Controller(sink, hostname="127.0.0.1", port=sink.port)
    controller.start()
    yield sink
    controller.stop()


@dataclass(frozen=True)
class AlertBroker:
    alerts_url: str
    andon_url: str
    # A second board: the broker makes the user name the client id, so two boards need two users.
    late_andon_url: str


@pytest.fixture(scope="session")
def alert_broker(mosquitto_server: MosquittoServer) -> AlertBroker:
    """The API's alert publisher and an andon reader, with the ACLs `takt broker add-*` writes."""
    alerts_pw, andon_pw, late_pw = generate_password(), generate_password(), generate_password()
    mosquitto_server.add_user("alerts", alerts_pw, alerts_rules())
    mosquitto_server.add_user("andon", andon_pw, andon_rules())
    mosquitto_server.add_user("andon-late", late_pw, andon_rules())
    return AlertBroker(
        mosquitto_server.url("alerts", alerts_pw),
        mosquitto_server.url("andon", andon_pw),
        mosquitto_server.url("andon-late", late_pw),
    )


def wait_for(check: Callable[[], Any], timeout_s: float = 30, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
