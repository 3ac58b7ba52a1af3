"""Mosquitto 2.x password files, written without the ``mosquitto_passwd`` binary."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
from pathlib import Path

# Mosquitto 2.0's "$7$" format: PBKDF2-HMAC-SHA512 over a 12-byte salt.
_ITERATIONS = 101
_SALT_BYTES = 12


def hash_password(password: str, salt: bytes | None = None, iterations: int = _ITERATIONS) -> str:
    salt = salt if salt is not None else os.urandom(_SALT_BYTES)
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations)
    return f"$7${iterations}${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


def verify_password(password: str, hashed: str) -> bool:
    try:
        _, kind, iterations, salt_b64, _digest = hashed.split("$")
    except ValueError:
        return False
    if kind != "7":
        return False
    expected = hash_password(password, base64.b64decode(salt_b64), int(iterations))
    return hmac.compare_digest(expected, hashed)


def generate_password() -> str:
    return secrets.token_urlsafe(24)


def read_password_file(path: Path) -> dict[str, str]:
    entries: dict[str, str] = {}
    if path.exists():
        for line in path.read_text().splitlines():
            if line.strip() and not line.startswith("#"):
                user, _, hashed = line.partition(":")
                entries[user] = hashed
    return entries


def set_password(path: Path, username: str, password: str) -> None:
    """Add or replace one user's entry; the file stays readable by its owner only."""
    if ":" in username or not username:
        raise ValueError(f"invalid broker user name {username!r}")
    entries = read_password_file(path)
    entries[username] = hash_password(password)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text("".join(f"{user}:{hashed}\n" for user, hashed in sorted(entries.items())))
    tmp.chmod(0o600)
    tmp.replace(path)
