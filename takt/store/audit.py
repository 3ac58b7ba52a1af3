"""Sequence audit: which events each gateway numbered but the cloud never received."""

from __future__ import annotations

from typing import Any

import psycopg

# Gaps below each gateway's highest received seq; gateways number from 1
# (docs/contract.md). The collector's gauges and GET /api/v1/gateways/gaps read it.
_OPEN_GAPS_SQL = """
SELECT gateway_id, prev_last + 1 AS first_missing, first_seq - 1 AS last_missing
FROM (
    SELECT gateway_id, first_seq,
           lag(last_seq, 1, 0::bigint) OVER (PARTITION BY gateway_id ORDER BY first_seq) AS prev_last
    FROM gateway_seq_ranges
) ranges
WHERE first_seq > prev_last + 1
ORDER BY gateway_id, first_seq
"""


def open_gaps(conn: psycopg.Connection[Any]) -> dict[str, list[tuple[int, int]]]:
    """Gateway -> inclusive ranges of missing seq numbers (gateways without gaps are absent)."""
    gaps: dict[str, list[tuple[int, int]]] = {}
    for gateway_id, first, last in conn.execute(_OPEN_GAPS_SQL).fetchall():
        gaps.setdefault(str(gateway_id), []).append((int(first), int(last)))
    return gaps


def seq_reuse(conn: psycopg.Connection[Any]) -> dict[str, tuple[int, int]]:
    """Gateway -> (new events numbered with a seq used before, the latest such seq)."""
    rows = conn.execute("SELECT gateway_id, reused, last_seq FROM gateway_seq_reuse").fetchall()
    return {str(g): (int(n), int(last)) for g, n, last in rows}
