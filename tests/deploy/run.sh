#!/bin/bash
# run.sh - `make deploy-test`: every deployment check, one line each, then "N passed, N failed".
#   lint.sh       Dockerfile linters, ShellCheck, systemd-analyze verify/security, configs
#   container.sh  the Dockerfile built and run with podman: /health, HEALTHCHECK, non-root,
#                 a job runs, SIGTERM -> exit 0; image size and start-up time
#   nspawn.sh     the unit under a real systemd: READY, jobs, reload, watchdog, clean stop
# The base root file systems are cached in var/deploy (DEPLOY_CACHE); SKIP_CONTAINER=1 and
# SKIP_NSPAWN=1 leave out the slow parts.
# needs: root on Debian 12 with the Debian mirror and the npm registry reachable.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
pass=0 failed=0
step() {
  local name=$1 s=$SECONDS; shift
  echo "---- $name"
  if "$@"; then pass=$((pass + 1)); echo "---- $name: ok ($((SECONDS - s)) s)"
  else failed=$((failed + 1)); echo "---- $name: FAILED ($((SECONDS - s)) s)"; fi
}

# Only what is missing. --no-upgrade: naming an installed package must not upgrade it (and its
# reverse dependencies). libnss-mymachines- keeps systemd-container's Recommends (which edits
# /etc/nsswitch.conf) out.
missing=()
for p in podman runc mmdebstrap systemd-container curl shellcheck; do
  dpkg-query -W -f='${Status}' "$p" 2> /dev/null | grep 'install ok installed' > /dev/null || missing+=("$p")
done
command -v npm > /dev/null || missing+=(npm)   # a machine may have its own Node.js
if [ ${#missing[@]} -gt 0 ]; then
  step "apt-get install ${missing[*]}" sh -c 'apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
    apt-get install -y -qq --no-upgrade --no-install-recommends "$@" libnss-mymachines- > /dev/null' \
    sh "${missing[@]}"
fi
step lint "$here/lint.sh"
[ "${SKIP_CONTAINER:-0}" = 1 ] || step container "$here/container.sh"
[ "${SKIP_NSPAWN:-0}" = 1 ] || step "systemd (nspawn)" "$here/nspawn.sh"
echo "$pass passed, $failed failed"
[ "$failed" = 0 ]
