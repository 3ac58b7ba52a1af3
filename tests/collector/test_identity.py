"""Identity of events through the real collector: event_id alone is the key; seq reuse is flagged."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import psycopg

from collector.service import Collector
from takt.contract import encode_event, encode_events_envelope
from takt.store.audit import seq_reuse
from tests.collector.conftest import event_counts, metric, wait_for
from tests.collector.gateway_sim import GatewaySim


def _dead_letters(database: str) -> list[tuple[str, int | None]]:
    with psycopg.connect(database) as conn:
        rows = conn.execute("SELECT reason, seq FROM dead_letters ORDER BY id").fetchall()
    return [(str(r[0]), r[1]) for r in rows]


def test_an_id_resent_with_another_time_or_content_is_stored_once_and_dead_lettered(
    start_collector: Callable[..., Collector], gateways: Callable[..., GatewaySim], database: str
) -> None:
    collector = start_collector()
    gw = gateways("gw-id")
    [original] = gw.make_events(1)
    gw.send([original])
    assert gw.wait_acked()
    # The same id a second later (same seq), then the same id with other content (a new seq).
    later = original.model_copy(update={"timestamp": original.timestamp + timedelta(seconds=1)})
    other = original.model_copy(update={"confidence": 0.01, "seq": 2})
    gw.send([later])
    assert gw.wait_acked()
    gw.send([other])
    assert gw.wait_acked()

    assert event_counts(database) == (1, 1)
    letters = _dead_letters(database)
    assert [seq for _, seq in letters] == [1, 2]
    assert all(reason.startswith(f"conflict: event_id {original.event_id}") for reason, _ in letters)
    assert "(timestamp differ)" in letters[0][0] and "(confidence, seq differ)" in letters[1][0]
    # Acknowledged as rejected with the reason: the gateway drops them, never re-sends.
    assert set(gw.rejected) == {1, 2} and gw.rejected[2].startswith("conflict:")
    assert metric(collector, "takt_collector_id_conflicts_total") == 2
    assert metric(collector, "takt_collector_events_written_total") == 1
    with psycopg.connect(database) as conn:
        stored = conn.execute("SELECT ts, confidence FROM events").fetchone()
    assert stored == (original.timestamp, original.confidence)


def test_an_id_twice_in_one_message_with_other_content_is_a_conflict(
    start_collector: Callable[..., Collector], gateways: Callable[..., GatewaySim], database: str
) -> None:
    start_collector()
    gw = gateways("gw-twin")
    [event] = gw.make_events(1)
    twin = event.model_copy(update={"seq": 2, "shadow": True})
    gw.publish_raw(encode_events_envelope("gw-twin", [encode_event(event), encode_event(twin)]))
    assert wait_for(lambda: len(_dead_letters(database)) == 1)
    assert event_counts(database) == (1, 1)
    reason, seq = _dead_letters(database)[0]
    assert seq == 2 and "appears earlier in the batch" in reason and "shadow" in reason
    assert wait_for(lambda: 2 in gw.rejected)


def test_a_repeated_or_backwards_seq_is_flagged_in_the_audit(
    start_collector: Callable[..., Collector], gateways: Callable[..., GatewaySim], database: str
) -> None:
    collector = start_collector()
    gw = gateways("gw-reuse")
    first = gw.make_events(10)  # seq 1..10
    gw.send(first)
    assert gw.wait_acked()
    gw.send(first[:5])  # re-sends: not reuse
    assert gw.wait_acked()
    gw.next_seq = 4  # the gateway's numbering restarted (a reset buffer): new events as 4..6
    gw.send(gw.make_events(3))
    assert gw.wait_acked()

    assert event_counts(database) == (13, 13)
    with psycopg.connect(database) as conn:
        assert seq_reuse(conn) == {"gw-reuse": (3, 6)}
    assert wait_for(lambda: metric(collector, "takt_collector_seq_reused_events", gateway="gw-reuse") == 3)
