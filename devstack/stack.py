"""The local stack behind ``takt dev`` and ``takt demo``: one broker, one database."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from broker.passwords import generate_password
from devstack.mosquitto import MosquittoServer
from devstack.postgres import PostgresServer
from devstack.system import ensure_services_installed

DEFAULT_MQTT_PORT = 18830
DEFAULT_PG_PORT = 15432
DATABASE_NAME = "takt"
COLLECTOR_USER = "collector"


@dataclass(frozen=True)
class StackStatus:
    mosquitto: bool
    postgres: bool
    mqtt_url: str
    database_url: str


class DevStack:
    """Mosquitto and PostgreSQL under ``state_dir`` on fixed loopback ports.

    Idempotent: ``up`` on a running stack changes nothing; credentials are
    generated once and kept in ``state_dir/secrets.json`` (mode 600).
    """

    def __init__(
        self, state_dir: Path, *, mqtt_port: int = DEFAULT_MQTT_PORT, pg_port: int = DEFAULT_PG_PORT
    ) -> None:
        self.state_dir = state_dir.resolve()
        self.mosquitto = MosquittoServer(self.state_dir / "mosquitto", mqtt_port)
        self.postgres = PostgresServer(self.state_dir / "postgres", pg_port)
        self.secrets_file = self.state_dir / "secrets.json"
        self.env_file = self.state_dir / "dev.env"

    def _secrets(self) -> dict[str, str]:
        if self.secrets_file.exists():
            loaded: dict[str, str] = json.loads(self.secrets_file.read_text())
            return loaded
        return {}

    def secret(self, name: str) -> str:
        """A password kept across runs, created on first use."""
        secrets = self._secrets()
        if name not in secrets:
            secrets[name] = generate_password()
            self.state_dir.mkdir(parents=True, exist_ok=True)
            self.secrets_file.write_text(json.dumps(secrets, indent=2))
            self.secrets_file.chmod(0o600)
        return secrets[name]

    @property
    def database_url(self) -> str:
        return self.postgres.dsn(DATABASE_NAME)

    @property
    def collector_mqtt_url(self) -> str:
        return self.mosquitto.url(COLLECTOR_USER, self.secret(f"mqtt:{COLLECTOR_USER}"))

    def gateway_mqtt_url(self, site_id: str, gateway_id: str) -> str:
        """Register a gateway on the local broker (idempotent) and return its URL."""
        return self.mosquitto.add_gateway(site_id, gateway_id, self.secret(f"mqtt:{gateway_id}"))

    def up(self, *, detach: bool = True) -> StackStatus:
        """Start both servers; with ``detach`` they outlive this process (``takt dev up``)."""
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.state_dir.chmod(0o755)  # secrets inside stay 600
        ensure_services_installed()
        self.postgres.start()
        self.postgres.create_database(DATABASE_NAME)
        self.mosquitto.write_config()
        self.mosquitto.add_collector(COLLECTOR_USER, self.secret(f"mqtt:{COLLECTOR_USER}"))
        self.mosquitto.start(detach=detach)
        self.env_file.write_text(
            f"TAKT_MQTT_URL={self.collector_mqtt_url}\nTAKT_DATABASE_URL={self.database_url}\n"
        )
        self.env_file.chmod(0o600)
        return self.status()

    def down(self) -> None:
        self.mosquitto.stop()
        self.postgres.stop()

    def status(self) -> StackStatus:
        return StackStatus(
            mosquitto=self.mosquitto.running(),
            postgres=self.postgres.running(),
            mqtt_url=self.collector_mqtt_url if self.secrets_file.exists() else "",
            database_url=self.database_url if self.postgres.password_file.exists() else "",
        )
