#!/usr/bin/env bash
# Make sure PostgreSQL and RabbitMQ answer on loopback, starting them when they are
# installed but down. Under CI=true a service that still does not answer is a failure;
# elsewhere it is a warning and the tests that need it skip with the reason.
set -u

PG_HOST=${CHRONICLE_TEST_PG_HOST:-127.0.0.1}
PG_PORT=${CHRONICLE_TEST_PG_PORT:-5432}
AMQP_HOST=${CHRONICLE_TEST_AMQP_HOST:-127.0.0.1}
AMQP_PORT=${CHRONICLE_TEST_AMQP_PORT:-5672}

answers() {  # host port
  timeout 2 bash -c "exec 3<>/dev/tcp/$1/$2" 2>/dev/null
}

wait_for() {  # name host port seconds
  local i
  for ((i = 0; i < $4; i++)); do
    answers "$2" "$3" && return 0
    sleep 1
  done
  return 1
}

start_postgres() {
  command -v pg_ctlcluster >/dev/null || return 1
  local version
  version=$(ls /etc/postgresql 2>/dev/null | sort -V | tail -n 1)
  [ -n "$version" ] || return 1
  pg_ctlcluster --skip-systemctl-redirect "$version" main start
}

start_rabbitmq() {
  command -v rabbitmq-server >/dev/null || return 1
  rabbitmq-server -detached
}

failed=0
ensure() {  # name host port starter
  if answers "$2" "$3"; then
    echo "$1: up at $2:$3"
    return
  fi
  echo "$1: down at $2:$3, starting it"
  $4 || echo "$1: could not be started here"
  if wait_for "$1" "$2" "$3" 60; then
    echo "$1: up at $2:$3"
  else
    echo "$1: NOT reachable at $2:$3"
    failed=1
  fi
}

ensure PostgreSQL "$PG_HOST" "$PG_PORT" start_postgres
ensure RabbitMQ "$AMQP_HOST" "$AMQP_PORT" start_rabbitmq

if [ "$failed" = 1 ]; then
  if [ "${CI:-}" = "true" ]; then
    echo "CI=true: every service must be reachable" >&2
    exit 1
  fi
  echo "warning: tests that need a missing service will be skipped" >&2
fi
exit 0
