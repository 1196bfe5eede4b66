#!/bin/bash
# container.sh - build the project's Dockerfile with podman + runc (no Docker engine, no
# registry: FROM debian:bookworm-slim is a local mmdebstrap tree imported under that name),
# run it like a PaaS would (PORT set, host network, a volume on the state directory) and
# check: /health answers 200 from the host, the image's HEALTHCHECK passes, meshd is PID 1
# and not root, a scheduled job runs, `podman stop -t 10` ends it with exit code 0.
# Prints the image size and the start-up time to healthy.
#
# env: DEPLOY_CACHE  where the base tarball is kept (default var/deploy; ~20-150 s to make)
#      PORT          host port to use (default 18480)        KEEP=1  keep the temp dir
#      STARTUP_TRIALS  extra runs timed from `podman run` to /health 200 (default 5)
# needs: root; podman runc mmdebstrap curl
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
cache=${DEPLOY_CACHE:-$repo/var/deploy}
port=${PORT:-18480}
trials=${STARTUP_TRIALS:-5}
work=$(mktemp -d /tmp/meshd-container.XXXXXX)
ctr=meshd-test-$$ img=localhost/meshd:test
# podman writes these host paths even with --root/--runroot: remove the ones it creates.
new_dirs=()
for d in /var/lib/containers /run/containers /etc/containers/networks; do
  [ -e "$d" ] || new_dirs+=("$d")
done
# This machine: root lacks CAP_SYS_RESOURCE and the hard RLIMIT_NOFILE is low, so podman's
# default rlimits fail; crun refuses the hybrid cgroup layout, runc works.
cat > "$work/containers.conf" <<EOF
[containers]
default_ulimits = ["nofile=$(ulimit -Hn):$(ulimit -Hn)", "nproc=4096:4096"]
[engine]
runtime = "runc"
EOF
export CONTAINERS_CONF=$work/containers.conf
P=(podman --root "$work/storage" --runroot "$work/run" --storage-driver overlay)

cleanup() {
  set +e
  "${P[@]}" rm -f -t 2 "$ctr" > /dev/null 2>&1
  "${P[@]}" system reset -f > /dev/null 2>&1      # images, volumes, layer mounts
  for d in /sys/fs/cgroup/*/libpod_parent; do     # empty cgroups podman leaves behind
    [ -d "$d" ] && find "$d" -depth -type d -exec rmdir {} \; 2> /dev/null
  done
  grep -o " $work/[^ ]*" /proc/mounts | sort -r | xargs -r -n1 umount -l
  if [ "${KEEP:-0}" = 1 ]; then echo "kept $work"; else rm -rf "$work"; fi
  for d in "${new_dirs[@]}"; do rm -rf "$d"; done
}
trap cleanup EXIT
fail() { echo "FAIL: $*"; "${P[@]}" logs "$ctr" 2>&1 | tail -20; exit 1; }
ms() { date +%s%3N; }

echo "== base image (debian:bookworm-slim from the Debian mirror)"
if [ ! -s "$cache/base.tar" ]; then
  s=$SECONDS
  "$repo/tests/deploy/rootfs.sh" base "$cache/base.tar" > "$work/rootfs.log" 2>&1 \
    || { tail -20 "$work/rootfs.log"; exit 1; }
  echo "  made $cache/base.tar ($((SECONDS - s)) s)"
fi
"${P[@]}" import --change 'CMD ["/bin/bash"]' "$cache/base.tar" \
  docker.io/library/debian:bookworm-slim > /dev/null

echo "== build"
s=$SECONDS
# --format docker keeps the HEALTHCHECK (OCI drops it); --network=host leaves the host
# firewall alone; --pull=never: there is no registry.
"${P[@]}" build --pull=never --network=host --format docker -t "$img" "$repo" \
  > "$work/build.log" 2>&1 || { tail -30 "$work/build.log"; exit 1; }
size=$("${P[@]}" image inspect "$img" --format '{{.Size}}')
echo "  built in $((SECONDS - s)) s; image size $((size / 1000000)) MB"
hc=$("${P[@]}" image inspect "$img" --format '{{json .HealthCheck.Test}}')
[ "$hc" != null ] || fail "the image has no HEALTHCHECK"
"${P[@]}" run --rm --network=none --entrypoint meshctl "$img" check /etc/meshd/meshd.yaml 2> /dev/null | sed 's/^/  /' \
  || fail "the image's own config does not check"

echo "== run (PORT=$port, host network, a volume on /var/lib/meshd)"
# The image's config plus a job every 2 s, mounted over it.
{ cat "$repo/conf/meshd.container.yaml"
  printf '  tick:\n    command: [sh, -c, %s]\n    schedule: "*/2 * * * * *"\n' \
    "'echo \"tick as \$(id -un) in \$(pwd)\"'"
} > "$work/meshd.yaml"
t0=$(ms)
# --health-interval=disable: podman would schedule checks with systemd timers (none here).
"${P[@]}" run -d --name "$ctr" --network=host -e PORT="$port" --health-interval=disable \
  -v "$work/meshd.yaml:/etc/meshd/meshd.yaml:ro" -v meshd-state:/var/lib/meshd "$img" \
  > /dev/null 2> "$work/run.err" || { cat "$work/run.err"; exit 1; }
code=
for _ in $(seq 1 150); do
  code=$(curl -s -o "$work/health" -w '%{http_code}' --max-time 1 "http://127.0.0.1:$port/health" || true)
  [ "$code" = 200 ] && break
  sleep 0.1
done
[ "$code" = 200 ] || fail "GET /health gave '$code'"
echo "  GET /health -> 200 $(cat "$work/health") after $(($(ms) - t0)) ms (start-up to healthy)"
"${P[@]}" healthcheck run "$ctr" > /dev/null 2>&1 || fail "the image's HEALTHCHECK failed"
echo "  HEALTHCHECK: healthy"
pid1=$("${P[@]}" exec "$ctr" cat /proc/1/comm)
uid=$("${P[@]}" exec "$ctr" id -u)
echo "  PID 1: $pid1, uid $uid"
[ "$pid1" = meshd ] || fail "PID 1 is $pid1, not meshd"
[ "$uid" != 0 ] || fail "the container runs as root"
for _ in $(seq 1 50); do
  "${P[@]}" logs "$ctr" > "$work/logs" 2>&1
  [ "$(grep -c 'tick as meshd in /var/lib/meshd' "$work/logs")" -ge 2 ] && break
  sleep 0.2
done
grep -m1 'tick as' "$work/logs" | sed 's/^/  job output: /'
[ "$(grep -c 'tick as meshd in /var/lib/meshd' "$work/logs")" -ge 2 ] || fail "the job did not run"
"${P[@]}" exec "$ctr" meshctl status | sed 's/^/  /' || fail "meshctl status in the container"

echo "== stop (SIGTERM, 10 s grace)"
t1=$(ms)
"${P[@]}" stop -t 10 "$ctr" > /dev/null 2>&1
rc=$("${P[@]}" inspect "$ctr" --format '{{.State.ExitCode}}')
echo "  exit code $rc after $(($(ms) - t1)) ms"
[ "$rc" = 0 ] || fail "exit code $rc on SIGTERM"
"${P[@]}" logs "$ctr" > "$work/logs" 2>&1
grep 'exit: code=0' "$work/logs" > /dev/null || fail "no 'exit: code=0' in the log"

echo "== start-up to healthy: $trials more runs"
times=()
for i in $(seq 1 "$trials"); do
  t0=$(ms)
  "${P[@]}" run -d --name "$ctr-$i" --network=host -e PORT="$port" --health-interval=disable \
    -v "$work/meshd.yaml:/etc/meshd/meshd.yaml:ro" "$img" > /dev/null 2>&1
  until curl -fs -o /dev/null --max-time 1 "http://127.0.0.1:$port/health"; do
    [ $(($(ms) - t0)) -lt 15000 ] || fail "run $i: not healthy after 15 s"; sleep 0.01
  done
  times+=($(($(ms) - t0)))
  "${P[@]}" rm -f -t 10 "$ctr-$i" > /dev/null 2>&1
done
mapfile -t sorted < <(printf '%s\n' "${times[@]}" | sort -n)
echo "  podman run -> /health 200: min ${sorted[0]} ms, median ${sorted[$((trials / 2))]} ms, max ${sorted[-1]} ms"
# Every podman command here uses the host's network or none: netavark must not have touched
# the host's firewall (it leaves NETAVARK chains behind otherwise).
if iptables-save 2> /dev/null | grep NETAVARK > /dev/null; then fail "netavark rules in the host's firewall"; fi
echo "PASS container"
