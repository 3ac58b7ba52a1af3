"""Open sequence gaps per gateway, as the API will read them."""

from __future__ import annotations

import psycopg

from collector.audit import open_gaps
from collector.store import record_seqs, seq_gaps


def test_open_gaps_match_seq_gaps_per_gateway(database: str) -> None:
    with psycopg.connect(database) as conn:
        record_seqs(conn, "gw-a", [*range(1, 11), *range(15, 21), 30])
        record_seqs(conn, "gw-b", range(3, 6))
        record_seqs(conn, "gw-c", range(1, 100))
        gaps = open_gaps(conn)
        assert gaps == {"gw-a": [(11, 14), (21, 29)], "gw-b": [(1, 2)]}
        for gateway in ("gw-a", "gw-b", "gw-c"):
            assert gaps.get(gateway, []) == seq_gaps(conn, gateway)
        record_seqs(conn, "gw-a", range(11, 30))
        record_seqs(conn, "gw-b", [1, 2])
        assert open_gaps(conn) == {}
