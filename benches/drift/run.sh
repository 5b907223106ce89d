#!/usr/bin/env bash
# Drift benchmark (`make bench-drift`): `kaizen drift` against Evidently's DataDriftPreset on the
# same Parquet files, 100,000 and 1,000,000 rows x 20 numeric columns (current shifted on 5
# columns), measuring wall time and peak RSS with /usr/bin/time -v, in one run.
#
#   benches/drift/run.sh [--rows 100000,1000000] [--skip-evidently-above N]
#
# - Python: benches/drift/.venv (created here) with evidently, pandas and pyarrow from PyPI;
#   override with KAIZEN_BENCH_VENV=/path.
# - kaizen: `cargo build --release -p kaizen`, unless KAIZEN_BIN names a binary to use as is.
# - Writes benches/drift/RESULTS.md and prints the table.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
HERE="$ROOT/benches/drift"
cd "$ROOT"

EVIDENTLY_VERSION="0.7.23"
VENV="${KAIZEN_BENCH_VENV:-$HERE/.venv}"
PYTHON="${PYTHON:-python3}"
ROWS="100000,1000000"
while [ $# -gt 0 ]; do
    case "$1" in
        --rows) ROWS="$2"; shift 2 ;;
        --rows=*) ROWS="${1#--rows=}"; shift ;;
        *) echo "[run.sh] unknown option $1" >&2; exit 2 ;;
    esac
done

venv_ok() {
    [ -x "$VENV/bin/python" ] || return 1
    "$VENV/bin/python" - "$EVIDENTLY_VERSION" <<'PY' >/dev/null 2>&1
import sys
from importlib.metadata import version
assert version("evidently") == sys.argv[1]
import pyarrow, pandas  # noqa: F401
PY
}
if ! venv_ok; then
    echo "[run.sh] setting up $VENV with evidently==$EVIDENTLY_VERSION" >&2
    [ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
        "evidently==$EVIDENTLY_VERSION" "pandas<3" pyarrow
    venv_ok || { echo "[run.sh] error: $VENV still lacks evidently==$EVIDENTLY_VERSION" >&2; exit 2; }
fi

if [ ! -x /usr/bin/time ]; then
    echo "[run.sh] installing GNU time (apt-get install time)" >&2
    if command -v apt-get >/dev/null; then
        (apt-get install -y -qq time >/dev/null 2>&1 || { apt-get update -qq >/dev/null && apt-get install -y -qq time >/dev/null; }) \
            || { echo "[run.sh] error: cannot install GNU time" >&2; exit 2; }
    else
        echo "[run.sh] error: /usr/bin/time (GNU time) is required" >&2; exit 2
    fi
fi

if [ -n "${KAIZEN_BIN:-}" ]; then
    [ -x "$KAIZEN_BIN" ] || { echo "[run.sh] error: KAIZEN_BIN=$KAIZEN_BIN is not executable" >&2; exit 2; }
else
    echo "[run.sh] cargo build --release -p kaizen" >&2
    cargo build --release -p kaizen
    KAIZEN_BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release/kaizen"
fi

exec "$VENV/bin/python" "$HERE/bench.py" --kaizen-bin "$KAIZEN_BIN" --rows "$ROWS" \
    --results "$HERE/RESULTS.md" --workdir "${KAIZEN_BENCH_DIR:-/tmp/kaizen-drift-bench}"
