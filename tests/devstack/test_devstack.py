"""`takt dev up|status|down` start and stop real servers, idempotently."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from click.testing import CliRunner

from devstack import DevStack
from devstack.system import free_port
from takt.cli import main
from takt.mqtt import MqttEndpoint


@pytest.fixture
def stack_args() -> Iterator[list[str]]:
    state = Path(tempfile.mkdtemp(prefix="takt-dev-"))
    args = ["--state-dir", str(state), "--mqtt-port", str(free_port()), "--pg-port", str(free_port())]
    yield args
    CliRunner().invoke(main, ["dev", "down", *args])
    shutil.rmtree(state, ignore_errors=True)


def test_up_is_idempotent_and_down_stops_both(stack_args: list[str]) -> None:
    runner = CliRunner()
    first = runner.invoke(main, ["dev", "up", *stack_args])
    assert first.exit_code == 0, first.output
    state_dir = Path(stack_args[1])
    env = dict(line.split("=", 1) for line in (state_dir / "dev.env").read_text().splitlines() if line)
    with psycopg.connect(env["TAKT_DATABASE_URL"]) as conn:
        conn.execute("CREATE TABLE marker (x int)")
        conn.commit()

    again = runner.invoke(main, ["dev", "up", *stack_args])
    assert again.exit_code == 0, again.output
    assert runner.invoke(main, ["dev", "status", *stack_args]).exit_code == 0
    with psycopg.connect(env["TAKT_DATABASE_URL"]) as conn:  # same cluster, data kept
        assert conn.execute("SELECT to_regclass('marker')").fetchone() == ("marker",)
    endpoint = MqttEndpoint.from_url(env["TAKT_MQTT_URL"])
    assert endpoint.username == "collector" and endpoint.password
    assert (state_dir / "secrets.json").stat().st_mode & 0o077 == 0

    down = runner.invoke(main, ["dev", "down", *stack_args])
    assert down.exit_code == 0
    status = runner.invoke(main, ["dev", "status", *stack_args])
    assert status.exit_code == 1
    assert "stopped" in status.output


def test_gateway_registration_is_stable_across_calls(tmp_path: Path) -> None:
    stack = DevStack(tmp_path, mqtt_port=free_port(), pg_port=free_port())
    assert stack.gateway_mqtt_url("s1", "gw-1") == stack.gateway_mqtt_url("s1", "gw-1")
    assert "gw-1" in (tmp_path / "mosquitto" / "acl").read_text()
