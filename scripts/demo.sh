#!/usr/bin/env bash
# Runs the whole pipeline on this machine with demo footage (`takt demo`).
# Installs what is missing first (scripts/bootstrap.sh). Ctrl-C stops everything.
set -euo pipefail
cd "$(dirname "$0")/.."
# npm checks the committed copy of the dashboard's chart library against its lock (no CDN).
TAKT_EXTRA_OS_PACKAGES="node:nodejs npm:npm ${TAKT_EXTRA_OS_PACKAGES:-}" ./scripts/bootstrap.sh
exec .venv/bin/takt demo "$@"
