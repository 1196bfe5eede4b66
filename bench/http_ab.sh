#!/usr/bin/env bash
# Two meshd binaries, one after the other in the same run, started the same way (S always-on
# "sleep" services, J daily jobs that do not fire, HTTP on, registry off): memory per mapped
# library after start-up and after load (bench/smaps_by_lib.py), then wrk with C connections on
# GET /health and GET /status for T seconds each.  Made for comparing HTTP servers (issue 9:
# libmicrohttpd vs http-parser); A is usually main's build, B the branch's.
#
# Usage: http_ab.sh A_MESHD B_MESHD [--jobs J] [--services S] [--seconds T] [--connections C]
#        (defaults 100, 100, 10, 100).  Needs wrk (Debian package).  Writes only under $TMPDIR.
set -euo pipefail
. "$(cd "$(dirname "$0")" && pwd)/lib/common.sh"
. "$ANCHOR_DIR/lib/proc.sh"
[[ $# -ge 2 ]] || { sed -n '2,9p' "$0" >&2; exit 2; }
bins=("$1" "$2"); shift 2
jobs=100; services=100; seconds=10; conns=100
while [[ $# -gt 0 ]]; do
    case "$1" in
        --jobs) jobs=$2; shift 2 ;;
        --services) services=$2; shift 2 ;;
        --seconds) seconds=$2; shift 2 ;;
        --connections) conns=$2; shift 2 ;;
        *) echo "unknown arg $1" >&2; exit 2 ;;
    esac
done
for b in "${bins[@]}"; do [[ -x "$b" ]] || { echo "http_ab: no meshd binary at $b" >&2; exit 3; }; done
command -v wrk >/dev/null || { echo "http_ab: needs wrk (apt-get install wrk)" >&2; exit 3; }

workdir=$(mktemp -d "${TMPDIR:-/tmp}/httpab.XXXXXX")
pid=""
cleanup() { [[ -n "$pid" ]] && stop_pid "$pid" TERM 30; rm -rf "$workdir"; }
trap cleanup EXIT INT TERM
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
hour=$(( ($(date -u +%-H) + 12) % 24 ))
{
    printf 'node: {name: bench-http-ab, state_dir: %s/state, log_level: warn}\n' "$workdir"
    printf 'registry: {url: ""}\n'
    printf 'http: {listen: "127.0.0.1:%s"}\njobs:\n' "$port"
    for (( i = 1; i <= services; i++ )); do
        printf '  s%04d: {command: [sleep, "100000"], schedule: always}\n' "$i"; done
    for (( i = 1; i <= jobs; i++ )); do
        printf '  c%04d: {command: ["true"], schedule: "%d %d * * *"}\n' "$i" $(( i % 60 )) "$hour"; done
} > "$workdir/meshd.yaml"

echo "# http_ab jobs=$jobs services=$services seconds=$seconds connections=$conns load=$(cut -d' ' -f1-3 /proc/loadavg)"
for i in 0 1; do
    b=${bins[$i]}; tag=$([[ $i == 0 ]] && echo A || echo B)
    env -u DATABASE_URL "$b" -c "$workdir/meshd.yaml" </dev/null >"$workdir/meshd$tag.out" 2>&1 &
    pid=$!
    for _ in $(seq 100); do
        curl -fsS -o /dev/null "http://127.0.0.1:$port/health" 2>/dev/null && break; sleep 0.1; done
    sleep 2
    echo "## $tag: $b (pid $pid)"
    echo "# /status size: $(curl -fsS "http://127.0.0.1:$port/status" | wc -c) bytes"
    cp "/proc/$pid/smaps" "$workdir/smaps$tag.idle"
    python3 "$BENCH_DIR/smaps_by_lib.py" "$pid" > "$workdir/libs$tag.idle"
    echo "# after start-up: $(tail -1 "$workdir/libs$tag.idle")   (RSS PSS private kB)"
    for path in /health /status; do
        echo "## $tag wrk -t2 -c$conns -d${seconds}s --latency http://127.0.0.1:$port$path"
        wrk -t2 -c"$conns" -d"${seconds}s" --latency "http://127.0.0.1:$port$path" 2>&1 |
            grep -E 'Latency  |50%|99%|Requests/sec|Socket errors|Non-2xx'
    done
    python3 "$BENCH_DIR/smaps_by_lib.py" "$pid" > "$workdir/libs$tag.load"
    echo "# after load: $(tail -1 "$workdir/libs$tag.load")   (RSS PSS private kB)"
    echo "# per mapping after start-up:"
    sed 's/^/#   /' "$workdir/libs$tag.idle"
    stop_pid "$pid" TERM 30; pid=""
done
