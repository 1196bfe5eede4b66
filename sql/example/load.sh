#!/usr/bin/env bash
# load.sh - put the example property roll into the database named by $DATABASE_URL, once.
#
#   DATABASE_URL=postgres://... sql/example/load.sh [PARCELS [SEED]]    (default 50000 1)
#
# 1. Applies sql/example/NNNN_*.sql in order.  They are idempotent, so this runs every time:
#    a database that has the example keeps it, one that lacks a table or view gets it.
# 2. Generates PARCELS parcels (generate.sql) only when property.parcels is empty, so a second
#    run, or a run against a database whose example data was loaded or edited by hand, leaves
#    the rows alone.  To start over: psql -v parcels=N -f sql/example/generate.sql (it
#    truncates), or DROP SCHEMA property CASCADE and run this again.
#
# make run calls it for its local cluster, and for a DATABASE_URL of yours only with EXAMPLE=1:
# the example writes a schema `property` into the database, which is not ours to do unasked.
# The URL is never printed (it may hold a password).
set -euo pipefail

here=$(cd -- "$(dirname -- "$0")" && pwd)
parcels=${1:-50000}
seed=${2:-1}

if [ -z "${DATABASE_URL:-}" ]; then
    echo "load.sh: DATABASE_URL is not set (the database to put the example into)" >&2
    exit 2
fi
case "$parcels$seed" in
*[!0-9]*) echo "load.sh: PARCELS and SEED are whole numbers" >&2; exit 2 ;;
esac

# -X: no ~/.psqlrc; the IF NOT EXISTS notices of a re-run are noise.
export PGOPTIONS="${PGOPTIONS:-} -c client_min_messages=warning"
psql_q() { psql -X -q -v ON_ERROR_STOP=1 "$DATABASE_URL" "$@"; }

for f in "$here"/[0-9][0-9][0-9][0-9]_*.sql; do
    psql_q -f "$f"
done

if [ "$(psql_q -tAc 'SELECT EXISTS (SELECT 1 FROM property.parcels)')" = t ]; then
    echo "load.sh: property.parcels already has rows; left as they are"
    exit 0
fi
start=$(date +%s)
psql_q -v parcels="$parcels" -v seed="$seed" -f "$here/generate.sql"
echo "load.sh: generated $parcels parcels (seed $seed) and their sales in" \
     "$(( $(date +%s) - start )) s; views refreshed"
