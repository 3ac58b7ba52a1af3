"""The edge agent: camera -> detector -> station states and counts -> disk buffer -> MQTT.

Frames never leave the gateway; only events do.
"""


class EdgeError(Exception):
    """Base of every error the edge agent raises on purpose (bad config, model, camera, broker)."""
