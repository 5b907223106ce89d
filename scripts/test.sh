#!/usr/bin/env bash
# The whole test suite: Rust unit and integration tests (store tests on SQLite and on a throwaway
# PostgreSQL), then the end-to-end tests that drive `kaizen server` with the unmodified `mlflow`
# Python client on both backends. Installs what it needs first (scripts/setup.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
start=$(date +%s)

scripts/setup.sh

pgdir=$(mktemp -d /tmp/kaizen-pg.XXXXXX)
cleanup() { scripts/pg-stop.sh "$pgdir" >/dev/null 2>&1 || true; rm -rf "$pgdir"; }
trap cleanup EXIT
pgport=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
export KAIZEN_TEST_POSTGRES_URI=$(scripts/pg-start.sh "$pgdir" "$pgport")
export KAIZEN_REQUIRE_POSTGRES=1
echo "test: PostgreSQL at $KAIZEN_TEST_POSTGRES_URI" >&2

echo "== cargo test (workspace) ==" >&2
cargo test --workspace --locked 2>&1 | tee /tmp/kaizen-cargo-test.log
rust_passed=$(grep -E '^test result:' /tmp/kaizen-cargo-test.log | awk '{s+=$4} END {print s+0}')
rust_failed=$(grep -E '^test result:' /tmp/kaizen-cargo-test.log | awk '{s+=$6} END {print s+0}')

echo "== end-to-end tests (mlflow client against kaizen server) ==" >&2
cargo build --locked -p kaizen
export KAIZEN_BIN="$root/target/debug/kaizen"
set +e
.venv/bin/python -m pytest tests/e2e -q -p no:cacheprovider 2>&1 | tee /tmp/kaizen-e2e.log
e2e_status=${PIPESTATUS[0]}
set -e

echo "test: finished in $(( $(date +%s) - start )) s (rust: $rust_passed passed, $rust_failed failed)" >&2
exit "$e2e_status"
