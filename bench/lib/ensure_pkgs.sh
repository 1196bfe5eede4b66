# ensure_pkgs PKG...: apt-get install the Debian packages that are missing, without letting
# their maintainer scripts start the packaged services (a policy-rc.d that exits 101 is put in
# place for the install if the machine does not already have one).  Any supervisord or cron
# daemon that appeared during the install anyway is stopped, by PID.  Source me.
_daemon_pids() {
    # supervisord is a python script: match its command line; cron by its name.
    { pgrep -x cron; pgrep -f '^/usr/bin/python3 /usr/bin/supervisord'; } 2>/dev/null | sort || true
}

ensure_pkgs() {
    local missing=() p before after pid prc=/usr/sbin/policy-rc.d ours=0
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
    (( ${#missing[@]} )) || return 0
    if (( EUID != 0 )); then
        echo "ensure_pkgs: need root to install ${missing[*]}" >&2; return 1
    fi
    before=$(_daemon_pids)
    if [[ ! -e "$prc" ]]; then
        printf '#!/bin/sh\nexit 101\n' > "$prc"; chmod 0755 "$prc"; ours=1
    fi
    echo "# installing ${missing[*]} (services kept from starting by $prc)" >&2
    local rc=0
    { DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" ||
      { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"; }
    } >&2 || rc=$?
    (( ours )) && rm -f "$prc"
    # A daemon that started anyway (no policy-rc.d honoured) is ours to stop: by PID only.
    after=$(_daemon_pids)
    for pid in $after; do
        grep -qx "$pid" <<<"$before" && continue
        echo "ensure_pkgs: stopping daemon $pid started by the package install" >&2
        kill -TERM "$pid" 2>/dev/null || true
    done
    return $rc
}
