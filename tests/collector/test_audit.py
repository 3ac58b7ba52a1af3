"""Open sequence gaps per gateway, as the API will read them."""

from __future__ import annotations

from typing import Any

import psycopg

from takt.store.audit import open_gaps
from takt.store.events import record_seqs, record_seqs_many


def _gaps_by_hand(conn: psycopg.Connection[Any], gateway_id: str) -> list[tuple[int, int]]:
    """The rule read plainly: seqs from 1 up to the highest received range that no range covers."""
    rows = conn.execute(
        "SELECT first_seq, last_seq FROM gateway_seq_ranges WHERE gateway_id = %s ORDER BY first_seq",
        (gateway_id,),
    ).fetchall()
    gaps: list[tuple[int, int]] = []
    expected = 1
    for first, last in rows:
        if first > expected:
            gaps.append((expected, int(first) - 1))
        expected = int(last) + 1
    return gaps


def test_open_gaps_match_the_rule_per_gateway(database: str) -> None:
    with psycopg.connect(database) as conn:
        record_seqs(conn, "gw-a", [*range(1, 11), *range(15, 21), 30])
        record_seqs(conn, "gw-b", range(3, 6))
        record_seqs(conn, "gw-c", range(1, 100))
        gaps = open_gaps(conn)
        assert gaps == {"gw-a": [(11, 14), (21, 29)], "gw-b": [(1, 2)]}
        for gateway in ("gw-a", "gw-b", "gw-c"):
            assert gaps.get(gateway, []) == _gaps_by_hand(conn, gateway)
        record_seqs(conn, "gw-a", range(11, 30))
        record_seqs(conn, "gw-b", [1, 2])
        assert open_gaps(conn) == {}


def test_record_seqs_many_merges_like_record_seqs(database: str) -> None:
    import random

    rng = random.Random(3)
    batches = [
        {f"gw-{g}": rng.sample(range(1, 200), rng.randint(0, 40)) for g in range(4)} for _ in range(15)
    ]
    with psycopg.connect(database) as conn:
        for batch in batches:
            for gateway, seqs in batch.items():
                record_seqs(conn, gateway, seqs)
        one_by_one = conn.execute(
            "SELECT gateway_id, first_seq, last_seq FROM gateway_seq_ranges ORDER BY 1, 2"
        ).fetchall()
        conn.execute("DELETE FROM gateway_seq_ranges")
        for batch in batches:
            record_seqs_many(conn, batch)
        together = conn.execute(
            "SELECT gateway_id, first_seq, last_seq FROM gateway_seq_ranges ORDER BY 1, 2"
        ).fetchall()
    assert together == one_by_one and len(together) > 4


def test_new_events_numbered_with_a_used_seq_are_counted_as_reuse(database: str) -> None:
    from takt.store.audit import seq_reuse
    from takt.store.events import reused_seq_numbers

    assert reused_seq_numbers([4, 12, 5, 12], [(1, 10)]) == [4, 5, 12]
    with psycopg.connect(database) as conn:
        assert record_seqs_many(conn, {"gw-a": range(1, 11)}, {"gw-a": list(range(1, 11))}) == {}
        # Re-sends of 1..10 (not fresh) and a late 11..12 (a gap filled) are no reuse.
        assert record_seqs_many(conn, {"gw-a": range(1, 13)}, {"gw-a": [11, 12]}) == {}
        # New events numbered 3..5 again: the gateway's numbering went backwards.
        assert record_seqs_many(conn, {"gw-a": [3, 4, 5]}, {"gw-a": [3, 4, 5]}) == {"gw-a": 3}
        assert record_seqs_many(conn, {"gw-a": [20, 20]}, {"gw-a": [20, 20]}) == {"gw-a": 1}
        assert seq_reuse(conn) == {"gw-a": (4, 20)}
