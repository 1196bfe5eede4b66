#!/usr/bin/env bash
# Line coverage of the supervisor's and common's files by the unit tests (ctest -L unit, the
# pure and in-process tests: what a failure there points at is a function, not a process).
#
#   bench/coverage.sh [REV ...]      default: HEAD
#
# Each REV is checked out into a temporary worktree, built with --coverage (gcc, -O0), its unit
# tests run against a throwaway PostgreSQL like `make test` (the pg-labelled ones need it), and
# gcov's per-file line coverage is printed as one table, a column per REV.  Needs gcov (gcc).
set -euo pipefail
src=$(cd "$(dirname "$0")/.." && pwd)
[ $# -gt 0 ] || set -- HEAD
tmp=$(mktemp -d "${TMPDIR:-/tmp}/meshd-cov.XXXXXX")
trap 'for w in "$tmp"/wt-*; do git -C "$src" worktree remove --force "$w" 2>/dev/null || true; done; rm -rf "$tmp"' EXIT

for rev in "$@"; do
    sha=$(git -C "$src" rev-parse --short "$rev")
    wt="$tmp/wt-$sha"
    git -C "$src" worktree add -q --detach "$wt" "$sha"
    cmake -S "$wt" -B "$wt/build" -DCMAKE_BUILD_TYPE=Debug -DCMAKE_C_FLAGS="--coverage -O0" \
        >/dev/null
    cmake --build "$wt/build" -j "$(nproc)" >/dev/null
    (cd "$wt/build" && ctest -L unit -j 2 --output-on-failure >"$tmp/ctest-$sha.log" 2>&1) ||
        echo "coverage: some unit tests failed at $sha (see the figures with care)" >&2
    # One gcov run per object directory; keep "File '<path>'" + "Lines executed:NN% of M".
    (cd "$wt/build" &&
        find . -name '*.gcda' -path '*meshd_*' -printf '%h\n' | sort -u | while read -r d; do
            gcov -n -o "$d" "$d"/*.gcda 2>/dev/null
        done) | awk -v rev="$sha" '
            /^File / { f = $2; gsub(/\x27/, "", f); next }
            /^Lines executed:/ && f != "" {
                split($2, a, ":"); pct = a[2]; sub(/%/, "", pct); n = $4
                if (f ~ /\/(supervisor|common\/src)\// && f !~ /\/build\//) {
                    sub(/.*\/(supervisor|common\/src)\//, "", f)
                    print rev, f, pct, n
                }
                f = ""
            }' >>"$tmp/cov.txt"
done

python3 - "$tmp/cov.txt" "$@" <<'PY'
import sys, collections
rows = collections.defaultdict(dict)
revs = []
for line in open(sys.argv[1]):
    rev, f, pct, n = line.split()
    if rev not in revs:
        revs.append(rev)
    rows[f][rev] = (float(pct), int(n))
print("| file | " + " | ".join(revs) + " |")
print("| --- | " + " | ".join("---:" for _ in revs) + " |")
tot = {r: [0.0, 0] for r in revs}
for f in sorted(rows):
    cells = []
    for r in revs:
        if r in rows[f]:
            pct, n = rows[f][r]
            cells.append("%.1f %% of %d" % (pct, n))
            tot[r][0] += pct * n / 100
            tot[r][1] += n
        else:
            cells.append("-")
    print("| %s | %s |" % (f, " | ".join(cells)))
print("| **all** | " + " | ".join("**%.1f %%** of %d" % (100 * t[0] / max(t[1], 1), t[1]) for t in tot.values()) + " |")
PY
