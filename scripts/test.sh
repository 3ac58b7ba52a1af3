#!/usr/bin/env bash
# Runs every check: ruff, mypy, the dashboard's node tests and the whole pytest suite against real
# Mosquitto and PostgreSQL servers that the tests start themselves.
# Installs what is missing first (scripts/bootstrap.sh). Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
# Node.js runs the TimescaleDB test engine (takt/devstack/timescale_lite);
# npm vendors the dashboard's chart library; Chromium runs its end-to-end tests.
TAKT_EXTRA_OS_PACKAGES="node:nodejs npm:npm chromium:chromium ${TAKT_EXTRA_OS_PACKAGES:-}" ./scripts/bootstrap.sh
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy
# The dashboard's pure JavaScript helpers (durations, site-time-zone windows, rows),
# in a machine time zone that is neither UTC nor a whole-hour offset.
TZ=Pacific/Chatham node --test tests/dashboard/js/
.venv/bin/python -m pytest "$@"
