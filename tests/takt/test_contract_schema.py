"""The committed JSON Schemas are what the models generate today."""

from pathlib import Path

import jsonschema

from takt.contract.schema import schemas, stale_schemas

SCHEMA_DIR = Path(__file__).resolve().parents[2] / "docs" / "schema"


def test_committed_schemas_are_current() -> None:
    stale = stale_schemas(SCHEMA_DIR)
    assert not stale, f"stale: {stale}; regenerate with `takt contract schema`"


def test_schema_validates_a_real_batch_and_refuses_a_bad_one() -> None:
    batch_schema = schemas()["event-batch.schema.json"]
    good = {
        "schema": 1,
        "gateway_id": "gw-1",
        "events": [
            {
                "event_id": "7f0c7a52-8f39-4a43-9a39-8a8c3b1f2d10",
                "timestamp": "2026-11-23T08:00:00Z",
                "worker_id": "W1",
                "station_id": "S1",
                "event_type": "idle",
                "confidence": 0.5,
            }
        ],
    }
    jsonschema.validate(good, batch_schema)
    bad = {**good, "events": [{**good["events"][0], "event_type": "dancing"}]}
    try:
        jsonschema.validate(bad, batch_schema)
    except jsonschema.ValidationError as exc:
        assert "dancing" in exc.message
    else:
        raise AssertionError("schema accepted an unknown event_type")
