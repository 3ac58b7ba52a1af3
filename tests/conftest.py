"""Fixtures shared by every test tier: real Mosquitto and PostgreSQL on loopback.

The servers are the same classes ``takt dev up`` runs, started once per test
session on free ports in a private temporary folder. Tests isolate themselves
by name: a fresh database per test that needs one, a unique site id per test
on the shared broker.
"""

from __future__ import annotations

import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from broker.passwords import generate_password
from devstack import MosquittoServer, PostgresServer
from devstack.system import ensure_services_installed, free_port
from tests.timescale_lite import TimescaleLite

SHARED_DIR = Path(__file__).resolve().parents[1].parent / "shared"


@pytest.fixture(scope="session")
def services_root() -> Iterator[Path]:
    ensure_services_installed()
    # Not pytest's tmp_path: its parents are private to root, and PostgreSQL
    # runs as the 'postgres' account when the tests run as root.
    root = Path(tempfile.mkdtemp(prefix="takt-test-"))
    root.chmod(0o755)
    yield root
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_server(services_root: Path) -> Iterator[PostgresServer]:
    server = PostgresServer(services_root / "postgres", free_port(), durable=False)
    server.start()
    yield server
    server.stop(mode="immediate")


@pytest.fixture(scope="session")
def mosquitto_server(services_root: Path) -> Iterator[MosquittoServer]:
    server = MosquittoServer(services_root / "mosquitto", free_port())
    server.start()
    yield server
    server.stop()


@pytest.fixture
def fresh_database(postgres_server: PostgresServer) -> Iterator[str]:
    """DSN of an empty database that exists for this test only."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    dsn = postgres_server.create_database(name, exist_ok=False)
    yield dsn
    postgres_server.drop_database(name)


@pytest.fixture
def site_id() -> str:
    """A site id no other test uses, so topics on the shared broker do not mix."""
    return f"site-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def gateway_url(mosquitto_server: MosquittoServer) -> Callable[[str, str], str]:
    """``gateway_url(site_id, gateway_id)`` registers a gateway and returns its MQTT URL."""

    def register(site: str, gateway: str) -> str:
        return mosquitto_server.add_gateway(site, gateway, generate_password())

    return register


@pytest.fixture(scope="session")
def collector_mqtt_url(mosquitto_server: MosquittoServer) -> str:
    return mosquitto_server.add_collector("collector", generate_password())


@pytest.fixture(scope="session")
def collector_user_url(mosquitto_server: MosquittoServer) -> Callable[[str], str]:
    """``collector_user_url(name)`` creates a collector broker user and returns its MQTT URL.

    The broker uses the user name as the client id (use_username_as_clientid),
    so each collector process needs a user of its own.
    """

    def register(name: str) -> str:
        return mosquitto_server.add_collector(name, generate_password())

    return register


@pytest.fixture(scope="session")
def shared_footage() -> Path:
    clip = SHARED_DIR / "footage" / "concourse-720p.avi"
    if not clip.exists():
        pytest.skip(f"sample footage not present at {clip}")
    return clip


@pytest.fixture(scope="session")
def timescale_server(services_root: Path) -> Iterator[TimescaleLite]:
    """A real TimescaleDB 2.23 engine (PGlite build): one connection at a time, no COPY."""
    cache = Path(__file__).resolve().parents[1] / ".takt" / "timescale-lite"
    server = TimescaleLite(cache, free_port())
    server.start()
    yield server
    server.stop()
