#!/usr/bin/env bash
# Firing lag of meshd's scheduler: K every-second jobs ("* * * * * *"), each running
# bench/src/firestamp (static), which reads CLOCK_REALTIME first thing in main() and logs
# exec_time - MESHD_SCHEDULED_AT.  So the lag covers meshd's timer wake-up, its per-run set-up,
# fork/exec, and the static binary's own start-up before main() (no shell, no ld.so; still
# ~0.45 ms on a VM where cpuid traps, see docs/benchmarks.md).
#
# Usage: firing_lag.sh [--jobs K] [--services S] [--idle-jobs M] [--seconds T] [--warmup W]
#                      [--http-load] [--cluster [--nodes N [--stagger S]]] [--flood [--flood-nice N]]
#   K every-second jobs (10), beside S always-on "sleep 100000" services (100) and M daily jobs
#   that never fire in the window (90), so K+M scheduled jobs in all.  Firings whose scheduled
#   second is in the first W seconds (3) after meshd started are dropped (start-up of the
#   services); T seconds (30) are measured after that.
#   --cluster: cluster.enabled (every slot claimed in the registry first; needs DATABASE_URL).
#   --nodes N (with --cluster; 1): N meshd on the same database and the same schedule (node
#   names bench-firing-1..N, a state directory each), so the K jobs are due in the same second
#   on every node and the nodes contend for each slot's claims; node i starts (i-1)*S seconds
#   after the first (--stagger S, 2: nodes started in the same second claim in the same order,
#   nodes in the field do not), and the warm-up grows by that much.  The lag is the winner's;
#   each slot must run once in all (duplicates are counted), and the split between the nodes
#   and each node's failed and unanswered claim batches (its log, at warn) are printed.
#   --http-load: while the jobs fire, wrk (Debian's wrk) loads meshd's HTTP API on loopback
#   with 100 connections: GET /health for 10 s, then GET /status for 10 s (T becomes >= 22);
#   wrk's figures (requests/s, latency, errors) are printed after the lag.
#   --flood: two more services flood meshd, as fast as meshd reads, during the second half of
#   the run: one writes ordinary output on stdout (62-byte lines with an ESC colour sequence),
#   one writes bad JSON on its status fd 3 (38-byte lines); both are bench/src/flood.c, run at
#   `nice 19` (--flood-nice N) so that on a small machine the comparison shows meshd's loop,
#   not two CPU hogs beside it.  T seconds are measured without the flood, then T seconds with
#   it, in the same meshd run, and the lag, meshd's CPU time and its log bytes are printed for
#   each half, with CPU and log bytes per 100 MB flooded.  meshd logs at `notice` (the default
#   level, which shows worker output) instead of `warn`.
# Prints one summary line per statistic (milliseconds) and checks for missed / duplicate
# slots and children left behind.  Writes only under $TMPDIR.  Needs no root.
set -euo pipefail
. "$(cd "$(dirname "$0")" && pwd)/lib/common.sh"
. "$ANCHOR_DIR/lib/proc.sh"
jobs=10; services=100; idle=90; seconds=30; warmup=3; http_load=0; cluster=0; flood=0
flood_nice=19; nodes=1; stagger=2
while [[ $# -gt 0 ]]; do
    case "$1" in
        --http-load) http_load=1; shift ;;
        --cluster) cluster=1; shift ;;
        --nodes) nodes=$2; shift 2 ;;
        --stagger) stagger=$2; shift 2 ;;
        --flood) flood=1; shift ;;
        --flood-nice) flood_nice=$2; shift 2 ;;
        --jobs) jobs=$2; shift 2 ;;
        --services) services=$2; shift 2 ;;
        --idle-jobs) idle=$2; shift 2 ;;
        --seconds) seconds=$2; shift 2 ;;
        --warmup) warmup=$2; shift 2 ;;
        *) echo "unknown arg $1" >&2; exit 2 ;;
    esac
done
[[ -x "$MESHD" ]] || { echo "firing_lag: no meshd binary at $MESHD (make build, or set MESHD)" >&2; exit 3; }
[[ "$nodes" =~ ^[1-9][0-9]?$ && "$stagger" =~ ^[0-9]+$ ]] ||
    { echo "firing_lag: --nodes takes 1..99, --stagger whole seconds" >&2; exit 2; }
if (( nodes > 1 )); then
    (( cluster )) || { echo "firing_lag: --nodes needs --cluster (nodes without claims would all run every slot)" >&2; exit 2; }
    (( http_load || flood )) && { echo "firing_lag: --nodes does not mix with --http-load or --flood" >&2; exit 2; }
fi
if (( cluster )) && [[ -z "${DATABASE_URL:-}" ]]; then
    echo "firing_lag: --cluster needs DATABASE_URL (the registry database the nodes share)" >&2; exit 2
fi
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
if (( flood )); then
    (( http_load )) && { echo "firing_lag: --flood and --http-load do not mix" >&2; exit 2; }
    flooder=$BENCH_DIR/build/flood
    if [[ ! -x "$flooder" || "$BENCH_DIR/src/flood.c" -nt "$flooder" ]]; then
        gcc -O2 -Wall -o "$flooder" "$BENCH_DIR/src/flood.c"
    fi
fi

workdir=$(mktemp -d "${TMPDIR:-/tmp}/firinglag.XXXXXX")
pid=""; pids=()  # pid: the first node's meshd (the only one without --nodes); pids: every node's
cleanup() {
    local p
    for p in "${pids[@]}"; do stop_pid "$p" TERM 30; done
    rm -rf "$workdir"
}
trap cleanup EXIT INT TERM
log=$workdir/fired.log
: > "$log"
hour=$(( ($(date -u +%-H) + 12) % 24 ))
# The plan in wall-clock seconds: firings scheduled in [first, last] are measured; with --flood,
# [first, mid - 1] without the flood and [mid, last] with it.
t_plan=$(date +%s)
first=$(( t_plan + warmup + (nodes - 1) * stagger + 1 ))
if (( flood )); then
    mid=$(( first + seconds ))
    last=$(( mid + seconds - 1 ))
    flood_from=$mid
    flood_until=$(( last + 1 ))
else
    last=$(( first + seconds - 1 ))
fi
{
    cat <<CONF
node: {name: @NODE@, state_dir: $workdir/state@N@, log_level: $( (( flood )) && echo notice || echo warn)}
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
    if (( flood )); then
        # Both flood from the middle of the measured window to its end (see below).
        for f in "out 1 text" "status 3 badjson"; do
            set -- $f
            printf '  flood-%s: {command: [nice, -n, "%d", "%s", "%s", "%s", "%d", "%d", "%s"], schedule: always, restart: never}\n' \
                "$1" "$flood_nice" "$flooder" "$2" "$3" "$flood_from" "$flood_until" "$workdir/flooded.$1"
        done
    fi
} > "$workdir/meshd.yaml.in"
# One configuration per node: node 1 keeps the plain names (meshd.yaml, state, meshd.out).
node_sfx() { (( $1 == 1 )) && echo "" || echo ".$1"; }
for (( n = 1; n <= nodes; n++ )); do
    sfx=$(node_sfx "$n")
    name=bench-firing; (( nodes > 1 )) && name=bench-firing-$n
    sed -e "s/@NODE@/$name/" -e "s/@N@/$sfx/" "$workdir/meshd.yaml.in" > "$workdir/meshd.yaml$sfx"
    mkdir -p "$workdir/state$sfx"
done

python3 "$ANCHOR_DIR/lib/machine.py" snap "$workdir/machine.snap"
t_start=$(date +%s)
for (( n = 1; n <= nodes; n++ )); do
    sfx=$(node_sfx "$n")
    (( n > 1 )) && sleep "$stagger"
    "$MESHD" -c "$workdir/meshd.yaml$sfx" </dev/null >"$workdir/meshd.out$sfx" 2>&1 &
    pids+=($!)
done
pid=${pids[0]}
echo "# firing_lag meshd_pid=${pids[*]} nodes=$nodes jobs=$jobs services=$services idle_jobs=$idle seconds=$seconds warmup=$warmup firestamp=$linkage flood=$flood cluster=$cluster"
(( t_start > t_plan )) && echo "# (meshd started $(( t_start - t_plan )) s after the plan: warm-up shortened)"
# /proc/PID/stat after the ")" of comm starts at field 3 (state): skip 3..13, then utime, stime.
# Summed over every node's meshd.
cpu_ms() {
    local ut st p sum=0
    for p in "${pids[@]}"; do
        read -r _ _ _ _ _ _ _ _ _ _ _ ut st _ < <(cut -d')' -f2- "/proc/$p/stat")
        sum=$(( sum + ut + st ))
    done
    echo $(( sum * 1000 / $(getconf CLK_TCK) ))
}
log_bytes() { stat -c %s "$workdir/meshd.out"; }
# Waits until 0.2 s before the wall-clock second $1: samples are taken just before the flood
# starts (and ends), whose flooders poll the clock every 10 ms.
until_before() { while (( $(date +%s%N) < $1 * 1000000000 - 200000000 )); do sleep 0.02; done; }
# meshd's own view of the lag (slot due -> spawn, its meshd_firing_lag_seconds histogram): how
# long its loop took to get to the slot, without the child's exec and start-up.
metrics_lag() {
    python3 - "$workdir/meshd.out" "$1" <<'PY'
import re, sys, urllib.request
port = re.findall(r"http: listening on \S+:(\d+)", open(sys.argv[1], errors="replace").read())[-1]
text = urllib.request.urlopen("http://127.0.0.1:%s/metrics" % port, timeout=5).read().decode()
with open(sys.argv[2], "w") as f:
    f.write("".join(l + "\n" for l in text.splitlines()
                    if l.startswith("meshd_firing_lag_seconds_bucket")))
PY
}
cpu0=$(cpu_ms)
if (( flood )); then
    until_before "$first"
    cpu_a=$(cpu_ms); log_a=$(log_bytes); metrics_lag "$workdir/lag.a"
    until_before "$mid"
    cpu_b=$(cpu_ms); log_b=$(log_bytes); metrics_lag "$workdir/lag.b"
fi
if (( http_load )); then
    while (( $(date +%s) < first )); do sleep 0.1; done
    for path in /health /status; do
        echo "## wrk -t2 -c100 -d10s --latency http://127.0.0.1:$http_port$path"
        wrk -t2 -c100 -d10s --latency "http://127.0.0.1:$http_port$path" 2>&1
    done > "$workdir/wrk.out"
fi
if (( flood )); then
    until_before $(( last + 1 ))
    cpu_c=$(cpu_ms); log_c=$(log_bytes); metrics_lag "$workdir/lag.c"
fi
while (( $(date +%s) <= last + 1 )); do sleep 0.5; done
sleep 0.5
for (( n = 1; n <= nodes; n++ )); do
    kill -0 "${pids[n-1]}" 2>/dev/null ||
        { echo "# ERROR: meshd (node $n) died during the run:"; tail -20 "$workdir/meshd.out$(node_sfx "$n")"; exit 1; }
done
cpu1=$(cpu_ms)
kids=()
for p in "${pids[@]}"; do mapfile -t -O "${#kids[@]}" kids < <(children_of "$p"); done
for p in "${pids[@]}"; do stop_pid "$p" TERM 30; done
left=0
for k in "${kids[@]}"; do [[ -d /proc/$k ]] && left=$((left + 1)); done
pid=""; pids=()
python3 "$ANCHOR_DIR/lib/machine.py" since "$workdir/machine.snap"
echo "# meshd cpu over the whole run (start-up + warm-up + window): $(( cpu1 - cpu0 )) ms; children alive after stop: $left"
for (( n = 1; n <= nodes; n++ )); do
    out=$workdir/meshd.out$(node_sfx "$n")
    echo "# node $n: meshd log lines at warn or error: $(grep -ciE 'warn|err' "$out" || true)$( (( cluster )) &&
        echo "; failed claim batches: $(grep -c 'cluster: claims failed' "$out" || true)" \
             "(deadlocks: $(grep -c 'claims failed: sqlstate=40P01' "$out" || true));" \
             "unanswered claim batches: $(grep -c 'no answer to' "$out" || true)")"
done

if (( flood )); then
    phases=("no_flood:$first:$(( mid - 1 ))" "flood:$mid:$last")
else
    phases=("all:$first:$last")
fi
python3 - "$log" "$jobs" "$ANCHOR_DIR/lib" "${phases[@]}" <<'PY'
import sys
sys.path.insert(0, sys.argv[3])
from stats import fmt
log, k = sys.argv[1], int(sys.argv[2])
phases = [(p.split(":")[0], int(p.split(":")[1]), int(p.split(":")[2])) for p in sys.argv[4:]]
rows = []
for line in open(log):
    f = line.split()
    if len(f) >= 5:
        rows.append((f[0], int(f[1]), float(f[3]), f[5] if len(f) >= 6 else "-"))
for name, first, last in phases:
    lags, seen, dups = [], {}, 0
    per_slot, per_node = {}, {}
    for job, sched, lag_us, node in rows:
        if not (first <= sched <= last):
            continue
        per_node[node] = per_node.get(node, 0) + 1
        if (job, sched) in seen:
            dups += 1
            continue
        seen[(job, sched)] = lag_us
        lags.append(lag_us / 1000.0)
        per_slot.setdefault(sched, []).append(lag_us / 1000.0)
    pfx = "" if name == "all" else name + "."
    expected = k * (last - first + 1)
    print("%sfirings expected=%d got=%d missing=%d duplicates=%d"
          % (pfx, expected, len(lags), expected - len(lags), dups))
    if len(per_node) > 1:
        print("%sfirings_per_node %s" % (pfx, " ".join("%s=%d" % kv for kv in sorted(per_node.items()))))
    print(fmt(pfx + "firing_lag_ms", lags, "", 3) if lags else pfx + "firing_lag_ms N=0")
    # Lag of the first and of the last job to start within each second (how the burst spreads).
    if per_slot:
        print(fmt(pfx + "slot_first_lag_ms", [min(v) for v in per_slot.values()], "", 3))
        print(fmt(pfx + "slot_last_lag_ms", [max(v) for v in per_slot.values()], "", 3))
PY
if (( flood )); then
    flooded_out=$(cat "$workdir/flooded.out" 2>/dev/null || echo 0)
    flooded_status=$(cat "$workdir/flooded.status" 2>/dev/null || echo 0)
    python3 - "$workdir" "$seconds" "$cpu_a" "$cpu_b" "$cpu_c" "$log_a" "$log_b" "$log_c" "$flooded_out" "$flooded_status" <<'PY'
import re, sys
wd = sys.argv[1]
t, ca, cb, cc, la, lb, lc, fo, fs = (int(x) for x in sys.argv[2:])
def buckets(name):
    out = {}
    for l in open("%s/lag.%s" % (wd, name)):
        m = re.match(r'meshd_firing_lag_seconds_bucket\{le="([^"]+)"\} (\d+)', l)
        if m:
            out[m.group(1)] = int(m.group(2))
    return out
ba, bb, bc = buckets("a"), buckets("b"), buckets("c")
for name, x, y in (("no_flood", ba, bb), ("flood", bb, bc)):
    n = y.get("+Inf", 0) - x.get("+Inf", 0)
    cells = []
    for le in ("0.001", "0.0025", "0.005", "0.01", "0.025", "0.05"):
        k = y.get(le, 0) - x.get(le, 0)
        cells.append("<=%gms:%.1f%%" % (float(le) * 1000, 100.0 * k / n if n else 0))
    print("%s.spawn_lag (meshd's histogram, slot due -> spawn, ms resolution) N=%d %s"
          % (name, n, " ".join(cells)))
flooded = fo + fs
# The flood half's cost minus what the same time costs without it (the 10 jobs' own lines).
cpu, logb = (cc - cb) - (cb - ca), (lc - lb) - (lb - la)
print("no_flood.meshd_cpu_ms=%d log_bytes=%d   flood.meshd_cpu_ms=%d log_bytes=%d   (%d s each)"
      % (cb - ca, lb - la, cc - cb, lc - lb, t))
print("flooded_bytes stdout=%d status=%d (%.1f MB/s together)" % (fo, fs, flooded / 1e6 / t))
if flooded > 0:
    per = 100e6 / flooded
    print("per_100MB_flooded meshd_cpu_s=%.2f log_bytes=%d (%.2f MB)"
          % (cpu * per / 1000.0, logb * per, logb * per / 1e6))
PY
fi
if (( http_load )); then
    echo "# HTTP load during the window (wrk, 100 connections, loopback):"
    grep -E '^##|Requests/sec|Latency  |50%|99%|Socket errors|Non-2xx|requests in' "$workdir/wrk.out"
fi
