"""The edge<->cloud contract: event model, MQTT topics, wire codec and limits.

Both the edge agent and the cloud side (collector, API) import this package
and nothing else of each other, so a change to the wire format is a change
here, visible in one diff and checked by ``tests/takt/test_contract_schema.py``
against the committed JSON Schemas in ``docs/schema/``.
"""

from takt.contract.codec import (
    DecodedBatch,
    EnvelopeError,
    RejectedEvent,
    decode_ack,
    decode_event_batch,
    decode_status,
    encode_ack,
    encode_event,
    encode_event_batch,
    encode_events_envelope,
    encode_status,
)
from takt.contract.events import (
    MAX_EVENTS_PER_BATCH,
    MAX_PAYLOAD_BYTES,
    SCHEMA_VERSION,
    STATE_EVENT_TYPES,
    CommitAck,
    Event,
    EventBatch,
    EventType,
    GatewayState,
    GatewayStatus,
    content_event_id,
    seq_ranges,
    timestamp_problem,
)
from takt.contract.topics import (
    EVENTS_FILTER,
    STATUS_FILTER,
    TOPIC_ROOT,
    TopicAddress,
    TopicError,
    TopicKind,
    ack_topic,
    events_topic,
    parse_topic,
    shared_subscription,
    status_topic,
)

__all__ = [
    "EVENTS_FILTER",
    "MAX_EVENTS_PER_BATCH",
    "MAX_PAYLOAD_BYTES",
    "SCHEMA_VERSION",
    "STATE_EVENT_TYPES",
    "STATUS_FILTER",
    "TOPIC_ROOT",
    "CommitAck",
    "DecodedBatch",
    "EnvelopeError",
    "Event",
    "EventBatch",
    "EventType",
    "GatewayState",
    "GatewayStatus",
    "RejectedEvent",
    "TopicAddress",
    "TopicError",
    "TopicKind",
    "ack_topic",
    "content_event_id",
    "decode_ack",
    "decode_event_batch",
    "decode_status",
    "encode_ack",
    "encode_event",
    "encode_event_batch",
    "encode_events_envelope",
    "encode_status",
    "events_topic",
    "parse_topic",
    "seq_ranges",
    "shared_subscription",
    "status_topic",
    "timestamp_problem",
]
