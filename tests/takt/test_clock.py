"""The clocks the tests rely on agree, also in the moved-clock runs (scripts/moved_clock.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest

pytestmark = pytest.mark.wallclock


def test_python_postgres_and_child_processes_share_one_clock(fresh_database: str) -> None:
    with psycopg.connect(fresh_database) as conn:
        row = conn.execute("SELECT now()").fetchone()
    assert row is not None
    here = datetime.now(UTC)
    assert abs((row[0] - here).total_seconds()) < 5, (row[0], here)
    child = subprocess.run(
        [sys.executable, "-c", "import time; print(time.time())"], capture_output=True, text=True, check=True
    )
    assert abs(float(child.stdout) - here.timestamp()) < 5
    date = subprocess.run(["date", "+%s"], capture_output=True, text=True, check=True)
    assert abs(int(date.stdout) - here.timestamp()) < 5


def test_the_clock_is_moved_by_the_offset_asked_for(tmp_path: Path) -> None:
    # A new file's mtime comes from the kernel's real clock, which nothing here moves.
    probe = tmp_path / "probe"
    probe.write_text("")
    real = probe.stat().st_mtime
    offset = float(os.environ.get("TAKT_TEST_CLOCK_OFFSET_S", "0"))
    assert abs(datetime.now(UTC).timestamp() - real - offset) < 5
