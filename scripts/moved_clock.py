"""Runs the tests that read the wall clock again, with the clock moved.

Tests marked ``wallclock`` compute their dates from now. This script proves it:
moves the clock of every process the tests start by the same offset (Python
processes through time-machine, PostgreSQL, Mosquitto and Chromium through
libfaketime, Debian's ``faketime`` package; see tests/moved_clock/), at three
instants:

- weeks ahead, past the collector's 30-day plausibility window and the edge
  buffer's 14-day age limit, so no fixed date in a test can pass;
- two minutes before midnight UTC, so the tests run across a day boundary;
- two minutes before midnight in America/Los_Angeles, with the processes'
  local time zone set there too (a site far from UTC).

Usage: ``.venv/bin/python scripts/moved_clock.py [PYTEST ARGS]``; exits non-zero
when any run fails.
"""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

WEEKS_AHEAD = timedelta(days=45)
SITECUSTOMIZE = Path(__file__).resolve().parents[1] / "tests" / "moved_clock"


def seconds_until_before_midnight(tz: ZoneInfo, now: datetime, lead: timedelta) -> int:
    """Seconds from ``now`` to ``lead`` before the next midnight in ``tz``."""
    local = now.astimezone(tz)
    midnight = (local + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    target = midnight - lead
    if target <= local:
        target += timedelta(days=1)
    return int((target - local).total_seconds())


def main(pytest_args: list[str]) -> int:
    libs = sorted(Path("/usr/lib").glob("*/faketime/libfaketime.so.1"))
    if not libs:
        print("moved_clock: libfaketime is missing (apt-get install faketime)", file=sys.stderr)
        return 2
    now = datetime.now(UTC)
    lead = timedelta(minutes=2)
    runs = [
        (f"{WEEKS_AHEAD.days} days ahead", int(WEEKS_AHEAD.total_seconds()), "UTC"),
        ("2 minutes before midnight UTC", seconds_until_before_midnight(ZoneInfo("UTC"), now, lead), "UTC"),
        (
            "2 minutes before midnight in America/Los_Angeles",
            seconds_until_before_midnight(ZoneInfo("America/Los_Angeles"), now, lead),
            "America/Los_Angeles",
        ),
    ]
    failed = []
    for label, offset_s, tz in runs:
        print(f"moved clock: {label} (offset +{offset_s} s, TZ={tz})", flush=True)
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join(filter(None, [str(SITECUSTOMIZE), os.environ.get("PYTHONPATH")])),
            "TAKT_TEST_CLOCK_OFFSET_S": str(offset_s),
            "TAKT_TEST_FAKETIME_LIB": str(libs[0]),
            "TZ": tz,
        }
        cmd = [sys.executable, "-m", "pytest", "-m", "wallclock", "-q", "-p", "no:cacheprovider"]
        # sitecustomize imported time_machine before pytest could rewrite its plugin.
        cmd += ["-W", "ignore::pytest.PytestAssertRewriteWarning", *pytest_args]
        if subprocess.run(cmd, env=env, check=False).returncode != 0:
            failed.append(label)
    if failed:
        print(f"moved clock: failed at {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
