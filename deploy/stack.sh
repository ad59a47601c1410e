#!/usr/bin/env bash
# Starts and stops the sitewatch stack (Kafka, Schema Registry, PostgreSQL):
# with Docker Compose where a Docker engine answers, else natively
# (deploy/native/stack.sh). Both write .stack/env with the same variables.
#
#   deploy/stack.sh up|down|clean|status          Kafka, registry, PostgreSQL
#   deploy/stack.sh app-up|app-down|app-status    sitewatch's recorder and prober (targets.yaml)
#
# SITEWATCH_STACK=native or SITEWATCH_STACK=compose forces one of the two.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

mode=${SITEWATCH_STACK:-}
if [ -z "$mode" ]; then
  # `docker` may be only a client; `docker info` answers only with an engine.
  if command -v docker >/dev/null 2>&1 && timeout 5 docker info >/dev/null 2>&1; then
    mode=compose
  else
    mode=native
  fi
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
      app-up) docker compose --profile app up -d --build --wait ;;
      app-down) docker compose --profile app stop prober recorder ;;
      app-status) docker compose --profile app ps ;;
      *) echo "usage: deploy/stack.sh up|down|clean|status|app-up|app-down|app-status" >&2; exit 2 ;;
    esac
    ;;
  *) echo "SITEWATCH_STACK=$mode: want native or compose" >&2; exit 2 ;;
esac
