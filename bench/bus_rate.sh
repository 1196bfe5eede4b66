#!/usr/bin/env bash
# Message-bus throughput: N messages of one type queued at once in agent_messages (one INSERT),
# consumed by K meshd nodes, each with one `on:` job running `true`.  Measures the time from the
# INSERT's commit to the last message marked done, so messages per second, and checks that every
# message ran exactly once (status done, attempts 1).
#
# Usage: bus_rate.sh [--messages N] [--nodes K]     (defaults 2000, 1)
# A throwaway PostgreSQL 15 cluster under $TMPDIR (unix socket), stopped and removed at the end.
set -euo pipefail
. "$(cd "$(dirname "$0")" && pwd)/lib/common.sh"
. "$ANCHOR_DIR/lib/proc.sh"
PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}
MESHCTL=${MESHCTL:-$(dirname "$MESHD")/meshctl}
msgs=2000; nodes=1
while [[ $# -gt 0 ]]; do
    case "$1" in
        --messages) msgs=$2; shift 2 ;;
        --nodes) nodes=$2; shift 2 ;;
        *) echo "unknown arg $1" >&2; exit 2 ;;
    esac
done
[[ -x "$MESHD" && -x "$MESHCTL" ]] || { echo "bus_rate: no meshd/meshctl at $MESHD" >&2; exit 3; }

work=$(mktemp -d "${TMPDIR:-/tmp}/busrate.XXXXXX")
chmod 755 "$work"
pgdir=$work/pg
pids=(); pg_up=0
as_pg() { if [[ $(id -u) -eq 0 ]]; then (cd / && runuser -u postgres -- "$@"); else "$@"; fi; }  # from /: the cwd may be out of its reach
cleanup() {
    for p in "${pids[@]}"; do stop_pid "$p" TERM 30; done
    if (( pg_up )); then as_pg "$PG_BIN/pg_ctl" -D "$pgdir/data" -m fast -w -t 60 stop >/dev/null || true; fi
    rm -rf "$work"
}
trap cleanup EXIT INT TERM
mkdir -p "$pgdir"
[[ $(id -u) -eq 0 ]] && chown postgres: "$pgdir"
as_pg "$PG_BIN/initdb" -D "$pgdir/data" -A trust -U postgres -E UTF8 --locale=C >"$work/initdb.log" 2>&1 ||
    { cat "$work/initdb.log" >&2; exit 1; }
printf "listen_addresses = ''\nunix_socket_directories = '%s'\n" "$pgdir" >> "$pgdir/data/postgresql.conf"
as_pg "$PG_BIN/pg_ctl" -D "$pgdir/data" -l "$pgdir/log" -w start >/dev/null
pg_up=1
url="host=$pgdir user=postgres dbname=meshd"
psql() { "$PG_BIN/psql" -X -v ON_ERROR_STOP=1 -Atq "$@"; }
psql "host=$pgdir user=postgres dbname=postgres" -c "CREATE DATABASE meshd"
"$MESHCTL" migrate --url "$url" >/dev/null

for (( n = 1; n <= nodes; n++ )); do
    mkdir -p "$work/n$n"
    cat > "$work/n$n/meshd.yaml" <<CONF
node: {name: n$n, state_dir: $work/n$n/state, log_level: warn}
http: {listen: ""}
jobs:
  consume: {command: ["true"], on: bench.item, start_secs: 0s}
CONF
    DATABASE_URL=$url "$MESHD" -c "$work/n$n/meshd.yaml" </dev/null >"$work/n$n/meshd.out" 2>&1 &
    pids+=($!)
done
for (( i = 0; i < 100; i++ )); do  # every node connected and listening (its node row exists)
    [[ $(psql "$url" -c "SELECT count(*) FROM agent_registry WHERE job IS NULL AND state = 'up'") -ge $nodes ]] && break
    sleep 0.1
done
sleep 1
echo "# bus_rate messages=$msgs nodes=$nodes meshd=$MESHD"
t0=$(date +%s.%N)
psql "$url" -c "INSERT INTO agent_messages (type, payload) SELECT 'bench.item', jsonb_build_object('i', g) FROM generate_series(1, $msgs) g"
while [[ $(psql "$url" -c "SELECT count(*) FROM agent_messages WHERE status = 'done'") -lt $msgs ]]; do
    sleep 0.05
    if (( $(echo "$(date +%s.%N) - $t0 > 600" | bc) )); then echo "# timeout" >&2; exit 1; fi
done
t1=$(date +%s.%N)
echo "done: $msgs messages in $(printf '%.2f' "$(echo "$t1 - $t0" | bc)") s = $(printf '%.0f' "$(echo "$msgs / ($t1 - $t0)" | bc -l)") messages/s"
psql "$url" -c "SELECT 'by node: ' || string_agg(claimed_by || '=' || c, ' ' ORDER BY claimed_by) FROM (SELECT claimed_by, count(*) c FROM agent_messages GROUP BY 1) x"
psql "$url" -c "SELECT 'exactly once: ' || (count(*) FILTER (WHERE status = 'done' AND attempts = 1) = $msgs) FROM agent_messages"
