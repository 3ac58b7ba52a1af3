"""A Mosquitto broker in a local folder, with per-user credentials and ACLs."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import time
from pathlib import Path

from broker.acl import collector_rules, gateway_rules, set_user_rules
from broker.config import render_local_conf
from broker.passwords import set_password
from devstack.system import DevStackError, find_mosquitto, port_open, wait_for_port

logger = logging.getLogger(__name__)


class MosquittoServer:
    """Files under ``root_dir``: ``mosquitto.conf``, ``passwd``, ``acl``, ``data/``, ``mosquitto.log``."""

    def __init__(self, root_dir: Path, port: int, *, host: str = "127.0.0.1") -> None:
        self.root_dir = root_dir.resolve()
        self.port = port
        self.host = host
        self.conf_file = self.root_dir / "mosquitto.conf"
        self.password_file = self.root_dir / "passwd"
        self.acl_file = self.root_dir / "acl"
        self.data_dir = self.root_dir / "data"
        self.log_file = self.root_dir / "mosquitto.log"
        self.pid_file = self.root_dir / "mosquitto.pid"
        self._process: subprocess.Popen[bytes] | None = None

    def url(self, username: str, password: str) -> str:
        return f"mqtt://{username}:{password}@{self.host}:{self.port}"

    def write_config(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        conf = render_local_conf(
            port=self.port,
            host=self.host,
            data_dir=self.data_dir,
            password_file=self.password_file,
            acl_file=self.acl_file,
        )
        if os.geteuid() == 0:
            # Mosquitto started as root drops to the 'mosquitto' account, which
            # cannot read a private state folder; this broker is loopback-only.
            conf += "user root\n"
        self.conf_file.write_text(conf)
        for path in (self.password_file, self.acl_file):
            if not path.exists():
                path.touch(mode=0o600)

    def add_user(self, username: str, password: str, rules: list[str]) -> None:
        set_password(self.password_file, username, password)
        set_user_rules(self.acl_file, username, rules)
        self.reload()

    def add_gateway(self, site_id: str, gateway_id: str, password: str) -> str:
        """Credentials and ACL for one gateway; returns its MQTT URL."""
        self.add_user(gateway_id, password, gateway_rules(site_id, gateway_id))
        return self.url(gateway_id, password)

    def add_collector(self, username: str, password: str) -> str:
        self.add_user(username, password, collector_rules())
        return self.url(username, password)

    # -- lifecycle ---------------------------------------------------------------
    def pid(self) -> int | None:
        try:
            pid = int(self.pid_file.read_text())
            os.kill(pid, 0)
        except (FileNotFoundError, ValueError, ProcessLookupError):
            return None
        return pid

    def running(self) -> bool:
        return self.pid() is not None and port_open(self.host, self.port)

    def reload(self) -> None:
        """Re-read the password and ACL files (SIGHUP) without dropping sessions."""
        pid = self.pid()
        if pid is not None:
            os.kill(pid, signal.SIGHUP)
            time.sleep(0.2)

    def start(self, timeout_s: float = 15, *, detach: bool = False) -> None:
        """Start the broker; ``detach`` leaves it running after this process exits."""
        if self.running():
            return
        binary = find_mosquitto()
        if binary is None:
            raise DevStackError("mosquitto not found; run `takt dev up` to install it")
        self.write_config()
        if detach:
            # Mosquitto's own daemon mode writes pid_file; it logs to log_file.
            with self.conf_file.open("a") as conf:
                conf.write(f"pid_file {self.pid_file}\nlog_dest file {self.log_file}\n")
            subprocess.run([str(binary), "-c", str(self.conf_file), "-d"], check=True)
        else:
            with self.log_file.open("ab") as log:
                self._process = subprocess.Popen(
                    [str(binary), "-c", str(self.conf_file)],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            self.pid_file.write_text(str(self._process.pid))
        try:
            wait_for_port(self.host, self.port, timeout_s, "Mosquitto")
        except DevStackError:
            self.kill()
            raise DevStackError(f"Mosquitto did not start: {self.log_file.read_text()[-2000:]}") from None
        logger.info("Mosquitto listening on %s:%d", self.host, self.port)

    def stop(self, timeout_s: float = 10) -> None:
        pid = self.pid()
        if pid is None:
            return
        os.kill(pid, signal.SIGTERM)
        if self._process is not None and self._process.pid == pid:
            try:
                self._process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
            self._process = None
        else:  # started by another process (`takt dev up`)
            deadline = time.monotonic() + timeout_s
            while time.monotonic() < deadline:
                try:
                    os.kill(pid, 0)
                except ProcessLookupError:
                    break
                time.sleep(0.05)
            else:
                os.kill(pid, signal.SIGKILL)
        self.pid_file.unlink(missing_ok=True)

    def kill(self) -> None:
        """SIGKILL, for fault tests: no clean shutdown, no final persistence save."""
        pid = self.pid()
        if pid is not None:
            os.kill(pid, signal.SIGKILL)
            if self._process is not None:
                self._process.wait()
                self._process = None
        self.pid_file.unlink(missing_ok=True)
