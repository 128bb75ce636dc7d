#!/usr/bin/env bash
# The whole test suite: install what it needs (Debian's Chromium for the browser tests, tox), then
# run tox: Django 4.2 and 5.2 × (SQLite + filesystem://, PostgreSQL + RabbitMQ, PostgreSQL + Redis)
# and the docs. Extra arguments go to tox, e.g. `-e django52-sqlite`.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v chromium >/dev/null 2>&1 || ! command -v chromedriver >/dev/null 2>&1; then
  sudo=""
  [ "$(id -u)" = 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq chromium chromium-driver >/dev/null
fi
python3 -m pip install --quiet --upgrade tox
exec python3 -m tox "$@"
