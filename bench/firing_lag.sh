#!/usr/bin/env bash
# Firing lag of meshd's scheduler: K every-second jobs ("* * * * * *"), each running
# bench/src/firestamp (static), which reads CLOCK_REALTIME first thing in main() and logs
# exec_time - MESHD_SCHEDULED_AT.  So the lag covers meshd's timer wake-up, its per-run set-up,
# fork/exec, and the static binary's own start-up before main() (no shell, no ld.so; still
# ~0.45 ms on a VM where cpuid traps, see docs/benchmarks.md).
#
# Usage: firing_lag.sh [--jobs K] [--services S] [--idle-jobs M] [--seconds T] [--warmup W]
#                      [--http-load] [--cluster]
#   K every-second jobs (10), beside S always-on "sleep 100000" services (100) and M daily jobs
#   that never fire in the window (90), so K+M scheduled jobs in all.  Firings whose scheduled
#   second is in the first W seconds (3) after meshd started are dropped (start-up of the
#   services); T seconds (30) are measured after that.
#   --cluster: cluster.enabled (every slot claimed in the registry first; needs DATABASE_URL).
#   --http-load: while the jobs fire, wrk (Debian's wrk) loads meshd's HTTP API on loopback
#   with 100 connections: GET /health for 10 s, then GET /status for 10 s (T becomes >= 22);
#   wrk's figures (requests/s, latency, errors) are printed after the lag.
# Prints one summary line per statistic (milliseconds) and checks for missed / duplicate
# slots and children left behind.  Writes only under $TMPDIR.  Needs no root.
set -euo pipefail
. "$(cd "$(dirname "$0")" && pwd)/lib/common.sh"
. "$ANCHOR_DIR/lib/proc.sh"
jobs=10; services=100; idle=90; seconds=30; warmup=3; http_load=0; cluster=0
while [[ $# -gt 0 ]]; do
    case "$1" in
        --http-load) http_load=1; shift ;;
        --cluster) cluster=1; shift ;;
        --jobs) jobs=$2; shift 2 ;;
        --services) services=$2; shift 2 ;;
        --idle-jobs) idle=$2; shift 2 ;;
        --seconds) seconds=$2; shift 2 ;;
        --warmup) warmup=$2; shift 2 ;;
        *) echo "unknown arg $1" >&2; exit 2 ;;
    esac
done
[[ -x "$MESHD" ]] || { echo "firing_lag: no meshd binary at $MESHD (make build, or set MESHD)" >&2; exit 3; }
if (( http_load )); then
    command -v wrk >/dev/null || { echo "firing_lag: --http-load needs wrk (apt-get install wrk)" >&2; exit 3; }
    (( seconds < 22 )) && seconds=22
    http_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
fi

# firestamp: static if the toolchain can, else dynamic (and say so).
mkdir -p "$BENCH_DIR/build"
fs=$BENCH_DIR/build/firestamp
if [[ ! -x "$fs" || "$BENCH_DIR/src/firestamp.c" -nt "$fs" ]]; then
    gcc -O2 -Wall -static -o "$fs" "$BENCH_DIR/src/firestamp.c" 2>/dev/null ||
        { echo "# firing_lag: static link failed, firestamp is dynamic (adds ld.so start-up)" >&2;
          gcc -O2 -Wall -o "$fs" "$BENCH_DIR/src/firestamp.c"; }
fi
linkage=$(file -b "$fs" | grep -o 'statically linked\|dynamically linked' || echo unknown)

workdir=$(mktemp -d "${TMPDIR:-/tmp}/firinglag.XXXXXX")
pid=""
cleanup() { [[ -n "$pid" ]] && stop_pid "$pid" TERM 30; rm -rf "$workdir"; }
trap cleanup EXIT INT TERM
log=$workdir/fired.log
: > "$log"
hour=$(( ($(date -u +%-H) + 12) % 24 ))
{
    cat <<CONF
node: {name: bench-firing, state_dir: $workdir/state, log_level: warn}
http: {listen: "127.0.0.1:${http_port:-0}"}
cluster: {enabled: $( (( cluster )) && echo true || echo false )}
defaults:
  backoff: {initial: 0s, max: 0s}
  start_secs: 0s
  stop_timeout: 5s
  max_retries: 1000
jobs:
CONF
    for (( i = 1; i <= services; i++ )); do
        printf '  p%04d: {command: [sleep, "100000"], schedule: always, restart: always}\n' "$i"; done
    for (( i = 1; i <= jobs; i++ )); do
        printf '  f%04d: {command: ["%s", "%s"], schedule: "* * * * * *", catch_up: 0s}\n' "$i" "$fs" "$log"; done
    for (( i = 1; i <= idle; i++ )); do
        printf '  c%04d: {command: ["true"], schedule: "%d %d * * *"}\n' "$i" $(( i % 60 )) "$hour"; done
} > "$workdir/meshd.yaml"
mkdir -p "$workdir/state"

python3 "$ANCHOR_DIR/lib/machine.py" snap "$workdir/machine.snap"
t_start=$(date +%s)
"$MESHD" -c "$workdir/meshd.yaml" </dev/null >"$workdir/meshd.out" 2>&1 &
pid=$!
echo "# firing_lag meshd_pid=$pid jobs=$jobs services=$services idle_jobs=$idle seconds=$seconds warmup=$warmup firestamp=$linkage"
first=$(( t_start + warmup + 1 ))
last=$(( first + seconds - 1 ))
# /proc/PID/stat after the ")" of comm starts at field 3 (state): skip 3..13, then utime, stime.
read -r _ _ _ _ _ _ _ _ _ _ _ ut0 st0 _ < <(cut -d')' -f2- "/proc/$pid/stat")
if (( http_load )); then
    while (( $(date +%s) < first )); do sleep 0.1; done
    for path in /health /status; do
        echo "## wrk -t2 -c100 -d10s --latency http://127.0.0.1:$http_port$path"
        wrk -t2 -c100 -d10s --latency "http://127.0.0.1:$http_port$path" 2>&1
    done > "$workdir/wrk.out"
fi
while (( $(date +%s) <= last + 1 )); do sleep 0.5; done
sleep 0.5
kill -0 "$pid" 2>/dev/null || { echo "# ERROR: meshd died during the run:" ; tail -20 "$workdir/meshd.out"; exit 1; }
read -r _ _ _ _ _ _ _ _ _ _ _ ut1 st1 _ < <(cut -d')' -f2- "/proc/$pid/stat")
mapfile -t kids < <(children_of "$pid")
stop_pid "$pid" TERM 30
left=0
for k in "${kids[@]}"; do [[ -d /proc/$k ]] && left=$((left + 1)); done
pid=""
python3 "$ANCHOR_DIR/lib/machine.py" since "$workdir/machine.snap"
echo "# meshd cpu over the whole run (start-up + warm-up + window): $(( (ut1 + st1 - ut0 - st0) * 1000 / $(getconf CLK_TCK) )) ms; children alive after stop: $left"
echo "# meshd log lines at warn or error: $(grep -ciE 'warn|err' "$workdir/meshd.out" || true)"

python3 - "$log" "$first" "$last" "$jobs" "$ANCHOR_DIR/lib" <<'PY'
import sys
sys.path.insert(0, sys.argv[5])
from stats import fmt
log, first, last, k = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
lags, seen, dups = [], {}, 0
per_slot = {}
for line in open(log):
    f = line.split()
    if len(f) < 5:
        continue
    job, sched, lag_us = f[0], int(f[1]), float(f[3])
    if not (first <= sched <= last):
        continue
    if (job, sched) in seen:
        dups += 1
        continue
    seen[(job, sched)] = lag_us
    lags.append(lag_us / 1000.0)
    per_slot.setdefault(sched, []).append(lag_us / 1000.0)
expected = k * (last - first + 1)
print("firings expected=%d got=%d missing=%d duplicates=%d" % (expected, len(lags), expected - len(lags), dups))
print(fmt("firing_lag_ms", lags, "", 3) if lags else "firing_lag_ms N=0")
# Lag of the first and of the last job to start within each second (how the burst spreads).
if per_slot:
    print(fmt("slot_first_lag_ms", [min(v) for v in per_slot.values()], "", 3))
    print(fmt("slot_last_lag_ms", [max(v) for v in per_slot.values()], "", 3))
PY
if (( http_load )); then
    echo "# HTTP load during the window (wrk, 100 connections, loopback):"
    grep -E '^##|Requests/sec|Latency  |50%|99%|Socket errors|Non-2xx|requests in' "$workdir/wrk.out"
fi
