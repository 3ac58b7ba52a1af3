"""Finding (and, where missing, installing) the OS packages the stack runs."""

from __future__ import annotations

import logging
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

logger = logging.getLogger(__name__)


class DevStackError(RuntimeError):
    """A local service could not be installed, started or reached."""


def is_root() -> bool:
    return os.geteuid() == 0


def find_postgres_bindir() -> Path | None:
    override = os.environ.get("TAKT_PG_BINDIR")
    if override:
        return Path(override)
    candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parts[-3]))
    return candidates[-1].parent if candidates else None


def find_mosquitto() -> Path | None:
    found = shutil.which("mosquitto") or (
        "/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else None
    )
    return Path(found) if found else None


def apt_install(packages: list[str]) -> None:
    """Install Debian packages, as root or through sudo."""
    if not shutil.which("apt-get"):
        raise DevStackError(f"cannot install {packages}: no apt-get; install them with your package manager")
    prefix: list[str] = [] if is_root() else ["sudo", "-n"]
    if prefix and not shutil.which("sudo"):
        raise DevStackError(f"cannot install {packages}: not root and no sudo")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    logger.info("installing OS packages: %s", " ".join(packages))
    subprocess.run([*prefix, "apt-get", "update", "-qq"], check=True, env=env)
    subprocess.run(
        [*prefix, "apt-get", "install", "-y", "-qq", "--no-install-recommends", *packages],
        check=True,
        env=env,
    )


def ensure_services_installed() -> None:
    missing = []
    if find_mosquitto() is None:
        missing.append("mosquitto")
    if find_postgres_bindir() is None:
        missing.append("postgresql")
    if missing:
        apt_install(missing)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def wait_for_port(host: str, port: int, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if port_open(host, port):
            return
        time.sleep(0.05)
    raise DevStackError(f"{what} did not listen on {host}:{port} within {timeout_s:.0f} s")
