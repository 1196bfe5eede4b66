#!/usr/bin/env bash
# pgctl.sh - a local PostgreSQL cluster for tests (and make run), from Debian's postgresql-15.
#
#   pgctl.sh start DIR [SOCKDIR]  initdb DIR/data (first time) and start it on a unix socket in
#                        SOCKDIR (default DIR/sock; port 5432 names the socket; no TCP),
#                        user postgres, trust auth; prints the libpq conninfo
#   pgctl.sh fresh DIR [SOCKDIR]  destroy, then start: an empty cluster (the ctest fixture)
#   pgctl.sh stop DIR    stop it (fast shutdown) by the postmaster's PID; DIR is kept
#   pgctl.sh destroy DIR [SOCKDIR]  stop it and remove DIR (and SOCKDIR)
#   pgctl.sh env DIR [SOCKDIR]  print the libpq conninfo
#
# PostgreSQL refuses to run as root, so as root the cluster runs as the 'postgres' user, which
# must be able to reach DIR and SOCKDIR: a checkout under /root (mode 0700) is out of its reach.
# So callers keep clusters outside the checkout, in a directory of their own under /var/tmp
# (make run: /var/tmp/meshd-run-<hash of the checkout's path>; the ctest fixture:
# /var/tmp/meshd-test-<hash of the build dir>).  pgctl.sh creates DIR and SOCKDIR mode 0700,
# owned by the server's user (postgres as root, else the caller), and refuses to use one that
# is a symbolic link or belongs to anyone else: /var/tmp is shared by every local user, and with
# trust auth whoever reaches the socket is a superuser.  destroy removes only a DIR that
# pgctl.sh made (it holds the marker file .meshd-pgctl).
#
# A unix socket path must fit in 107 bytes, so callers in deep directories pass a short SOCKDIR.
set -euo pipefail

usage="usage: pgctl.sh start|fresh|stop|destroy|env DIR [SOCKDIR]"
cmd=${1:?$usage}
dir=$(realpath -m -- "${2:?$usage}")
sock=$(realpath -m -- "${3:-$dir/sock}")
pgbin=${PGBIN:-$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)}
conninfo="host=$sock port=5432 user=postgres dbname=postgres"
marker=.meshd-pgctl

if [ "$(id -u)" = 0 ]; then owner=postgres; else owner=$(id -un); fi

# Runs a command as the server's user, from / (the caller's working directory may be out of
# postgres's reach, which initdb reports as a warning).
as_pg() {
    if [ "$(id -u)" = 0 ]; then (cd / && runuser -u postgres -- "$@"); else "$@"; fi
}

# own_dir D: creates D (mode 0700) if missing; then D must be a directory, not a symlink, owned
# by us (root) or by $owner; as root it is handed to postgres.  Fails when postgres cannot reach
# D (a parent directory it cannot search).
own_dir() {
    local d=$1 uid
    mkdir -p -- "$(dirname -- "$d")"
    mkdir -m 0700 -- "$d" 2>/dev/null || true
    if [ -L "$d" ] || [ ! -d "$d" ]; then
        echo "pgctl: $d is not a directory (or is a symbolic link); refusing to use it" >&2
        exit 1
    fi
    uid=$(stat -c %u -- "$d")
    if [ "$uid" != "$(id -u)" ] && [ "$uid" != "$(id -u "$owner")" ]; then
        echo "pgctl: $d belongs to $(stat -c %U -- "$d"), not to $owner; refusing to use it" >&2
        exit 1
    fi
    if [ "$(id -u)" = 0 ]; then chown postgres:postgres -- "$d"; fi
    chmod 0700 -- "$d"
    if ! as_pg test -x "$d"; then
        echo "pgctl: user $owner cannot reach $d (a parent directory is not searchable by" \
             "$owner); keep the cluster elsewhere, e.g. under /var/tmp" >&2
        exit 1
    fi
}

running() {
    [ -f "$dir/data/postmaster.pid" ] && kill -0 "$(head -n 1 "$dir/data/postmaster.pid")" 2>/dev/null
}

stop() {
    if running; then
        as_pg "$pgbin/pg_ctl" -D "$dir/data" -m fast -w -t 60 stop >/dev/null
    fi
}

destroy() {
    [ -e "$dir" ] || [ -L "$dir" ] || return 0
    if [ -L "$dir" ] || [ ! -f "$dir/$marker" ]; then
        echo "pgctl: $dir was not made by pgctl.sh (no $marker); not removing it" >&2
        exit 1
    fi
    stop
    rm -rf -- "$dir"
    if [ -d "$sock" ] && [ ! -L "$sock" ]; then
        rm -f -- "$sock/.s.PGSQL.5432" "$sock/.s.PGSQL.5432.lock"
        rmdir -- "$sock" 2>/dev/null || true
    fi
}

start() {
    [ -x "$pgbin/initdb" ] || { echo "pgctl: no PostgreSQL binaries (install postgresql-15)" >&2; exit 1; }
    own_dir "$dir"
    touch "$dir/$marker"
    own_dir "$sock"
    if [ ! -f "$dir/data/PG_VERSION" ]; then
        as_pg "$pgbin/initdb" -D "$dir/data" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 \
            >"$dir/initdb.log" 2>&1 || { cat "$dir/initdb.log" >&2; exit 1; }
    fi
    if running; then
        echo "$conninfo"; exit 0
    fi
    as_pg "$pgbin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 start \
        -o "-c listen_addresses='' -c unix_socket_directories='$sock' -c port=5432 -c fsync=off -c max_connections=100" \
        >/dev/null || { tail -n 20 "$dir/server.log" >&2; exit 1; }
    echo "$conninfo"
}

case "$cmd" in
start) start ;;
fresh) destroy; start ;;
stop) stop ;;
destroy) destroy ;;
env) echo "$conninfo" ;;
*) echo "$usage" >&2; exit 2 ;;
esac
