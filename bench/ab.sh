#!/usr/bin/env bash
# Two meshd builds side by side in one run, interleaved, on the figures a refactor must not
# make worse: restart latency (100 services, SIGKILL -> replacement exec'd), firing lag (10
# every-second jobs with 100 services and 90 idle jobs), memory (RSS/PSS of meshd with 100
# services + 100 cron jobs).  Each figure is taken ROUNDS times per build, alternating A and
# B, so the shared machine's noise falls on both alike; the medians of the rounds are printed.
#
#   bench/ab.sh OLD_REV [NEW_REV]        (NEW_REV default: the work tree's build/meshd)
#   BENCH_AB_ROUNDS (3), BENCH_TRIALS (200 kills), BENCH_FIRING_SECONDS (20)
#
# OLD_REV (and NEW_REV) are built in temporary worktrees (Release as `make build`).  As root.
set -euo pipefail
. "$(cd "$(dirname "$0")" && pwd)/lib/common.sh"
. "$BENCH_DIR/lib/ensure_pkgs.sh"
ROUNDS=${BENCH_AB_ROUNDS:-3}
TRIALS=${BENCH_TRIALS:-200}
FIRING_SECONDS=${BENCH_FIRING_SECONDS:-20}
N=100
[[ $# -ge 1 ]] || { echo "usage: bench/ab.sh OLD_REV [NEW_REV]" >&2; exit 2; }
(( EUID == 0 )) || { echo "bench/ab.sh: needs root" >&2; exit 3; }
ensure_pkgs strace file

out=$(mktemp -d "${TMPDIR:-/tmp}/meshd-ab.XXXXXX")
echo "# raw results: $out"
cp -r "$ANCHOR_DIR" "$out/anchor"; chmod -R u+w "$out/anchor"; rm -rf "$out/anchor/build"
A=$out/anchor

build_rev() { # rev dest-binary
    local wt="$out/wt-$1"
    git -C "$REPO_ROOT" worktree add -q --detach "$wt" "$1"
    cmake -S "$wt" -B "$wt/build" -DMESHD_TESTS=OFF >/dev/null
    cmake --build "$wt/build" -j "$(nproc)" --target meshd meshctl >/dev/null
    cp "$wt/build/meshd" "$2"; cp "$wt/build/meshctl" "$2-ctl"
    git -C "$REPO_ROOT" worktree remove --force "$wt"
}
old=$(git -C "$REPO_ROOT" rev-parse --short "$1")
build_rev "$old" "$out/meshd-A"
if [[ $# -ge 2 ]]; then
    new=$(git -C "$REPO_ROOT" rev-parse --short "$2"); build_rev "$new" "$out/meshd-B"
else
    new="$(git -C "$REPO_ROOT" rev-parse --short HEAD)+tree"; cp "$MESHD" "$out/meshd-B"
    cp "$(dirname "$MESHD")/meshctl" "$out/meshd-B-ctl"
fi
echo "# A = $old, B = $new; $ROUNDS rounds, alternating"

for r in $(seq 1 "$ROUNDS"); do
    for s in A B; do
        export MESHD=$out/meshd-$s MESHCTL=$out/meshd-$s-ctl MESHD_ANCHOR_DIR=$ANCHOR_DIR
        export MESHD_BENCH_CRON_JOBS=$N
        echo "# round $r $s: footprint, restart latency" >&2
        "$A/footprint.py" --adapter "$BENCH_DIR/adapters/meshd.sh" --programs "$N" --runs 1 \
            --settle 10 --idle 10 --slice 10 > "$out/footprint-$s-$r.txt" 2>&1 || true
        "$A/restart_latency.sh" --adapter "$BENCH_DIR/adapters/meshd.sh" --programs "$N" \
            --trials "$TRIALS" > "$out/restart-$s-$r.txt" 2>&1 || true
        unset MESHD_BENCH_CRON_JOBS
        echo "# round $r $s: firing lag" >&2
        "$BENCH_DIR/firing_lag.sh" --jobs 10 --services "$N" --idle-jobs 90 \
            --seconds "$FIRING_SECONDS" > "$out/firing-$s-$r.txt" 2>&1 || true
    done
done

python3 - "$out" "$old" "$new" "$ROUNDS" <<'PY'
import re, statistics, sys
out, old, new, rounds = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])


def stat(path, label, key="median"):
    """A 'LABEL N=n median=.. p99=..' line of the harness (bench/lib/summary.py's reading)."""
    try:
        t = open(path).read()
    except OSError:
        return None
    m = re.search(r"^%s N=(\d+) (.*)$" % re.escape(label), t, re.M)
    if not m or m.group(1) == "0":
        return None
    kv = dict(x.split("=", 1) for x in m.group(2).replace(" (us)", "").split() if "=" in x)
    return float(kv[key])


FIGS = [  # (row, file kind, label, key, scale)
    ("RSS, kB", "footprint", "VmRSS_kB", "median", 1),
    ("PSS, kB", "footprint", "Pss_kB", "median", 1),
    ("restart SIGKILL->exec median, ms", "restart", "kill_to_exec", "median", 1e-3),
    ("restart SIGKILL->exec p99, ms", "restart", "kill_to_exec", "p99", 1e-3),
    ("firing lag median, ms (10 jobs)", "firing", "firing_lag_ms", "median", 1),
    ("firing lag p99, ms (10 jobs)", "firing", "firing_lag_ms", "p99", 1),
    ("last job of each slot median, ms", "firing", "slot_last_lag_ms", "median", 1),
]
print("| figure (median of %d alternating rounds) | A %s | B %s | B/A |" % (rounds, old, new))
print("| --- | ---: | ---: | ---: |")
for row, kind, label, key, scale in FIGS:
    v = {}
    for s in "AB":
        xs = [stat("%s/%s-%s-%d.txt" % (out, kind, s, r), label, key) for r in range(1, rounds + 1)]
        xs = [x * scale for x in xs if x is not None]
        v[s] = statistics.median(xs) if xs else None
    ratio = "%.2f" % (v["B"] / v["A"]) if v["A"] and v["B"] is not None else "n/a"
    fmt = lambda x: "n/a" if x is None else "%.2f" % x
    print("| %s | %s | %s | %s |" % (row, fmt(v["A"]), fmt(v["B"]), ratio))
PY
