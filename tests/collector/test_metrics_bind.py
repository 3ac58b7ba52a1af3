"""The collector's Prometheus endpoint has no authentication: it listens on loopback by default."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from collector.metrics import CollectorMetrics, serve
from collector.settings import CollectorSettings
from devstack.system import free_port


def _listening_addresses(port: int) -> set[str]:
    """Local addresses with a listening TCP socket on ``port`` (from /proc/net/tcp{,6})."""
    found: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        path = Path(table)
        if not path.exists():
            continue
        for line in path.read_text().splitlines()[1:]:
            fields = line.split()
            address, hex_port = fields[1].split(":")
            if int(hex_port, 16) == port and fields[3] == "0A":  # 0A: LISTEN
                found.add(address)
    return found


def test_the_metrics_endpoint_binds_to_loopback_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TAKT_COLLECTOR_METRICS_HOST", raising=False)
    settings = CollectorSettings()
    assert settings.collector_metrics_host == "127.0.0.1"
    port = free_port()
    serve(CollectorMetrics(), port, settings.collector_metrics_host)
    assert httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).status_code == 200
    # 0100007F is 127.0.0.1; 0.0.0.0 (00000000) would be every interface.
    assert _listening_addresses(port) == {"0100007F"}


def test_the_bind_address_is_a_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TAKT_COLLECTOR_METRICS_HOST", "0.0.0.0")
    assert CollectorSettings().collector_metrics_host == "0.0.0.0"
