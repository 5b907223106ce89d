#!/usr/bin/env bash
# Stops a cluster started with scripts/pg-start.sh DIR (fast shutdown). Does nothing, and
# succeeds, when DIR holds no cluster or the cluster is not running. DIR itself is kept.
#
#   scripts/pg-stop.sh DIR
set -euo pipefail

if [ "$#" -ne 1 ]; then
    echo "usage: $0 DIR" >&2
    exit 2
fi
DIR=$1
PGDATA="$DIR/data"
if [ ! -s "$PGDATA/PG_VERSION" ]; then
    echo "pg-stop: no cluster in $DIR" >&2
    exit 0
fi

BINDIR=""
for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
    if [ -x "$d/pg_ctl" ]; then BINDIR=$d; break; fi
done
if [ -z "$BINDIR" ]; then
    if command -v pg_ctl >/dev/null 2>&1; then
        BINDIR=$(dirname "$(command -v pg_ctl)")
    else
        echo "pg-stop: pg_ctl not found" >&2
        exit 1
    fi
fi

if [ "$(id -u)" -eq 0 ]; then
    as_pg() { runuser -u postgres -- "$@"; }
else
    as_pg() { "$@"; }
fi

if as_pg "$BINDIR/pg_ctl" status -D "$PGDATA" >/dev/null 2>&1; then
    as_pg "$BINDIR/pg_ctl" stop -D "$PGDATA" -m fast -w -t 60 >&2
else
    echo "pg-stop: cluster in $DIR is not running" >&2
fi
