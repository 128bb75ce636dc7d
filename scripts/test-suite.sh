#!/usr/bin/env bash
# The whole test suite: start PostgreSQL, Redis and RabbitMQ if they are installed but stopped
# (scripts/start-services.sh), install what the suite needs (Debian's Chromium for the browser tests,
# tox), make pyenv's Pythons findable, then run tox (the matrix is in tox.ini). Extra arguments go to
# tox, e.g. `-e py311-django52-sqlite` (an SQLite-only selection does not need the services).
set -euo pipefail
cd "$(dirname "$0")/.."

needs_services=1
if [[ " $* " == *" -e "* ]]; then
  envs=$(printf '%s\n' "$@" | sed -n '/^-e$/{n;p}' | tr ',' ' ')
  [[ "$envs" == *pg* ]] || needs_services=0
fi
[ "$needs_services" = 0 ] || bash scripts/start-services.sh

if ! command -v chromium >/dev/null 2>&1 || ! command -v chromedriver >/dev/null 2>&1; then
  sudo=""
  [ "$(id -u)" = 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq chromium chromium-driver >/dev/null
fi

# pyenv installs each Python under ~/.pyenv/versions/X.Y.Z, but its shims only answer for the active
# version(s); put a `pythonX.Y` of every installed version on PATH so tox finds the ones it needs.
pyenv_root=${PYENV_ROOT:-$HOME/.pyenv}
if [ -d "$pyenv_root/versions" ]; then
  bin_dir=$(mktemp -d)
  trap 'rm -rf "$bin_dir"' EXIT
  for python in "$pyenv_root"/versions/*/bin/python3.*; do
    name=$(basename "$python")
    [[ "$name" =~ ^python3\.[0-9]+$ && -x "$python" ]] && ln -sf "$python" "$bin_dir/$name"
  done
  export PATH="$bin_dir:$PATH"
fi

python3 -m pip install --quiet --upgrade tox
python3 -m tox "$@"
