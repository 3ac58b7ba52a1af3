"""TAKT_* settings: parsing, validation, and secrets masked in `takt config show`."""

from __future__ import annotations

import pytest
from click.testing import CliRunner
from pydantic import ValidationError

from takt.cli import main
from takt.settings import CommonSettings, mask_url, setting_env_names


def test_environment_is_read_with_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TAKT_SITE_ID", "plant-7")
    monkeypatch.setenv("TAKT_DATABASE_URL", "postgresql+psycopg://u:p@db:5432/takt")
    settings = CommonSettings()
    assert settings.site_id == "plant-7"
    assert settings.database_url == "postgresql://u:p@db:5432/takt"


@pytest.mark.parametrize(
    ("name", "value"),
    [("TAKT_MQTT_URL", "http://broker:1883"), ("TAKT_DATABASE_URL", "mysql://x@y/z")],
)
def test_wrong_url_schemes_are_refused(monkeypatch: pytest.MonkeyPatch, name: str, value: str) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError):
        CommonSettings()


def test_mask_url() -> None:
    assert mask_url("mqtt://gw:s3cret@host:1883") == "mqtt://gw:***@host:1883"
    assert mask_url("postgresql://host/db") == "postgresql://host/db"


def test_config_show_masks_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TAKT_MQTT_URL", "mqtt://collector:hunter2@127.0.0.1:1883")
    monkeypatch.setenv("TAKT_DATABASE_URL", "postgresql://takt:pgsecret@127.0.0.1/takt")
    result = CliRunner().invoke(main, ["config", "show"])
    assert result.exit_code == 0, result.output
    assert "hunter2" not in result.output and "pgsecret" not in result.output
    assert "TAKT_MQTT_URL=mqtt://collector:***@127.0.0.1:1883" in result.output
    assert {line.split("=")[0] for line in result.output.splitlines()} >= {"TAKT_SITE_ID", "TAKT_MQTT_URL"}


def test_every_listed_variable_is_shown() -> None:
    result = CliRunner().invoke(main, ["config", "show"])
    shown = {line.split("=")[0] for line in result.output.splitlines()}
    assert setting_env_names() <= shown
