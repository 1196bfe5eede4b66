# Shared set-up for the meshd benchmarks (source me from bench/*.sh and bench/adapters/*.sh).
#
# Sets:
#   BENCH_DIR   the project's bench/ directory
#   REPO_ROOT   the repository root
#   ANCHOR_DIR  the shared anchor harness (../shared/bench relative to the repo root, or
#               $MESHD_ANCHOR_DIR); exits 3 with a clear message if it is missing
#   MESHD       the meshd binary ($MESHD, default build/meshd)
#   MESHCTL     the meshctl binary ($MESHCTL, default: the one beside $MESHD)
BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
REPO_ROOT=$(cd "$BENCH_DIR/.." && pwd)
ANCHOR_DIR=${MESHD_ANCHOR_DIR:-$REPO_ROOT/../shared/bench}
if [[ ! -f "$ANCHOR_DIR/lib/proc.sh" || ! -f "$ANCHOR_DIR/footprint.py" ]]; then
    echo "meshd bench: the shared anchor harness is missing: expected it at $ANCHOR_DIR" >&2
    echo "  (../shared/bench relative to the repository root; set MESHD_ANCHOR_DIR to override)" >&2
    exit 3
fi
ANCHOR_DIR=$(cd "$ANCHOR_DIR" && pwd)
MESHD=${MESHD:-$REPO_ROOT/build/meshd}
MESHCTL=${MESHCTL:-$(dirname "$MESHD")/meshctl}
