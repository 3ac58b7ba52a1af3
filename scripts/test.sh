#!/usr/bin/env bash
# Runs every check: ruff, mypy and the whole pytest suite against real
# Mosquitto and PostgreSQL servers that the tests start themselves.
# Installs what is missing first (scripts/bootstrap.sh). Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/bootstrap.sh
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy
.venv/bin/python -m pytest "$@"
