#!/usr/bin/env bash
# Tracking benchmark entry point (`make bench`): kaizen server vs mlflow server.
#
#   benches/tracking/run.sh [--quick] [--json OUT] [--only kaizen|mlflow] [bench.py options...]
#
# - Python: reuses .venv at the repo root when it has mlflow==3.17.2 and requests; otherwise
#   creates it (python3 -m venv) and installs them. Override with KAIZEN_BENCH_VENV=/path.
# - kaizen: `cargo build --release -p kaizen` (target/release/kaizen), unless KAIZEN_BIN
#   names a binary to use as is. Not built with --only mlflow.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"

MLFLOW_VERSION="3.17.2"
VENV="${KAIZEN_BENCH_VENV:-$ROOT/.venv}"
PYTHON="${PYTHON:-python3}"

venv_ok() {
    [ -x "$VENV/bin/python" ] || return 1
    "$VENV/bin/python" - "$MLFLOW_VERSION" <<'EOF' >/dev/null 2>&1
import sys
from importlib.metadata import version
assert version("mlflow") == sys.argv[1], version("mlflow")
version("requests")
EOF
}

if ! venv_ok; then
    echo "[run.sh] setting up $VENV with mlflow==$MLFLOW_VERSION" >&2
    if [ ! -x "$VENV/bin/python" ]; then
        "$PYTHON" -m venv "$VENV"
    fi
    "$VENV/bin/python" -m pip install --quiet --upgrade pip
    "$VENV/bin/python" -m pip install --quiet "mlflow==$MLFLOW_VERSION" requests
    venv_ok || { echo "[run.sh] error: $VENV still lacks mlflow==$MLFLOW_VERSION" >&2; exit 2; }
fi

# Is kaizen needed at all?
need_kaizen=1
prev=""
for a in "$@"; do
    if { [ "$prev" = "--only" ] && [ "$a" = "mlflow" ]; } || [ "$a" = "--only=mlflow" ]; then
        need_kaizen=0
    fi
    prev="$a"
done

bin_args=()
if [ "$need_kaizen" = 1 ]; then
    if [ -n "${KAIZEN_BIN:-}" ]; then
        [ -x "$KAIZEN_BIN" ] || { echo "[run.sh] error: KAIZEN_BIN=$KAIZEN_BIN is not an executable" >&2; exit 2; }
    else
        echo "[run.sh] cargo build --release -p kaizen" >&2
        cargo build --release -p kaizen
        KAIZEN_BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release/kaizen"
        [ -x "$KAIZEN_BIN" ] || { echo "[run.sh] error: no binary at $KAIZEN_BIN after the build" >&2; exit 2; }
    fi
    bin_args=(--kaizen-bin "$KAIZEN_BIN")
fi

exec "$VENV/bin/python" "$ROOT/benches/tracking/bench.py" "${bin_args[@]}" "$@"
