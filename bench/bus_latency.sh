#!/usr/bin/env bash
# Message-bus delivery latency: how long from a message's INSERT into agent_messages to the
# start of the `on:` run that handles it, with 1 meshd node and with 2 nodes sharing one
# PostgreSQL (docs/cluster.md, "The message bus").  Not throughput (bench/bus_rate.sh): the
# messages come one at a time, --interval apart (one psql session: INSERT, pg_sleep, INSERT ...),
# so each one finds the queue empty and a job idle, and measures the path itself: commit,
# NOTIFY, meshd's wake-up, its claim round trip, the spawn.
#
# Each node has one `on: bench.latency` job running bench/src/msgstamp (static), which reads
# CLOCK_REALTIME first thing in main() and writes the message id, its run id and that time.
# Per message (all clocks are this machine's):
#   created_at   agent_messages.created_at: the INSERT's transaction start (now())
#   claimed_at   agent_messages.claimed_at: the claim's transaction start (now())
#   started_at   agent_runs.started_at of the run (MESHD_RUN_ID): meshd's clock just before it
#                spawns the run (milliseconds: the registry stores ms)
#   exec         the worker's own clock in main(), after fork, exec and its static start-up
# and the delivery latency is started_at - created_at (insert -> the run's start), with
# exec - created_at (insert -> the worker running) beside it, and the parts: created -> claimed
# (commit, NOTIFY, wake-up), claimed -> started (the claim's answer, the run's set-up), started
# -> exec (fork/exec).  Beside them, the machine's own fork+exec+wait of /bin/true and of a
# static no-op (the anchor's spawn_ceiling.c, sequential), the floor under the last part.
#
# Usage: bus_latency.sh [--messages N] [--interval MS] [--nodes "1 2"]
#   N messages per node count (default 500), MS between two inserts (default 100: 10/s, far
#   below what one node runs, ~350/s), each node count in its own database.
# A throwaway PostgreSQL 15 cluster under $TMPDIR (unix socket), stopped and removed at the end;
# every meshd this starts is stopped by PID.  Needs no root (as root the server runs as postgres).
set -euo pipefail
. "$(cd "$(dirname "$0")" && pwd)/lib/common.sh"
. "$ANCHOR_DIR/lib/proc.sh"
PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}
msgs=500; interval_ms=100; node_counts="1 2"
while [[ $# -gt 0 ]]; do
    case "$1" in
        --messages) msgs=$2; shift 2 ;;
        --interval) interval_ms=$2; shift 2 ;;
        --nodes) node_counts=$2; shift 2 ;;
        *) echo "unknown arg $1" >&2; exit 2 ;;
    esac
done
[[ "$msgs" =~ ^[1-9][0-9]*$ && "$interval_ms" =~ ^[0-9]+$ && "$node_counts" =~ ^[1-9\ ]+$ ]] ||
    { echo "bus_latency: --messages N>=1, --interval MS, --nodes \"1 2\"" >&2; exit 2; }
[[ -x "$MESHD" && -x "$MESHCTL" ]] || { echo "bus_latency: no meshd/meshctl at $MESHD" >&2; exit 3; }

work=$(mktemp -d "${TMPDIR:-/tmp}/buslat.XXXXXX")
chmod 755 "$work"
pgdir=$work/pg
pids=(); pg_up=0
as_pg() { if [[ $(id -u) -eq 0 ]]; then (cd / && runuser -u postgres -- "$@"); else "$@"; fi; }  # from /: the cwd may be out of its reach
stop_nodes() {
    local p
    for p in "${pids[@]}"; do stop_pid "$p" TERM 30; done
    pids=()
}
cleanup() {
    stop_nodes
    if (( pg_up )); then as_pg "$PG_BIN/pg_ctl" -D "$pgdir/data" -m fast -w -t 60 stop >/dev/null || true; fi
    rm -rf "$work"
}
trap cleanup EXIT INT TERM

# The run's command, static (as firing_lag.sh builds firestamp), and the fork/exec reference.
mkdir -p "$BENCH_DIR/build"
stamp=$BENCH_DIR/build/msgstamp
if [[ ! -x "$stamp" || "$BENCH_DIR/src/msgstamp.c" -nt "$stamp" ]]; then
    gcc -O2 -Wall -static -o "$stamp" "$BENCH_DIR/src/msgstamp.c" 2>/dev/null ||
        { echo "# bus_latency: static link failed, msgstamp is dynamic (adds ld.so start-up)" >&2;
          gcc -O2 -Wall -o "$stamp" "$BENCH_DIR/src/msgstamp.c"; }
fi
linkage=$(file -b "$stamp" | grep -o 'statically linked\|dynamically linked' || echo unknown)
gcc -O2 -Wall -o "$work/spawn_ceiling" "$ANCHOR_DIR/src/spawn_ceiling.c" -lm
gcc -O2 -static -o "$work/true_static" "$ANCHOR_DIR/src/true_static.c" 2>/dev/null ||
    gcc -O2 -o "$work/true_static" "$ANCHOR_DIR/src/true_static.c"

mkdir -p "$pgdir"
[[ $(id -u) -eq 0 ]] && chown postgres: "$pgdir"
as_pg "$PG_BIN/initdb" -D "$pgdir/data" -A trust -U postgres -E UTF8 --locale=C >"$work/initdb.log" 2>&1 ||
    { cat "$work/initdb.log" >&2; exit 1; }
printf "listen_addresses = ''\nunix_socket_directories = '%s'\n" "$pgdir" >> "$pgdir/data/postgresql.conf"
as_pg "$PG_BIN/pg_ctl" -D "$pgdir/data" -l "$pgdir/log" -w start >/dev/null
pg_up=1
psql() { "$PG_BIN/psql" -X -v ON_ERROR_STOP=1 -Atq "$@"; }
wait_sql() {  # wait_sql URL SQL WANT TIMEOUT_S: until SQL answers >= WANT
    local i
    for (( i = 0; i < $4 * 20; i++ )); do
        (( $(psql "$1" -c "$2") >= $3 )) && return 0
        sleep 0.05
    done
    echo "bus_latency: timed out waiting for: $2 >= $3" >&2
    return 1
}

echo "# bus_latency messages=$msgs interval_ms=$interval_ms nodes=\"$node_counts\" msgstamp=$linkage meshd=$MESHD"
echo "# $(nproc) CPUs, $(uname -r), $("$PG_BIN/postgres" --version)"
for k in $node_counts; do
    db=bus_$k
    url="host=$pgdir user=postgres dbname=$db"
    psql "host=$pgdir user=postgres dbname=postgres" -c "CREATE DATABASE $db"
    "$MESHCTL" migrate --url "$url" >/dev/null
    out=$work/stamps.$k
    for (( n = 1; n <= k; n++ )); do
        d=$work/k$k-n$n
        mkdir -p "$d"
        cat > "$d/meshd.yaml" <<CONF
node: {name: n$n, state_dir: $d/state, log_level: warn}
http: {listen: ""}
jobs:
  consume: {command: ["$stamp", "$out"], on: bench.latency, start_secs: 0s}
CONF
        DATABASE_URL=$url "$MESHD" -c "$d/meshd.yaml" </dev/null >"$d/meshd.out" 2>&1 &
        pids+=($!)
    done
    # Every node up, and its bus listening: warm-up messages until each node has run one.
    wait_sql "$url" "SELECT count(*) FROM agent_registry WHERE job IS NULL AND state = 'up'" "$k" 30
    for (( i = 0; i < 100; i++ )); do
        psql "$url" -c "INSERT INTO agent_messages (type) VALUES ('bench.latency')"
        sleep 0.05
        if (( $(psql "$url" -c "SELECT count(DISTINCT claimed_by) FROM agent_messages WHERE status = 'done'") >= k )); then
            break
        fi
    done
    wait_sql "$url" "SELECT count(*) FILTER (WHERE status = 'done') - count(*) + 1 FROM agent_messages" 1 30
    first=$(psql "$url" -c "SELECT coalesce(max(id), 0) + 1 FROM agent_messages")
    sleep 1

    python3 "$ANCHOR_DIR/lib/machine.py" snap "$work/machine.snap"
    sql=$work/inserts.$k.sql
    for (( i = 1; i <= msgs; i++ )); do
        echo "INSERT INTO agent_messages (type, payload) VALUES ('bench.latency', '{\"i\": $i}');"
        if (( interval_ms > 0 && i < msgs )); then echo "SELECT pg_sleep($interval_ms / 1000.0);"; fi
    done > "$sql"
    psql "$url" -o /dev/null -f "$sql"
    wait_sql "$url" "SELECT count(*) FROM agent_messages WHERE id >= $first AND status = 'done'" "$msgs" 120
    # The run rows come through the registry's batches (20 ms).
    wait_sql "$url" "SELECT count(*) FROM agent_runs WHERE job = 'consume' AND started_at IS NOT NULL" \
        "$(psql "$url" -c "SELECT count(*) FROM agent_messages")" 30
    machine=$(python3 "$ANCHOR_DIR/lib/machine.py" since "$work/machine.snap")
    stop_nodes

    psql "$url" -F ' ' -c "SELECT id, extract(epoch FROM created_at), extract(epoch FROM claimed_at),
                                  claimed_by, attempts FROM agent_messages WHERE id >= $first" > "$work/msgs.$k"
    psql "$url" -F ' ' -c "SELECT run_id, extract(epoch FROM started_at) FROM agent_runs WHERE job = 'consume'" > "$work/runs.$k"
    python3 - "$ANCHOR_DIR/lib" "$k" "$msgs" "$work/msgs.$k" "$work/runs.$k" "$out" <<'PY'
import sys
sys.path.insert(0, sys.argv[1])
from stats import summary  # noqa: E402
k, want, msgs_f, runs_f, stamps_f = sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5], sys.argv[6]
msgs = {}
for line in open(msgs_f):
    mid, created, claimed, by, attempts = line.split()
    msgs[mid] = (float(created), float(claimed), by, int(attempts))
runs = dict((r, float(t)) for r, t in (line.split() for line in open(runs_f)))
parts = {"deliver": [], "exec": [], "claim": [], "answer": [], "spawn": []}
by_node, bad = {}, []
for line in open(stamps_f):
    mid, run, exec_t, node = line.split()
    if mid not in msgs:
        continue  # a warm-up message
    created, claimed, by, attempts = msgs[mid]
    started, exec_t = runs[run], float(exec_t)
    if attempts != 1:
        bad.append(mid)
    by_node[node] = by_node.get(node, 0) + 1
    parts["deliver"].append(started - created)
    parts["exec"].append(exec_t - created)
    parts["claim"].append(claimed - created)
    parts["answer"].append(started - claimed)
    parts["spawn"].append(exec_t - started)
n = len(parts["deliver"])
print("nodes=%s: %d of %d messages ran, split %s, claimed more than once: %d" % (
    k, n, want, " ".join("%s=%d" % kv for kv in sorted(by_node.items())), len(bad)))
labels = [("deliver", "insert -> run start (agent_runs.started_at)"),
          ("exec", "insert -> worker's main()"),
          ("claim", "  created_at -> claimed_at (commit, NOTIFY, wake-up)"),
          ("answer", "  claimed_at -> started_at (claim answer, run set-up)"),
          ("spawn", "  started_at -> main() (fork, exec, static start-up)")]
for key, label in labels:
    s = summary([v * 1000.0 for v in parts[key]])
    print("nodes=%s %-54s p50=%7.2f ms  p90=%7.2f  p99=%7.2f  max=%7.2f  min=%6.2f" % (
        k, label, s["median"], s["p90"], s["p99"], s["max"], s["min"]))
if n != want or bad:
    sys.exit(1)
PY
    echo "$machine"
done
# The floor under the spawn part: this machine's sequential fork+exec+wait (2 s each).
for prog in /bin/true "$work/true_static"; do
    name=$prog; [[ $prog == /bin/true ]] || name="a static no-op"
    "$work/spawn_ceiling" fork 2 1 "$prog" | python3 -c '
import re, sys
m = re.search(r"lat_us: min=([0-9.]+) median=([0-9.]+) p90=([0-9.]+) p99=([0-9.]+)", sys.stdin.read())
lo, p50, p90, p99 = (float(x) / 1000 for x in m.groups())
print("machine: fork+exec+wait of %-14s (sequential, 2 s)             p50=%7.2f ms  p90=%7.2f  p99=%7.2f  min=%6.2f"
      % (sys.argv[1], p50, p90, p99, lo))' "$name"
done
