"""Fuzzing the decoder (the contract and the collector's planner): no crash, every event accounted for."""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from collector.pipeline import Limits, Message, plan_batch, prepare_copy
from takt.contract import MAX_TIME, MIN_TIME, EnvelopeError, PlausibilityWindow, decode_event_batch
from takt.contract.codec import raw_json
from tests.fuzz import FUZZ, items, json_value

WINDOW = PlausibilityWindow(timedelta(minutes=5), timedelta(days=30))
TOPIC = "takt/v1/site-1/gw-1/events"


def _envelope(batch: list[Any]) -> bytes:
    return b'{"schema":1,"gateway_id":"gw-1","events":[%s]}' % b",".join(raw_json(i) for i in batch)


@settings(FUZZ, max_examples=300)
@given(batch=st.lists(items, max_size=6))
def test_decoder_rejects_per_event_and_never_raises(batch: list[Any]) -> None:
    now = datetime.now(UTC)
    payload = _envelope(batch)
    try:
        orjson.loads(payload)
    except orjson.JSONDecodeError:
        # raw_json falls back to json.dumps (NaN, Infinity) where orjson cannot write an item:
        # such an envelope is not JSON, and is refused whole with the reason.
        with pytest.raises(EnvelopeError, match="invalid JSON"):
            decode_event_batch(payload, site_id="site-1", gateway_id="gw-1", now=now, window=WINDOW)
        return
    decoded = decode_event_batch(payload, site_id="site-1", gateway_id="gw-1", now=now, window=WINDOW)
    assert len(decoded.events) + len(decoded.rejected) == len(batch)
    assert sorted(r.index for r in decoded.rejected) == [r.index for r in decoded.rejected]
    for rejected in decoded.rejected:
        assert rejected.reason
        raw_json(rejected.raw)  # what a dead letter stores
    for event in decoded.events:
        assert MIN_TIME <= event.timestamp < MAX_TIME
        assert now - WINDOW.max_age <= event.timestamp <= now + WINDOW.max_future
        assert event.model_version is None or event.model_version.isprintable()


@settings(FUZZ, max_examples=150)
@given(batch=st.lists(items, max_size=6), garble=st.integers(0, 40))
def test_planner_never_raises_and_copies_what_it_keeps(batch: list[Any], garble: int) -> None:
    payload = _envelope(batch)
    payload = payload[: len(payload) - garble]  # sometimes no longer JSON
    plan = prepare_copy(plan_batch([Message(TOPIC, payload)], datetime.now(UTC), Limits(WINDOW)))
    assert plan.copy is not None
    if garble and plan.dead_letters and plan.dead_letters[0].event_index is None:
        # A payload dead-lettered whole still tells its gateway why.
        assert any(ack.rejected for _, _, ack in plan.acks(datetime.now(UTC)))


@settings(FUZZ, max_examples=150)
@given(
    payload=st.binary(max_size=200)
    | st.builds(raw_json, st.dictionaries(st.text(max_size=8), json_value))
    | st.builds(
        raw_json,
        st.fixed_dictionaries({"schema": json_value, "gateway_id": json_value, "events": json_value}),
    )
)
def test_any_bytes_raise_only_envelope_errors(payload: bytes) -> None:
    with contextlib.suppress(EnvelopeError):
        decode_event_batch(payload, site_id="site-1", gateway_id="gw-1")
