#!/usr/bin/env bash
# The benchmark suite (`task bench`): one table of figures, each beside an
# anchor measured in the same run on the same machine. Figures are reported,
# never asserted.
#
#   deploy/bench/bench.sh                 full run (about 8 minutes, 4.5 of them the fleet)
#   BENCH_QUICK=1 deploy/bench/bench.sh   shorter durations, backlog and fleet (about 2.5 minutes)
#
# What runs, in order:
#   1. nginx (worker_processes 1, a ~2 KB static page) on free 127.0.0.1 ports,
#      one per step, with a temporary configuration (`benchhost nginx`); the
#      new-connection ceiling is `wrk -t1 -c32 -d8s -H "Connection: close"` against it.
#   2. Prometheus blackbox_exporter v0.27.0 (built once into .stack/bench from a
#      scratch module, then cached), driven with `wrk -t1 -c16 -d10s` at /probe
#      with module http_2xx and with a body-regexp module; CPU per probe from
#      /proc/PID/stat utime+stime deltas over the run (`benchhost proc PID`).
#   3. The prober's pipeline (services/prober/cmd/probebench) against the same
#      page at the same concurrency (16 checks at once, 20,000 checks/s
#      offered so that it runs flat out): with and without Kafka, and with the
#      same body pattern; then 10,000 targets every 10 s for RSS and schedule lag.
#      Results go through the on-disk spool as in the prober; a run with
#      -no-spool (memory only) gives the spool's CPU cost. Then the spool after
#      an outage: DRAIN_RESULTS results spooled with Kafka unreachable (bytes
#      on disk per result), delivered while 1,000 targets are checked every
#      second (drain rate).
#   4. End to end (services/testing/cmd/e2ebench): the prober and recorder
#      binaries as processes, 1,000 targets every second against the page,
#      a fresh topic and database; delay from check start to committed row.
#   5. The recorder's benchmark program (services/recorder/cmd/recorderbench,
#      when the tree has it): draining a 1,000,000-event backlog with rollups
#      beside two binary COPYs of the same rows (into a table without keys, and
#      into one with check_results' keys, indexes and daily partitions: the
#      limit of the storage design), RSS while draining, and the delay to the
#      committed row at 1,000 events/s.
#
#   6. Reloads of the targets file (BenchmarkReload in services/prober, run
#      with `go test -bench -benchtime 3x`, the mean of 3): a file of 10,000 and of 100,000
#      targets replaced by one of 2 (removed) and the reverse (added), beside
#      the parse of the same large file alone. No services needed.
#
#   9. Fleet mode (services/testing/cmd/fleetbench): FLEET_TARGETS targets
#      every FLEET_INTERVAL published with `prober targets apply` to a fresh
#      targets topic, checked by 4 prober processes in -fleet mode (one
#      region, -session-timeout FLEET_SESSION) against its own nginx on 8
#      ports; events read from a fresh topic: checks/s, slots complete per
#      window of one interval, CPU and RSS per prober, then a kill -9 of one
#      prober and a join of a fifth (about 4.5 minutes; 1.5 with BENCH_QUICK=1).
#
#  10. The web pages (services/testing/cmd/webbench): the web binary over a fresh
#      database of 1,000 targets with 30 days of hourly rollups (720,000 rows, loaded
#      with SQL after `recorder migrate`); WEB_REQUESTS requests in a row per page
#      after a warm-up, timed at the client on loopback: p50 and p95 of `/` (goal:
#      under 200 ms), a target's page over 24 h and 90 d, the status page, the API.
#  11. The alerter (services/testing/cmd/alertbench, with the alerter and
#      recorder binaries as processes): confirming check to the request at a
#      local webhook receiver at 1,000 checks/s (p50, p99); a backlog of
#      RECORDER_EVENTS check results drained by the recorder, then evaluated by
#      the alerter (events/s of each); `alerter backtest` over the stored rows.
#
# Kafka, the registry and PostgreSQL come from .stack/env; when there is none,
# or one of the three does not answer there (after `task down`), the stack is
# started with deploy/stack.sh up first. The benchmark programs create their
# own topics and databases and remove them afterwards. The table goes to stdout and to
# .stack/bench/results.md; the logs of each step go to .stack/bench/logs/.
#
# The benchmark programs print one JSON object each (their doc.go lists the
# fields), kept in .stack/bench/logs/*.json; this script reads them with jq.
# Free ports, a process's CPU time and memory, and nginx come from
# services/testing/benchhost, as in the programs (here through
# services/testing/cmd/benchhost).
#
# RECORDERBENCH=/path/to/recorderbench and RECORDER_BIN=/path/to/recorder run
# binaries built elsewhere (another branch) instead of this tree's.
set -uo pipefail
# shellcheck disable=SC2016 # backquotes in the table are Markdown, not expansions

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT" || exit 1

BLACKBOX_VERSION=v0.27.0
BENCH_DIR=$ROOT/.stack/bench
LOGS=$BENCH_DIR/logs
BIN=$ROOT/bin
PATTERN='quick brown fox'

if [[ -n ${BENCH_QUICK:-} ]]; then
  MODE="quick (BENCH_QUICK=1)"
  CEILING_DURATION=4s BLACKBOX_DURATION=5s WARMUP=1s
  PROBER_DURATION=5s MEMORY_DURATION=10s E2E_WARMUP=3s E2E_DURATION=10s
  RECORDER_EVENTS=200000 RECORDER_RATE_FOR=10s DRAIN_RESULTS=100000 ALERT_RATE_FOR=10s
  FLEET_TARGETS=10000 FLEET_INTERVAL=15s FLEET_WARMUP=10s FLEET_SESSION=6s
  WEB_REQUESTS=20
else
  MODE=full
  CEILING_DURATION=8s BLACKBOX_DURATION=10s WARMUP=2s
  PROBER_DURATION=10s MEMORY_DURATION=20s E2E_WARMUP=5s E2E_DURATION=20s
  RECORDER_EVENTS=1000000 RECORDER_RATE_FOR=30s DRAIN_RESULTS=500000 ALERT_RATE_FOR=30s
  FLEET_TARGETS=100000 FLEET_INTERVAL=60s FLEET_WARMUP=20s FLEET_SESSION=10s
  WEB_REQUESTS=100
fi

log() { printf 'bench: %s\n' "$*" >&2; }
die() { printf 'bench: %s\n' "$*" >&2; exit 1; }

mkdir -p "$BENCH_DIR" "$LOGS" "$BIN" || die "cannot create $BENCH_DIR"
rm -f "$LOGS"/*.log "$LOGS"/*.err "$LOGS"/*.json # only this run's logs, so that none is mistaken for its own
RUN_DIR=$(mktemp -d "$BENCH_DIR/run.XXXXXX") || die "mktemp under $BENCH_DIR failed"

# Every process this script starts is stopped by its pid on the way out.
PIDS=()
cleanup() {
  local pid
  for pid in "${PIDS[@]}"; do
    kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
  done
  rm -rf "$RUN_DIR"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- stack --------------------------------------------------------------------

command -v curl >/dev/null 2>&1 || die "curl not found on PATH (apt-get install -y curl)"

# tcp_answers HOST:PORT: something accepts connections there.
tcp_answers() { (exec 3<>"/dev/tcp/${1%:*}/${1##*:}") 2>/dev/null; }

# stack_silent: prints what of .stack/env does not answer (nothing when all do).
stack_silent() {
  local broker=${KAFKA_BROKERS%%,*} pg
  # postgres://user@host:port/db?... -> host:port
  pg=${DATABASE_URL#*://}
  pg=${pg#*@}
  pg=${pg%%[/?]*}
  tcp_answers "$broker" || echo "Kafka at $broker"
  curl -fsS -o /dev/null --max-time 3 "$SCHEMA_REGISTRY_URL/subjects" 2>/dev/null ||
    echo "the registry at $SCHEMA_REGISTRY_URL"
  tcp_answers "$pg" || echo "PostgreSQL at $pg"
}

load_env() {
  set -a
  # shellcheck disable=SC1091
  . .stack/env
  set +a
}

# A stack that answers is used as it is (it may be another checkout's, shared
# through .stack); where there is none, or it was stopped, it is started.
silent=""
if [[ ! -f .stack/env ]]; then
  silent="no .stack/env"
else
  load_env
  silent=$(stack_silent | paste -sd, - | sed 's/,/, /g')
fi
if [[ -n $silent ]]; then
  log "the stack does not answer ($silent): starting it (deploy/stack.sh up)"
  bash deploy/stack.sh up >&2 || die "the stack did not start: see the lines above (go tool task stack:up)"
  load_env
  silent=$(stack_silent | paste -sd, - | sed 's/,/, /g')
  [[ -z $silent ]] || die "the stack started but does not answer: $silent (.stack/env)"
fi

# --- tools --------------------------------------------------------------------

command -v go >/dev/null 2>&1 || die "go not found on PATH"

find_nginx() { command -v nginx 2>/dev/null || { [[ -x /usr/sbin/nginx ]] && echo /usr/sbin/nginx; }; }

missing=()
[[ -n $(find_nginx) ]] || missing+=(nginx-light)
command -v wrk >/dev/null 2>&1 || missing+=(wrk)
command -v jq >/dev/null 2>&1 || missing+=(jq)
if ((${#missing[@]})); then
  if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
    log "installing ${missing[*]} (Debian packages)"
    { apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y "${missing[@]}"; } >"$LOGS/apt.log" 2>&1 ||
      die "apt-get install -y ${missing[*]} failed: see $LOGS/apt.log"
  else
    die "missing ${missing[*]}: install them (sudo apt-get install -y ${missing[*]}) and run again"
  fi
fi


# --- helpers ------------------------------------------------------------------

# wait_http URL [SECONDS]: until URL answers.
wait_http() {
  local deadline=$((SECONDS + ${2:-20}))
  until curl -fsS -o /dev/null --max-time 1 "$1" 2>/dev/null; do
    ((SECONDS < deadline)) || return 1
    sleep 0.1
  done
}

# proc PID FIELD: cpu_s (user+system time so far), rss_mib or peak_rss_mib
# of a process (benchhost proc).
proc() { "$BIN/benchhost" proc "$1" | jq -r ".$2"; }

loadavg() { cut -d' ' -f1-3 /proc/loadavg; }

# fmt_int 12345.6 -> 12,346
fmt_int() {
  awk -v x="$1" 'BEGIN {
    if (x == "") { print "?"; exit }
    s = sprintf("%.0f", x); n = length(s); out = ""
    for (i = 1; i <= n; i++) { out = out substr(s, i, 1); if ((n - i) % 3 == 0 && i < n) out = out "," }
    print out
  }'
}

# wrk_rate LOG: requests/s of a wrk run, and the total and error counts.
wrk_rps() { awk '/^Requests\/sec:/ {print $2}' "$1"; }
wrk_requests() { awk '/requests in/ {print $1}' "$1"; }
wrk_errors() {
  awk '/Socket errors:/ {gsub(/,/, ""); n += $4 + $6 + $8 + $10} /Non-2xx/ {n += $NF} END {print n + 0}' "$1"
}


# --- header -------------------------------------------------------------------

LOAD_START=$(loadavg)
DATE=$(date -u '+%Y-%m-%d %H:%M UTC')
CPU_MODEL=$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)
MEM_GIB=$(awk '/^MemTotal:/ {printf "%.1f", $2 / 1048576}' /proc/meminfo)
GO_VERSION=$(go env GOVERSION)
WRK_VERSION=$(wrk -v 2>&1 | awk 'NR == 1 {print $2}')
if [[ -f .stack/kafka/libs/.versions ]]; then
  KAFKA_VERSION=$(tr ' ' '\n' <.stack/kafka/libs/.versions | awk -F= '$1 == "kafka" {print $2}')
else
  KAFKA_VERSION=$(sed -n 's|^ *image: *apache/kafka:||p' compose.yaml | head -1)
  KAFKA_VERSION=${KAFKA_VERSION:-unknown}
fi
PG_VERSION=unknown
if command -v psql >/dev/null 2>&1; then
  PG_VERSION=$(psql "$DATABASE_URL" -XAtc 'show server_version' 2>/dev/null | awk '{print $1}')
  PG_VERSION=${PG_VERSION:-unknown}
fi
COMMIT=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
log "load average at start: $LOAD_START"

# --- build --------------------------------------------------------------------

# blackbox_exporter: `go install ...@v0.27.0` is refused by the proxy, so it is
# built in a scratch module (see /work/shared/notes/benchmarks.md), once.
BLACKBOX_DIR=$BENCH_DIR/blackbox_exporter-$BLACKBOX_VERSION
BLACKBOX=$BLACKBOX_DIR/bin/blackbox_exporter
if [[ ! -x $BLACKBOX ]]; then
  log "building blackbox_exporter $BLACKBOX_VERSION into $BLACKBOX_DIR (once)"
  mkdir -p "$BLACKBOX_DIR"
  (
    cd "$BLACKBOX_DIR" &&
      export GOWORK=off GOFLAGS=-mod=mod &&
      { [[ -f go.mod ]] || go mod init sitewatch.local/blackbox-bench; } &&
      go get "github.com/prometheus/blackbox_exporter@$BLACKBOX_VERSION" &&
      go build -o bin/blackbox_exporter.tmp github.com/prometheus/blackbox_exporter &&
      mv bin/blackbox_exporter.tmp bin/blackbox_exporter
  ) >"$LOGS/blackbox-build.log" 2>&1 || die "building blackbox_exporter failed: see $LOGS/blackbox-build.log"
fi
# Built from the module proxy, the binary carries its version in its build info.
BLACKBOX_VERSION_SHOWN=$(go version -m "$BLACKBOX" | awk '$1 == "mod" && $2 ~ /blackbox_exporter$/ {print $3}')

log "building probebench and benchhost"
go build -o "$BIN/" ./services/prober/cmd/probebench ./services/testing/cmd/benchhost 2>"$LOGS/probebench-build.log" ||
  die "building probebench and benchhost failed: see $LOGS/probebench-build.log"

# End to end: the prober and recorder binaries of this tree (RECORDER_BIN
# names another recorder binary), run as separate processes by e2ebench.
# Before the recorder's consumer is merged, the recorder only migrates: it
# has no -topic flag, and the end-to-end row says so.
log "building prober, recorder, e2ebench and fleetbench"
E2E_NOTE=""
if ! go build -o "$BIN/" ./services/prober ./services/testing/cmd/e2ebench ./services/testing/cmd/fleetbench 2>"$LOGS/e2e-build.log"; then
  E2E_NOTE="end to end: build failed, see .stack/bench/logs/e2e-build.log"
fi
RECORDER_BIN=${RECORDER_BIN:-}
RECORDER_BIN_GIVEN=$RECORDER_BIN
if [[ -z $RECORDER_BIN ]]; then
  if go build -o "$BIN/recorder" ./services/recorder 2>>"$LOGS/e2e-build.log"; then
    RECORDER_BIN=$BIN/recorder
  else
    E2E_NOTE="end to end: build failed, see .stack/bench/logs/e2e-build.log"
  fi
fi
# (-h exits 2 or 1: its usage is kept before grep, as pipefail would see the exit status.)
if [[ -z $E2E_NOTE ]] && ! grep -q -- '-topic' <<<"$("$RECORDER_BIN" -h 2>&1)"; then
  E2E_NOTE="recorder: not available (this tree's recorder has no consumer yet: no -topic flag)"
fi

log "building web and webbench"
WEB_NOTE=""
go build -o "$BIN/" ./services/web ./services/testing/cmd/webbench 2>"$LOGS/web-build.log" ||
  WEB_NOTE="build failed, see .stack/bench/logs/web-build.log"

# The recorder's benchmark program, when this tree has it; RECORDERBENCH names
# a built binary instead.
RECORDERBENCH=${RECORDERBENCH:-}
OVERRIDES=""
[[ -n $RECORDERBENCH ]] && OVERRIDES+="RECORDERBENCH=$RECORDERBENCH "
[[ -n $RECORDER_BIN_GIVEN ]] && OVERRIDES+="RECORDER_BIN=$RECORDER_BIN_GIVEN "
RECORDER_NOTE=""
if [[ -z $RECORDERBENCH && -d services/recorder/cmd/recorderbench ]]; then
  log "building recorderbench"
  if go build -o "$BIN/recorderbench" ./services/recorder/cmd/recorderbench 2>"$LOGS/recorderbench-build.log"; then
    RECORDERBENCH=$BIN/recorderbench
  else
    RECORDER_NOTE="recorder: build failed, see $LOGS/recorderbench-build.log"
  fi
elif [[ -z $RECORDERBENCH ]]; then
  RECORDER_NOTE="recorder: not available (this tree has no services/recorder/cmd/recorderbench)"
fi

# --- nginx --------------------------------------------------------------------

# nginx listens on one port per step, so that no step connects to a port
# whose closed connections an earlier step left in TIME_WAIT (tens of
# thousands per step on loopback; with them, finding a free four-tuple makes
# later steps slower than earlier ones).
STEPS=(ceiling http_2xx http_body plain nospool pattern nokafka memory drain e2e)
declare -A PAGE
NGINX_JSON=$RUN_DIR/nginx.json
"$BIN/benchhost" nginx -ports ${#STEPS[@]} >"$NGINX_JSON" 2>"$LOGS/nginx.log" &
NGINX_PID=$!
PIDS+=("$NGINX_PID")
# benchhost prints its line once nginx answers on every port.
for _ in $(seq 300); do
  [[ -s $NGINX_JSON ]] && break
  kill -0 "$NGINX_PID" 2>/dev/null || break
  sleep 0.1
done
[[ -s $NGINX_JSON ]] || die "nginx did not start: see $LOGS/nginx.log"
for i in "${!STEPS[@]}"; do
  PAGE[${STEPS[$i]}]=$(jq -r ".urls[$i]" "$NGINX_JSON")
done
PAGE_BYTES=$(jq -r .page_bytes "$NGINX_JSON")
NGINX_VERSION=$(jq -r .version "$NGINX_JSON")
log "nginx $NGINX_VERSION serves $PAGE_BYTES bytes at ${PAGE[ceiling]} (and a port for each step)"

# --- 1. ceiling ---------------------------------------------------------------

log "ceiling: wrk -t1 -c32 -d$CEILING_DURATION -H 'Connection: close' ${PAGE[ceiling]}"
wrk -t1 -c32 -d"$CEILING_DURATION" -H "Connection: close" "${PAGE[ceiling]}" >"$LOGS/ceiling.log" 2>&1
CEILING=$(wrk_rps "$LOGS/ceiling.log")
CEILING_ERRORS=$(wrk_errors "$LOGS/ceiling.log")

# --- 2. blackbox_exporter -----------------------------------------------------

cat >"$RUN_DIR/blackbox.yml" <<YAML
modules:
  http_2xx:
    prober: http
    timeout: 5s
    http:
      preferred_ip_protocol: ip4
  http_body:
    prober: http
    timeout: 5s
    http:
      preferred_ip_protocol: ip4
      fail_if_body_not_matches_regexp:
        - "$PATTERN"
YAML
BLACKBOX_ADDR=$("$BIN/benchhost" addr | jq -r .addr) || die "no free port for blackbox_exporter"
"$BLACKBOX" --config.file="$RUN_DIR/blackbox.yml" --web.listen-address="$BLACKBOX_ADDR" \
  --log.level=warn >"$LOGS/blackbox.log" 2>&1 &
BLACKBOX_PID=$!
PIDS+=("$BLACKBOX_PID")
wait_http "http://$BLACKBOX_ADDR/metrics" 20 || die "blackbox_exporter did not start: see $LOGS/blackbox.log"

declare -A BB_RPS BB_CPU BB_OK BB_ERR
for module in http_2xx http_body; do
  target=$(sed 's|:|%3A|g; s|/|%2F|g' <<<"${PAGE[$module]}")
  url="http://$BLACKBOX_ADDR/probe?target=$target&module=$module"
  # A probe that fails still answers 200: check probe_success before and after.
  ok_before=$(curl -fsS "$url" | awk '$1 == "probe_success" {print $2}')
  log "blackbox_exporter $module: wrk -t1 -c16 -d$BLACKBOX_DURATION (after $WARMUP warm-up)"
  wrk -t1 -c16 -d"$WARMUP" "$url" >/dev/null 2>&1
  t0=$(proc "$BLACKBOX_PID" cpu_s)
  wrk -t1 -c16 -d"$BLACKBOX_DURATION" "$url" >"$LOGS/blackbox-$module.log" 2>&1
  t1=$(proc "$BLACKBOX_PID" cpu_s)
  ok_after=$(curl -fsS "$url" | awk '$1 == "probe_success" {print $2}')
  n=$(wrk_requests "$LOGS/blackbox-$module.log")
  BB_RPS[$module]=$(wrk_rps "$LOGS/blackbox-$module.log")
  BB_CPU[$module]=$(awk -v t0="$t0" -v t1="$t1" -v n="$n" 'BEGIN {if (n > 0) printf "%.3f", (t1 - t0) * 1000 / n}')
  BB_OK[$module]="$ok_before/$ok_after"
  BB_ERR[$module]=$(wrk_errors "$LOGS/blackbox-$module.log")
done
BB_RSS_MIB=$(awk -v m="$(proc "$BLACKBOX_PID" peak_rss_mib)" 'BEGIN {printf "%.0f", m}')
kill "$BLACKBOX_PID" 2>/dev/null && wait "$BLACKBOX_PID" 2>/dev/null

# --- 3. prober ----------------------------------------------------------------

# probebench NAME ARGS...: runs it against the page, its JSON in $LOGS/probebench-NAME.json.
probebench() {
  local name=$1
  shift
  log "prober $name: probebench $*"
  "$BIN/probebench" -url "${PAGE[$name]}" "$@" >"$LOGS/probebench-$name.json" 2>"$LOGS/probebench-$name.err"
}
# pb NAME JQ: a figure of a probebench run (fields: its doc.go).
pb() { jq -r "$2" "$LOGS/probebench-$1.json"; }
# pb_field NAME KEY: a figure of a probebench run as the table shows it.
pb_field() {
  local name=$1
  case $2 in
    checks) pb "$name" .checks_per_s ;;
    skipped) pb "$name" .skipped ;;
    up) pb "$name" .up ;;
    total) pb "$name" .checks ;;
    cpu) pb "$name" '.cpu_ms_per_check * 10000 | round / 10000' ;;
    core) pb "$name" '"\(.core_pct | round)%"' ;;
    rss) pb "$name" '.rss_mib * 10 | round / 10' ;;
    peak) pb "$name" '.peak_rss_mib * 10 | round / 10' ;;
    lag) pb "$name" '"\(.lag_p50_ms)ms / \(.lag_p99_ms)ms / \(.lag_max_ms)ms"' ;;
    bytes) pb "$name" '.bytes_per_result | round' ;;
    encoded) pb "$name" .encoded_bytes ;;
    drain) pb "$name" .drain_per_s ;;
    drainnote) pb "$name" '"\(.spooled) spooled results acknowledged in \(.drain_s * 10 | round / 10)s from the first acknowledgement, \(.total_s * 10 | round / 10)s from the start incl. connecting and creating the topic, while \(.targets) targets were checked every \(.interval_s)s; prober \(.core_pct | round)% of one core"' ;;
  esac
}

FAST=(-targets 20000 -interval 1s -concurrency 16 -warmup "$WARMUP" -duration "$PROBER_DURATION")
declare -A PB_OK
probebench plain "${FAST[@]}" && PB_OK[plain]=1
probebench nospool "${FAST[@]}" -no-spool && PB_OK[nospool]=1
probebench pattern "${FAST[@]}" -pattern "$PATTERN" && PB_OK[pattern]=1
probebench nokafka "${FAST[@]}" -no-kafka && PB_OK[nokafka]=1
probebench memory -targets 10000 -interval 10s -duration "$MEMORY_DURATION" && PB_OK[memory]=1
probebench drain -drain "$DRAIN_RESULTS" -targets 1000 -interval 1s && PB_OK[drain]=1

# --- 5. end to end -----------------------------------------------------------

E2E_OK=""
if [[ -z $E2E_NOTE ]]; then
  log "end to end: e2ebench -targets 1000 -interval 1s -warmup $E2E_WARMUP -duration $E2E_DURATION (prober and recorder processes)"
  if "$BIN/e2ebench" -prober "$BIN/prober" -recorder "$RECORDER_BIN" -url "${PAGE[e2e]}" -targets 1000 -interval 1s \
    -warmup "$E2E_WARMUP" -duration "$E2E_DURATION" -logs "$LOGS" >"$LOGS/e2ebench.json" 2>"$LOGS/e2ebench.err"; then
    E2E_OK=1
  else
    E2E_NOTE="end to end: e2ebench failed: $(tail -1 "$LOGS/e2ebench.err")"
  fi
fi
# e2e KEY: a figure of e2ebench (fields: its doc.go); a bucket's bounds as lo-hi.
e2e() { jq -r "if (.$1 | type) == \"array\" then .$1 | map(tostring) | join(\"-\") else .$1 end" "$LOGS/e2ebench.json"; }
# e2e_f KEY FORMAT: the figure formatted with printf.
# shellcheck disable=SC2059 # the format is the caller's
e2e_f() { printf "$2" "$(e2e "$1")"; }

kill "$NGINX_PID" 2>/dev/null && wait "$NGINX_PID" 2>/dev/null

# --- 4, 6. recorder --------------------------------------------------------

REC_OK=""
if [[ -n $RECORDERBENCH ]]; then
  log "recorder: $RECORDERBENCH -events $RECORDER_EVENTS -rate 1000 -rate-for $RECORDER_RATE_FOR"
  if "$RECORDERBENCH" -events "$RECORDER_EVENTS" -rate 1000 -rate-for "$RECORDER_RATE_FOR" \
    >"$LOGS/recorderbench.json" 2>"$LOGS/recorderbench.err"; then
    REC_OK=1
  else
    RECORDER_NOTE="recorder: recorderbench failed: $(tail -1 "$LOGS/recorderbench.err")"
  fi
fi
# rec JQ: a figure of recorderbench (fields: its doc.go).
rec() { jq -r "$1" "$LOGS/recorderbench.json"; }
# rec_rate FIELD: events per second, as "123,456 events/s".
rec_rate() { echo "$(fmt_int "$(rec ".$1")") events/s"; }
num() { tr -dc '0-9.' <<<"${1%% *}"; }

# --- 7. reload of the targets file ------------------------------------------

RELOAD_SIZES=(10000 100000)
log "reload: go test -bench BenchmarkReload -benchtime 3x (services/prober), ${RELOAD_SIZES[*]} targets"
RELOAD_OK=""
go test -count=1 -run '^$' -bench '^BenchmarkReload$' -benchtime 3x github.com/sitewatch/sitewatch/services/prober \
  -args -reload-sizes "$(IFS=,; echo "${RELOAD_SIZES[*]}")" >"$LOGS/reload.log" 2>&1 && RELOAD_OK=1
# reload_s STEP N [parse]: seconds of BenchmarkReload/STEP_N, or of its parse alone.
reload_s() {
  awk -v name="BenchmarkReload/$1_$2" -v unit="${3:+parse-}ns/op" '
    index($1, name "-") == 1 || $1 == name {for (i = 3; i < NF; i++) if ($(i + 1) == unit) {printf "%.3f", $i / 1e9; exit}}' "$LOGS/reload.log"
}
reload_rows() {
  local n removed added parse
  for n in "${RELOAD_SIZES[@]}"; do
    removed=$(reload_s remove "$n") added=$(reload_s add "$n") parse=$(reload_s add "$n" parse)
    if [[ -z $RELOAD_OK || -z $removed || -z $added ]]; then
      printf '| 7. Prober reload, %s targets | %s | | |\n' "$(fmt_int "$n")" "$(failed reload.log)"
      continue
    fi
    printf '| 7. Prober reload (read, parse, drop the series of the removed targets, reschedule): %s targets removed (file of %s replaced by one of 2), and added (2 → %s) | **removed %s s, added %s s** | parsing the %s-target file alone: %s s | removed %s, added %s |\n' \
      "$(fmt_int "$n")" "$(fmt_int "$n")" "$(fmt_int "$n")" "$removed" "$added" "$(fmt_int "$n")" "$parse" \
      "$(ratio "$removed" "$parse")" "$(ratio "$added" "$parse")"
  done
}

# --- 9. fleet -------------------------------------------------------------------

FLEET_ARGS=(-targets "$FLEET_TARGETS" -interval "$FLEET_INTERVAL" -warmup "$FLEET_WARMUP" -session-timeout "$FLEET_SESSION" -probers 4 -ports 8)
FLEET_OK=""
if [[ -z $E2E_NOTE ]]; then
  log "fleet: fleetbench ${FLEET_ARGS[*]} (4 prober processes, then kill -9 of one and a join)"
  "$BIN/fleetbench" -prober "$BIN/prober" "${FLEET_ARGS[@]}" -logs "$LOGS" \
    >"$LOGS/fleetbench.json" 2>"$LOGS/fleetbench.err" && FLEET_OK=1
fi
# fl JQ: a figure of fleetbench (fields: its doc.go).
fl() { jq -r "$1" "$LOGS/fleetbench.json"; }
fleet_rows() {
  if [[ -z $FLEET_OK ]]; then
    printf '| 9. Fleet, %s targets every %s across 4 probers | %s | | |\n' "$(fmt_int "$FLEET_TARGETS")" "$FLEET_INTERVAL" "$(failed fleetbench.err)"
    return
  fi
  local w='.windows[] | select(.name == $n) | "\(.slots) of \(.expected) slots (\(.completeness * 10000 | round / 100)%), \(.duplicates) counted twice"'
  printf '| 9. Fleet: %s targets every %s across 4 prober processes (`-fleet`, one region, 60 partitions, `prober targets apply` in %s s), 8 nginx ports, `fleetbench %s` | **%s checks/s of %s demanded**; steady window: **%s**; schedule lag p50/p99/max %s ms | per prober: %s | |\n' \
    "$(fmt_int "$FLEET_TARGETS")" "$FLEET_INTERVAL" "$(fl '.apply_s * 10 | round / 10')" "${FLEET_ARGS[*]}" \
    "$(fmt_int "$(fl .achieved_per_s)")" "$(fmt_int "$(fl .demanded_per_s)")" "$(jq -r --arg n steady "$w" "$LOGS/fleetbench.json")" \
    "$(fl '"\(.lag_p50_ms | round) / \(.lag_p99_ms | round) / \(.lag_max_ms | round)"')" \
    "$(fl '[.per_prober[] | "\(.checks) checks, \(.cpu_ms_per_check * 1000 | round / 1000) ms CPU/check, RSS \(.rss_mib | round) MiB"] | join("; ")')"
  printf '| 9. Fleet: kill -9 of one prober (%s of its targets; `-session-timeout %s`) | group Stable without it after **%s s**; first of its targets checked by another after **%s s**, all %s after %s s (each at its next slot after the take-over; the join at the next window moves some again); window from the kill: %s; slots missed: %s of its targets, %s of the others | | |\n' \
    "$(fmt_int "$(fl .kill.targets)")" "$FLEET_SESSION" "$(fl '.kill.group_stable_s * 10 | round / 10')" "$(fl '.kill.first_taken_s * 10 | round / 10')" \
    "$(fl .kill.taken)" "$(fl '.kill.all_taken_s * 10 | round / 10')" "$(jq -r --arg n kill "$w" "$LOGS/fleetbench.json")" \
    "$(fmt_int "$(fl .kill.missed_dead)")" "$(fmt_int "$(fl .kill.missed_others)")"
  printf '| 9. Fleet: a fifth prober joins | group Stable with it after **%s s**; its first check after **%s s**; %s targets moved to it; window from the join: %s; slots missed: %s (%s of the moved targets) | | |\n' \
    "$(fl '.join.group_stable_s * 10 | round / 10')" "$(fl '.join.first_check_s * 10 | round / 10')" "$(fmt_int "$(fl .join.targets)")" \
    "$(jq -r --arg n join "$w" "$LOGS/fleetbench.json")" "$(fl .join.missed)" "$(fl .join.missed_moved)"
}

# --- 10. web ------------------------------------------------------------------

WEB_OK=""
if [[ -z $WEB_NOTE && -n $RECORDER_BIN ]]; then
  log "web: webbench -targets 1000 -days 30 -requests $WEB_REQUESTS"
  "$BIN/webbench" -web "$BIN/web" -recorder "$RECORDER_BIN" -targets 1000 -days 30 -requests "$WEB_REQUESTS" \
    -log "$LOGS/webbench-web.log" >"$LOGS/webbench.json" 2>"$LOGS/webbench.err" && WEB_OK=1
fi
# wb JQ: a figure of webbench (fields: its doc.go).
wb() { jq -r "$1" "$LOGS/webbench.json"; }
# wb_page NAME: "p50 / p95 ms" of one of its pages.
wb_page() { jq -r --arg n "$1" '.pages[] | select(.name == $n) | "\(.p50_ms * 10 | round / 10) / \(.p95_ms * 10 | round / 10) ms"' "$LOGS/webbench.json"; }
web_row() {
  if [[ -z $WEB_OK ]]; then
    printf '| 10. Web: `/` over 1,000 targets with 30 days of rollups | %s | | |\n' "${WEB_NOTE:-$(failed webbench.err)}"
    return
  fi
  printf '| 10. Web: `/`, the first page of 100 of %s targets with %s days of hourly rollups (%s rows), %s requests in a row, timed at the client on loopback | **p50 %s ms, p95 %s ms** (the first request, uptime cache empty: %s ms); other pages, p50 / p95: page 5 of state up %s; search %s; target 24 h %s, 90 d %s; status (rendered once per 30 s) %s; `/api/v1/targets` %s; uptime badge %s; web RSS %s MiB | (no anchor) | goal for `/`: under 200 ms |\n' \
    "$(fmt_int "$(wb .targets)")" "$(wb .days)" "$(fmt_int "$(wb .hourly_rows)")" "$(wb .requests)" \
    "$(wb '.overview_p50_ms * 10 | round / 10')" "$(wb '.overview_p95_ms * 10 | round / 10')" "$(wb '.overview_first_ms | round')" \
    "$(wb_page 'overview, state up, page 5')" "$(wb_page 'overview, search')" "$(wb_page 'target 24h')" "$(wb_page 'target 90d')" \
    "$(wb_page 'status (cached 30s)')" "$(wb_page 'api targets')" "$(wb_page 'badge uptime 30d')" "$(wb .web_rss_mib)"
}

# --- 11. alerter ------------------------------------------------------------------

ALERT_ARGS=(-events "$RECORDER_EVENTS" -targets 10000 -rate 1000 -rate-for "$ALERT_RATE_FOR")
ALERT_OK=""
log "building alerter and alertbench"
if [[ -z $E2E_NOTE ]] && go build -o "$BIN/" ./services/alerter ./services/testing/cmd/alertbench 2>"$LOGS/alertbench-build.log"; then
  log "alerter: alertbench ${ALERT_ARGS[*]} (alerter and recorder processes)"
  "$BIN/alertbench" -alerter "$BIN/alerter" -recorder "$RECORDER_BIN" "${ALERT_ARGS[@]}" -logs "$LOGS" \
    >"$LOGS/alertbench.json" 2>"$LOGS/alertbench.err" && ALERT_OK=1
fi
# al JQ: a figure of alertbench (fields: its doc.go).
al() { jq -r "$1" "$LOGS/alertbench.json"; }
alert_rows() {
  if [[ -z $ALERT_OK ]]; then
    printf '| 11. Alerter | %s | | |\n' "$(failed alertbench.err)"
    return
  fi
  printf '| 11. Alerter at %s checks/s for %s s (1,000 targets, each failing 3 checks in 10; 2 failures confirm, 2 successes resolve; a webhook on 127.0.0.1): confirming check to the request at the receiver | **p50 %s ms, p99 %s ms** (max %s ms; %s incidents opened); resolving check to request p50 %s ms, p99 %s ms | | goal: p99 under 1,000 ms |\n' \
    "$(fmt_int "$(al .rate_per_s)")" "$(al .rate_for_s)" "$(al '.opened_p50_ms | round')" "$(al '.opened_p99_ms | round')" "$(al '.opened_max_ms | round')" \
    "$(fmt_int "$(al .opened)")" "$(al '.resolved_p50_ms | round')" "$(al '.resolved_p99_ms | round')"
  printf '| 11. Alerter: evaluate a %s-event backlog (10,000 targets; incidents, transitions, outbox and deliveries included), from process start | **%s events/s** (%s s; %s incidents, %s notifications received) | recorder draining the same backlog, same run: **%s events/s** (%s s) | **%s** of the recorder (goal: at least 100%%) |\n' \
    "$(fmt_int "$(al .events)")" "$(fmt_int "$(al .alerter_events_per_s)")" "$(al '.alerter_drain_s * 10 | round / 10')" "$(fmt_int "$(al .backlog_incidents)")" \
    "$(fmt_int "$(al .backlog_notifications)")" "$(fmt_int "$(al .recorder_events_per_s)")" "$(al '.recorder_drain_s * 10 | round / 10')" \
    "$(pct_of "$(al .alerter_events_per_s)" "$(al .recorder_events_per_s)")"
  printf '| 11. Alerter backtest over %s stored checks (`alerter backtest`, whole range) | **%s checks/s** (%s s; %s incidents, as many as the live alerter: %s) | | |\n' \
    "$(fmt_int "$(al .backtest_checks)")" "$(fmt_int "$(al .backtest_checks_per_s)")" "$(al '.backtest_s * 10 | round / 10')" "$(fmt_int "$(al .backtest_incidents)")" \
    "$(al 'if .backtest_incidents == .backlog_incidents then "yes" else "no" end')"
}

LOAD_END=$(loadavg)
log "load average at end: $LOAD_END"

# --- table --------------------------------------------------------------------

ratio() { awk -v a="$1" -v b="$2" 'BEGIN {if (a > 0 && b > 0) printf "%.2f×", a / b; else print "—"}'; }
pct_of() { awk -v a="$1" -v b="$2" 'BEGIN {if (a > 0 && b > 0) printf "%.0f%%", 100 * a / b; else print "—"}'; }
failed() { echo "failed: see .stack/bench/logs/$1"; }

prober_row() { # NAME MODULE LABEL
  local name=$1 module=$2 label=$3
  if [[ -z ${PB_OK[$name]:-} ]]; then
    printf '| %s | %s | | | |\n' "$label" "$(failed "probebench-$name.err")"
    return
  fi
  local checks cpu
  checks=$(pb_field "$name" checks) cpu=$(pb_field "$name" cpu)
  if [[ -n $module ]]; then
    printf '| %s | %s checks/s, **%s ms CPU/check** (%s of one core; %s%% up, %s skipped) | blackbox_exporter `%s`: %s probes/s, **%s ms CPU/probe** | CPU/check **%s** of blackbox_exporter'"'"'s; checks/s %s of its probes/s |\n' \
      "$label" "$(fmt_int "$checks")" "$cpu" "$(pb_field "$name" core)" \
      "$(awk -v u="$(pb_field "$name" up)" -v t="$(pb_field "$name" total)" 'BEGIN {if (t > 0) printf "%.1f", 100 * u / t; else print "?"}')" \
      "$(pb_field "$name" skipped)" "$module" "$(fmt_int "${BB_RPS[$module]}")" "${BB_CPU[$module]}" \
      "$(ratio "$cpu" "${BB_CPU[$module]}")" "$(pct_of "$checks" "${BB_RPS[$module]}")"
  else
    printf '| %s | %s checks/s, **%s ms CPU/check** (%s of one core) | blackbox_exporter `http_2xx`: %s ms CPU/probe | CPU/check %s of blackbox_exporter'"'"'s |\n' \
      "$label" "$(fmt_int "$checks")" "$cpu" "$(pb_field "$name" core)" "${BB_CPU[http_2xx]}" "$(ratio "$cpu" "${BB_CPU[http_2xx]}")"
  fi
}

e2e_row() {
  local part="recorderbench not available"
  if [[ -n $REC_OK ]]; then
    part="recorder part only (recorderbench, event produced to row committed, $(rec '"\(.e2e.events) events over \(.e2e.for_s)s"')): $(rec '"p50 \(.e2e.p50_ms | round) ms, p99 \(.e2e.p99_ms | round) ms, max \(.e2e.max_ms | round) ms"')"
  fi
  if [[ -z $E2E_OK ]]; then
    printf '| 5. End to end at 1,000 checks/s: check start to committed row, p50 and p99 | %s | %s | |\n' "$E2E_NOTE" "$part"
    return
  fi
  printf '| 5. End to end at 1,000 checks/s (prober and recorder processes, 1,000 targets every 1 s): check start to committed row | **p50 %s ms, p99 %s ms** (within histogram buckets %s and %s ms; %s checks/s, %s rows/s stored over %s s; prober %s ms CPU/check, recorder %s ms CPU/row; RSS prober %s MiB, recorder %s MiB) | %s | |\n' \
    "$(e2e delay_p50_ms)" "$(e2e delay_p99_ms)" "$(e2e delay_p50_bucket_ms)" "$(e2e delay_p99_bucket_ms)" "$(fmt_int "$(e2e checks_per_s)")" "$(fmt_int "$(e2e stored_per_s)")" "$(e2e_f measured_s %.1f)" \
    "$(e2e_f prober_cpu_ms_per_check %.3f)" "$(e2e_f recorder_cpu_ms_per_event %.3f)" "$(e2e_f prober_rss_mib %.1f)" "$(e2e_f recorder_rss_mib %.1f)" "$part"
}

recorder_rows() {
  if [[ -z $REC_OK ]]; then
    printf '| 4. Recorder: drain a %s-event backlog with rollups | %s | plain COPY of the same rows | |\n' "$(fmt_int "$RECORDER_EVENTS")" "$RECORDER_NOTE"
    e2e_row
    return
  fi
  local drain copy keyed
  drain=$(rec_rate drain_per_s)
  copy=$(rec_rate copy_per_s)
  keyed=$(rec_rate keyed_copy_per_s)
  printf '| 4. Recorder: drain a %s-event backlog with rollups (rollups exact: %s) | **%s** (%s from start, incl. group join) | plain COPY of the same rows into a table without keys, same database: **%s** | **%s** of COPY |\n' \
    "$(fmt_int "$RECORDER_EVENTS")" "$(rec 'if .rollups_exact then "yes" else "no" end')" "$drain" "$(rec_rate drain_total_per_s)" "$copy" \
    "$(pct_of "$(num "${drain//,/}")" "$(num "${copy//,/}")")"
  printf '| 4. Recorder drain against its storage design | (as above) | storage anchor: binary COPY of the same rows into a table with check_results'"'"' keys, indexes and daily partitions (LIKE check_results INCLUDING ALL), same database: **%s** | **%s** of the storage anchor |\n' \
    "${keyed:-not measured}" "$(pct_of "$(num "${drain//,/}")" "$(num "${keyed//,/}")")"
  e2e_row
}

recorder_rss_row() {
  if [[ -z $REC_OK ]]; then
    printf '| 6. Recorder RSS while draining | %s | | |\n' "$RECORDER_NOTE"
    return
  fi
  local rss
  rss=$(rec '"\(.rss_max_mib | round) MiB max"')
  printf '| 6. Recorder RSS while draining the backlog | **%s** | (%s) | |\n' "${rss:-not measured}" \
    "$(rec '"sampled every 100 ms (in-process: recorder plus the bench'"'"'s idle producer); Go heap in use at end \(.heap_end_mib | round) MiB"')"
}

table() {
  echo "## sitewatch benchmarks"
  echo
  echo "- date: $DATE; sitewatch commit $COMMIT; mode: $MODE"
  echo "- machine: $(nproc) CPUs ($CPU_MODEL), $MEM_GIB GiB memory, Linux $(uname -r)"
  echo "- versions: $GO_VERSION, Kafka $KAFKA_VERSION, PostgreSQL $PG_VERSION, nginx $NGINX_VERSION, wrk $WRK_VERSION, blackbox_exporter $BLACKBOX_VERSION_SHOWN"
  [[ -z $OVERRIDES ]] || echo "- recorder binaries not from this tree: ${OVERRIDES% }"
  echo "- load average (1, 5, 15 min): $LOAD_START at start, $LOAD_END at end"
  echo "- page: $PAGE_BYTES bytes from nginx (worker_processes 1) on 127.0.0.1; every check and probe opens a new connection"
  echo
  echo "| what | sitewatch | anchor, same run | sitewatch ÷ anchor |"
  echo "| --- | --- | --- | --- |"
  if [[ -n $CEILING ]]; then
    printf '| 1. Ceiling: new-connection requests/s from nginx (`wrk -t1 -c32 -d%s -H "Connection: close"`) | | **%s requests/s** (%s errors) | |\n' \
      "$CEILING_DURATION" "$(fmt_int "$CEILING")" "$CEILING_ERRORS"
  else
    printf '| 1. Ceiling | | %s | |\n' "$(failed ceiling.log)"
  fi
  for module in http_2xx http_body; do
    printf '| 2. blackbox_exporter `%s` (`wrk -t1 -c16 -d%s` at /probe; probe_success before/after %s; %s wrk errors) | | **%s probes/s, %s ms CPU/probe** (%s of the ceiling) | |\n' \
      "$module" "$BLACKBOX_DURATION" "${BB_OK[$module]}" "${BB_ERR[$module]}" "$(fmt_int "${BB_RPS[$module]}")" "${BB_CPU[$module]}" \
      "$(pct_of "${BB_RPS[$module]}" "$CEILING")"
  done
  prober_row plain http_2xx "3. Prober, status check, to Kafka through the spool (16 at once, 20,000/s offered)"
  if [[ -n ${PB_OK[nospool]:-} && -n ${PB_OK[plain]:-} ]]; then
    printf '| 3. Prober, status check, to Kafka without the spool (`-spool-max-bytes 0`, memory only) | %s checks/s, **%s ms CPU/check** (%s of one core) | | the spool costs **%s** of the CPU per check (goal: at most 10%% more) |\n' \
      "$(fmt_int "$(pb_field nospool checks)")" "$(pb_field nospool cpu)" "$(pb_field nospool core)" \
      "$(awk -v a="$(pb_field plain cpu)" -v b="$(pb_field nospool cpu)" 'BEGIN {if (a > 0 && b > 0) printf "%+.0f%%", 100 * (a - b) / b; else print "?"}')"
  else
    printf '| 3. Prober without the spool | %s | | |\n' "$(failed probebench-nospool.err)"
  fi
  prober_row pattern http_body "3. Prober, body pattern \`$PATTERN\`, to Kafka (16 at once)"
  prober_row nokafka "" "3. Prober, status check, no Kafka (checks only, 16 at once)"
  recorder_rows
  if [[ -n ${PB_OK[memory]:-} ]]; then
    printf '| 6. Prober RSS with 10,000 targets every 10 s (1,000 checks/s, 256 at once) | **%s MiB** (peak %s MiB); %s checks/s; schedule lag p50/p99/max %s | blackbox_exporter peak RSS over its runs: %s MiB | |\n' \
      "$(pb_field memory rss)" "$(pb_field memory peak)" "$(fmt_int "$(pb_field memory checks)")" "$(pb_field memory lag)" "$BB_RSS_MIB"
  else
    printf '| 6. Prober RSS with 10,000 targets | %s | | |\n' "$(failed probebench-memory.err)"
  fi
  recorder_rss_row
  reload_rows
  if [[ -n ${PB_OK[drain]:-} ]]; then
    printf '| 8. Spool after an outage (%s results spooled with Kafka unreachable, then delivered) | **%s bytes on disk per result** (encoded CheckResult %s bytes); drain **%s results/s** (%s) | | goal: at least 20,000 results/s while 1,000 checks/s go on; 1 GiB holds %s results |\n' \
      "$(fmt_int "$DRAIN_RESULTS")" "$(pb_field drain bytes)" "$(pb_field drain encoded)" "$(fmt_int "$(pb_field drain drain)")" "$(pb_field drain drainnote)" \
      "$(fmt_int "$(awk -v b="$(pb_field drain bytes)" 'BEGIN {if (b > 0) print 1073741824 / b}')")"
  else
    printf '| 8. Spool after an outage | %s | | |\n' "$(failed probebench-drain.err)"
  fi
  fleet_rows
  web_row
  alert_rows
  echo
  echo "CPU is user+system time of the one process (blackbox_exporter: /proc/PID/stat over the wrk run; prober: /proc/self/stat over the measured time), divided by the probes or checks it completed. The prober's includes encoding and producing to Kafka (except the no-Kafka row); blackbox_exporter's includes answering wrk. The end-to-end delay is the recorder's histogram sitewatch_recorder_end_to_end_delay_seconds (started_at to commit) over the measured time, interpolated within its buckets. nginx, wrk, Kafka and PostgreSQL share the same CPUs. Logs: .stack/bench/logs/."
}

table | tee "$BENCH_DIR/results.md"
