"""A PostgreSQL cluster in a local folder, started with the OS package's binaries."""

from __future__ import annotations

import logging
import os
import pwd
import secrets
import subprocess
from pathlib import Path

import psycopg

from devstack.system import DevStackError, find_postgres_bindir, is_root

logger = logging.getLogger(__name__)

# initdb and postgres refuse to run as root; the Debian package's account runs them.
_SERVICE_USER = "postgres"


class PostgresServer:
    """One cluster under ``root_dir``: ``pgdata/``, ``postgres.log`` and the superuser password."""

    def __init__(
        self, root_dir: Path, port: int, *, host: str = "127.0.0.1", user: str = "takt", durable: bool = True
    ) -> None:
        self.root_dir = root_dir.resolve()
        self.port = port
        self.host = host
        self.user = user
        # Tests may trade crash safety for speed; the dev stack and benchmarks keep fsync on.
        self.durable = durable
        self.pgdata = self.root_dir / "pgdata"
        self.log_file = self.root_dir / "postgres.log"
        self.password_file = self.root_dir / "superuser.password"

    # -- helpers -----------------------------------------------------------------
    def _bin(self, name: str) -> str:
        bindir = find_postgres_bindir()
        if bindir is None:
            raise DevStackError("PostgreSQL server binaries not found; run `takt dev up` to install them")
        return str(bindir / name)

    def _run(self, args: list[str], check: bool = True) -> subprocess.CompletedProcess[str]:
        if is_root():
            args = ["runuser", "-u", _SERVICE_USER, "--", *args]
        return subprocess.run(args, check=check, capture_output=True, text=True)

    def _own(self, path: Path) -> None:
        if is_root():
            entry = pwd.getpwnam(_SERVICE_USER)
            os.chown(path, entry.pw_uid, entry.pw_gid)

    @property
    def password(self) -> str:
        return self.password_file.read_text().strip()

    def dsn(self, database: str = "takt") -> str:
        return f"postgresql://{self.user}:{self.password}@{self.host}:{self.port}/{database}"

    @property
    def initialized(self) -> bool:
        return (self.pgdata / "PG_VERSION").exists()

    def timescaledb_available(self) -> bool:
        bindir = find_postgres_bindir()
        return bindir is not None and any((bindir.parent / "lib").glob("timescaledb*.so"))

    # -- lifecycle ---------------------------------------------------------------
    def _check_traversable(self) -> None:
        """As root the server runs as 'postgres', which must reach ``root_dir``."""
        if not is_root():
            return
        for parent in self.root_dir.parents:
            if not parent.stat().st_mode & 0o001:
                raise DevStackError(
                    f"{parent} is not searchable by other users, so the '{_SERVICE_USER}' account "
                    f"cannot reach {self.root_dir}; use a state folder elsewhere or `chmod o+x {parent}`"
                )

    def init(self) -> None:
        if self.initialized:
            return
        self.root_dir.mkdir(parents=True, exist_ok=True)
        self.root_dir.chmod(0o755)
        self._check_traversable()
        if not self.password_file.exists():
            self.password_file.write_text(secrets.token_urlsafe(18) + "\n")
            self.password_file.chmod(0o600)
        pwfile = self.root_dir / ".initdb-pw"
        pwfile.write_text(self.password + "\n")
        self._own(pwfile)
        self.pgdata.mkdir(exist_ok=True)
        self.pgdata.chmod(0o700)
        self._own(self.pgdata)
        self._own(self.root_dir)
        try:
            result = self._run(
                [
                    self._bin("initdb"),
                    "-D",
                    str(self.pgdata),
                    "-U",
                    self.user,
                    f"--pwfile={pwfile}",
                    "-A",
                    "scram-sha-256",
                    "-E",
                    "UTF8",
                    "--no-locale",
                ],
                check=False,
            )
        finally:
            pwfile.unlink(missing_ok=True)
        if result.returncode != 0:
            raise DevStackError(f"initdb failed: {result.stderr.strip()}")

    def running(self) -> bool:
        if not self.initialized:
            return False
        return self._run([self._bin("pg_ctl"), "-D", str(self.pgdata), "status"], check=False).returncode == 0

    def start(self, timeout_s: int = 60) -> None:
        self.init()
        if self.running():
            return
        options = [
            f"-p {self.port}",
            f"-c listen_addresses={self.host}",
            f"-k {self.pgdata}",
            "-c max_connections=200",
        ]
        if not self.durable:
            options += ["-c fsync=off", "-c synchronous_commit=off", "-c full_page_writes=off"]
        if self.timescaledb_available():
            options.append("-c shared_preload_libraries=timescaledb")
        if not self.log_file.exists():
            self.log_file.touch()
        self._own(self.log_file)
        result = self._run(
            [
                self._bin("pg_ctl"),
                "-D",
                str(self.pgdata),
                "-l",
                str(self.log_file),
                "-w",
                "-t",
                str(timeout_s),
                "-o",
                " ".join(options),
                "start",
            ],
            check=False,
        )
        if result.returncode != 0:
            tail = self.log_file.read_text()[-2000:] if self.log_file.exists() else ""
            raise DevStackError(f"PostgreSQL did not start: {result.stderr.strip()}\n{tail}")
        logger.info("PostgreSQL listening on %s:%d (data in %s)", self.host, self.port, self.pgdata)

    def stop(self, mode: str = "fast") -> None:
        if self.running():
            self._run([self._bin("pg_ctl"), "-D", str(self.pgdata), "-m", mode, "-w", "stop"])

    def create_database(self, name: str, *, exist_ok: bool = True) -> str:
        """Create ``name`` (if missing) and return its DSN."""
        with psycopg.connect(self.dsn("postgres"), autocommit=True) as conn:
            exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
            if exists and not exist_ok:
                raise DevStackError(f"database {name} exists")
            if not exists:
                conn.execute(f'CREATE DATABASE "{name}"')
        return self.dsn(name)

    def drop_database(self, name: str) -> None:
        with psycopg.connect(self.dsn("postgres"), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
