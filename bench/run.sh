#!/usr/bin/env bash
# The issue-2 benchmark set, meshd and supervisord 4.2 side by side in one run (`make bench`).
#
#   column meshd:        100 always-on services ("sleep 100000", restart always, backoff 0s,
#                        start_secs 0s) + 100 scheduled jobs (daily, never due in the window),
#                        as users run it: the HTTP API on (a free loopback port) and its socket
#   column meshd-reg:    the same with the registry on (a throwaway PostgreSQL 15 cluster)
#   column supervisord:  100 programs ("sleep 100000", autorestart=true, startsecs=0); it has
#                        no scheduler
#
# Figures: idle footprint (footprint.py: RSS/PSS, CPU, wake-ups over 60 idle s), restart
# latency (restart_latency.sh, 200 SIGKILLs), start-up to 100 exec'd children
# (startup_latency.sh), meshd's firing lag for every-second jobs (bench/firing_lag.sh), and the
# every-minute lag of meshd vs Debian cron (cron_lag.sh, run in the background meanwhile), for
# context the machine's fork+exec+wait latency (spawn_ceiling.sh, short), and last the registry
# write rate with N every-second jobs vs single-row INSERTs (bench/registry_rate.sh: its own
# throwaway PostgreSQL cluster, no DATABASE_URL needed; ~80 s; skipped if PostgreSQL 15 is missing).
#
# Uses the shared anchor harness at ../shared/bench (relative to the repo root; override with
# MESHD_ANCHOR_DIR).  It is copied to the results directory and run from there, because the
# harness compiles its C helpers next to itself and ../shared is read-only.
# Needs root (proc connector, /etc/cron.d); installs Debian's supervisor and cron if missing
# (without starting their services).  Takes about 16 minutes.
#
# A third column, meshd-reg, is the meshd column with its registry on (a throwaway PostgreSQL 15
# cluster); BENCH_SKIP_REGISTRY=1 leaves it out (and the registry write rate).
#
# Knobs (environment): MESHD (binary, default build/meshd), MESHCTL (default: beside MESHD),
# BENCH_PROGRAMS (100),
# BENCH_TRIALS (200 restart kills), BENCH_IDLE (60 s), BENCH_STARTUP_TRIALS (10),
# BENCH_FIRING_SECONDS (30), BENCH_CRON_SAMPLES (6), BENCH_SKIP_CRON=1 (skip the minute lags),
# BENCH_REGISTRY_JOBS (1000 every-second jobs for registry_rate.sh), BENCH_SKIP_REGISTRY=1.
# Raw outputs go to $TMPDIR/meshd-bench.XXXXXX (printed); the summary goes to stdout.
set -euo pipefail
. "$(cd "$(dirname "$0")" && pwd)/lib/common.sh"
. "$BENCH_DIR/lib/ensure_pkgs.sh"
N=${BENCH_PROGRAMS:-100}
TRIALS=${BENCH_TRIALS:-200}
IDLE=${BENCH_IDLE:-60}
STARTUP_TRIALS=${BENCH_STARTUP_TRIALS:-10}
FIRING_SECONDS=${BENCH_FIRING_SECONDS:-30}
CRON_SAMPLES=${BENCH_CRON_SAMPLES:-6}

(( EUID == 0 )) || { echo "bench/run.sh: needs root (proc connector, /etc/cron.d)" >&2; exit 3; }
[[ -x "$MESHD" ]] || { echo "bench/run.sh: no meshd binary at $MESHD (run make build, or set MESHD)" >&2; exit 3; }
ensure_pkgs supervisor cron strace file
command -v supervisord >/dev/null || { echo "bench/run.sh: supervisord not found after install" >&2; exit 3; }

out=$(mktemp -d "${TMPDIR:-/tmp}/meshd-bench.XXXXXX")
echo "# raw results: $out"
# Private copies: the harness (it builds procprobe into its own build/) and the meshd binary
# (so a rebuild during the run cannot change what is measured).
cp -r "$ANCHOR_DIR" "$out/anchor"; chmod -R u+w "$out/anchor"; rm -rf "$out/anchor/build"
cp "$MESHD" "$out/meshd"
[[ -x "$MESHCTL" ]] && cp "$MESHCTL" "$out/meshctl"
export MESHD=$out/meshd MESHCTL=$out/meshctl MESHD_ANCHOR_DIR=$ANCHOR_DIR
A=$out/anchor
AD_MESHD=$BENCH_DIR/adapters/meshd.sh
AD_SUP=$A/adapters/supervisord.sh

{
    echo "date: $(date -u +%FT%TZ)"
    echo "host: nproc=$(nproc) kernel=$(uname -r) cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
    echo "mem: $(grep MemTotal /proc/meminfo | tr -s ' ')"
    echo "meshd: $(git -C "$REPO_ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)$(git -C "$REPO_ROOT" status --porcelain -- . ':!bench' ':!docs/benchmarks.md' 2>/dev/null | grep -q . && echo ' (uncommitted changes outside bench/)') sha256=$(sha256sum "$MESHD" | cut -c1-16)"
    echo "supervisord: $(supervisord --version) (python $(/usr/bin/python3 -c 'import platform; print(platform.python_version())'))"
    echo "libuv: $(dpkg-query -W -f='${Version}' libuv1 2>/dev/null || echo unknown)"
    echo "cron: $(dpkg-query -W -f='${Version}' cron 2>/dev/null || echo unknown)"
    echo "load at start: $(cut -d' ' -f1-3 /proc/loadavg)"
} | tee "$out/machine.txt"

bg=()
pgdir=""
as_pg() { if [[ $(id -u) -eq 0 ]]; then runuser -u postgres -- "$@"; else "$@"; fi; }
cleanup() {
    for p in "${bg[@]}"; do kill -TERM "$p" 2>/dev/null || true; done; wait 2>/dev/null || true
    if [[ -n "$pgdir" ]]; then
        as_pg "$PG_BIN/pg_ctl" -D "$pgdir/data" -m fast -w -t 60 stop >/dev/null 2>&1 || true
        rm -rf "$pgdir"
    fi
}
trap cleanup EXIT INT TERM

step() { echo "# $(date -u +%T) $*" >&2; }

# The every-minute lags are long and light: in the background while the rest runs (both
# schedulers fire at the same boundary on this machine, a shared cost for both).
if [[ "${BENCH_SKIP_CRON:-0}" != 1 ]]; then
    step "cron_lag (vixie-cron, meshd-cron) in the background, $CRON_SAMPLES samples each"
    "$A/cron_lag.sh" --adapter "$A/adapters/vixie-cron.sh" --samples "$CRON_SAMPLES" \
        > "$out/cronlag-vixie.txt" 2>&1 & bg+=($!)
    "$A/cron_lag.sh" --adapter "$BENCH_DIR/adapters/meshd-cron.sh" --samples "$CRON_SAMPLES" \
        > "$out/cronlag-meshd.txt" 2>&1 & bg+=($!)
fi

# The meshd-reg column: the same meshd with its registry on, writing to a throwaway PostgreSQL
# 15 cluster (defaults, unix socket) on this machine, started for that column alone (its
# processes map libraries meshd maps too, which lowers meshd's PSS: see docs/benchmarks.md).
PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}
columns="meshd supervisord"
if [[ "${BENCH_SKIP_REGISTRY:-0}" != 1 && -x "$PG_BIN/initdb" && -x "$MESHCTL" ]]; then
    columns="meshd supervisord meshd-reg"
fi
start_bench_pg() {
    pgdir=$(mktemp -d /tmp/meshd-bench-pg.XXXXXX)
    chmod 755 "$pgdir"
    [[ $(id -u) -eq 0 ]] && chown postgres: "$pgdir"
    as_pg "$PG_BIN/initdb" -D "$pgdir/data" -A trust -U postgres -E UTF8 --locale=C >"$out/pg-initdb.log" 2>&1 &&
        as_pg "$PG_BIN/pg_ctl" -D "$pgdir/data" -l "$pgdir/server.log" -w -t 60 start \
            -o "-c listen_addresses='' -c unix_socket_directories='$pgdir'" >/dev/null &&
        "$PG_BIN/psql" -X -q -h "$pgdir" -U postgres -d postgres -c 'CREATE DATABASE meshd' &&
        "$MESHCTL" migrate --url "host=$pgdir user=postgres dbname=meshd" >/dev/null
}
stop_bench_pg() {
    as_pg "$PG_BIN/pg_ctl" -D "$pgdir/data" -m fast -w -t 60 stop >/dev/null 2>&1 || true
    rm -rf "$pgdir"; pgdir=""
}

for s in $columns; do
    unset MESHD_BENCH_CRON_JOBS MESHD_BENCH_DB
    case $s in
    meshd) ad=$AD_MESHD; export MESHD_BENCH_CRON_JOBS=$N ;;
    meshd-reg)
        ad=$AD_MESHD
        start_bench_pg || { echo "# no PostgreSQL for the meshd-reg column" >&2; stop_bench_pg; continue; }
        export MESHD_BENCH_CRON_JOBS=$N MESHD_BENCH_DB="host=$pgdir user=postgres dbname=meshd" ;;
    *) ad=$AD_SUP ;;
    esac
    step "footprint $s"
    "$A/footprint.py" --adapter "$ad" --programs "$N" --runs 1 --settle 10 --idle "$IDLE" --slice 10 \
        --strace 10 > "$out/footprint-$s.txt" 2>&1 || echo "# footprint $s FAILED" >&2
    step "restart latency $s"
    "$A/restart_latency.sh" --adapter "$ad" --programs "$N" --trials "$TRIALS" \
        > "$out/restart-$s.txt" 2>&1 || echo "# restart latency $s FAILED" >&2
    step "start-up latency $s"
    "$A/startup_latency.sh" --adapter "$ad" --programs "$N" --trials "$STARTUP_TRIALS" \
        > "$out/startup-$s.txt" 2>&1 || echo "# start-up latency $s FAILED" >&2
    [[ $s == meshd-reg ]] && stop_bench_pg
done
unset MESHD_BENCH_CRON_JOBS MESHD_BENCH_DB

step "firing lag meshd: 10 every-second jobs (+$N services, 90 idle jobs)"
"$BENCH_DIR/firing_lag.sh" --jobs 10 --services "$N" --idle-jobs 90 --seconds "$FIRING_SECONDS" \
    > "$out/firing-k10.txt" 2>&1 || echo "# firing lag k10 FAILED" >&2
step "firing lag meshd: 100 every-second jobs (+$N services): a burst"
"$BENCH_DIR/firing_lag.sh" --jobs 100 --services "$N" --idle-jobs 0 --seconds "$FIRING_SECONDS" \
    > "$out/firing-k100.txt" 2>&1 || echo "# firing lag k100 FAILED" >&2

if (( ${#bg[@]} )); then step "waiting for the cron lags"; wait "${bg[@]}" || true; bg=(); fi
# Context for the firing lag: the machine's own sequential fork+exec+wait latency (short run;
# CPU-heavy, so after everything else).
step "spawn ceiling (context: the machine's fork/exec/wait cost)"
"$A/spawn_ceiling.sh" --seconds 2 --repeats 1 --workers 1 --no-hyperfine \
    > "$out/spawnceiling.txt" 2>&1 || echo "# spawn ceiling FAILED" >&2
# The registry write rate: CPU-heavy (N every-second jobs + PostgreSQL), so last, alone.
if [[ "${BENCH_SKIP_REGISTRY:-0}" != 1 ]]; then
    step "registry write rate: ${BENCH_REGISTRY_JOBS:-1000} every-second jobs vs single-row INSERTs"
    "$BENCH_DIR/registry_rate.sh" --jobs "${BENCH_REGISTRY_JOBS:-1000}" --seconds 30 \
        > "$out/registry-rate.txt" 2>&1 || echo "# registry rate FAILED (see $out/registry-rate.txt)" >&2
fi
echo "load at end: $(cut -d' ' -f1-3 /proc/loadavg)" >> "$out/machine.txt"

python3 "$BENCH_DIR/lib/summary.py" "$out" | tee "$out/summary.txt"
if [[ -f "$out/registry-rate.txt" ]]; then
    echo "# registry write rate (bench/registry_rate.sh):"
    sed -n '/^# summary/,$p' "$out/registry-rate.txt" | tee -a "$out/summary.txt"
fi
echo "# raw results: $out"
