#!/usr/bin/env bash
# Runs sitewatch's own services (recorder, alerter, prober, web) as background processes next to the native
# stack: binaries in .stack/bin, pid files in .stack/run, logs in .stack/logs.
#
#   deploy/native/services.sh up [TARGETS_FILE]   build, start what is not running, wait for /readyz
#   deploy/native/services.sh down                SIGTERM each, wait for them to flush and exit
#   deploy/native/services.sh status              pid, mode and endpoints of each
#
# The prober runs in fleet mode by default: `up` applies TARGETS_FILE (default targets.yaml) to the
# targets topic (`prober targets apply`) and starts one prober with -fleet -region local. In fleet
# mode the prober does not watch the file: change targets with `prober targets apply FILE` (or `up`
# again). SITEWATCH_PROBER_MODE=file starts it as before, with -config TARGETS_FILE (reloaded when
# the file changes).
#
# The alerter runs with -config TARGETS_FILE (its policies, channels and maintenance windows; reloaded
# when the file changes) and writes incidents and the notification outbox. Beside it runs `alerter
# sink` on SITEWATCH_ALERT_SINK_LISTEN (default 127.0.0.1:9105), the local webhook receiver of the
# shipped targets.yaml's `local-log` channel: each notification is one JSON line in .stack/logs/alerts.log.
#
# Needs the stack's .stack/env (deploy/stack.sh up). Ports: SITEWATCH_PROBER_LISTEN (default
# 127.0.0.1:9101), SITEWATCH_RECORDER_LISTEN (127.0.0.1:9102) and SITEWATCH_ALERTER_LISTEN
# (127.0.0.1:9104) for /metrics, /healthz, /readyz; SITEWATCH_WEB_LISTEN (127.0.0.1:9103) for the
# web pages (and their /metrics, /healthz, /readyz).
# Fleet mode: SITEWATCH_PROBER_REGION (default local), SITEWATCH_PROBER_INSTANCE (default local-1).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
STACK=$ROOT/.stack
BIN=$STACK/bin
RUN=$STACK/run
LOGS=$STACK/logs
PROBER_LISTEN=${SITEWATCH_PROBER_LISTEN:-127.0.0.1:9101}
RECORDER_LISTEN=${SITEWATCH_RECORDER_LISTEN:-127.0.0.1:9102}
WEB_LISTEN=${SITEWATCH_WEB_LISTEN:-127.0.0.1:9103}
ALERTER_LISTEN=${SITEWATCH_ALERTER_LISTEN:-127.0.0.1:9104}
ALERT_SINK_LISTEN=${SITEWATCH_ALERT_SINK_LISTEN:-127.0.0.1:9105}
PROBER_MODE=${SITEWATCH_PROBER_MODE:-fleet}
PROBER_REGION=${SITEWATCH_PROBER_REGION:-local}
PROBER_INSTANCE=${SITEWATCH_PROBER_INSTANCE:-local-1}
READY_TIMEOUT=${READY_TIMEOUT:-120}
STOP_TIMEOUT=${STOP_TIMEOUT:-60}

log() { printf '[services] %s\n' "$*" >&2; }
die() { printf '[services] ERROR: %s\n' "$*" >&2; exit 1; }

alive() { local pid; pid=$(cat "$RUN/$1.pid" 2>/dev/null) && kill -0 "$pid" 2>/dev/null; }

ready() { [[ $(curl -s -o /dev/null -w '%{http_code}' --max-time 3 "http://$1/readyz") == 200 ]]; }

start() { # start NAME LISTEN ARGS...; BINARY and SUBCOMMAND run another binary than NAME, or a subcommand
  local name=$1 listen=$2; shift 2
  if alive "$name"; then
    log "$name already runs (pid $(cat "$RUN/$name.pid"))"
  else
    log "starting $name ($*), log $LOGS/$name.log"
    # setsid: the service outlives this shell and the task that ran it.
    setsid "$BIN/${BINARY:-$name}" ${SUBCOMMAND:+"$SUBCOMMAND"} -listen "$listen" "$@" >>"$LOGS/$name.log" 2>&1 </dev/null &
    echo $! >"$RUN/$name.pid"
  fi
  local i
  for ((i = 0; i < READY_TIMEOUT; i++)); do
    ready "$listen" && { log "$name ready: http://$listen/metrics"; return 0; }
    alive "$name" || { tail -n 30 "$LOGS/$name.log" >&2; die "$name exited; see $LOGS/$name.log"; }
    sleep 1
  done
  tail -n 30 "$LOGS/$name.log" >&2
  die "$name not ready (http://$listen/readyz) after ${READY_TIMEOUT}s"
}

stop() { # stop NAME
  local name=$1 pid i
  alive "$name" || { rm -f "$RUN/$name.pid"; return 0; }
  pid=$(cat "$RUN/$name.pid")
  log "stopping $name (pid $pid)"
  kill -TERM "$pid"
  for ((i = 0; i < STOP_TIMEOUT * 10; i++)); do
    kill -0 "$pid" 2>/dev/null || { rm -f "$RUN/$name.pid"; return 0; }
    sleep 0.1
  done
  log "$name did not stop within ${STOP_TIMEOUT}s; killing it"
  kill -KILL "$pid" 2>/dev/null || true
  rm -f "$RUN/$name.pid"
}

cmd_up() {
  local targets=${1:-$ROOT/targets.yaml}
  [[ -f $STACK/env ]] || die "$STACK/env is missing: start the stack first (go tool task stack:up)"
  [[ -f $targets ]] || die "targets file $targets not found"
  [[ $PROBER_MODE == fleet || $PROBER_MODE == file ]] || die "SITEWATCH_PROBER_MODE=$PROBER_MODE: want fleet or file"
  mkdir -p "$BIN" "$RUN" "$LOGS"
  log "building prober, recorder, alerter and web into $BIN"
  (cd "$ROOT" && go build -o "$BIN/" ./services/prober ./services/recorder ./services/alerter ./services/web)
  "$BIN/prober" -config "$targets" -validate
  set -a
  # shellcheck disable=SC1091
  . "$STACK/env"
  set +a
  # The recorder migrates at start; several recorders may start at once (goose session lock).
  start recorder "$RECORDER_LISTEN"
  # The local receiver before the alerter, which may have notifications waiting for it.
  BINARY=alerter SUBCOMMAND=sink start alerts "$ALERT_SINK_LISTEN"
  # After the recorder: the alerter waits for the tables the recorder's migrations create.
  start alerter "$ALERTER_LISTEN" -config "$targets"
  # After the recorder: it reads the tables the recorder's migrations made.
  start web "$WEB_LISTEN"
  log "web pages: http://$WEB_LISTEN/ (status page: http://$WEB_LISTEN/status)"
  if [[ $PROBER_MODE == file ]]; then
    echo "file $targets" >"$RUN/prober.mode"
    start prober "$PROBER_LISTEN" -config "$targets"
    return
  fi
  # Only the difference from what the topic holds is published: applying the same file again
  # publishes nothing.
  log "applying $targets to the targets topic (prober targets apply)"
  "$BIN/prober" targets apply "$targets"
  echo "fleet region $PROBER_REGION instance $PROBER_INSTANCE" >"$RUN/prober.mode"
  start prober "$PROBER_LISTEN" -fleet -region "$PROBER_REGION" -instance "$PROBER_INSTANCE"
}

cmd_down() {
  stop web
  # The prober first, so that its last results can still be recorded.
  stop prober
  rm -f "$RUN/prober.mode"
  stop alerter
  stop alerts
  stop recorder
}

cmd_status() {
  local name listen
  for name in prober recorder alerter alerts web; do
    listen=$PROBER_LISTEN
    [[ $name == recorder ]] && listen=$RECORDER_LISTEN
    [[ $name == alerter ]] && listen=$ALERTER_LISTEN
    [[ $name == alerts ]] && listen=$ALERT_SINK_LISTEN
    [[ $name == web ]] && listen=$WEB_LISTEN
    if alive "$name"; then
      printf '%-9s running      pid %-7s http://%s/metrics  %s%s\n' "$name" "$(cat "$RUN/$name.pid")" "$listen" \
        "$(ready "$listen" && echo ready || echo 'NOT ready')" \
        "$([[ $name == prober && -f $RUN/prober.mode ]] && echo "  ($(cat "$RUN/prober.mode"))")"
    else
      printf '%-9s not running\n' "$name"
    fi
  done
}

case ${1:-} in
  up) cmd_up "${2:-}" ;;
  down) cmd_down ;;
  status) cmd_status ;;
  *) echo "usage: $0 up [TARGETS_FILE]|down|status" >&2; exit 2 ;;
esac
