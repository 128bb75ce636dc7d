#!/usr/bin/env bash
# Make sure PostgreSQL, Redis and RabbitMQ answer on loopback, starting the ones that are installed but
# stopped. Run as root it starts them directly; anyone else goes through sudo. A service that does not
# answer in time fails loudly: the suite never skips a test for a missing service.
set -euo pipefail

sudo=""
[ "$(id -u)" = 0 ] || sudo="sudo"

wait_for() {  # name, seconds, command...
  local name=$1 seconds=$2; shift 2
  for _ in $(seq "$seconds"); do
    if "$@" >/dev/null 2>&1; then echo "services: $name is up"; return 0; fi
    sleep 1
  done
  echo "services: $name did not come up within ${seconds}s; start it (or point TRACKABLE_TEST_* at one) and rerun" >&2
  return 1
}
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

pg_port=${TRACKABLE_TEST_PG_PORT:-5432}
if ! port_open "$pg_port" && [ -d /etc/postgresql ]; then
  echo "services: starting PostgreSQL"
  for version in /etc/postgresql/*; do
    $sudo pg_ctlcluster --skip-systemctl-redirect "$(basename "$version")" main start || true
  done
fi
wait_for PostgreSQL 60 port_open "$pg_port"

if ! port_open 6379 && command -v redis-server >/dev/null 2>&1; then
  echo "services: starting Redis"
  $sudo mkdir -p /var/log/redis /var/lib/redis
  $sudo redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/trackable-tests.log || true
fi
wait_for Redis 30 port_open 6379

if ! port_open 5672 && command -v rabbitmq-server >/dev/null 2>&1; then
  echo "services: starting RabbitMQ"
  $sudo rabbitmq-server -detached || true
fi
wait_for RabbitMQ 120 port_open 5672
