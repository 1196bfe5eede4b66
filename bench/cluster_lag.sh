#!/usr/bin/env bash
# What cluster claims cost the firing lag (issue 10), in one run: bench/firing_lag.sh three
# times on the same machine, against the same throwaway PostgreSQL (a fresh database each):
#
#   registry   one meshd, registry on, no cluster (no claims)          firing_lag.sh
#   cluster-1  one meshd, cluster on: each slot is claimed first        firing_lag.sh --cluster
#   cluster-2  two meshd contending for the same slots (one database)   firing_lag.sh --cluster --nodes 2
#
# and prints one table: firings (expected / got / duplicates), the lag's median and p99 (ms,
# exec of the job's static binary - its scheduled second; see firing_lag.sh), and the
# two-node run's split between the nodes and their failed (deadlocked) claim batches.  The raw output of each run
# is kept in the results directory printed at the end.
#
# Usage: cluster_lag.sh [--jobs K] [--services S] [--idle-jobs M] [--seconds T] [--stagger S]
#   defaults 10 jobs, 100 services, 90 idle daily jobs, 30 s measured (each run ~T + 10 s);
#   --stagger: seconds between the two nodes' starts (2).
# The cluster is tests/pg/pgctl.sh's (unix socket, trust auth; as root it runs as postgres),
# under /var/tmp, removed at the end.  Environment: MESHD (default build/meshd), PGBIN.
set -euo pipefail
. "$(cd "$(dirname "$0")" && pwd)/lib/common.sh"
args=(); stagger=2
while [[ $# -gt 0 ]]; do
    case "$1" in
        --jobs|--services|--idle-jobs|--seconds) args+=("$1" "$2"); shift 2 ;;
        --stagger) stagger=$2; shift 2 ;;
        *) echo "unknown arg $1" >&2; exit 2 ;;
    esac
done
[[ -x "$MESHD" ]] || { echo "cluster_lag: no meshd binary at $MESHD (make build, or set MESHD)" >&2; exit 3; }
command -v psql >/dev/null || { echo "cluster_lag: needs psql (postgresql-client)" >&2; exit 3; }

pgctl=$REPO_ROOT/tests/pg/pgctl.sh
pgdir=/var/tmp/meshd-bench-clusterlag-$$
results=$(mktemp -d "${TMPDIR:-/tmp}/clusterlag.XXXXXX")
cleanup() { "$pgctl" destroy "$pgdir" >/dev/null 2>&1 || true; }
trap cleanup EXIT INT TERM
conninfo=$("$pgctl" start "$pgdir")
# Private copies: a rebuild during the run cannot change what is measured.
cp "$MESHD" "$results/meshd"
export MESHD=$results/meshd

modes=("registry::" "cluster-1:--cluster:" "cluster-2:--cluster --nodes 2 --stagger $stagger:")
for m in "${modes[@]}"; do
    IFS=: read -r name flags _ <<<"$m"
    db=bench_${name//-/_}
    psql "$conninfo" -XAtqc "CREATE DATABASE $db" >/dev/null
    echo "## $name: firing_lag.sh ${args[*]} $flags" | tee "$results/$name.out"
    # shellcheck disable=SC2086  # $flags is a list of words
    DATABASE_URL=${conninfo/dbname=postgres/dbname=$db} \
        "$BENCH_DIR/firing_lag.sh" "${args[@]}" $flags 2>&1 | tee -a "$results/$name.out"
done

echo
echo "# firing lag, same machine, same run ($(date -u +%FT%TZ)); results in $results"
python3 - "$results" "${modes[@]}" <<'PY'
import re, sys
res = sys.argv[1]
print("| mode | firings expected / got / duplicates | median ms | p99 ms | notes |")
print("|---|---|---:|---:|---|")
for m in sys.argv[2:]:
    name = m.split(":")[0]
    text = open("%s/%s.out" % (res, name)).read()
    f = re.search(r"^firings expected=(\d+) got=(\d+) missing=\d+ duplicates=(\d+)", text, re.M)
    lag = re.search(r"^firing_lag_ms N=\d+ min=\S+ median=(\S+) p90=\S+ p99=(\S+)", text, re.M)
    notes = []
    split = re.search(r"^firings_per_node (.*)$", text, re.M)
    if split:
        notes.append("split " + split.group(1))
    for n, failed, dl, unanswered in re.findall(
            r"^# node (\d+):.*failed claim batches: (\d+) \(deadlocks: (\d+)\); "
            r"unanswered claim batches: (\d+)", text, re.M):
        if name == "cluster-2" or int(failed) or int(unanswered):
            notes.append("node %s: %s failed claim batches (%s deadlocks), %s unanswered"
                         % (n, failed, dl, unanswered))
    print("| %s | %s | %s | %s | %s |" % (
        name, "%s / %s / %s" % f.groups() if f else "?",
        lag.group(1) if lag else "?", lag.group(2) if lag else "?", "; ".join(notes)))
PY
