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
extras="${TAKT_EXTRAS:-edge,onnx,dev}"
stamp=".venv/.takt-installed-${extras//,/-}"
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -e ".[${extras}]"
  touch "$stamp"
fi

# The dashboard's browser libraries (no CDN): npm installs the locked
# versions and their dist files are copied next to the page, which serves
# them from /dashboard/vendor/. Needs npm (TAKT_EXTRA_OS_PACKAGES="npm:npm").
vendor="dashboard/static/vendor"
if [ ! -f "$vendor/.stamp" ] || [ dashboard/package-lock.json -nt "$vendor/.stamp" ]; then
  if command -v npm >/dev/null 2>&1; then
    (cd dashboard && npm ci --silent --no-audit --no-fund)
    mkdir -p "$vendor"
    cp dashboard/node_modules/uplot/dist/uPlot.esm.js dashboard/node_modules/uplot/dist/uPlot.min.css "$vendor/"
    cp dashboard/node_modules/uplot/LICENSE "$vendor/uPlot.LICENSE"
    touch "$vendor/.stamp"
  else
    echo "bootstrap: npm not found; the dashboard's charts need it (TAKT_EXTRA_OS_PACKAGES=\"node:nodejs npm:npm\")" >&2
  fi
fi
