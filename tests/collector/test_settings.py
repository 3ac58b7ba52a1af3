"""Collector settings from TAKT_* variables."""

from __future__ import annotations

from datetime import timedelta

import pytest
from pydantic import ValidationError

from collector.settings import CollectorSettings
from takt.settings import setting_env_names
from takt.store.events import WriteMethod


def test_reads_takt_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TAKT_COLLECTOR_CLIENT_ID", "col-1")
    monkeypatch.setenv("TAKT_MAX_CLOCK_SKEW_S", "60")
    monkeypatch.setenv("TAKT_MAX_EVENT_AGE_DAYS", "2")
    monkeypatch.setenv("TAKT_COLLECTOR_WRITE_METHOD", "unnest")
    monkeypatch.setenv("TAKT_COLLECTOR_METRICS_PORT", "0")
    settings = CollectorSettings()
    assert settings.collector_client_id == "col-1"
    assert settings.max_future == timedelta(seconds=60)
    assert settings.max_age == timedelta(days=2)
    assert settings.collector_write_method is WriteMethod.UNNEST
    assert settings.collector_metrics_port == 0
    assert {"TAKT_COLLECTOR_SHARE_GROUP", "TAKT_MAX_CLOCK_SKEW_S"} <= setting_env_names()


def test_default_client_id_is_stable() -> None:
    assert CollectorSettings().collector_client_id == CollectorSettings().collector_client_id


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("TAKT_COLLECTOR_CLIENT_ID", "has space"),
        ("TAKT_COLLECTOR_SHARE_GROUP", "a/b"),
        ("TAKT_COLLECTOR_SITES", "#"),
        ("TAKT_COLLECTOR_RECEIVE_MAXIMUM", "0"),
    ],
)
def test_rejects_bad_values(monkeypatch: pytest.MonkeyPatch, name: str, value: str) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError):
        CollectorSettings()
