#!/usr/bin/env bash
# Starts a throwaway PostgreSQL cluster for tests and prints its URI on stdout.
#
#   scripts/pg-start.sh DIR PORT
#
# The cluster lives in DIR/data (created with initdb on first use, trust authentication,
# superuser "postgres"), listens only on 127.0.0.1:PORT, keeps its unix socket in DIR, and
# runs with fsync on. A database named "kaizen" is created. Running the script again on a
# running cluster only makes sure the database exists. Everything but the URI goes to stderr.
# Installs Debian's postgresql package when no server binaries are found (needs root).
# Stop the cluster with scripts/pg-stop.sh DIR.
set -euo pipefail

if [ "$#" -ne 2 ]; then
    echo "usage: $0 DIR PORT" >&2
    exit 2
fi
DIR=$1
PORT=$2
case "$PORT" in
    '' | *[!0-9]*) echo "pg-start: PORT must be a number, got '$PORT'" >&2; exit 2 ;;
esac

log() { echo "pg-start: $*" >&2; }

find_bindir() {
    local d
    for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
        if [ -x "$d/postgres" ] && [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ]; then
            echo "$d"
            return 0
        fi
    done
    if command -v pg_ctl >/dev/null 2>&1 && command -v initdb >/dev/null 2>&1; then
        dirname "$(command -v pg_ctl)"
        return 0
    fi
    return 1
}

if ! BINDIR=$(find_bindir); then
    log "no PostgreSQL server binaries found; installing Debian's postgresql package"
    if [ "$(id -u)" -ne 0 ]; then
        log "installing needs root; install the 'postgresql' package and try again"
        exit 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get update >&2
    apt-get install -y postgresql >&2
    BINDIR=$(find_bindir) || { log "postgresql installed but no server binaries found"; exit 1; }
fi
log "using $BINDIR"

mkdir -p "$DIR"
DIR=$(cd "$DIR" && pwd -P)
PGDATA="$DIR/data"
SOCKDIR="$DIR"
if [ ${#SOCKDIR} -gt 80 ]; then
    log "DIR '$DIR' is too long for a unix socket path; use a shorter one"
    exit 1
fi

# postgres refuses to run as root: run the server as the postgres user when we are root.
if [ "$(id -u)" -eq 0 ]; then
    if ! id postgres >/dev/null 2>&1; then
        log "creating system user postgres"
        useradd --system --home-dir /var/lib/postgresql --shell /bin/bash postgres >&2 ||
            adduser --system --group --home /var/lib/postgresql postgres >&2
    fi
    chown -R postgres: "$DIR"
    chmod 700 "$DIR"
    as_pg() { runuser -u postgres -- "$@"; }
    if ! as_pg test -x "$DIR" -a -w "$DIR"; then
        log "user postgres cannot reach '$DIR' (a parent directory is not searchable); use a directory under /tmp"
        exit 1
    fi
else
    as_pg() { "$@"; }
fi

if [ ! -s "$PGDATA/PG_VERSION" ]; then
    if [ -e "$PGDATA" ]; then
        # A half-made data directory from an interrupted initdb: start over.
        rm -rf "$PGDATA"
    fi
    log "initdb in $PGDATA"
    as_pg "$BINDIR/initdb" -D "$PGDATA" -U postgres --auth=trust --encoding=UTF8 --no-locale >&2
fi

if as_pg "$BINDIR/pg_ctl" status -D "$PGDATA" >/dev/null 2>&1; then
    log "cluster in $PGDATA is already running"
else
    log "starting on 127.0.0.1:$PORT"
    if ! as_pg "$BINDIR/pg_ctl" start -D "$PGDATA" -l "$DIR/postgres.log" -w -t 60 \
        -o "-c listen_addresses=127.0.0.1 -p $PORT -c unix_socket_directories='$SOCKDIR' -c fsync=on -c max_connections=200" >&2; then
        log "failed to start; the end of $DIR/postgres.log:"
        tail -n 30 "$DIR/postgres.log" >&2 || true
        exit 1
    fi
fi

# Wait until the server takes connections on the TCP port.
ready=0
for _ in $(seq 1 120); do
    if "$BINDIR/pg_isready" -q -h 127.0.0.1 -p "$PORT" -U postgres -d postgres; then
        ready=1
        break
    fi
    sleep 0.5
done
if [ "$ready" -ne 1 ]; then
    log "server did not become ready on 127.0.0.1:$PORT within 60 s; the end of $DIR/postgres.log:"
    tail -n 30 "$DIR/postgres.log" >&2 || true
    exit 1
fi

PSQL=("$BINDIR/psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PORT" -U postgres -d postgres)
if [ "$("${PSQL[@]}" -tAc "SELECT 1 FROM pg_database WHERE datname = 'kaizen'")" != "1" ]; then
    "${PSQL[@]}" -c "CREATE DATABASE kaizen" >&2
fi

echo "postgresql://postgres@127.0.0.1:$PORT/kaizen"
