"""The MQTT failure policy both sides share: CONNACK classes, refusal messages, jittered backoff."""

from __future__ import annotations

import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.reasoncodes import ReasonCode

from takt.mqtt import Connack, ReconnectBackoff, classify_connack, refusal_message


@pytest.mark.parametrize(
    ("code", "verdict"),
    [
        (0x00, Connack.ACCEPTED),
        (0x80, Connack.RETRY),  # unspecified error
        (0x88, Connack.RETRY),  # server unavailable
        (0x89, Connack.RETRY),  # server busy
        (0x97, Connack.RETRY),  # quota exceeded
        (0x9F, Connack.RETRY),  # connection rate exceeded
        (0x84, Connack.FATAL),  # unsupported protocol version
        (0x85, Connack.FATAL),  # client identifier not valid
        (0x86, Connack.FATAL),  # bad user name or password
        (0x87, Connack.FATAL),  # not authorized
        (0x8A, Connack.FATAL),  # banned
        (0x8C, Connack.FATAL),  # bad authentication method
        (4, Connack.FATAL),  # MQTT 3.1.1: bad user name or password
        (5, Connack.FATAL),  # MQTT 3.1.1: not authorised
    ],
)
def test_connack_codes_are_classified_once_for_both_sides(code: int, verdict: Connack) -> None:
    assert classify_connack(code) is verdict
    if code >= 0x80:  # the same answer for paho's ReasonCode objects
        assert classify_connack(ReasonCode(PacketTypes.CONNACK, identifier=code)) is verdict


def test_refusal_messages_say_what_to_check() -> None:
    message = refusal_message("gateway 'gw-1'", 0x86)
    assert "gateway 'gw-1'" in message and "0x86" in message
    assert "Bad user name or password" in message and "password in the MQTT URL" in message
    assert "cannot help" in refusal_message("the collector 'c'", 0x85)


def test_backoff_grows_to_its_cap_with_jitter() -> None:
    backoff = ReconnectBackoff(min_s=0.5, max_s=30.0)
    for attempt in range(12):
        ceiling = min(30.0, 0.5 * 2**attempt)
        delays = [backoff.delay(attempt) for _ in range(200)]
        assert all(0.25 <= d <= max(ceiling, 0.25) for d in delays), attempt
        if attempt >= 3:
            assert max(delays) - min(delays) > ceiling / 4  # spread out, not in lockstep
    assert backoff.delay(10_000) <= 30.0
