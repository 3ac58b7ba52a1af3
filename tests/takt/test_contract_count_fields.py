"""product_count's optional `rejected` and `sku`: validated; absent ones leave content ids unchanged."""

from __future__ import annotations

import uuid
from typing import Any

import orjson
import pytest
from pydantic import ValidationError

from takt.contract import Event
from takt.contract.events import CONTENT_ID_NAMESPACE

BODY: dict[str, Any] = {"timestamp": "2026-03-02T09:00:00Z", "worker_id": "w1", "station_id": "st-1",
                        "event_type": "product_count", "confidence": 0.9, "count": 3}  # fmt: skip


def test_events_without_the_new_fields_keep_their_content_id() -> None:
    event = Event.model_validate(BODY)
    # The rule before the fields existed: every other field, in the JSON with sorted keys.
    before = event.model_dump(mode="json", exclude={"event_id", "rejected", "sku"})
    old = uuid.uuid5(CONTENT_ID_NAMESPACE, orjson.dumps(before, option=orjson.OPT_SORT_KEYS).decode())
    assert event.event_id == old
    assert Event.model_validate({**BODY, "rejected": 1}).event_id != old
    assert Event.model_validate({**BODY, "sku": "red"}).event_id not in (
        old,
        Event.model_validate({**BODY, "sku": "blue"}).event_id,
    )


@pytest.mark.parametrize(
    "extra",
    [
        {"rejected": 4},  # more than count
        {"rejected": -1},
        {"rejected": "1"},
        {"sku": ""},
        {"sku": "bad sku"},
    ],
)
def test_bad_count_fields_are_refused(extra: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        Event.model_validate({**BODY, **extra})


def test_count_fields_belong_to_product_counts_only() -> None:
    state = {**BODY, "event_type": "working", "count": 0}
    for extra in ({"rejected": 0}, {"sku": "red"}):
        with pytest.raises(ValidationError, match="product_count events only"):
            Event.model_validate({**state, **extra})
    good = Event.model_validate({**BODY, "rejected": 3, "sku": "red"})
    assert (good.rejected, good.sku) == (3, "red")
