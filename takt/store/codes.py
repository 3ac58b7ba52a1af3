"""Storage codes of the rollup detail rows, in one place (each a PostgreSQL ``"char"``).

``rollup_worker_detail.state_kind`` holds the state of each piece;
``rollup_station_detail.island_kind`` the kind of each union island: the
union of the station's pieces whose state is one of ``ISLAND_MEMBERS[kind]``.
The live tail (``api.metrics.live``) uses the same codes for its signed
elements, plus ``EVENT`` and ``UNITS``.
"""

from __future__ import annotations

# State pieces.
WORKING = "w"
IDLE = "i"
ABSENT = "a"
STATE_CODE = {"working": WORKING, "idle": IDLE, "absent": ABSENT}
STATE_NAME = {code: name for name, code in STATE_CODE.items()}

# Station islands: occupied (working or idle), working, observed (any state).
OCCUPIED = "o"
WORKING_ISLAND = "w"
OBSERVED = "b"
ISLAND_MEMBERS = {
    OCCUPIED: (WORKING, IDLE),
    WORKING_ISLAND: (WORKING,),
    OBSERVED: (WORKING, IDLE, ABSENT),
}

# Tail elements that are not state pieces: an event (counted), a unit event (its count).
EVENT = "e"
UNITS = "u"


def quoted(code: str) -> str:
    """A code as a SQL literal."""
    return f"'{code}'"


def state_code_sql(column: str) -> str:
    """SQL: the state code of an event type column (NULL for product_count)."""
    cases = " ".join(f"WHEN {quoted(name)} THEN {quoted(code)}" for name, code in STATE_CODE.items())
    return f'(CASE {column} {cases} END)::"char"'


def members_sql(kind: str, column: str) -> str:
    """SQL: the piece code in ``column`` belongs to islands of ``kind``."""
    return f"{column} IN ({', '.join(quoted(c) for c in ISLAND_MEMBERS[kind])})"
