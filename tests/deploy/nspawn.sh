#!/bin/bash
# nspawn.sh - systemd/meshd.service under a real systemd: boot Debian 12 in systemd-nspawn with
# meshd put in by `make install DESTDIR=...`, the unit enabled and a schedule with a service
# and a job every 2 s, then check: the unit is active only once READY=1 came (the service job
# already runs), the jobs run as meshd and may write the state directory, each run gets a cgroup
# of its own below the unit's (Delegate=yes): meshd sits in <unit>/supervisor, a grandchild that
# called setsid dies when its run ends and a run's CPU time is in /status, `systemctl reload`
# brings RELOADING=1 then READY=1 (ExecReload in the delegated unit), a SIGSTOPped meshd is killed
# by the watchdog and restarted, and `systemctl stop` ends with status 0 and no process left.
#
# env: BUILD          meshd's build tree (default build)
#      DEPLOY_CACHE   where the systemd rootfs tarball is kept (default var/deploy)
#      PORT           meshd's API port (default 18490)       KEEP=1  keep the temp dir
# needs: root; systemd-container mmdebstrap curl
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
cache=${DEPLOY_CACHE:-$repo/var/deploy}
build=$(realpath "${BUILD:-$repo/build}")
port=${PORT:-18490}
work=$(mktemp -d /tmp/meshd-nspawn.XXXXXX)
root=$work/root cg=meshd-nspawn.$$ nspawn_pid='' init_pid=''
# nspawn and systemd-analyze leave these in the host's /run (not a tmpfs here).
new_paths=()
for p in /run/systemd/nspawn /run/systemd/systemd-units-load; do
  [ -e "$p" ] || new_paths+=("$p")
done

cleanup() {
  set +e
  if [ -n "$nspawn_pid" ] && kill -0 "$nspawn_pid" 2> /dev/null; then
    kill -TERM "$nspawn_pid"          # nspawn: an orderly shutdown of the container
    for _ in $(seq 1 100); do kill -0 "$nspawn_pid" 2> /dev/null || break; sleep 0.1; done
    kill -0 "$nspawn_pid" 2> /dev/null && kill -KILL "$nspawn_pid"
    wait "$nspawn_pid" 2> /dev/null
  fi
  for h in systemd unified; do
    [ -d "/sys/fs/cgroup/$h/$cg" ] && find "/sys/fs/cgroup/$h/$cg" -depth -type d -exec rmdir {} \; 2> /dev/null
  done
  grep -o " $work/[^ ]*" /proc/mounts | sort -r | xargs -r -n1 umount -l
  if [ "${KEEP:-0}" = 1 ]; then echo "kept $work"; else rm -rf "$work"; fi
  for p in "${new_paths[@]}"; do rm -rf "$p"; done
}
trap cleanup EXIT
in_ct() { nsenter -t "$init_pid" -a "$@"; }
fail() { echo "FAIL: $*"; [ -n "$init_pid" ] && in_ct journalctl --no-pager -n 40 -u meshd; exit 1; }
show() { in_ct systemctl show meshd -p "$1" --value; }

echo "== root file system with systemd"
# Made again when rootfs.sh changed (its package list: meshd's runtime libraries).
if [ ! -s "$cache/systemd.tar" ] || [ "$repo/tests/deploy/rootfs.sh" -nt "$cache/systemd.tar" ]; then
  s=$SECONDS
  "$repo/tests/deploy/rootfs.sh" systemd "$cache/systemd.tar" > "$work/rootfs.log" 2>&1 \
    || { tail -20 "$work/rootfs.log"; exit 1; }
  echo "  made $cache/systemd.tar ($((SECONDS - s)) s)"
fi
mkdir "$root"
tar -C "$root" -xf "$cache/systemd.tar"

echo "== make install DESTDIR=<container>"
make -s -C "$repo" install BUILD="$build" DESTDIR="$root" > "$work/install.log" 2>&1 \
  || { cat "$work/install.log"; exit 1; }
systemd-sysusers --root="$root" "$root/usr/local/lib/sysusers.d/meshd.conf"   # as a postinst would
systemctl --root="$root" enable meshd.service > /dev/null 2>&1
echo meshtest > "$root/etc/hostname"
# The installed config, on a test port, with a service and a job every 2 s.
{ sed "s/listen: 127.0.0.1:8470/listen: 127.0.0.1:$port/" "$repo/conf/meshd.system.yaml"
  cat <<'EOF'
  svc:
    command: [sh, -c, 'echo service up; exec sleep 3600']
    schedule: always
  tick:
    command: [sh, -c, 'echo "tick as $(id -un)" >> /var/lib/meshd/ticks']
    schedule: "*/2 * * * * *"
  escapee:
    command: [sh, -c, 'setsid sh -c "echo \$\$ > /var/lib/meshd/escapee.pid; exec sleep 3600" & sleep 1']
    schedule: "@yearly"
  burner:
    command: [sh, -c, 'i=0; while [ $i -lt 300000 ]; do i=$((i + 1)); done']
    schedule: "@yearly"
EOF
} > "$root/etc/meshd/meshd.yaml"
# Test drop-in: a short watchdog; restart quickly and without hitting the start limit.
mkdir -p "$root/etc/systemd/system/meshd.service.d"
cat > "$root/etc/systemd/system/meshd.service.d/test.conf" <<'EOF'
[Unit]
StartLimitBurst=100
[Service]
WatchdogSec=3s
RestartSec=1s
EOF

echo "== boot"
s=$SECONDS
mkdir -p "/sys/fs/cgroup/systemd/$cg" "/sys/fs/cgroup/unified/$cg"
# In a private cgroup, so what nspawn creates can be removed; --register=no --keep-unit: no
# machined or D-Bus on the host; no --private-network: the container shares the loopback.
# shellcheck disable=SC2016  # $$ and $1 are for the inner sh
sh -c 'echo $$ > /sys/fs/cgroup/systemd/'"$cg"'/cgroup.procs
       echo $$ > /sys/fs/cgroup/unified/'"$cg"'/cgroup.procs
       exec systemd-nspawn -q -D "$1" --boot --register=no --keep-unit --console=passive \
         --machine=meshtest' sh "$root" > "$work/nspawn.log" 2>&1 &
nspawn_pid=$!
for _ in $(seq 1 100); do   # nspawn's first child is transient: wait for systemd itself
  init_pid=$(ps -o pid=,comm= --ppid "$nspawn_pid" | awk '$2 == "systemd" {print $1; exit}' || true)
  [ -n "$init_pid" ] && break; sleep 0.1
done
[ -n "$init_pid" ] || { cat "$work/nspawn.log"; exit 1; }
for _ in $(seq 1 150); do
  case $(in_ct systemctl is-system-running 2> /dev/null || true) in running|degraded) break;; esac
  sleep 0.2
done
echo "  booted in $((SECONDS - s)) s: $(in_ct systemctl is-system-running || true)"

echo "== start: active only after READY=1"
in_ct systemd-analyze verify /usr/local/lib/systemd/system/meshd.service > "$work/verify" 2>&1 || true
[ ! -s "$work/verify" ] || { cat "$work/verify"; fail "systemd-analyze verify in the container"; }
in_ct systemctl restart meshd || fail "systemctl restart (waits for READY=1)"
# No retry: when systemctl returns, READY=1 has come, so the service job must already run.
in_ct pgrep -u meshd -x sleep > /dev/null || fail "the service job was not started before READY"
body=$(curl -fsS --max-time 2 "http://127.0.0.1:$port/health") || fail "/health"
echo "  GET /health -> $body"
echo "  $(show Type) unit $(show ActiveState)/$(show SubState), user $(show User), status: $(show StatusText)"
[ "$(show NRestarts)" = 0 ] || fail "restarted already"

echo "== jobs under the hardening"
ticks=$root/var/lib/meshd/ticks
for _ in $(seq 1 40); do n=$(grep -cs 'tick as meshd' "$ticks" || true); [ "${n:-0}" -ge 2 ] && break; sleep 0.2; done
grep -qs 'tick as meshd' "$ticks" || fail "the job did not write /var/lib/meshd"
echo "  job runs as meshd, writes the state directory ($(wc -l < "$ticks") runs so far)"
in_ct runuser -u meshd -- meshctl status --config /etc/meshd/meshd.yaml | sed 's/^/  /' || fail "meshctl status"
read -r nnp seccomp cap < <(in_ct cat "/proc/$(show MainPID)/status" \
  | awk '{v[$1] = $2} END {print v["NoNewPrivs:"], v["Seccomp:"], v["CapEff:"]}')
echo "  meshd: NoNewPrivs=$nnp Seccomp=$seccomp CapEff=$cap"
if [ "$nnp" != 1 ] || [ "$cap" != 0000000000000000 ]; then fail "hardening not applied"; fi

echo "== each run in a cgroup of its own (Delegate=yes)"
ctl() { in_ct runuser -u meshd -- meshctl "$@" --config /etc/meshd/meshd.yaml; }
in_ct journalctl -q -o cat -u meshd | grep -m1 'cgroups: ' | sed 's/^/  /'
in_ct journalctl -q -o cat -u meshd | grep 'cgroups: on' > /dev/null || fail "cgroups are off"
own=$(in_ct sed -n 's/^0:://p' "/proc/$(show MainPID)/cgroup")
case $own in */supervisor) echo "  meshd in $own";; *) fail "meshd is in $own, not <unit>/supervisor";; esac
ctl run escapee > /dev/null || fail "meshctl run escapee"
esc=$root/var/lib/meshd/escapee.pid
for _ in $(seq 1 50); do [ -s "$esc" ] && break; sleep 0.2; done
[ -s "$esc" ] || fail "the escapee job did not start its grandchild"
gc=$(cat "$esc")
[ "$(in_ct ps -o sid= -p "$gc" | tr -d ' ')" = "$gc" ] || fail "grandchild $gc did not call setsid"
for _ in $(seq 1 50); do in_ct kill -0 "$gc" 2> /dev/null || break; sleep 0.2; done
in_ct kill -0 "$gc" 2> /dev/null && fail "grandchild $gc outlived its run"
echo "  the run's setsid grandchild $gc died with it"
ctl run burner > /dev/null || fail "meshctl run burner"
cpu=
for _ in $(seq 1 100); do
  cpu=$(ctl status burner --json | python3 -c 'import json, sys
r = json.load(sys.stdin)["last_run"]
print(r["cpu_usec"] if r else "")' 2> /dev/null || true)
  [ -n "$cpu" ] && break; sleep 0.2
done
case $cpu in ''|None|0) fail "no CPU time for the burner run (cpu_usec=$cpu)";; esac
echo "  burner run: cpu_usec=$cpu"

echo "== reload: RELOADING=1 ... READY=1"
printf '  tock:\n    command: [sh, -c, "echo tock"]\n    schedule: "@hourly"\n' >> "$root/etc/meshd/meshd.yaml"
in_ct systemd-analyze log-level debug   # so systemd logs every notification it gets
since=$(in_ct date '+%Y-%m-%d %H:%M:%S')
pid=$(show MainPID)
in_ct systemctl reload meshd || fail "systemctl reload"
for _ in $(seq 1 50); do in_ct journalctl -q --since "$since" -u meshd | grep 'READY=1' > /dev/null && break; sleep 0.1; done
in_ct systemd-analyze log-level info
in_ct journalctl -q -o cat --since "$since" -u meshd \
  | grep -E 'Got notification message.*(RELOADING|READY)=1|Changed (running -> reload|reload -> running)|reloaded:' \
  | sed -E 's/^/  /; s/, STATUS=.*//' > "$work/reload" || true
cat "$work/reload"
sed -n '/RELOADING=1/,$p' "$work/reload" | grep 'READY=1' > /dev/null || fail "no RELOADING=1 then READY=1"
if [ "$(show ActiveState)" != active ] || [ "$(show MainPID)" != "$pid" ]; then fail "not active after reload"; fi

echo "== watchdog: SIGSTOP meshd (WatchdogSec=3s)"
in_ct kill -STOP "$pid"
s=$SECONDS
for _ in $(seq 1 150); do
  [ "$(show NRestarts)" -ge 1 ] && [ "$(show ActiveState)" = active ] && break; sleep 0.2
done
[ "$(show NRestarts)" -ge 1 ] || fail "no watchdog restart"
in_ct journalctl -q -o cat -u meshd | grep -E 'Watchdog timeout|with result|Scheduled restart' | tail -3 | sed 's/^/  /' || true
echo "  restarted as pid $(show MainPID) after $((SECONDS - s)) s"
in_ct kill -0 "$pid" 2> /dev/null && fail "the stopped meshd $pid survived"
own=$(in_ct sed -n 's/^0:://p' "/proc/$(show MainPID)/cgroup")
case $own in */supervisor) echo "  the new meshd is in $own again";; *) fail "restarted meshd in $own";; esac

echo "== stop"
cgroup=$(show ControlGroup)
in_ct systemctl stop meshd
echo "  Result=$(show Result) ExecMainStatus=$(show ExecMainStatus)"
if [ "$(show Result)" != success ] || [ "$(show ExecMainStatus)" != 0 ]; then fail "unclean stop"; fi
left=$(in_ct pgrep -u meshd || true)
[ -z "$left" ] || fail "processes left after stop: $left"
in_ct journalctl -q -o cat -u meshd | grep 'exit: code=0' > /dev/null || fail "no 'exit: code=0'"
echo "  no process left (cgroup $cgroup); meshd logged exit: code=0"
echo "PASS nspawn"
