#!/usr/bin/env bash
# Scheduler adapter for the shared harness's cron_lag.sh: meshd with one "* * * * *" job.
#   start WORKDIR LOGFILE  write WORKDIR/meshd.yaml with one every-minute job whose first
#                          action appends "<epoch.nanoseconds> <meshd pid>" to LOGFILE (same
#                          sh + date as the vixie-cron adapter, so the figures compare), start
#                          meshd in the background, print its PID
#   stop WORKDIR           SIGTERM meshd by PID (SIGKILL after 30 s)
# Environment: MESHD (binary, default build/meshd), MESHD_ANCHOR_DIR (default ../shared/bench).
set -euo pipefail
. "$(cd "$(dirname "$0")" && pwd)/../lib/common.sh"
. "$ANCHOR_DIR/lib/proc.sh"
verb=${1:?verb}; workdir=${2:?workdir}

case "$verb" in
start)
    log=${3:?logfile}
    [[ -x "$MESHD" ]] || { echo "meshd-cron adapter: no meshd binary at $MESHD" >&2; exit 3; }
    mkdir -p "$workdir/state"
    workdir=$(cd "$workdir" && pwd)
    log=$(cd "$(dirname "$log")" && pwd)/$(basename "$log")
    # meshd spawns sh directly, so the shell's $PPID is meshd's PID.
    cat > "$workdir/meshd.yaml" <<CONF
node: {name: bench-cron, state_dir: $workdir/state, log_level: warn}
http: {listen: "127.0.0.1:0"}
jobs:
  cronlag:
    command: [sh, -c, 'd=\$(date +%s.%N); echo "\$d \$PPID" >> $log']
    schedule: "* * * * *"
    catch_up: 0s
CONF
    "$MESHD" -c "$workdir/meshd.yaml" </dev/null >"$workdir/meshd.out" 2>&1 &
    pid=$!
    echo "$pid" > "$workdir/sched.pid"
    sleep 1
    if ! kill -0 "$pid" 2>/dev/null; then
        echo "meshd did not stay up:" >&2; cat "$workdir/meshd.out" >&2; exit 1
    fi
    echo "$pid"
    ;;
stop)
    [[ -f "$workdir/sched.pid" ]] && stop_pid "$(cat "$workdir/sched.pid")" TERM 30
    ;;
*) echo "unknown verb $verb" >&2; exit 2 ;;
esac
