#!/usr/bin/env bash
# Registry write rate (issue 3): sustained registry events per second that meshd ships to
# PostgreSQL with N jobs firing every second, the round trips it uses for them, and, on the same
# cluster in the same run, the ceiling of single-row INSERTs (pgbench) for comparison.
#
# Each of the N jobs ("* * * * * *", catch_up 0s, concurrency forbid) runs bench/src/metric2
# (static), which writes two metric lines to the status fd and exits 0: per run a run_start,
# a run_end and two metric events, plus the job-state events meshd adds.
#
# Usage: registry_rate.sh [--jobs N] [--seconds T] [--warmup W] [--insert-seconds S] [--keep]
#   N every-second jobs (1000); T measured seconds (30) after W seconds of warm-up (5);
#   S seconds per pgbench run (10; 1 client, then 4 clients); --keep leaves the work directory
#   (cluster data, meshd log, journal) in place and prints its path.
# Makes its own PostgreSQL 15 cluster under $TMPDIR (unix socket only; PostgreSQL defaults:
# fsync on, synchronous_commit on; plus pg_stat_statements and track_functions = pl to see where
# the server's time goes), runs meshd -l notice (the shutdown line with the registry counters is
# a notice), and removes everything at the end.  If meshd left a backlog in its journal (it
# could not keep up), it is started again with nothing due and the rate at which it drains the
# backlog is measured too: the registry path alone.  Runs as root (the cluster runs as
# 'postgres') or as a normal user.  Takes about W + T + 2 S + 15 seconds, plus the drain.
# Environment: MESHD (default build/meshd), MESHCTL (default: beside MESHD), PG_BIN.
set -euo pipefail
# shellcheck source=/dev/null
. "$(cd "$(dirname "$0")" && pwd)/lib/common.sh"
# shellcheck source=/dev/null
. "$ANCHOR_DIR/lib/proc.sh"
PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}
MESHCTL=${MESHCTL:-$(dirname "$MESHD")/meshctl}
jobs=1000; seconds=30; warmup=5; ins_seconds=10; keep=0
while [[ $# -gt 0 ]]; do
    case "$1" in
        --jobs) jobs=$2; shift 2 ;;
        --seconds) seconds=$2; shift 2 ;;
        --warmup) warmup=$2; shift 2 ;;
        --insert-seconds) ins_seconds=$2; shift 2 ;;
        --keep) keep=1; shift ;;
        *) echo "unknown arg $1" >&2; exit 2 ;;
    esac
done
[[ -x "$MESHD" ]] || { echo "registry_rate: no meshd binary at $MESHD (make build, or set MESHD)" >&2; exit 3; }
[[ -x "$MESHCTL" ]] || { echo "registry_rate: no meshctl binary at $MESHCTL (make build, or set MESHCTL)" >&2; exit 3; }
[[ -x "$PG_BIN/initdb" && -x "$PG_BIN/pgbench" ]] || { echo "registry_rate: no PostgreSQL binaries in $PG_BIN (install postgresql-15, or set PG_BIN)" >&2; exit 3; }

# metric2: static if the toolchain can, else dynamic (and say so).
mkdir -p "$BENCH_DIR/build"
m2=$BENCH_DIR/build/metric2
if [[ ! -x "$m2" || "$BENCH_DIR/src/metric2.c" -nt "$m2" ]]; then
    gcc -O2 -Wall -static -o "$m2" "$BENCH_DIR/src/metric2.c" 2>/dev/null ||
        { echo "# registry_rate: static link failed, metric2 is dynamic (adds ld.so start-up)" >&2;
          gcc -O2 -Wall -o "$m2" "$BENCH_DIR/src/metric2.c"; }
fi
linkage=$(file -b "$m2" | grep -o 'statically linked\|dynamically linked' || echo unknown)

work=$(mktemp -d "${TMPDIR:-/tmp}/regrate.XXXXXX")
chmod 755 "$work"
pgdir=$work/pg
pid=""; pg_up=0
as_pg() {  # the server refuses to run as root; use the postgres account then
    if [[ $(id -u) -eq 0 ]]; then (cd / && runuser -u postgres -- "$@"); else "$@"; fi  # from /: the cwd may be out of its reach
}
cleanup() {
    [[ -n "$pid" ]] && stop_pid "$pid" TERM 30
    if (( pg_up )); then as_pg "$PG_BIN/pg_ctl" -D "$pgdir/data" -m fast -w -t 60 stop >/dev/null || true; fi
    if (( keep )); then echo "# kept: $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT INT TERM
# Private copies, so that a rebuild during the run cannot change what is measured.
cp "$MESHD" "$work/meshd"; cp "$MESHCTL" "$work/meshctl"

# --- the cluster: PostgreSQL defaults, unix socket in $pgdir, no TCP ---
mkdir -p "$pgdir"
[[ $(id -u) -eq 0 ]] && chown postgres: "$pgdir"
as_pg "$PG_BIN/initdb" -D "$pgdir/data" -A trust -U postgres -E UTF8 --locale=C >"$work/initdb.log" 2>&1 ||
    { cat "$work/initdb.log" >&2; exit 1; }
cat >> "$pgdir/data/postgresql.conf" <<CONF
# --- registry_rate.sh ---
listen_addresses = ''
port = 5432
unix_socket_directories = '$pgdir'
shared_preload_libraries = 'pg_stat_statements'
pg_stat_statements.track = top
track_functions = pl
CONF
as_pg "$PG_BIN/pg_ctl" -D "$pgdir/data" -l "$pgdir/server.log" -w -t 60 start >/dev/null ||
    { tail -20 "$pgdir/server.log" >&2; exit 1; }
pg_up=1
export PGHOST=$pgdir PGPORT=5432 PGUSER=postgres
psql() { "$PG_BIN/psql" -X -v ON_ERROR_STOP=1 -Atq "$@"; }
psql -d postgres -c 'CREATE DATABASE meshd'
url="host=$pgdir port=5432 user=postgres dbname=meshd"
DATABASE_URL=$url "$work/meshctl" migrate >"$work/migrate.log" 2>&1 || { cat "$work/migrate.log" >&2; exit 1; }
psql -d meshd -c 'CREATE EXTENSION pg_stat_statements'
echo "# server=$(psql -d meshd -c 'SHOW server_version') fsync=$(psql -d meshd -c 'SHOW fsync') synchronous_commit=$(psql -d meshd -c 'SHOW synchronous_commit') wal_sync_method=$(psql -d meshd -c 'SHOW wal_sync_method') shared_buffers=$(psql -d meshd -c 'SHOW shared_buffers')"
echo "# data directory filesystem: $(df -T "$pgdir" | awk 'NR==2{print $2" on "$1}')"
pm_pid=$(head -1 "$pgdir/data/postmaster.pid")

# --- meshd with N every-second jobs ---
mkdir -p "$work/state"
{
    cat <<CONF
node: {name: bench-registry, state_dir: $work/state, log_level: notice}
registry:
  url: "$url"
  heartbeat: 30s
defaults:
  stop_timeout: 5s
jobs:
CONF
    for (( i = 1; i <= jobs; i++ )); do
        printf '  r%04d: {command: ["%s"], schedule: "* * * * * *", catch_up: 0s}\n' "$i" "$m2"; done
} > "$work/meshd.yaml"
"$work/meshctl" check "$work/meshd.yaml" >/dev/null

# CPU ticks of one process (utime + stime; /proc/PID/stat fields 14 and 15, counted from the
# state field after the ")"), of its reaped children (cutime + cstime), and of the postmaster
# and all its children.
cpu_ticks() { local f; read -r -a f < <(cut -d')' -f2- "/proc/$1/stat"); echo $(( f[11] + f[12] )); }
child_ticks() { local f; read -r -a f < <(cut -d')' -f2- "/proc/$1/stat"); echo $(( f[13] + f[14] )); }
pg_ticks() {
    local t=0 k ks
    mapfile -t ks < <(children_of "$pm_pid")
    for k in "$pm_pid" "${ks[@]}"; do t=$(( t + $(cpu_ticks "$k" 2>/dev/null || echo 0) )); done
    echo "$t"
}
# One server-side snapshot (one statement, one round trip): rows, events applied (calls of the
# per-event function meshd_apply_event: track_functions = pl; the server's cumulative stats lag
# by at most ~1 s), commits, and the batch statement's calls and time (pg_stat_statements: exact).
snap_sql="SELECT (SELECT count(*) FROM agent_runs),
  (SELECT count(*) FROM agent_metrics),
  (SELECT coalesce(sum(calls), 0) FROM pg_stat_user_functions WHERE funcname = 'meshd_apply_event'),
  (SELECT xact_commit FROM pg_stat_database WHERE datname = 'meshd'),
  (SELECT coalesce(sum(calls), 0) FROM pg_stat_statements WHERE query LIKE '%meshd_apply_events(%'),
  (SELECT coalesce(sum(total_exec_time), 0) FROM pg_stat_statements WHERE query LIKE '%meshd_apply_events(%')"
snap() {  # FILE: time, meshd cpu, its reaped children's cpu, postgres cpu, meshd rss kB, snap_sql
    local t db mc kc pc rss
    t=$(date +%s.%N); mc=$(cpu_ticks "$pid"); kc=$(child_ticks "$pid"); pc=$(pg_ticks)
    rss=$(awk '/^VmRSS:/{print $2}' "/proc/$pid/status")
    db=$(psql -d meshd -F ' ' -c "$snap_sql")
    echo "$t $mc $kc $pc $rss $db" > "$1"
}
sleep_until() { local d; d=$(echo "$1 - $(date +%s.%N)" | bc -l); if [[ $d != -* ]]; then sleep "$d"; fi; }

t_start=$(date +%s)
t_start_ns=$(date +%s.%N)
"$work/meshd" -c "$work/meshd.yaml" </dev/null >"$work/meshd.out" 2>"$work/meshd.err" &
pid=$!
first=$(( t_start + warmup + 1 ))
last=$(( first + seconds - 1 ))
echo "# meshd binary $MESHD sha256=$(sha256sum "$work/meshd" | cut -c1-16) ($(git -C "$REPO_ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown) is the repository's HEAD)"
echo "# registry_rate meshd_pid=$pid jobs=$jobs seconds=$seconds warmup=$warmup slots=$first..$last metric2=$linkage"
# The window is [first + 0.5 s, last + 1.5 s): T whole seconds, the snapshots taken mid-second,
# clear of the bursts.
sleep_until "$first.5"
kill -0 "$pid" 2>/dev/null || { echo "# ERROR: meshd died during the warm-up:"; tail -20 "$work/meshd.err"; exit 1; }
python3 "$ANCHOR_DIR/lib/machine.py" snap "$work/machine.snap"
snap "$work/snap0"
sleep_until "$(( last + 1 )).5"
kill -0 "$pid" 2>/dev/null || { echo "# ERROR: meshd died during the run:"; tail -20 "$work/meshd.err"; exit 1; }
snap "$work/snap1"
python3 "$ANCHOR_DIR/lib/machine.py" since "$work/machine.snap"
mapfile -t kids < <(children_of "$pid")
stop_pid "$pid" TERM 30
t_run=$(echo "$(date +%s.%N) - $t_start_ns" | bc -l)
left=0
for k in "${kids[@]}"; do [[ -d /proc/$k ]] && left=$((left + 1)); done
pid=""
closed=$(grep -o 'registry closed:.*' "$work/meshd.err" | tail -1 || true)
echo "# meshd: ${closed:-no 'registry closed' line in its log}; children alive after stop: $left"
echo "# meshd log lines at warn or error, by message: $(grep -E ' (warn|err|error|crit)[a-z]* meshd' "$work/meshd.err" |
    awk '{print $4}' | sort | uniq -c | awk '{printf "%s%s%d", (NR > 1 ? " " : ""), $2, $1}' || true)"

# Every slot of the window, after the stop (what was shipped by then): status counts, and the
# lag from the node's timestamp to the server's transaction time (run_start: created_at -
# started_at; run_end: updated_at - finished_at).
psql -d meshd -F ' ' > "$work/slots" <<SQL
SELECT 'slot', status, count(*) FROM agent_runs
 WHERE scheduled_for BETWEEN to_timestamp($first) AND to_timestamp($last) GROUP BY status ORDER BY status;
SELECT 'lag', which, count(*),
       round((percentile_cont(0.5) WITHIN GROUP (ORDER BY ms))::numeric, 1),
       round((percentile_cont(0.99) WITHIN GROUP (ORDER BY ms))::numeric, 1),
       round(max(ms)::numeric, 1)
  FROM (SELECT 'start' AS which, extract(epoch FROM created_at - started_at) * 1000 AS ms
          FROM agent_runs WHERE scheduled_for BETWEEN to_timestamp($first) AND to_timestamp($last)
                            AND started_at IS NOT NULL
        UNION ALL
        SELECT 'end', extract(epoch FROM updated_at - finished_at) * 1000
          FROM agent_runs WHERE scheduled_for BETWEEN to_timestamp($first) AND to_timestamp($last)
                            AND finished_at IS NOT NULL) l
 GROUP BY which ORDER BY which;
SELECT 'lagsec', extract(epoch FROM scheduled_for)::bigint - $first, count(*),
       round(max(extract(epoch FROM created_at - started_at) * 1000)::numeric, 0)
  FROM agent_runs WHERE scheduled_for BETWEEN to_timestamp($first) AND to_timestamp($last)
                    AND started_at IS NOT NULL GROUP BY 2 ORDER BY 2;
SELECT 'fn', funcname, calls, round(total_time::numeric, 1), round(self_time::numeric, 1)
  FROM pg_stat_user_functions WHERE funcname LIKE 'meshd_apply_event%' ORDER BY funcname;
SQL

# --- drain: what meshd can ship when its loop has nothing else to do ---
# The journal keeps what was not acked at the stop.  meshd is started again on the same state
# directory with one job that never fires in the window, so it only ships the backlog: batches
# of up to 500 events, one in flight.  Progress (batch calls) is read every 0.25 s.
unsent=$(sed -n 's/.*unsent=\([0-9]*\).*/\1/p' <<<"$closed")
if [[ -n "$unsent" ]] && (( unsent >= 1000 )); then
    hour=$(( ($(date -u +%-H) + 12) % 24 ))
    sed -n '1,/^jobs:/p' "$work/meshd.yaml" > "$work/drain.yaml"
    printf '  idle: {command: ["true"], schedule: "0 %d * * *"}\n' "$hour" >> "$work/drain.yaml"
    calls_sql="SELECT coalesce(sum(calls), 0) FROM pg_stat_statements WHERE query LIKE '%meshd_apply_events(%'"
    psql -d meshd -F ' ' -c "$snap_sql" | awk '{print $3, $5, $6}' > "$work/drain0"
    t0=$(date +%s.%N)
    "$work/meshd" -c "$work/drain.yaml" </dev/null >"$work/drain.out" 2>"$work/drain.err" &
    pid=$!
    dc0=$(cpu_ticks "$pid")
    prev=-1; still=0; tl=$t0; dc1=$dc0
    for (( i = 0; i < 1200 && still < 12; i++ )); do
        sleep 0.25
        m=$(psql -d meshd -c "$calls_sql")
        if (( m != prev )); then
            prev=$m; still=0; tl=$(date +%s.%N); dc1=$(cpu_ticks "$pid")
        else
            still=$(( still + 1 ))
        fi
    done
    sleep 1.5  # the cumulative stats of the apply function catch up
    psql -d meshd -F ' ' -c "$snap_sql" | awk '{print $3, $5, $6}' > "$work/drain1"
    stop_pid "$pid" TERM 30
    pid=""
    dclosed=$(grep -o 'registry closed:.*' "$work/drain.err" | tail -1 || true)
    echo "# drain meshd: ${dclosed:-no 'registry closed' line in its log}"
    read -r id0 c0 e0 < "$work/drain0"
    read -r id1 c1 e1 < "$work/drain1"
    python3 - "$t0" "$tl" "$id0" "$id1" "$c0" "$c1" "$e0" "$e1" "$dc0" "$dc1" "$(getconf CLK_TCK)" <<'PY' | tee "$work/drain"
import sys
t0, tl, id0, id1, c0, c1, e0, e1, dc0, dc1, hz = map(float, sys.argv[1:])
# t0: meshd started; tl: the last poll (every 0.25 s) that saw a new batch
dt = tl - t0
calls = c1 - c0
print("drain events_applied=%d seconds=%.2f events_per_s=%.0f apply_calls=%d calls_per_s=%.1f events_per_call=%.1f "
      "apply_exec_ms_per_call=%.1f server_busy=%.0f%% meshd_cpu_ms_per_s=%.0f"
      % (id1 - id0, dt, (id1 - id0) / dt, calls, calls / dt, (id1 - id0) / calls if calls else 0,
         (e1 - e0) / calls if calls else 0, (e1 - e0) / dt / 10, (dc1 - dc0) * 1000 / hz / dt))
PY
fi

# --- the single-row INSERT ceiling on the same cluster ---
psql -d meshd <<'SQL'
CREATE TABLE bench_event (id bigserial PRIMARY KEY, job text NOT NULL, kind text NOT NULL,
                          payload jsonb NOT NULL, created_at timestamptz NOT NULL DEFAULT now());
SQL
cat > "$work/single.sql" <<'SQL'
\set n random(1, 1000)
INSERT INTO bench_event (job, kind, payload) VALUES ('r' || :n, 'metric', '{"name": "rows", "value": 1}');
SQL
: > "$work/ceiling"
for c in 1 4; do
    python3 "$ANCHOR_DIR/lib/machine.py" snap "$work/m.snap"
    out=$("$PG_BIN/pgbench" -d meshd -n -M prepared -c "$c" -j "$c" -T "$ins_seconds" -f "$work/single.sql" 2>&1) ||
        { echo "$out" >&2; exit 1; }
    tps=$(echo "$out" | awk -F'= ' '/^tps = /{split($2,a," "); print a[1]}')
    lat=$(echo "$out" | awk -F'= ' '/^latency average/{split($2,a," "); print a[1]}')
    printf 'single_insert clients=%d sync_commit=on rows_per_s=%.0f avg_latency_ms=%s %s\n' "$c" "$tps" "$lat" \
        "$(python3 "$ANCHOR_DIR/lib/machine.py" since "$work/m.snap" | sed 's/^# machine: over [0-9]*s //')" | tee -a "$work/ceiling"
done

python3 - "$work" "$jobs" "$seconds" "$first" "$last" "$(getconf CLK_TCK)" "$closed" "$t_run" <<'PY'
import re, sys
work, jobs, secs, first, last, hz, closed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), \
    int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6]), sys.argv[7]
t_run = float(sys.argv[8])  # meshd's whole run: start to exit
def snap(name):
    f = open("%s/%s" % (work, name)).read().split()
    return [float(f[0])] + [float(x) for x in f[1:]]
a, b = snap("snap0"), snap("snap1")
d = [y - x for x, y in zip(a, b)]
dt, cpu_meshd, cpu_kids, cpu_pg, _, runs, metrics, events, xacts, calls, exec_ms = d
rss0, rss1 = a[4], b[4]
slots, lags, fns, lagsec = {}, {}, {}, []
for line in open(work + "/slots"):
    f = line.split()
    if f[0] == "slot":
        slots[f[1]] = int(f[2])
    elif f[0] == "lag":
        lags[f[1]] = f[2:]
    elif f[0] == "lagsec":
        lagsec.append((int(f[2]), f[3]))
    elif f[0] == "fn":
        fns[f[1]] = f[2:]
ceil = {}
for line in open(work + "/ceiling"):
    m = re.search(r"clients=(\d+) .*rows_per_s=(\d+)", line)
    ceil[int(m.group(1))] = float(m.group(2))
cnt = dict(re.findall(r"(\w+)=(\d+)", closed))
expected = jobs * secs
print("# window %.2f s (slots %d..%d)" % (dt, first, last))
print("slots expected=%d recorded=%d %s" % (expected, sum(slots.values()),
      " ".join("%s=%d" % kv for kv in sorted(slots.items()))))
print("runs_succeeded_per_s=%.1f of %d jobs" % (slots.get("succeeded", 0) / secs, jobs))
for k in ("start", "end"):
    if k in lags:
        n, med, p99, mx = lags[k]
        print("registry_lag_ms run_%s (node's timestamp -> start of the applying transaction) N=%s median=%s p99=%s max=%s"
              % (k, n, med, p99, mx))
if lagsec:
    print("per slot second: runs started / max run_start lag ms: " + " ".join("%d/%s" % x for x in lagsec))
ev = events / dt
print("meshd VmRSS kB at window start / end: %d / %d" % (rss0, rss1))
print("applied in window: events=%d runs_rows=%d metric_rows=%d -> events_per_s=%.0f run_rows_per_s=%.0f metric_rows_per_s=%.0f"
      % (events, runs, metrics, ev, runs / dt, metrics / dt))
print("round trips in window: apply_calls=%d (%.1f/s) server xact_commit=%d (%.1f/s) events_per_call=%.1f apply_exec_ms_per_call=%.2f apply_exec_ms_per_s=%.0f"
      % (calls, calls / dt, xacts, xacts / dt, events / calls if calls else 0, exec_ms / calls if calls else 0, exec_ms / dt))
print("cpu in window, ms per s: meshd=%.0f jobs(reaped children)=%.0f postgres(all processes)=%.0f; meshd us per run (spawn + reap + status + registry)=%.0f"
      % (cpu_meshd * 1000 / hz / dt, cpu_kids * 1000 / hz / dt, cpu_pg * 1000 / hz / dt,
         cpu_meshd * 1e6 / hz / runs if runs else 0))
for k, v in sorted(fns.items()):
    print("pg_stat_user_functions %s calls=%s total_ms=%s self_ms=%s (whole run)" % (k, *v))
if cnt:
    ev_all, bat, ack = int(cnt["events"]), int(cnt["batches"]), int(cnt["acked"])
    print("meshd generated events/s over its whole run (%.1f s, incl. warm-up and stop): %.0f" % (t_run, ev_all / t_run))
    print("meshd counters (whole run): events=%d batches=%d failed_batches=%s acked=%d dropped=%s unsent=%s events_per_batch=%.1f"
          % (ev_all, bat, cnt["failed_batches"], ack, cnt["dropped"], cnt["unsent"], ack / bat if bat else 0))
drain = {}
try:
    f = open(work + "/drain").read().split()
    drain = dict(kv.split("=", 1) for kv in f[1:])
except OSError:
    pass
print("# summary")
print("meshd registry events/s (applied, sustained)  %10.0f" % ev)
print("meshd round trips/s (apply calls)             %10.1f" % (calls / dt))
print("meshd events per round trip                    %10.1f" % (events / calls if calls else 0))
print("backlog at the stop (unsent, kept in journal)  %10s" % cnt.get("unsent", "?"))
if drain:
    print("meshd drain of that backlog, loop idle: events/s %10s (%s events/round trip, %s round trips/s)"
          % (drain["events_per_s"], drain["events_per_call"], drain["calls_per_s"]))
print("# (with no backlog, meshd's rate is the offered load, N jobs x events per run; the drain")
print("#  line, when there is one, is what its registry path ships with an idle loop)")
for c in sorted(ceil):
    print("single-row INSERT rows/s, %d client%s          %10.0f   meshd/ceiling = %.2fx"
          % (c, "" if c == 1 else "s", ceil[c], ev / ceil[c]))
PY
