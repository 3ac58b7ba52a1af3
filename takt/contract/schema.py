"""JSON Schemas of the wire messages, for edge devices not written in Python."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from takt.contract.events import CommitAck, Event, EventBatch, GatewayStatus

SCHEMA_MODELS: dict[str, type[BaseModel]] = {
    "event": Event,
    "event-batch": EventBatch,
    "ack": CommitAck,
    "status": GatewayStatus,
}


def schemas() -> dict[str, dict[str, Any]]:
    out = {}
    for name, model in SCHEMA_MODELS.items():
        schema = model.model_json_schema(by_alias=True, mode="validation")
        schema["$id"] = f"https://takt.dev/schema/v1/{name}.schema.json"
        out[f"{name}.schema.json"] = schema
    return out


def render(schema: dict[str, Any]) -> str:
    return json.dumps(schema, indent=2, sort_keys=True) + "\n"


def write_schemas(directory: Path) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for filename, schema in schemas().items():
        path = directory / filename
        path.write_text(render(schema))
        written.append(path)
    return written


def stale_schemas(directory: Path) -> list[str]:
    """Files in ``directory`` that differ from what the models generate."""
    return [
        filename
        for filename, schema in schemas().items()
        if not (directory / filename).exists() or (directory / filename).read_text() != render(schema)
    ]
