#!/usr/bin/env bash
# Native (Docker-free) service stack for sitewatch: PostgreSQL, Apache Kafka (KRaft) and
# Apicurio Registry, all project-local under $ROOT/.stack and bound to 127.0.0.1 only.
#
#   deploy/native/stack.sh up       start what is not running, wait until each answers, write .stack/env
#   deploy/native/stack.sh down     stop all three, keep data
#   deploy/native/stack.sh clean    down, then delete data and logs (downloads are kept)
#   deploy/native/stack.sh status   one line per service
#   deploy/native/stack.sh verify   re-run the registry's Confluent-API check (also part of `up`)
#   deploy/native/stack.sh stop|start postgres|kafka|registry   one service, for failure drills
#
# The versions below are the ones compose.yaml uses with the apache/kafka, apicurio/apicurio-registry
# and postgres images: change them together.
set -euo pipefail

KAFKA_VERSION=4.4.0              # org.apache.kafka:kafka_2.13 (newest 4.x on Maven Central)
LOG4J_VERSION=2.25.5             # what kafka-server 4.4.0 itself depends on
# io.apicurio:apicurio-registry-app:<v>:tar.gz:all. Of 3.x only 3.0.9, 3.3.2 and 3.3.3 are served
# here (no 3.1.x archive), so 3.3.3, which needs Java 21+: we pick the newest JDK under /usr/lib/jvm.
APICURIO_VERSION=3.3.3
APICURIO_JAVA_MIN=21             # 3.3 is compiled for Java 21 (class file 65)
KAFKA_JAVA_MIN=17                # Kafka 4.x brokers need Java 17
PG_MAJOR=${PG_MAJOR:-15}
DEPENDENCY_PLUGIN_VERSION=3.8.1  # Maven 3.8 would default to the 2.8 plugin

# Ports can be moved (SITEWATCH_*_PORT) to run a second checkout's stack beside the first;
# .stack/env follows them. Keep them below Linux's ephemeral range (32768-60999): under load
# (thousands of fresh connections a second) a port there is often held by some client socket,
# and a restarted server then fails to bind.
PG_PORT=${SITEWATCH_PG_PORT:-15432}
KAFKA_PORT=${SITEWATCH_KAFKA_PORT:-9092}
KAFKA_CONTROLLER_PORT=${SITEWATCH_KAFKA_CONTROLLER_PORT:-9093}
KAFKA_AUTO_CREATE_TOPICS=true    # Kafka's default, and the apache/kafka image's
APICURIO_PORT=${SITEWATCH_REGISTRY_PORT:-8081}
APICURIO_MGMT_PORT=${SITEWATCH_REGISTRY_MGMT_PORT:-9081}         # Quarkus management interface (health, metrics); 9000 by default
READY_TIMEOUT=${READY_TIMEOUT:-120}
STOP_TIMEOUT=${STOP_TIMEOUT:-60}
PG_OS_USER=${PG_OS_USER:-sitewatch}  # system user that owns the cluster when we run as root

HOST=127.0.0.1
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
STACK=$ROOT/.stack
RUN=$STACK/run
LOGS=$STACK/logs
PG_DATA=$STACK/pg
KAFKA_DIR=$STACK/kafka
KAFKA_LIBS=$KAFKA_DIR/libs
KAFKA_DATA=$KAFKA_DIR/data
KAFKA_PROBE_DIR=$KAFKA_DIR/probe
APICURIO_DIR=$STACK/apicurio
APICURIO_APP=$APICURIO_DIR/app-$APICURIO_VERSION
REGISTRY_URL=http://$HOST:$APICURIO_PORT/apis/ccompat/v7
# Put on every JVM we start, so a pid file is trusted only for a process of this very stack.
MARKER=-Dsitewatch.stack=$STACK

log() { printf '[stack] %s\n' "$*" >&2; }
die() { printf '[stack] ERROR: %s\n' "$*" >&2; exit 1; }

# ---------------------------------------------------------------- prerequisites

# java_major BIN -> prints the feature version (17, 25, ...) of that java.
java_major() {
  "$1" -XshowSettings:properties -version 2>&1 |
    awk -F'= ' '/java.specification.version/ {print $2; exit}' | cut -d. -f1
}

# find_java MIN [preferred JAVA_HOME...] -> prints a java binary of at least MIN.
# Tries the given homes, then `java` on PATH, then the newest JDK under /usr/lib/jvm.
find_java() {
  local min=$1 cand best="" best_v=0 v; shift
  for cand in "$@"; do
    [[ -n $cand && -x $cand/bin/java ]] || continue
    v=$(java_major "$cand/bin/java"); [[ ${v:-0} -ge $min ]] && { echo "$cand/bin/java"; return 0; }
  done
  if cand=$(command -v java 2>/dev/null); then
    cand=$(readlink -f "$cand"); v=$(java_major "$cand")
    [[ ${v:-0} -ge $min ]] && { echo "$cand"; return 0; }
  fi
  for cand in /usr/lib/jvm/*/bin/java; do
    [[ -x $cand ]] || continue
    v=$(java_major "$cand")
    [[ ${v:-0} -gt $best_v ]] && { best=$cand; best_v=$v; }
  done
  [[ $best_v -ge $min ]] && { echo "$best"; return 0; }
  return 1
}

need_cmd() { # need_cmd CMD HOW-TO-GET-IT
  command -v "$1" >/dev/null 2>&1 || die "'$1' not found: $2"
}

find_pg_bin() {
  local d
  for d in ${PG_BIN:-} "/usr/lib/postgresql/$PG_MAJOR/bin"; do
    [[ -n $d && -x $d/initdb && -x $d/pg_ctl ]] && { echo "$d"; return 0; }
  done
  # pg_config names the bindir of whatever PostgreSQL is on PATH; accept it only for our major.
  if command -v pg_config >/dev/null 2>&1; then
    d=$(pg_config --bindir)
    if [[ -x $d/initdb && $(pg_config --version) =~ PostgreSQL\ ${PG_MAJOR}[.\ ] ]]; then echo "$d"; return 0; fi
  fi
  return 1
}

# Resolve everything `up` needs before starting anything, so a missing piece fails fast.
check_prereqs() {
  need_cmd curl "install it: apt-get install curl"
  need_cmd setsid "install util-linux"
  need_cmd flock "install util-linux"
  KAFKA_JAVA=$(find_java "$KAFKA_JAVA_MIN" "${KAFKA_JAVA_HOME:-}" "${JAVA_HOME:-}") ||
    die "Kafka $KAFKA_VERSION needs Java $KAFKA_JAVA_MIN+: apt-get install openjdk-17-jdk-headless (or set KAFKA_JAVA_HOME)"
  APICURIO_JAVA=$(find_java "$APICURIO_JAVA_MIN" "${APICURIO_JAVA_HOME:-}" "${JAVA_HOME:-}") ||
    die "Apicurio Registry $APICURIO_VERSION needs Java $APICURIO_JAVA_MIN+ (none found on PATH, JAVA_HOME or /usr/lib/jvm): install a JDK $APICURIO_JAVA_MIN+ (e.g. Temurin 21/25 under /usr/lib/jvm) or set APICURIO_JAVA_HOME"
  PG_BIN=$(find_pg_bin) || {
    local other; other=$(compgen -G '/usr/lib/postgresql/*/bin' | tr '\n' ' ' || true)
    die "PostgreSQL $PG_MAJOR server binaries not found (/usr/lib/postgresql/$PG_MAJOR/bin, pg_config --bindir): apt-get install postgresql-$PG_MAJOR${other:+ (found: $other; PG_MAJOR=<n> selects another major)}"
  }
  # Maven only matters when something still has to be downloaded.
  if ! kafka_libs_ok || [[ ! -f $APICURIO_APP/.unpacked ]]; then need_mvn; fi
  if [[ $(id -u) -eq 0 ]]; then
    need_cmd setpriv "install util-linux"
    need_cmd useradd "install passwd"
  fi
}

# mvn_quiet ARGS...: Maven on kafka-pom.xml (it pins the dependency plugin); output only on failure
# (Maven 3.8 prints stray colour codes even with -q -B).
mvn_quiet() {
  local out rc=0
  out=$(mvn -q -B -f "$HERE/kafka-pom.xml" -Ddependency.plugin.version="$DEPENDENCY_PLUGIN_VERSION" "$@" 2>&1) || rc=$?
  ((rc == 0)) || printf '%s\n' "$out" >&2
  return "$rc"
}

need_mvn() { need_cmd mvn "Maven is needed once to download Kafka/Apicurio: apt-get install maven"; }

# ---------------------------------------------------------------- small helpers

# port_busy PORT: true when something accepts connections on 127.0.0.1:PORT.
port_busy() { (exec 3<>"/dev/tcp/$HOST/$1") 2>/dev/null; }

# port_free_or_die SERVICE PORT...: used before starting a service that is not running yet.
port_free_or_die() {
  local svc=$1 p who; shift
  for p in "$@"; do
    if port_busy "$p"; then
      who=""
      if command -v ss >/dev/null; then who=$(ss -Hltnp "sport = :$p" 2>/dev/null | head -1); fi
      die "port $HOST:$p (needed by $svc) is already in use by a process that is not this stack's${who:+: $who}. Stop it (another checkout's stack? run its 'stack.sh down') and retry."
    fi
  done
}

# ours PIDFILE: true when the pid file names a live process started by this stack.
ours() {
  local pid
  [[ -f $1 ]] || return 1
  pid=$(cat "$1" 2>/dev/null) || return 1
  [[ $pid =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$MARKER"
}

# alive PIDFILE: the process is there at all. Used right after start_bg, when the child may not
# have exec'd java yet (its cmdline would still be ours-less bash).
alive() { local pid; pid=$(cat "$1" 2>/dev/null) && [[ $pid =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null; }

pid_of() { cat "$1" 2>/dev/null || echo "-"; }

fail_with_log() { # fail_with_log SERVICE LOGFILE MESSAGE
  printf '[stack] ERROR: %s\n[stack] ---- last 40 lines of %s ----\n' "$3" "$2" >&2
  tail -n 40 "$2" >&2 2>/dev/null || true
  exit 1
}

# start_bg PIDFILE LOGFILE CMD...: detach CMD in its own session (so it outlives the caller and is
# not hit by signals sent to the caller's process group), record its pid.
start_bg() {
  local pidfile=$1 logfile=$2; shift 2
  printf '\n==== %s start: %s\n' "$(date -Is)" "$*" >>"$logfile"
  # 9>&-: do not hand the flock fd (see lock) to a long-lived server, or it would hold the lock forever.
  setsid nohup "$@" >>"$logfile" 2>&1 </dev/null 9>&- &
  echo $! >"$pidfile"
}

# stop_pid NAME PIDFILE: SIGTERM, wait up to STOP_TIMEOUT for a clean exit, then SIGKILL.
stop_pid() {
  local name=$1 pidfile=$2 pid i
  if ! ours "$pidfile"; then rm -f "$pidfile"; return 0; fi
  pid=$(cat "$pidfile")
  log "stopping $name (pid $pid)"
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < STOP_TIMEOUT * 5; i++)); do
    kill -0 "$pid" 2>/dev/null || { rm -f "$pidfile"; return 0; }
    sleep 0.2
  done
  log "$name did not stop within ${STOP_TIMEOUT}s, sending SIGKILL"
  kill -KILL "$pid" 2>/dev/null || true
  rm -f "$pidfile"
}

layout() {
  mkdir -p "$STACK" "$RUN" "$LOGS" "$KAFKA_DIR" "$APICURIO_DIR"
  # The PostgreSQL user must be able to traverse .stack and write its socket into run/.
  chmod 755 "$STACK" "$RUN"
}

# Serialise concurrent invocations (e.g. parallel test packages all calling `up`).
lock() {
  mkdir -p "$STACK"
  exec 9>"$STACK/.lock"
  flock -w 600 9 || die "another stack.sh is still running (lock $STACK/.lock)"
}

# ---------------------------------------------------------------- PostgreSQL

# initdb and pg_ctl refuse to run as root. As root we run them as a dedicated system user
# (created once, no login shell, no home) that owns only .stack/pg, .stack/run and the log file.
PG_AS=()
pg_user_setup() {
  PG_AS=()
  [[ $(id -u) -eq 0 ]] || return 0
  if ! id -u "$PG_OS_USER" >/dev/null 2>&1; then
    log "creating system user $PG_OS_USER for the PostgreSQL server (initdb refuses root)"
    useradd --system --user-group --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin "$PG_OS_USER"
  fi
  PG_AS=(setpriv "--reuid=$PG_OS_USER" "--regid=$PG_OS_USER" --init-groups)
  # If a parent of the tree is not searchable by others (a clone under /root, mode 700), the server
  # could not reach its data directory. Rather than chmod-ing directories outside the tree, keep just
  # CAP_DAC_READ_SEARCH (traverse/read, no write) for the server processes. PostgreSQL only refuses
  # euid 0, not capabilities.
  if ! "${PG_AS[@]}" test -x "$STACK"; then
    log "note: $STACK is not reachable for $PG_OS_USER (a parent directory is not searchable); running PostgreSQL with CAP_DAC_READ_SEARCH"
    PG_AS+=(--inh-caps=+dac_read_search --ambient-caps=+dac_read_search)
  fi
}

pg_run() { (cd "$STACK" && "${PG_AS[@]}" "$@" 9>&-); }  # 9>&-: see start_bg

pg_running() { [[ -f $PG_DATA/PG_VERSION ]] && pg_run "$PG_BIN/pg_ctl" status -D "$PG_DATA" >/dev/null 2>&1; }

pg_ready() { "$PG_BIN/pg_isready" -q -h "$HOST" -p "$PG_PORT" -U postgres -d postgres -t 2; }

pg_psql() { "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$HOST" -p "$PG_PORT" -U postgres "$@"; }

pg_up() {
  local log=$LOGS/postgres.log sock=$RUN/.s.PGSQL.$PG_PORT i
  ((${#sock} <= 107)) || die "socket path too long for a Unix socket (${#sock} > 107 bytes): $sock; use a shorter checkout path"
  pg_user_setup
  if pg_running; then
    pg_ready || fail_with_log postgres "$log" "PostgreSQL runs (pid $(head -1 "$PG_DATA/postmaster.pid")) but does not answer on $HOST:$PG_PORT"
    log "postgres already running"
  else
    port_free_or_die postgres "$PG_PORT"
    touch "$log"
    if [[ $(id -u) -eq 0 ]]; then
      mkdir -p "$PG_DATA"
      chown "$PG_OS_USER:" "$PG_DATA" "$RUN" "$log"
    fi
    if [[ ! -f $PG_DATA/PG_VERSION ]]; then
      log "initdb $PG_DATA (PostgreSQL $PG_MAJOR, superuser postgres, trust auth)"
      # C.UTF-8 exists everywhere; without an explicit locale initdb follows $LANG and may pick SQL_ASCII.
      pg_run "$PG_BIN/initdb" -D "$PG_DATA" -U postgres --auth=trust --encoding=UTF8 \
        --locale=C.UTF-8 >>"$log" 2>&1 || fail_with_log postgres "$log" "initdb failed"
    fi
    log "starting postgres on $HOST:$PG_PORT"
    # Settings on the command line (not in postgresql.conf) so a moved checkout still starts right.
    pg_run "$PG_BIN/pg_ctl" start -D "$PG_DATA" -l "$log" -w -t "$READY_TIMEOUT" \
      -o "-p $PG_PORT -k '$RUN' -c listen_addresses=$HOST" >/dev/null ||
      fail_with_log postgres "$log" "PostgreSQL did not start within ${READY_TIMEOUT}s"
  fi
  for ((i = 0; i < READY_TIMEOUT; i++)); do pg_ready && break; sleep 1; done
  pg_ready || fail_with_log postgres "$log" "PostgreSQL not ready on $HOST:$PG_PORT after ${READY_TIMEOUT}s"
  if [[ -z $(pg_psql -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname = 'sitewatch'") ]]; then
    pg_psql -d postgres -c "CREATE DATABASE sitewatch" || fail_with_log postgres "$log" "CREATE DATABASE sitewatch failed"
    log "created database sitewatch"
  fi
}

pg_down() {
  [[ -f $PG_DATA/PG_VERSION ]] || return 0
  PG_BIN=$(find_pg_bin) || { log "no PostgreSQL $PG_MAJOR binaries; cannot stop the cluster"; return 0; }
  pg_user_setup
  if pg_running; then
    log "stopping postgres"
    pg_run "$PG_BIN/pg_ctl" stop -D "$PG_DATA" -m fast -w -t "$STOP_TIMEOUT" >/dev/null
  fi
}

# ---------------------------------------------------------------- Kafka

KAFKA_LIBS_WANT="kafka=$KAFKA_VERSION log4j=$LOG4J_VERSION"
kafka_libs_ok() { [[ -f $KAFKA_LIBS/.versions && $(cat "$KAFKA_LIBS/.versions") == "$KAFKA_LIBS_WANT" ]]; }

kafka_fetch() {
  local tmp=$KAFKA_LIBS.tmp
  kafka_libs_ok && return 0
  need_mvn
  log "resolving Kafka $KAFKA_VERSION jars from Maven Central into $KAFKA_LIBS"
  rm -rf "$tmp"
  mvn_quiet -Dkafka.version="$KAFKA_VERSION" -Dlog4j.version="$LOG4J_VERSION" \
    dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$tmp" ||
    die "mvn could not resolve org.apache.kafka:kafka_2.13:$KAFKA_VERSION (is Maven Central reachable?)"
  echo "$KAFKA_LIBS_WANT" >"$tmp/.versions"
  rm -rf "$KAFKA_LIBS" && mv "$tmp" "$KAFKA_LIBS"   # swap in whole: an interrupted copy never looks complete
}

# Compile the metadata probe once (needs javac next to the Kafka java; else we fall back, see kafka_wait).
kafka_probe_build() {
  local javac; javac=$(dirname "$KAFKA_JAVA")/javac
  local stamp; stamp="$KAFKA_VERSION $(cksum <"$HERE/KafkaReady.java")"
  [[ -f $KAFKA_PROBE_DIR/KafkaReady.class && $(cat "$KAFKA_PROBE_DIR/.stamp" 2>/dev/null) == "$stamp" ]] && return 0
  [[ -x $javac ]] || return 1
  rm -rf "$KAFKA_PROBE_DIR" && mkdir -p "$KAFKA_PROBE_DIR"
  "$javac" -nowarn -d "$KAFKA_PROBE_DIR" -cp "$KAFKA_LIBS/*" "$HERE/KafkaReady.java" >&2 || return 1
  echo "$stamp" >"$KAFKA_PROBE_DIR/.stamp"
}

kafka_config() {
  # Rewritten on every `up` so it always matches this script; data stays in log.dirs.
  cat >"$KAFKA_DIR/server.properties" <<EOF
# Generated by deploy/native/stack.sh; edits are overwritten.
process.roles=broker,controller
node.id=1
controller.quorum.bootstrap.servers=$HOST:$KAFKA_CONTROLLER_PORT
listeners=PLAINTEXT://$HOST:$KAFKA_PORT,CONTROLLER://$HOST:$KAFKA_CONTROLLER_PORT
advertised.listeners=PLAINTEXT://$HOST:$KAFKA_PORT
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
log.dirs=$KAFKA_DATA
num.partitions=1
auto.create.topics.enable=$KAFKA_AUTO_CREATE_TOPICS
# One node: every internal topic must be satisfiable with a single replica.
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
# Tests should not wait 3 s for the first consumer group rebalance.
group.initial.rebalance.delay.ms=0
EOF
}

kafka_java() { # kafka_java MAINCLASS ARGS...: run a Kafka class in the foreground
  "$KAFKA_JAVA" -Xmx256m -cp "$KAFKA_LIBS/*" -Dlog4j2.configurationFile="$HERE/log4j2.properties" \
    -Dkafka.root.level=WARN "$@"
}

kafka_format() {
  [[ -f $KAFKA_DATA/meta.properties ]] && return 0
  local id
  # Log lines share stdout with the id: keep only the last line and check its shape.
  id=$(kafka_java kafka.tools.StorageTool random-uuid | tail -n 1)
  [[ $id =~ ^[A-Za-z0-9_-]{22}$ ]] || die "kafka StorageTool random-uuid printed no cluster id: $id"
  log "formatting Kafka storage $KAFKA_DATA (cluster id $id)"
  mkdir -p "$KAFKA_DATA"
  kafka_java kafka.tools.StorageTool format --standalone -t "$id" -c "$KAFKA_DIR/server.properties" \
    >>"$LOGS/kafka.log" 2>&1 || fail_with_log kafka "$LOGS/kafka.log" "kafka storage format failed"
}

kafka_ready() { # kafka_ready SECONDS: does the broker answer a metadata request?
  if [[ -f $KAFKA_PROBE_DIR/KafkaReady.class ]]; then
    "$KAFKA_JAVA" -Xmx64m -XX:TieredStopAtLevel=1 -cp "$KAFKA_PROBE_DIR:$KAFKA_LIBS/*" \
      -Dlog4j2.configurationFile="$HERE/log4j2.properties" -Dkafka.root.level=ERROR \
      KafkaReady "$HOST:$KAFKA_PORT" "$1" >"$RUN/kafka-probe.out" 2>&1
  else
    # Fallback without javac: the broker logged that it started and the listener accepts.
    sleep "$1"
    grep -q 'Kafka Server started' "$LOGS/kafka.log" && port_busy "$KAFKA_PORT"
  fi
}

kafka_wait() {
  local deadline=$((SECONDS + READY_TIMEOUT))
  while ((SECONDS < deadline)); do
    alive "$RUN/kafka.pid" || fail_with_log kafka "$LOGS/kafka.log" "Kafka exited during start-up"
    kafka_ready 5 && return 0
  done
  fail_with_log kafka "$LOGS/kafka.log" "Kafka not ready on $HOST:$KAFKA_PORT after ${READY_TIMEOUT}s ($(tail -1 "$RUN/kafka-probe.out" 2>/dev/null))"
}

kafka_up() {
  kafka_fetch
  kafka_probe_build || log "note: no javac next to $KAFKA_JAVA; Kafka readiness falls back to log line + port"
  if ours "$RUN/kafka.pid"; then
    kafka_wait
    log "kafka already running"
    return 0
  fi
  port_free_or_die kafka "$KAFKA_PORT" "$KAFKA_CONTROLLER_PORT"
  kafka_config
  kafka_format
  log "starting kafka $KAFKA_VERSION on $HOST:$KAFKA_PORT (controller $HOST:$KAFKA_CONTROLLER_PORT)"
  start_bg "$RUN/kafka.pid" "$LOGS/kafka.log" \
    "$KAFKA_JAVA" -Xms256m -Xmx512m -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:+ExitOnOutOfMemoryError \
    -Djava.awt.headless=true "$MARKER" -Dkafka.logs.dir="$LOGS" \
    -Dlog4j2.configurationFile="$HERE/log4j2.properties" \
    -cp "$KAFKA_LIBS/*" kafka.Kafka "$KAFKA_DIR/server.properties"
  kafka_wait
  log "$(head -1 "$RUN/kafka-probe.out" 2>/dev/null || echo 'kafka ready')"
}

# ---------------------------------------------------------------- Apicurio Registry

apicurio_fetch() {
  [[ -f $APICURIO_APP/.unpacked ]] && return 0
  need_mvn
  local dist=$APICURIO_DIR/dist tgz
  tgz=$dist/apicurio-registry-app-$APICURIO_VERSION-all.tar.gz
  if [[ ! -f $tgz ]]; then
    log "fetching io.apicurio:apicurio-registry-app:$APICURIO_VERSION:tar.gz:all from Maven Central"
    # dependency:copy of the one archive; as a pom dependency it would drag in the Quarkus tree.
    mvn_quiet dependency:copy -Dartifact="io.apicurio:apicurio-registry-app:$APICURIO_VERSION:tar.gz:all" \
      -DoutputDirectory="$dist" ||
      die "mvn could not fetch apicurio-registry-app $APICURIO_VERSION (is Maven Central reachable?)"
  fi
  rm -rf "$APICURIO_APP.tmp" && mkdir -p "$APICURIO_APP.tmp"
  tar -xzf "$tgz" -C "$APICURIO_APP.tmp"
  [[ -f $APICURIO_APP.tmp/quarkus-run.jar ]] || die "unexpected layout in $tgz (no quarkus-run.jar)"
  touch "$APICURIO_APP.tmp/.unpacked"
  rm -rf "$APICURIO_APP" && mv "$APICURIO_APP.tmp" "$APICURIO_APP"
  rm -f "$tgz"   # 150 MB; ~/.m2 keeps the cached copy
}

apicurio_ready() {
  [[ $(curl -s -o /dev/null -w '%{http_code}' --max-time 3 "http://$HOST:$APICURIO_MGMT_PORT/health/ready") == 200 ]] &&
    [[ $(curl -s -o /dev/null -w '%{http_code}' --max-time 3 "$REGISTRY_URL/subjects") == 200 ]]
}

apicurio_up() {
  local log=$LOGS/apicurio.log i
  apicurio_fetch
  if ours "$RUN/apicurio.pid"; then
    log "apicurio already running"
  else
    port_free_or_die apicurio "$APICURIO_PORT" "$APICURIO_MGMT_PORT"
    log "starting apicurio registry $APICURIO_VERSION on $HOST:$APICURIO_PORT (java $(java_major "$APICURIO_JAVA"): $APICURIO_JAVA)"
    # In-memory storage (H2 mem, the default, stated explicitly). The management interface (where
    # /health lives in 3.2+) cannot be disabled at run time (build-time fixed), so it moves off 9000.
    # No other settings: ccompat DELETE (soft and ?permanent=true) works with the defaults, as in compose.
    (cd "$APICURIO_APP" && start_bg "$RUN/apicurio.pid" "$log" \
      "$APICURIO_JAVA" -Xms128m -Xmx768m -XX:+ExitOnOutOfMemoryError "$MARKER" \
      -Dquarkus.http.host=$HOST -Dquarkus.http.port="$APICURIO_PORT" \
      -Dquarkus.management.host=$HOST -Dquarkus.management.port="$APICURIO_MGMT_PORT" \
      -Dapicurio.storage.kind=sql -Dapicurio.storage.sql.kind=h2 \
      -jar quarkus-run.jar)
  fi
  for ((i = 0; i < READY_TIMEOUT * 2; i++)); do
    apicurio_ready && break
    alive "$RUN/apicurio.pid" || fail_with_log apicurio "$log" "Apicurio Registry exited during start-up"
    sleep 0.5
  done
  apicurio_ready || fail_with_log apicurio "$log" "Apicurio Registry not ready (GET :$APICURIO_MGMT_PORT/health/ready) after ${READY_TIMEOUT}s"
}

# Prove the Confluent-compatible API does what the project relies on: a PROTOBUF schema importing
# well-known types, fetch by id, per-subject BACKWARD compatibility, and 409 on an incompatible change.
# Leaves nothing behind (the probe subject is hard-deleted), so it is safe to run on every `up`.
registry_verify() {
  local subj=probe-value ct='Content-Type: application/vnd.schemaregistry.v1+json' out code id
  req() { # req METHOD PATH [BODY] -> sets out, code
    local resp
    resp=$(curl -s --max-time 10 -X "$1" -H "$ct" ${3:+--data "$3"} -w '\n%{http_code}' "$REGISTRY_URL$2")
    code=${resp##*$'\n'}; out=${resp%$'\n'*}
  }
  proto() { # proto TYPE-OF-FIELD-4 -> JSON request body with a schema importing timestamp+duration
    printf '{"schemaType":"PROTOBUF","schema":"%s"}' \
      "syntax = \\\"proto3\\\";\\npackage sitewatch.probe.v1;\\nimport \\\"google/protobuf/timestamp.proto\\\";\\nimport \\\"google/protobuf/duration.proto\\\";\\nmessage Probe {\\n  string url = 1;\\n  google.protobuf.Timestamp checked_at = 2;\\n  google.protobuf.Duration latency = 3;\\n  $1 status = 4;\\n}\\n"
  }
  cleanup() { req DELETE "/subjects/$subj"; req DELETE "/subjects/$subj?permanent=true"; req DELETE "/config/$subj"; }
  bad() { cleanup; die "registry check failed: $1 (HTTP $code: $out)"; }

  cleanup
  req POST "/subjects/$subj/versions" "$(proto int32)"
  [[ $code == 200 && $out =~ \"id\":([0-9]+) ]] || bad "register PROTOBUF schema importing google/protobuf/timestamp.proto"
  id=${BASH_REMATCH[1]}
  req GET "/schemas/ids/$id"
  [[ $code == 200 && $out == *'"schemaType":"PROTOBUF"'* && $out == *timestamp.proto* ]] || bad "fetch schema $id by id"
  req PUT "/config/$subj" '{"compatibility":"BACKWARD"}'
  [[ $code == 200 && $out == *BACKWARD* ]] || bad "set BACKWARD on $subj"
  req POST "/subjects/$subj/versions" "$(proto string)"
  [[ $code == 409 ]] || bad "an incompatible change (int32 -> string) was not refused with 409"
  cleanup
  log "registry ok: PROTOBUF with well-known imports registered (id $id), fetched by id, BACKWARD set, incompatible change refused (409)"
}

# ---------------------------------------------------------------- commands

write_env() {
  cat >"$STACK/env" <<EOF
# Generated by deploy/native/stack.sh up; source it: . .stack/env
export KAFKA_BROKERS=$HOST:$KAFKA_PORT
export SCHEMA_REGISTRY_URL=$REGISTRY_URL
export DATABASE_URL='postgres://postgres@$HOST:$PG_PORT/sitewatch?sslmode=disable'
EOF
}

cmd_up() {
  check_prereqs
  lock
  layout
  pg_up
  kafka_up
  apicurio_up
  registry_verify
  write_env
  cmd_status
  echo "$STACK/env"
}

cmd_down() {
  [[ -d $STACK ]] || return 0
  lock
  stop_pid apicurio "$RUN/apicurio.pid"
  stop_pid kafka "$RUN/kafka.pid"
  pg_down
}

cmd_clean() {
  cmd_down
  log "removing data and logs under $STACK (downloads kept)"
  rm -rf "$PG_DATA" "$KAFKA_DATA" "$KAFKA_DIR/server.properties" "$LOGS" "$RUN" "$STACK/env"
}

cmd_status() {
  local pid
  if [[ -f $PG_DATA/postmaster.pid ]] && pid=$(head -1 "$PG_DATA/postmaster.pid") && kill -0 "$pid" 2>/dev/null; then
    printf '%-9s running      pid %-7s %s:%s (db sitewatch)\n' postgres "$pid" "$HOST" "$PG_PORT"
  else
    printf '%-9s not running\n' postgres
  fi
  if ours "$RUN/kafka.pid"; then
    printf '%-9s running      pid %-7s %s:%s (controller %s)\n' kafka "$(pid_of "$RUN/kafka.pid")" "$HOST" "$KAFKA_PORT" "$KAFKA_CONTROLLER_PORT"
  else
    printf '%-9s not running\n' kafka
  fi
  if ours "$RUN/apicurio.pid"; then
    printf '%-9s running      pid %-7s http://%s:%s (health :%s)\n' apicurio "$(pid_of "$RUN/apicurio.pid")" "$HOST" "$APICURIO_PORT" "$APICURIO_MGMT_PORT"
  else
    printf '%-9s not running\n' apicurio
  fi
}

# One service at a time, for failure drills: stop kafka, start kafka, ...
cmd_one() { # cmd_one start|stop postgres|kafka|registry
  check_prereqs
  lock
  layout
  case $1:${2:-} in
    start:postgres) pg_up ;;
    start:kafka) kafka_up ;;
    start:registry) apicurio_up ;;
    stop:postgres) pg_down ;;
    stop:kafka) stop_pid kafka "$RUN/kafka.pid" ;;
    stop:registry) stop_pid apicurio "$RUN/apicurio.pid" ;;
    *) echo "usage: $0 $1 postgres|kafka|registry" >&2; exit 2 ;;
  esac
}

case ${1:-} in
  up) cmd_up ;;
  start | stop) cmd_one "$1" "${2:-}" ;;
  down) cmd_down ;;
  clean) cmd_clean ;;
  status) cmd_status ;;
  verify) check_prereqs; registry_verify ;;
  *) echo "usage: $0 up|down|clean|status|verify|start SERVICE|stop SERVICE" >&2; exit 2 ;;
esac
