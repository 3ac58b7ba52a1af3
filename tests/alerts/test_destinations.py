"""Webhooks reach public addresses only, unless TAKT_ALERT_WEBHOOK_ALLOW_NETWORKS names the network:
checked when a rule is saved and at each delivery (real HTTP receiver, real PostgreSQL)."""

from __future__ import annotations

from ipaddress import ip_address, ip_network

import pytest
from fastapi.testclient import TestClient

from api.alerts.deliver import Outgoing, PermanentError, Sender
from api.alerts.destinations import pin, refusal
from api.app import create_app
from api.settings import ApiSettings
from takt.store.db import upgrade
from tests.alerts.conftest import WebhookReceiver

ADMIN = "destinations-admin"


@pytest.mark.parametrize(
    ("address", "kind"),
    [
        ("127.0.0.1", "loopback"),
        ("::1", "loopback"),
        ("::ffff:127.0.0.1", "loopback"),  # IPv4-mapped IPv6 is judged as the IPv4 address
        ("10.1.2.3", "private"),
        ("192.168.0.10", "private"),
        ("fd00::1", "private"),
        ("169.254.169.254", "link-local"),  # cloud metadata endpoints
        ("224.0.0.1", "multicast"),
        ("0.0.0.0", "unspecified"),
        ("100.64.0.1", "reserved"),  # carrier-grade NAT
        ("8.8.8.8", None),
        ("2606:4700::1111", None),
    ],
)
def test_every_non_public_address_is_refused_and_named(address: str, kind: str | None) -> None:
    reason = refusal(ip_address(address), [])
    if kind is None:
        assert reason is None
    else:
        assert reason is not None
        assert f"is a {kind} address" in reason
        assert "TAKT_ALERT_WEBHOOK_ALLOW_NETWORKS" in reason


def test_an_allowed_network_lets_its_addresses_through_and_no_others() -> None:
    allowed = [ip_network("10.20.0.0/16"), ip_network("::1/128")]
    assert refusal(ip_address("10.20.3.4"), allowed) is None
    assert refusal(ip_address("::1"), allowed) is None
    assert refusal(ip_address("10.21.0.1"), allowed) is not None
    assert refusal(ip_address("127.0.0.1"), allowed) is not None


def test_a_name_is_pinned_to_its_checked_address_with_the_name_kept_for_host_and_tls() -> None:
    targets = pin("https://localhost:8443/hook?x=1", [ip_network("127.0.0.0/8"), ip_network("::1/128")])
    assert targets
    for target in targets:
        assert target.url.host in {"127.0.0.1", "::1"}
        assert target.url.port == 8443
        assert target.url.path == "/hook"
        assert target.headers == {"Host": "localhost:8443"}
        assert target.extensions == {"sni_hostname": "localhost"}
    with pytest.raises(ValueError, match="loopback"):
        pin("http://localhost/hook", [])


def test_rules_pointing_inward_are_refused_when_saved(fresh_database: str, site_id: str) -> None:
    upgrade(fresh_database)
    rule = {"kind": "gateway_offline", "site_id": site_id, "minutes": 5}
    settings = ApiSettings(
        database_url=fresh_database, admin_token=ADMIN, refresh_interval_s=0, alert_interval_s=0
    )
    with TestClient(create_app(settings), headers={"Authorization": f"Bearer {ADMIN}"}) as client:
        for url, kind in (
            ("http://127.0.0.1:5432/", "loopback"),
            ("http://localhost:8000/api/events", "loopback"),
            ("http://169.254.169.254/latest/meta-data/", "link-local"),
            ("http://[::ffff:10.0.0.5]/", "private"),
        ):
            for field in ("webhook_url", "escalate_webhook_url"):
                body = {**rule, field: url}
                if field == "escalate_webhook_url":
                    body["escalate_minutes"] = 10
                answer = client.post("/api/v1/alerts/rules", json=body)
                assert answer.status_code == 422, (url, answer.text)
                assert f"a {kind} address" in answer.json()["error"], answer.text
        assert client.get("/api/v1/alerts/rules").json() == []
        # A public name that does not resolve here is accepted; delivery checks it again.
        assert (
            client.post(
                "/api/v1/alerts/rules", json={**rule, "webhook_url": "https://hooks.example/t"}
            ).status_code
            == 201
        )
    allowing = ApiSettings(
        database_url=fresh_database,
        admin_token=ADMIN,
        refresh_interval_s=0,
        alert_interval_s=0,
        alert_webhook_allow_networks="127.0.0.0/8",
    )
    with TestClient(create_app(allowing), headers={"Authorization": f"Bearer {ADMIN}"}) as client:
        answer = client.post("/api/v1/alerts/rules", json={**rule, "webhook_url": "http://127.0.0.1:9/hook"})
        assert answer.status_code == 201, answer.text


def _outgoing(url: str) -> Outgoing:
    return Outgoing(1, "opened", "webhook", url, {"incident_id": 1}, "s" * 16, 0)


def test_delivery_checks_again_and_never_reaches_a_refused_receiver(webhook: WebhookReceiver) -> None:
    # A rule saved while the network was allowed, delivered after the allowance was removed.
    sender = Sender(ApiSettings())
    try:
        with pytest.raises(PermanentError, match="loopback"):
            sender.webhook(_outgoing(webhook.url))
    finally:
        sender.close()
    assert webhook.received == []
    allowing = Sender(ApiSettings(alert_webhook_allow_networks="127.0.0.0/8,::1/128"))
    try:
        allowing.webhook(_outgoing(webhook.url))
        # By name: sent to the checked address, with the name the rule gave in Host.
        port = webhook.server.server_address[1]
        allowing.webhook(_outgoing(f"http://localhost:{port}/hook"))
    finally:
        allowing.close()
    assert [r.json["event"] for r in webhook.received] == ["opened", "opened"]
    assert webhook.received[1].headers["host"] == f"localhost:{port}"
