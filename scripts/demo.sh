#!/usr/bin/env bash
# Runs the whole pipeline on this machine with demo footage (`takt demo`).
# Installs what is missing first (scripts/bootstrap.sh). Ctrl-C stops everything.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/bootstrap.sh
exec .venv/bin/takt demo "$@"
