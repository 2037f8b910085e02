#!/usr/bin/env bash
# villagewatch — set up everything a fresh Debian 12 / Ubuntu 24.04 machine needs, then run:
#   bash scripts/bootstrap.sh demo [demo options]   the pilot smart-village demo
#   bash scripts/bootstrap.sh test [pytest options]  lint + the whole test suite
#   bash scripts/bootstrap.sh setup                  only install
# Run as root (or with sudo available). Safe to run again: it installs only what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
ACTION="${1:-}"; shift || true
case "$ACTION" in demo|test|setup) ;; *) echo "usage: bash scripts/bootstrap.sh demo|test|setup [args]" >&2; exit 2;; esac

log() { printf '\033[1m[bootstrap]\033[0m %s\n' "$*" >&2; }
SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"

# --- system packages (Debian names). binary:package pairs; only missing ones are installed.
NEED=(
  "mosquitto:mosquitto" "mosquitto_passwd:mosquitto" "mosquitto_sub:mosquitto-clients"
  "influxd:influxdb" "influx:influxdb-client"
  "python3:python3" "git:git" "pgrep:procps" "node:nodejs" "npm:npm"
)
if [ "$ACTION" != demo ]; then
  # victoria-metrics: the second line-protocol engine the InfluxDB client's v2 path is tested on
  NEED+=("chromium:chromium" "pdftoppm:poppler-utils" "docker-compose:docker-compose"
         "victoria-metrics:victoria-metrics")
fi
missing=()
for pair in "${NEED[@]}"; do
  bin="${pair%%:*}"; pkg="${pair##*:}"
  command -v "$bin" >/dev/null 2>&1 || [ -x "/usr/sbin/$bin" ] || missing+=("$pkg")
done
python3 -c 'import ensurepip, venv' 2>/dev/null || missing+=("python3-venv")
# Vietnamese diacritics in browser screenshots and reports need a font that has them
if [ "$ACTION" != demo ] && [ ! -e /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ]; then
  missing+=("fonts-dejavu-core")
fi
if [ ${#missing[@]} -gt 0 ]; then
  mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)
  log "installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -q
  $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
# The Debian packages start system services where an init system runs; villagewatch starts its own
# instances on free ports, so those are not needed (and are harmless).

PY=python3
if ! $PY -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
  echo "villagewatch needs Python >= 3.11 (found $($PY --version)). Debian 12 and Ubuntu 24.04 have it." >&2
  exit 1
fi

# --- virtualenv + Python packages (re-installed only when pyproject.toml changes)
if [ ! -x .venv/bin/python ]; then
  log "creating virtualenv .venv"
  $PY -m venv .venv
fi
# re-install when the dependencies or the set of top-level packages change (an editable install
# maps the packages it saw; a new top-level package needs a new install)
stamp=".venv/.vw-installed-$( (cat pyproject.toml; ls -d */__init__.py) | sha256sum | cut -c1-16)"
if [ ! -f "$stamp" ]; then
  log "installing Python packages (pip)"
  .venv/bin/python -m pip install -q --upgrade pip >/dev/null
  .venv/bin/python -m pip install -q -e '.[test]'
  rm -f .venv/.vw-installed-*; touch "$stamp"
fi

# --- npm packages, each folder re-installed only when its lock file changes:
#   portal/static        Leaflet, served by the portal itself (no CDN at run time)
#   dashboards/typecheck Grafana's published types for the dashboards type-check (tests only)
npm_folders=(portal/static)
[ "$ACTION" = demo ] || npm_folders+=(dashboards/typecheck)
for folder in "${npm_folders[@]}"; do
  lockstamp="$folder/node_modules/.vw-$(sha256sum "$folder/package-lock.json" | cut -c1-16)"
  if [ ! -f "$lockstamp" ]; then
    log "installing npm packages ($folder)"
    (cd "$folder" && npm ci --no-audit --no-fund --loglevel=error) && touch "$lockstamp"
  fi
done

case "$ACTION" in
  setup) log "ready: .venv/bin/villagewatch --help" ;;
  demo)  exec .venv/bin/villagewatch demo "$@" ;;
  test)
    log "ruff check"
    .venv/bin/ruff check .
    log "floors: import contracts (lint-imports) and types (mypy; strict on villagewatch/)"
    .venv/bin/lint-imports
    .venv/bin/mypy
    log "pytest"
    exec .venv/bin/python -m pytest -q -p no:cacheprovider "$@"
    ;;
esac
