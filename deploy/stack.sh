#!/usr/bin/env bash
# Starts and stops the sitewatch stack (Kafka, Schema Registry, PostgreSQL):
# with Docker Compose where a Docker engine and the Compose plugin answer,
# else natively (deploy/native/stack.sh). Both write .stack/env with the same
# variables.
#
#   deploy/stack.sh up|down|clean|status          Kafka, registry, PostgreSQL
#   deploy/stack.sh app-up [TARGETS_FILE]         sitewatch's recorder, prober and web (default targets.yaml)
#   deploy/stack.sh app-down|app-status
#   deploy/stack.sh mode                          print which of the two would run, and why
#   deploy/stack.sh receivers build|status        the alerter tests' real receivers (deploy/native/receivers.sh)
#
# SITEWATCH_STACK=native or SITEWATCH_STACK=compose forces one of the two.
# The choice and its reason go to stderr on every call.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

# choose sets mode and reason. `docker` may be only a client (`docker info`
# answers only with an engine), and an engine may lack the Compose plugin
# (`docker compose version` answers only with it).
choose() {
  if [[ -n ${SITEWATCH_STACK:-} ]]; then
    mode=$SITEWATCH_STACK reason="forced by SITEWATCH_STACK=$SITEWATCH_STACK"
  elif ! command -v docker >/dev/null 2>&1; then
    mode=native reason="no docker command on PATH"
  elif ! timeout 10 docker info >/dev/null 2>&1; then
    mode=native reason="'docker info' does not answer: no Docker engine reachable"
  elif ! timeout 10 docker compose version >/dev/null 2>&1; then
    mode=native reason="'docker info' answers but 'docker compose version' does not: the Compose plugin is missing"
  else
    mode=compose reason="'docker info' and 'docker compose version' answer"
  fi
}
choose
case "$mode" in
  native) echo "[stack] native stack (deploy/native/stack.sh): $reason" >&2 ;;
  compose) echo "[stack] Docker Compose (compose.yaml): $reason" >&2 ;;
  *) echo "SITEWATCH_STACK=$mode: want native or compose" >&2; exit 2 ;;
esac
if [[ ${1:-} == mode ]]; then
  echo "$mode"
  exit 0
fi
# The receivers are processes of the tests in either mode.
if [[ ${1:-} == receivers ]]; then
  exec bash deploy/native/receivers.sh "${@:2}"
fi

write_env() {
  mkdir -p .stack
  cat > .stack/env <<ENV
export KAFKA_BROKERS=127.0.0.1:9092
export SCHEMA_REGISTRY_URL=http://127.0.0.1:8081/apis/ccompat/v7
export DATABASE_URL='postgres://postgres@127.0.0.1:15432/sitewatch?sslmode=disable'
ENV
  echo "stack environment: $ROOT/.stack/env"
}

case "$mode" in
  native)
    case "${1:-}" in
      app-up) exec bash deploy/native/services.sh up "${2:-}" ;;
      app-down) exec bash deploy/native/services.sh down ;;
      app-status) exec bash deploy/native/services.sh status ;;
      *) exec bash deploy/native/stack.sh "$@" ;;
    esac
    ;;
  compose)
    case "${1:-}" in
      up) docker compose up -d --wait && write_env ;;
      down) docker compose --profile app stop ;;
      clean) docker compose --profile app down --volumes && rm -f .stack/env ;;
      status) docker compose ps ;;
      app-up)
        # The prober's container mounts the targets file's directory (a
        # single-file bind mount would keep the old file after a rename-save).
        if [[ -n ${2:-} ]]; then
          [[ -f $2 ]] || { echo "targets file $2 not found" >&2; exit 1; }
          SITEWATCH_TARGETS_DIR=$(cd "$(dirname "$2")" && pwd) SITEWATCH_TARGETS_FILE=$(basename "$2") \
            docker compose --profile app up -d --build --wait
        else
          docker compose --profile app up -d --build --wait
        fi
        echo "web pages: http://127.0.0.1:9103/ (status page: http://127.0.0.1:9103/status)"
        ;;
      app-down) docker compose --profile app stop web prober alerter alert-sink recorder ;;
      app-status) docker compose --profile app ps ;;
      *) echo "usage: deploy/stack.sh up|down|clean|status|app-up|app-down|app-status|mode" >&2; exit 2 ;;
    esac
    ;;
esac
