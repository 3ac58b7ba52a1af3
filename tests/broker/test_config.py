"""The shipped mosquitto.conf and `takt broker` commands, checked against a real broker."""

from __future__ import annotations

import re
from pathlib import Path

from click.testing import CliRunner

from broker.config import BROKER_LIMITS, LISTENER_SETTINGS, listener_blocks, parse_conf
from broker.passwords import hash_password, read_password_file, verify_password
from devstack import MosquittoServer
from takt.cli import main
from takt.contract import MAX_PAYLOAD_BYTES, events_topic
from tests.broker.test_security import Probe

ROOT_CONF = Path(__file__).resolve().parents[2] / "mosquitto.conf"


def test_shipped_conf_carries_the_tested_limits() -> None:
    conf = parse_conf(ROOT_CONF.read_text())
    for key, value in BROKER_LIMITS.items():
        assert conf.get(key) == [value], f"mosquitto.conf {key}: {conf.get(key)} != {value}"
    assert int(conf["max_packet_size"][0]) > MAX_PAYLOAD_BYTES
    assert conf["password_file"] and conf["acl_file"]
    assert "allow_anonymous true" not in ROOT_CONF.read_text()


def test_every_listener_binds_client_ids_to_user_names() -> None:
    text = ROOT_CONF.read_text()
    blocks = listener_blocks(text)
    assert blocks, "mosquitto.conf has no listener"
    for block in blocks:
        for key, value in LISTENER_SETTINGS.items():
            assert block.get(key) == [value], f"a listener lacks {key} {value}"
    # The commented TLS listener carries it too, for whoever uncomments it.
    tls = text[text.index("#listener 8883") :]
    assert re.search(r"^#use_username_as_clientid true", tls, re.MULTILINE)


def test_add_gateway_refuses_a_collector_users_name(tmp_path: Path) -> None:
    files = ["--password-file", str(tmp_path / "passwd"), "--acl-file", str(tmp_path / "acl")]
    assert CliRunner().invoke(main, ["broker", "add-collector", "collector-1", *files]).exit_code == 0
    result = CliRunner().invoke(main, ["broker", "add-gateway", "collector-1", "--site", "s1", *files])
    assert result.exit_code != 0
    assert "is a collector" in result.output
    assert CliRunner().invoke(main, ["broker", "add-gateway", "gw-1", "--site", "s1", *files]).exit_code == 0
    assert CliRunner().invoke(main, ["broker", "add-collector", "gw-1", *files]).exit_code != 0


def test_shipped_conf_documents_a_tls_listener() -> None:
    assert re.search(r"^#\s*listener 8883", ROOT_CONF.read_text(), re.MULTILINE)
    assert "certfile" in ROOT_CONF.read_text()


def test_password_hash_round_trip() -> None:
    hashed = hash_password("s3cret")
    assert hashed.startswith("$7$101$")
    assert verify_password("s3cret", hashed)
    assert not verify_password("S3cret", hashed)


def test_add_gateway_cli_writes_credentials_a_real_broker_accepts(
    mosquitto_server: MosquittoServer, collector_mqtt_url: str, site_id: str
) -> None:
    result = CliRunner().invoke(
        main,
        [
            "broker",
            "add-gateway",
            "gw-cli",
            "--site",
            site_id,
            "--password-file",
            str(mosquitto_server.password_file),
            "--acl-file",
            str(mosquitto_server.acl_file),
        ],
    )
    assert result.exit_code == 0, result.output
    password = re.search(r"password: (\S+)", result.output)
    assert password is not None
    assert "gw-cli" in read_password_file(mosquitto_server.password_file)
    mosquitto_server.reload()
    with Probe(mosquitto_server.url("gw-cli", password.group(1)), "gw-cli") as gateway:
        assert gateway.connack is not None and not gateway.connack.is_failure
        assert not gateway.publish(events_topic(site_id, "gw-cli"), b"{}").is_failure
        assert gateway.publish(events_topic(site_id, "gw-other"), b"{}").is_failure
    # Rotating keeps one entry per user.
    CliRunner().invoke(
        main,
        [
            "broker",
            "add-gateway",
            "gw-cli",
            "--site",
            site_id,
            "--password",
            "rotated",
            "--password-file",
            str(mosquitto_server.password_file),
            "--acl-file",
            str(mosquitto_server.acl_file),
        ],
    )
    acl = mosquitto_server.acl_file.read_text()
    assert acl.count("user gw-cli\n") == 1
    assert verify_password("rotated", read_password_file(mosquitto_server.password_file)["gw-cli"])
