#!/usr/bin/env bash
# How long launch.c holds meshd's loop per spawn: clone3 (CLONE_VM|CLONE_VFORK, and
# CLONE_INTO_CGROUP for a run's cgroup) against vfork (+ a cgroup.procs write in the child),
# each for a lone spawn and within a burst (bench/src/launch_cost.c).  With root and a writable
# cgroup2 hierarchy the cgroup rows are measured in a throwaway cgroup under this shell's own.
#
# Usage: bench/launch_cost.sh [N]     (N launches per row, default 50; needs make build)
set -euo pipefail
. "$(cd "$(dirname "$0")" && pwd)/lib/common.sh"
n=${1:-50}
build=$(dirname "$MESHD")
mkdir -p "$BENCH_DIR/build"
tool=$BENCH_DIR/build/launch_cost
gcc -O2 -Wall -I"$REPO_ROOT/supervisor" -I"$REPO_ROOT/common/include" -o "$tool" \
    "$BENCH_DIR/src/launch_cost.c" "$build/libmeshd_sup.a" "$build/libmeshd_common.a" \
    $(pkg-config --libs libuv yaml-0.1 libcjson) -lhttp_parser -lm
cg=-
mnt=$(awk '$9 == "cgroup2" {print $5; exit}' /proc/self/mountinfo)
own=$(sed -n 's/^0:://p' /proc/self/cgroup)
if [[ -n "$mnt" && -w "$mnt$own" ]]; then
    cg=$mnt$own/launch-cost.$$
    mkdir "$cg"
    trap 'echo 1 > "$cg/cgroup.kill" 2>/dev/null; sleep 0.2; rmdir "$cg" 2>/dev/null || true' EXIT
else
    echo "# no writable cgroup2 here: cgroup rows skipped" >&2
fi
echo "# kernel=$(uname -r) nproc=$(nproc) load=$(cut -d' ' -f1-3 /proc/loadavg) meshd=$(git -C "$REPO_ROOT" rev-parse --short HEAD)"
"$tool" "$cg" "$n"
