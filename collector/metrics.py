"""Prometheus metrics of one collector process (own registry, so tests can make several)."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

if TYPE_CHECKING:
    from collector.pipeline import Plan
    from takt.store.events import WriteResult

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_LAG_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 3600.0, 86_400.0)


class CollectorMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.messages_received = Counter(
            "takt_collector_messages_received", "MQTT messages taken from the broker", ["kind"], registry=r
        )
        self.events_received = Counter(
            "takt_collector_events_received", "Events read from batches, per gateway", ["gateway"], registry=r
        )
        self.events_written = Counter("takt_collector_events_written", "Events newly stored", registry=r)
        self.duplicates = Counter(
            "takt_collector_duplicates_skipped", "Events already stored (re-sends), skipped", registry=r
        )
        self.dead_letters = Counter(
            "takt_collector_dead_letters", "Payloads or events dead-lettered, by kind", ["kind"], registry=r
        )
        self.commit_seconds = Histogram(
            "takt_collector_batch_commit_seconds",
            "Time to write and commit one batch",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.plan_seconds = Histogram(
            "takt_collector_batch_plan_seconds",
            "Time to decode and validate one batch",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.batch_messages = Histogram(
            "takt_collector_batch_messages",
            "MQTT messages per committed batch",
            buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500),
            registry=r,
        )
        self.ingest_lag = Histogram(
            "takt_collector_ingest_lag_seconds",
            "Commit time minus the newest event time of each gateway in a batch",
            buckets=_LAG_BUCKETS,
            registry=r,
        )
        self.db_unavailable = Gauge(
            "takt_collector_db_unavailable",
            "1 while the database cannot be written (nothing is acked)",
            registry=r,
        )
        self.db_retries = Counter(
            "takt_collector_db_retries", "Failed write attempts that will be retried", registry=r
        )
        self.mqtt_connected = Gauge(
            "takt_collector_mqtt_connected", "1 while connected to the broker", registry=r
        )
        self.queue_depth = Gauge(
            "takt_collector_queue_depth", "Messages received and not yet committed", registry=r
        )
        self.open_gap_events = Gauge(
            "takt_collector_seq_gap_events",
            "Sequence numbers never received below a gateway's highest (open gaps)",
            ["gateway"],
            registry=r,
        )
        self.background_failures = Counter(
            "takt_background_round_failures",
            "Rounds of a background task (rollup refresher) that failed; the task carries on",
            ["task"],
            registry=r,
        )
        self.background_quarantined = Counter(
            "takt_background_quarantined",
            "Work items a background task moved to its quarantine (e.g. event_invalidations_quarantine)",
            ["task"],
            registry=r,
        )
        self.open_gap_ranges = Gauge(
            "takt_collector_seq_gap_ranges", "Open sequence gaps, per gateway", ["gateway"], registry=r
        )
        self.seq_reused = Gauge(
            "takt_collector_seq_reused_events",
            "New events numbered with a seq their gateway had used before (numbering went backwards "
            "or repeated), per gateway, since the gateway was first seen",
            ["gateway"],
            registry=r,
        )
        self.conflicts = Counter(
            "takt_collector_id_conflicts",
            "Events refused because their id is stored with other content (dead-lettered)",
            registry=r,
        )

    def count_committed(self, plan: Plan, result: WriteResult, now: datetime) -> None:
        """Count one committed plan: messages, events, duplicates, dead letters, ingest lag."""
        self.batch_messages.observe(len(plan.messages))
        events = sum(1 for msg in plan.messages if msg.topic.endswith("/events"))
        self.messages_received.labels("events").inc(events)
        self.messages_received.labels("status").inc(len(plan.messages) - events)
        for gateway_id, count in plan.received_by_gateway.items():
            self.events_received.labels(gateway_id).inc(count)
        self.events_written.inc(result.inserted)
        self.duplicates.inc(result.duplicates + plan.duplicates_in_batch)
        for letter in plan.dead_letters:
            kind = "event" if letter.event_index is not None else "payload"
            self.dead_letters.labels(kind).inc()
        if result.conflicts:
            self.dead_letters.labels("event").inc(len(result.conflicts))
            self.conflicts.inc(len(result.conflicts))
        for newest in plan.newest.values():
            self.ingest_lag.observe(max(0.0, (now - newest).total_seconds()))


def serve(metrics: CollectorMetrics, port: int, host: str = "127.0.0.1") -> None:
    """Expose ``/metrics``; port 0 means off."""
    if port:
        start_http_server(port, addr=host, registry=metrics.registry)
