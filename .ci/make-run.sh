#!/usr/bin/env bash
# make-run.sh - `make run` as the README tells a newcomer to run it, in the checkout this script
# belongs to (.ci/run runs it from a clone inside a 0700 directory, like a checkout under /root):
#   1. make run starts meshd with its local PostgreSQL cluster, and meshd's registry is ready;
#      the example's nightly load, run by hand, fills property.parcels from the county files,
#      and each county it changed is validated by the job on scrape.changed; the failing
#      data-quality check's job alert reaches a webhook (meshd-report, `notify` on: alert), and
#      the daily digest, run by hand, is written under var/state/digest;
#   2. SIGINT to make run's process group (what Ctrl-C in a terminal sends) stops meshd and the
#      cluster;
#   3. a second make run uses the same cluster: what the first one wrote is still there;
#   4. make clean-pg removes the cluster's directory.
# PORT=0: meshd listens on a free port, so a make run of someone else on 8470 does not matter.
# About 20 s.
set -euo pipefail
cd "$(dirname "$0")/.."
log=$(mktemp)
hooklog=$(mktemp)
pgid=""
hookpid=""
cleanup() {
    if [ -n "$pgid" ] && kill -0 -- "-$pgid" 2>/dev/null; then kill -KILL -- "-$pgid"; fi
    if [ -n "$hookpid" ]; then kill "$hookpid" 2>/dev/null || true; fi
    rm -f "$log" "$hooklog"
}
trap cleanup EXIT
fail() {
    echo "make-run.sh: $*" >&2
    echo "---- make run's output:" >&2
    tail -n 30 "$log" >&2
    exit 1
}
wait_log() {  # wait_log REGEX SECONDS
    local i
    for ((i = 0; i < $2 * 10; i++)); do
        grep -Eq "$1" "$log" && return 0
        kill -0 "$pgid" 2>/dev/null || fail "make run exited before /$1/ appeared"
        sleep 0.1
    done
    fail "no /$1/ within $2 s"
}

# Starts make run in a session of its own (its process group is $pgid) and waits until meshd's
# registry is ready.
# The alerts' webhook (conf/meshd.yaml: MESHD_ALERT_WEBHOOK): appends each body it gets to
# $hooklog, one line each; it prints its port first.
python3 -u -c '
import http.server, sys
class H(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        with open(sys.argv[1], "ab") as f:
            f.write(body.replace(b"\n", b" ") + b"\n")
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()
    def log_message(self, *a):
        pass
s = http.server.HTTPServer(("127.0.0.1", 0), H)
print(s.server_address[1], flush=True)
s.serve_forever()
' "$hooklog" >"$hooklog.port" &
hookpid=$!
for ((i = 0; i < 50; i++)); do [ -s "$hooklog.port" ] && break; sleep 0.1; done
hookport=$(cat "$hooklog.port"); rm -f "$hooklog.port"
[ -n "$hookport" ] || fail "the webhook receiver did not start"

start_run() {
    : >"$log"
    env -u DATABASE_URL PORT=0 MESHD_ALERT_WEBHOOK="http://127.0.0.1:$hookport/meshd-alerts" \
        setsid make run >"$log" 2>&1 &
    pgid=$!
    wait_log 'registry ready' 180
    pgdir=$(sed -n 's/^make run: PostgreSQL cluster in \([^ ]*\) .*/\1/p' "$log")
    [ -d "$pgdir" ] || fail "make run did not say where its cluster is"
    url="host=$pgdir/sock port=5432 user=postgres dbname=meshd"
}

# Stops it as Ctrl-C does and checks that meshd and the cluster are gone.
interrupt_run() {
    local meshd
    meshd=$(pgrep -g "$pgid" -x meshd || true)
    [ -n "$meshd" ] || fail "no meshd in make run's process group"
    kill -INT -- "-$pgid"
    local i
    for ((i = 0; i < 600; i++)); do kill -0 -- "-$pgid" 2>/dev/null || break; sleep 0.1; done
    kill -0 -- "-$pgid" 2>/dev/null && fail "make run still running 60 s after SIGINT"
    wait "$pgid" || true
    pgid=""
    kill -0 "$meshd" 2>/dev/null && fail "meshd (pid $meshd) outlived make run"
    grep -q 'make run: stopping PostgreSQL' "$log" || fail "make run did not stop its cluster"
    [ ! -e "$pgdir/data/postmaster.pid" ] || fail "the cluster in $pgdir still runs"
}

start_run
echo "make-run.sh: first make run is up (cluster in $pgdir)"
[ "$(stat -c %a "$pgdir")" = 700 ] || fail "$pgdir is not mode 0700"
if [ "$(id -u)" = 0 ]; then
    [ "$(stat -c %U "$pgdir")" = postgres ] || fail "$pgdir is not owned by postgres"
fi
psql "$url" -XAtqc "SELECT count(*) FROM agent_registry WHERE job IS NULL AND state = 'up'" |
    grep -qx 1 || fail "meshd's node row is not in the registry"
psql "$url" -XAtqc "CREATE TABLE ci_make_run_marker ()"
# The example's data-quality check, run now: it stores the suite's checks, which the job on
# scrape.changed runs (it names the suite alone).
build/meshctl run data-quality-check --config conf/meshd.yaml >/dev/null ||
    fail "meshctl run data-quality-check failed"
for ((i = 0; i < 600; i++)); do
    n=$(psql "$url" -XAtqc "SELECT count(*) FROM meshd_validate.suites" 2>/dev/null || echo 0)
    [ "$n" = 1 ] && break
    sleep 0.1
done
[ "$n" = 1 ] || fail "data-quality-check (meshd-validate) stored no suite"
# It finds the planted defects and publishes validation.failed: the remediate job plans the
# declared fixes (apply: approval), changing nothing.
for ((i = 0; i < 600; i++)); do
    n=$(psql "$url" -XAtqc "SELECT count(*) FROM meshd_remediate.plans WHERE status = 'planned'" \
        2>/dev/null || echo 0)
    [ "$n" = 2 ] && break
    sleep 0.1
done
[ "$n" = 2 ] || fail "meshd-remediate planned $n fixes after validation.failed, not 2"
echo "make-run.sh: the checks failed on the planted defects and remediation planned two fixes"
for ((i = 0; i < 600; i++)); do
    grep -q '"job.data-quality-check.failed"' "$hooklog" && break
    sleep 0.1
done
grep -q '"job.data-quality-check.failed"' "$hooklog" ||
    fail "the failed data-quality-check's alert never reached the webhook (meshd-report notify)"
echo "make-run.sh: the failed check run's alert reached the webhook (meshd-report)"
build/meshctl run daily-digest --config conf/meshd.yaml >/dev/null ||
    fail "meshctl run daily-digest failed"
for ((i = 0; i < 600; i++)); do
    ls var/state/digest/digest-*.md >/dev/null 2>&1 && break
    sleep 0.1
done
grep -q 'data-quality-check' var/state/digest/digest-*.md 2>/dev/null ||
    fail "the daily digest wrote no var/state/digest/digest-*.md naming data-quality-check"
echo "make-run.sh: the daily digest was written (and sent)"
# The example pipeline's nightly load, run now: meshd-scrape loads the six generated county
# files (sql/example/county_files.sh, 2000 rows each) into property.parcels as roll year 2026.
build/meshctl run nightly-data-update --config conf/meshd.yaml >/dev/null ||
    fail "meshctl run nightly-data-update failed"
for ((i = 0; i < 600; i++)); do
    n=$(psql "$url" -XAtqc "SELECT count(*) FROM property.parcels WHERE asmnt_yr = 2026")
    [ "$n" = 12000 ] && break
    sleep 0.1
done
[ "$n" = 12000 ] || fail "the nightly load put $n rows of 2026 into property.parcels, not 12000"
echo "make-run.sh: the nightly load (meshd-scrape) loaded the example's county files"
# Each county's scrape.changed starts data-quality-after-load (meshd-validate) on that county.
for ((i = 0; i < 1200; i++)); do
    n=$(psql "$url" -XAtqc "SELECT count(DISTINCT scope) FROM meshd_validate.results
                            WHERE scope LIKE '%,2026'" 2>/dev/null || echo 0)
    [ "$n" = 6 ] && break
    sleep 0.1
done
[ "$n" = 6 ] || fail "meshd-validate checked $n of the 6 loaded counties after their scrape.changed"
echo "make-run.sh: each loaded county was validated on its scrape.changed (meshd-validate)"
interrupt_run
echo "make-run.sh: Ctrl-C stopped meshd and the cluster"

start_run
[ "$(psql "$url" -XAtqc "SELECT to_regclass('ci_make_run_marker') IS NOT NULL")" = t ] ||
    fail "the second make run does not see the first one's data"
interrupt_run
echo "make-run.sh: a second make run found the first one's data"

make -s clean-pg
[ ! -e "$pgdir" ] || fail "make clean-pg left $pgdir"
echo "make-run.sh: make clean-pg removed $pgdir; ok"
