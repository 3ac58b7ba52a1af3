#!/usr/bin/env bash
# Runs every check: ruff, mypy, the dashboard's node tests and the whole pytest suite against real
# Mosquitto and PostgreSQL servers that the tests start themselves.
# Installs what is missing first (scripts/bootstrap.sh). Extra arguments go to pytest
# (and skip the moved-clock re-run of the wall-clock tests).
set -euo pipefail
cd "$(dirname "$0")/.."
# Node.js runs the TimescaleDB test engine (tests/timescale_lite);
# npm vendors the dashboard's chart library; Chromium runs its end-to-end tests.
# faketime moves the clock for the wall-clock tests (scripts/moved_clock.py).
TAKT_EXTRA_OS_PACKAGES="node:nodejs npm:npm chromium:chromium faketime:faketime ${TAKT_EXTRA_OS_PACKAGES:-}" ./scripts/bootstrap.sh
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy
# The dashboard's JavaScript: ESLint (installed by bootstrap's npm ci), then its
# pure helpers (durations, site-time-zone windows, rows),
# in a machine time zone that is neither UTC nor a whole-hour offset.
(cd dashboard && node_modules/.bin/eslint static/js)
TZ=Pacific/Chatham node --test tests/dashboard/js/
.venv/bin/python -m pytest "$@"
# The tests that read the wall clock, again with the clock moved (weeks ahead,
# just before midnight in UTC and in a far time zone); only for a whole run.
if [ $# -eq 0 ]; then
  .venv/bin/python scripts/moved_clock.py
fi
