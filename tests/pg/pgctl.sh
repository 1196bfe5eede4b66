#!/usr/bin/env bash
# pgctl.sh - a throwaway PostgreSQL cluster for tests (and make run), from Debian's postgresql-15.
#
#   pgctl.sh start DIR [SOCKDIR]  initdb DIR/data (first time) and start it on a unix socket in
#                        SOCKDIR (default DIR/sock; port 5432 names the socket; no TCP),
#                        user postgres, trust auth; prints the libpq conninfo
#   pgctl.sh stop DIR    stop it (fast shutdown) by the postmaster's PID; DIR is kept
#   pgctl.sh env DIR [SOCKDIR]  print the libpq conninfo
#
# A unix socket path must fit in 107 bytes, so callers in deep directories pass a short SOCKDIR.
#
# PostgreSQL refuses to run as root, so as root the cluster runs as the 'postgres' user.
set -euo pipefail

cmd=${1:?usage: pgctl.sh start|stop|env DIR [SOCKDIR]}
dir=${2:?usage: pgctl.sh start|stop|env DIR [SOCKDIR]}
sock=${3:-$dir/sock}
pgbin=${PGBIN:-$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)}
conninfo="host=$sock port=5432 user=postgres dbname=postgres"

as_pg() {
    if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

case "$cmd" in
start)
    [ -x "$pgbin/initdb" ] || { echo "pgctl: no PostgreSQL binaries (install postgresql-15)" >&2; exit 1; }
    mkdir -p "$dir" "$sock"
    if [ "$(id -u)" = 0 ]; then chown postgres: "$dir" "$sock"; fi
    if [ ! -f "$dir/data/PG_VERSION" ]; then
        as_pg "$pgbin/initdb" -D "$dir/data" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 \
            >"$dir/initdb.log" 2>&1 || { cat "$dir/initdb.log" >&2; exit 1; }
    fi
    if [ -f "$dir/data/postmaster.pid" ] && kill -0 "$(head -n 1 "$dir/data/postmaster.pid")" 2>/dev/null; then
        echo "$conninfo"; exit 0
    fi
    as_pg "$pgbin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 start \
        -o "-c listen_addresses='' -c unix_socket_directories='$sock' -c port=5432 -c fsync=off -c max_connections=100" \
        >/dev/null || { tail -n 20 "$dir/server.log" >&2; exit 1; }
    echo "$conninfo"
    ;;
stop)
    if [ -f "$dir/data/postmaster.pid" ]; then
        as_pg "$pgbin/pg_ctl" -D "$dir/data" -m fast -w -t 60 stop >/dev/null
    fi
    ;;
env)
    echo "$conninfo"
    ;;
*)
    echo "usage: pgctl.sh start|stop|env DIR" >&2; exit 2
    ;;
esac
