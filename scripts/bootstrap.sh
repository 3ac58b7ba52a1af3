#!/usr/bin/env bash
# Installs everything Takt needs on a fresh Debian/Ubuntu machine:
# OS packages (Mosquitto, PostgreSQL) and a virtual environment in .venv.
# Idempotent; re-running after a pyproject change re-installs the Python deps.
set -euo pipefail
cd "$(dirname "$0")/.."

need_os=()
command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ] || need_os+=(mosquitto mosquitto-clients)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need_os+=(postgresql)
command -v python3 >/dev/null 2>&1 || need_os+=(python3)
python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || need_os+=(python3-venv)
# Further needs as COMMAND:PACKAGE pairs, e.g. "node:nodejs npm:npm" (scripts/test.sh).
for pair in ${TAKT_EXTRA_OS_PACKAGES:-}; do
  command -v "${pair%%:*}" >/dev/null 2>&1 || need_os+=("${pair##*:}")
done
if [ ${#need_os[@]} -gt 0 ]; then
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "bootstrap: installing OS packages: ${need_os[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need_os[@]}"
fi

# onnx (ONNX Runtime, light) is in the default so the yolo backend is tested for real.
extras="${TAKT_EXTRAS:-cloud,edge,onnx,dev}"
stamp=".venv/.takt-installed-${extras//,/-}"
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -e ".[${extras}]"
  touch "$stamp"
fi

# The dashboard's chart library (no CDN) is committed in dashboard/static/vendor/,
# so every install (pip, the Docker image, compose) serves it as package data.
# dashboard/package-lock.json records its version: where npm is installed, this
# checks that the committed files are that version's dist files, and with
# TAKT_VENDOR_UPDATE=1 (after changing the lock) copies them in.
vendor="dashboard/static/vendor"
checked="dashboard/node_modules/.takt-vendor-checked"
if command -v npm >/dev/null 2>&1 && { [ ! -f "$checked" ] || [ -n "$(find dashboard/package-lock.json "$vendor" -newer "$checked" | head -1)" ] || [ -n "${TAKT_VENDOR_UPDATE:-}" ]; }; then
  (cd dashboard && npm ci --silent --no-audit --no-fund)
  dist="dashboard/node_modules/uplot"
  for pair in "dist/uPlot.esm.js:uPlot.esm.js" "dist/uPlot.min.css:uPlot.min.css" "LICENSE:uPlot.LICENSE"; do
    src="$dist/${pair%%:*}" dst="$vendor/${pair##*:}"
    if [ -n "${TAKT_VENDOR_UPDATE:-}" ]; then
      mkdir -p "$vendor" && cp "$src" "$dst"
    elif ! cmp -s "$src" "$dst"; then
      echo "bootstrap: $dst differs from $src (the version in dashboard/package-lock.json);" \
        "run TAKT_VENDOR_UPDATE=1 ./scripts/bootstrap.sh and commit the result" >&2
      exit 1
    fi
  done
  touch "$checked"
fi
