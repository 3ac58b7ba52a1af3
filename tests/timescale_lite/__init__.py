"""A real TimescaleDB engine where TimescaleDB cannot be installed: PGlite's WASM build.

PGlite with the TimescaleDB 2.23 extension, served over the PostgreSQL wire
protocol by Node.js (``server.mjs`` beside this file). It takes one connection
at a time and has no COPY; it exists to prove the Timescale SQL (hypertables,
continuous aggregates, policies) in tests. Real PostgreSQL stays the main
test database.
"""

from __future__ import annotations

import logging
import shutil
import signal
import subprocess
from pathlib import Path

from devstack.system import DevStackError, apt_install, wait_for_port

logger = logging.getLogger(__name__)

PACKAGE_DIR = Path(__file__).resolve().parent


def ensure_node() -> None:
    if not (shutil.which("node") and shutil.which("npm")):
        apt_install(["nodejs", "npm"])


class TimescaleLite:
    def __init__(self, work_dir: Path, port: int) -> None:
        self.work_dir = work_dir.resolve()
        self.port = port
        self.log_file = self.work_dir / "server.log"
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def dsn(self) -> str:
        # PGlite accepts any password and speaks no TLS.
        return f"postgresql://postgres:postgres@127.0.0.1:{self.port}/template1?sslmode=disable"

    def install(self) -> None:
        """Copy the server package to ``work_dir`` and install its npm dependencies once."""
        ensure_node()
        self.work_dir.mkdir(parents=True, exist_ok=True)
        for name in ("package.json", "package-lock.json", "server.mjs"):
            shutil.copy2(PACKAGE_DIR / name, self.work_dir / name)
        if not (self.work_dir / "node_modules" / "@unni-craftsman" / "pglite").exists():
            result = subprocess.run(
                ["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"],
                cwd=self.work_dir,
                capture_output=True,
                text=True,
                check=False,
            )
            if result.returncode != 0:
                raise DevStackError(f"npm ci for the TimescaleDB test engine failed: {result.stderr[-2000:]}")

    def start(self, timeout_s: float = 120) -> None:
        self.install()
        with self.log_file.open("ab") as log:
            self._process = subprocess.Popen(
                ["node", "server.mjs", str(self.port)],
                cwd=self.work_dir,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            wait_for_port("127.0.0.1", self.port, timeout_s, "TimescaleDB (PGlite)")
        except DevStackError:
            self.stop()
            tail = self.log_file.read_text()[-2000:]
            raise DevStackError(f"TimescaleDB (PGlite) did not start: {tail}") from None
        logger.info("TimescaleDB (PGlite) listening on 127.0.0.1:%d", self.port)

    def stop(self) -> None:
        if self._process is None:
            return
        self._process.send_signal(signal.SIGTERM)
        try:
            self._process.wait(10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        self._process = None
