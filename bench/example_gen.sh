#!/usr/bin/env bash
# example_gen.sh - how long sql/example/generate.sql takes for N parcels (default 1,000,000),
# on a throwaway PostgreSQL 15 cluster of its own (tests/pg/pgctl.sh: unix socket, fsync off,
# otherwise default settings), removed at the end.
#
#   bench/example_gen.sh [N [RUNS]]      (RUNS default 2; as root or as a user who may initdb)
#
# Prints psql's \timing for each statement of generate.sql (TRUNCATE, the parcels INSERT, the
# sales INSERT, ANALYZE, the three REFRESHes) and the wall time of each run.  The first run
# fills empty tables; the later ones truncate and fill again (what a re-generation costs).
set -euo pipefail

root=$(cd -- "$(dirname -- "$0")/.." && pwd)
n=${1:-1000000}
runs=${2:-2}
dir=/var/tmp/meshd-exgen-$$

pg=$("$root/tests/pg/pgctl.sh" start "$dir")
trap '"$root/tests/pg/pgctl.sh" destroy "$dir"' EXIT
psql -X -q "$pg" -c 'CREATE DATABASE example'
url="${pg/dbname=postgres/dbname=example}"
export PGOPTIONS="-c client_min_messages=warning"
for f in "$root"/sql/example/[0-9][0-9][0-9][0-9]_*.sql; do
    psql -X -q -v ON_ERROR_STOP=1 "$url" -f "$f"
done
echo "example_gen: $n parcels, $runs runs, load $(cut -d' ' -f1-3 /proc/loadavg)"
for i in $(seq "$runs"); do
    start=$(date +%s.%N)
    psql -X -q -v ON_ERROR_STOP=1 "$url" -v parcels="$n" -v seed=1 \
        -c '\timing on' -f "$root/sql/example/generate.sql" | grep '^Time' | tr '\n' ' '
    echo
    echo "run $i: $(echo "$(date +%s.%N) - $start" | bc) s wall;" \
         "$(psql -X -Atc "SELECT count(*) FROM property.parcels" "$url") parcels," \
         "$(psql -X -Atc "SELECT count(*) FROM property.sales" "$url") sales," \
         "$(psql -X -Atc "SELECT pg_size_pretty(pg_total_relation_size('property.parcels'))" "$url")"
done
echo "example_gen: load $(cut -d' ' -f1-3 /proc/loadavg)"
