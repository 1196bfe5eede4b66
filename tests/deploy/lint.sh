#!/bin/bash
# lint.sh - the static deployment checks (~10 s):
#   Dockerfile: dockerfile-utils (syntax) and dockerfilelint (practice), both npm packages locked
#     by package-lock.json here, plus shellcheck on every RUN (hadolint is not installable here);
#   ShellCheck on tests/deploy/*.sh;
#   systemd/meshd.service: `systemd-analyze verify` must print nothing (it exits 0 on unknown
#     keys and bad values), then `systemd-analyze security --offline=true` (score <= 2.5);
#   the shipped configs pass `meshctl check`; railway.json has the keys the platform needs.
# env: BUILD  meshd's build tree (default build)
# needs: root (unshare), npm, shellcheck, systemd
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
build=$(realpath "${BUILD:-$repo/build}")
tmp=$(mktemp -d /tmp/meshd-lint.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
rc=0
bad() { echo "FAIL: $*"; rc=1; }

if [ ! -x "$here/node_modules/.bin/dockerfilelint" ]; then
  npm ci --prefix "$here" --no-audit --no-fund --loglevel=error > "$tmp/npm.log" 2>&1 \
    || { cat "$tmp/npm.log"; exit 1; }
fi
# ok NAME CMD...: run CMD, say "NAME: ok" or fail
ok() { local n=$1; shift; if "$@" > "$tmp/out" 2>&1; then echo "$n: ok"; else cat "$tmp/out"; bad "$n"; fi; }
ok dockerfile-utils "$here/node_modules/.bin/dockerfile-utils" lint "$repo/Dockerfile"
ok dockerfilelint "$here/node_modules/.bin/dockerfilelint" -c "$here" "$repo/Dockerfile"
# Each RUN (continuation lines joined) as a sh script, as hadolint does with ShellCheck.
awk -v dir="$tmp" '
  /^RUN / { run = 1; n++; sub(/^RUN /, "") }
  run { print > (dir "/run" n ".sh"); if (!/\\$/) run = 0 }' "$repo/Dockerfile"
for f in "$tmp"/run*.sh; do
  shellcheck -s sh "$f" || bad "shellcheck on the Dockerfile's RUN $(basename "$f" .sh)"
done
echo "shellcheck (Dockerfile RUN): done"
ok "shellcheck (tests/deploy)" shellcheck -x "$here"/*.sh

# verify insists that ExecStart= exists: install meshd into a tmpfs over /usr/local in a
# private mount namespace (the host is not changed). It also leaves a marker in /run.
marker=/run/systemd/systemd-units-load
[ -e "$marker" ] && marker=
# shellcheck disable=SC2016  # expanded by the inner bash
unshare --mount --propagation private bash -c '
  mount -t tmpfs tmpfs /usr/local && cmake --install "$1" --prefix /usr/local > /dev/null
  systemd-analyze verify --man=no "$2" > "$3/verify" 2>&1
  systemd-analyze security --offline=true --threshold=25 --no-pager "$2" > "$3/security" 2>&1
  echo $? > "$3/security.rc"' bash "$build" "$repo/systemd/meshd.service" "$tmp" || true
[ -n "$marker" ] && rm -f "$marker"
if [ -s "$tmp/verify" ]; then sed 's/^/verify: /' "$tmp/verify"; bad "systemd-analyze verify"
else echo "systemd-analyze verify: silent"; fi
echo "systemd-analyze security: $(grep -o 'Overall exposure level.*' "$tmp/security")"
[ "$(cat "$tmp/security.rc")" = 0 ] || bad "security exposure above 2.5"

for c in "$repo"/conf/meshd.system.yaml "$repo"/conf/meshd.container.yaml; do
  "$build/meshctl" check "$c" || bad "meshctl check $c"
done
python3 - "$repo/railway.json" <<'EOF' || bad "railway.json"
import json, sys
d = json.load(open(sys.argv[1]))["deploy"]
assert d["healthcheckPath"] == "/health" and d["restartPolicyType"] == "ON_FAILURE", d
print("railway.json: ok")
EOF
exit $rc
