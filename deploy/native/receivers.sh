#!/usr/bin/env bash
# Real notification receivers for the alerter's tests (issue 11), built or installed next to the
# native stack under .stack/, bound to 127.0.0.1 only when they run.
#
#   deploy/native/receivers.sh build    build Prometheus Alertmanager from its Go module into
#                                       .stack/alertmanager/ (once per version; needs go)
#   deploy/native/receivers.sh status   where the receivers are, or what is missing
#
# Tests start their own Alertmanager on a free port from the binary
# (services/testing/receivers.Alertmanager) and their own SMTP server from Debian's python3-aiosmtpd
# (services/testing/receivers.SMTP; apt-get install python3-aiosmtpd): nothing here keeps running.
set -euo pipefail

# Releases from v0.32 embed ui/app/dist, which the Go module lacks, so they do not build from it.
ALERTMANAGER_VERSION=v0.28.1

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
STACK=$ROOT/.stack
AM_DIR=$STACK/alertmanager
AM_BIN=$AM_DIR/alertmanager-$ALERTMANAGER_VERSION

log() { printf '[receivers] %s\n' "$*" >&2; }
die() { printf '[receivers] ERROR: %s\n' "$*" >&2; exit 1; }

# alertmanager_build: a scratch module that requires the release, built with GOWORK=off so the
# workspace's versions do not leak into it; the binary is moved in whole once built.
alertmanager_build() {
  if [[ -x $AM_BIN ]]; then
    log "alertmanager $ALERTMANAGER_VERSION already built: $AM_BIN"
    return 0
  fi
  command -v go >/dev/null 2>&1 || die "'go' not found: it builds Alertmanager from its module"
  local src=$AM_DIR/src
  rm -rf "$src" && mkdir -p "$src"
  log "building github.com/prometheus/alertmanager/cmd/alertmanager@$ALERTMANAGER_VERSION into $AM_BIN"
  (
    cd "$src"
    export GOWORK=off GOFLAGS=-mod=mod
    go mod init sitewatch.local/alertmanager-build >/dev/null 2>&1
    go get "github.com/prometheus/alertmanager/cmd/alertmanager@$ALERTMANAGER_VERSION" >&2
    go build -trimpath -o "$AM_BIN.tmp" \
      -ldflags "-X github.com/prometheus/common/version.Version=${ALERTMANAGER_VERSION#v}" \
      github.com/prometheus/alertmanager/cmd/alertmanager >&2
  ) || die "building alertmanager $ALERTMANAGER_VERSION failed (is the Go module proxy reachable?)"
  mv "$AM_BIN.tmp" "$AM_BIN"
  ln -sfn "$(basename "$AM_BIN")" "$AM_DIR/alertmanager"
  rm -rf "$src"
  log "$("$AM_BIN" --version 2>&1 | head -1)"
}

status() {
  if [[ -x $AM_BIN ]]; then
    printf '%-12s built        %s\n' alertmanager "$AM_BIN"
  else
    printf '%-12s not built    (deploy/native/receivers.sh build)\n' alertmanager
  fi
  if /usr/bin/python3 -c 'import aiosmtpd' 2>/dev/null; then
    printf '%-12s installed    /usr/bin/python3 -m aiosmtpd\n' aiosmtpd
  else
    printf '%-12s missing      (apt-get install python3-aiosmtpd)\n' aiosmtpd
  fi
}

case ${1:-} in
  build) alertmanager_build ;;
  status) status ;;
  *) echo "usage: $0 build|status" >&2; exit 2 ;;
esac
