"""Hypothesis strategies over the full range of every event field's type, shared by the fuzz tests.

Each field draws from a plausible value and from anything its JSON type can
hold (and other types): times anywhere in years 1-9999 with any offset,
naive, epoch numbers; 64-bit-and-beyond integers; NaN and infinities; any
Unicode text including controls and bidirectional overrides. Fixed seed
(``derandomize``) and a bounded number of examples keep CI reproducible.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

FUZZ = settings(
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)

offsets = st.builds(
    timezone,
    st.timedeltas(min_value=timedelta(hours=-23, minutes=-59), max_value=timedelta(hours=23, minutes=59)),
)
any_datetime = st.datetimes(
    min_value=datetime.min, max_value=datetime.max, timezones=st.none() | st.just(UTC) | offsets
)
near_now = st.integers(-40 * 86_400, 86_400).map(lambda s: datetime.now(UTC) + timedelta(seconds=s))
edges = st.sampled_from(
    [
        "0001-01-01T00:00:00+01:00",
        "0001-01-01T00:00:00Z",
        "9999-12-31T23:59:59.999999Z",
        "9999-12-31T23:00:00-05:00",
        "1970-01-01T00:00:00Z",
        "8999-12-31T23:59:59Z",
        "2026-13-01T00:00:00Z",
        "",
        "now",
    ]
)
time_text = st.one_of(
    any_datetime.map(lambda d: d.isoformat()),
    near_now.map(lambda d: d.isoformat()),
    edges,
    st.text(max_size=40),
)
any_number = st.one_of(
    st.integers(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
)
json_scalar = st.one_of(st.none(), st.booleans(), any_number, st.text(max_size=30))
json_value = st.recursive(
    json_scalar,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=6,
)
text = st.text(max_size=140) | st.sampled_from(["m\u202e1", "a\x00b", "x" * 129, "ok@1.0", "\u200b"])
ids = st.sampled_from(["W1", "S1", "unknown", "gw-1"]) | text


def field(plausible: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Mostly plausible values, sometimes anything at all."""
    return st.one_of(plausible, plausible, json_value, text)


event_fields: dict[str, st.SearchStrategy[Any]] = {
    "event_id": field(st.uuids().map(str)) | st.just(str(uuid.UUID(int=0))),
    "timestamp": st.one_of(near_now.map(lambda d: d.isoformat()), time_text, any_number),
    "worker_id": field(ids),
    "station_id": field(ids),
    "event_type": field(st.sampled_from(["working", "idle", "absent", "product_count"])),
    "confidence": field(st.floats(0, 1)) | any_number,
    "count": field(st.integers(0, 10)) | any_number,
    "duration_s": field(st.floats(0, 86_400)) | any_number,
    "model_version": field(st.sampled_from(["m@1", "yolo11n@2026.11.1"])),
    "camera_id": field(st.sampled_from(["cam-1"])),
    "site_id": field(st.sampled_from(["site-1"])),
    "gateway_id": field(st.sampled_from(["gw-1"])),
    "seq": field(st.integers(0, 2**63 - 1)) | any_number,
    "config_version": field(st.sampled_from(["abc123"])),
    "shadow": field(st.booleans()),
}
required = ("timestamp", "worker_id", "station_id", "event_type", "confidence")
events = st.fixed_dictionaries(
    {k: event_fields[k] for k in required},
    optional={k: v for k, v in event_fields.items() if k not in required},
)
# Batch items: mostly events, sometimes anything JSON can hold.
items = st.one_of(events, events, events, json_value)
