#!/usr/bin/env bash
# Latency of meshd's API on loopback, one request at a time (wrk -c1), while the registry's
# database is unreachable (DATABASE_URL points at a closed port), with J jobs and S services
# configured, so /status renders a realistic node.  Reports wrk's latency distribution for
# GET /health, GET /status and GET /metrics.
#
# Usage: http_latency.sh [--jobs J] [--services S] [--seconds T]     (defaults 100, 100, 5)
# Needs wrk (Debian package).  Writes only under $TMPDIR.
set -euo pipefail
. "$(cd "$(dirname "$0")" && pwd)/lib/common.sh"
. "$ANCHOR_DIR/lib/proc.sh"
jobs=100; services=100; seconds=5
while [[ $# -gt 0 ]]; do
    case "$1" in
        --jobs) jobs=$2; shift 2 ;;
        --services) services=$2; shift 2 ;;
        --seconds) seconds=$2; shift 2 ;;
        *) echo "unknown arg $1" >&2; exit 2 ;;
    esac
done
[[ -x "$MESHD" ]] || { echo "http_latency: no meshd binary at $MESHD" >&2; exit 3; }
command -v wrk >/dev/null || { echo "http_latency: needs wrk (apt-get install wrk)" >&2; exit 3; }

workdir=$(mktemp -d "${TMPDIR:-/tmp}/httplat.XXXXXX")
pid=""
cleanup() { [[ -n "$pid" ]] && stop_pid "$pid" TERM 30; rm -rf "$workdir"; }
trap cleanup EXIT INT TERM
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
hour=$(( ($(date -u +%-H) + 12) % 24 ))
{
    printf 'node: {name: bench-http, state_dir: %s/state, log_level: warn}\n' "$workdir"
    printf 'http: {listen: "127.0.0.1:%s"}\njobs:\n' "$port"
    for (( i = 1; i <= services; i++ )); do
        printf '  s%04d: {command: [sleep, "100000"], schedule: always}\n' "$i"; done
    for (( i = 1; i <= jobs; i++ )); do
        printf '  c%04d: {command: ["true"], schedule: "%d %d * * *"}\n' "$i" $(( i % 60 )) "$hour"; done
} > "$workdir/meshd.yaml"
DATABASE_URL="postgresql://meshd@127.0.0.1:1/meshd?connect_timeout=1" \
    "$MESHD" -c "$workdir/meshd.yaml" </dev/null >"$workdir/meshd.out" 2>&1 &
pid=$!
for _ in $(seq 100); do
    curl -fsS -o /dev/null "http://127.0.0.1:$port/health" 2>/dev/null && break; sleep 0.1; done
echo "# http_latency meshd_pid=$pid jobs=$jobs services=$services seconds=$seconds database=unreachable"
echo "# /status size: $(curl -fsS "http://127.0.0.1:$port/status" | wc -c) bytes"
for path in /health /status /metrics; do
    echo "## wrk -t1 -c1 -d${seconds}s --latency http://127.0.0.1:$port$path"
    wrk -t1 -c1 -d"${seconds}s" --latency "http://127.0.0.1:$port$path" 2>&1 |
        grep -E 'Latency  |50%|90%|99%|Requests/sec|Socket errors|Non-2xx'
done
