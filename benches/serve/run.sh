#!/usr/bin/env bash
# Serving benchmark (`make bench-serve`): one ONNX model (scikit-learn -> skl2onnx -> mlflow.onnx)
# served by `mlflow models serve` and by `kaizen serve`, loaded by wrk at concurrency 1, 16 and 64
# for a fixed time each; throughput, p50 and p99 side by side with ratios and the targets'
# verdicts (>= 20x mlflow's throughput, p99 < 2 ms at concurrency 16). Writes
# benches/serve/RESULTS.md and prints the table.
#
#   benches/serve/run.sh [SECONDS]      (default 10 per concurrency and server)
#
# Python (mlflow, skl2onnx, onnxruntime) is the repository's .venv from scripts/setup.sh (its
# pins are tests/e2e/requirements.txt); override with KAIZEN_BENCH_VENV=/path. wrk comes from
# Debian (installed here when missing). kaizen is built with `cargo build --release -p kaizen`
# unless KAIZEN_BENCH_BIN names a binary. Environment: BENCH_CONCURRENCY (1,16,64),
# BENCH_WRK_THREADS (1), BENCH_MLFLOW_WORKERS (2).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
seconds="${1:-10}"
log() { echo "[serve] $*" >&2; }

venv="${KAIZEN_BENCH_VENV:-$root/.venv}"
venv_ok() {
    [ -x "$venv/bin/python" ] && "$venv/bin/python" -c 'import mlflow, skl2onnx, onnxruntime, sklearn' 2>/dev/null
}
if ! venv_ok; then
    log "setting up $venv from tests/e2e/requirements.txt"
    [ -x "$venv/bin/python" ] || python3 -m venv "$venv"
    "$venv/bin/pip" install -q --disable-pip-version-check -r "$root/tests/e2e/requirements.txt"
    venv_ok || { log "error: $venv still lacks mlflow, skl2onnx or onnxruntime"; exit 2; }
fi
if ! command -v wrk >/dev/null 2>&1; then
    log "installing wrk (Debian)"
    if [ "$(id -u)" = 0 ]; then
        apt-get install -y -q wrk >/dev/null || { apt-get update -q && apt-get install -y -q wrk >/dev/null; }
    else
        sudo apt-get install -y -q wrk >/dev/null
    fi
fi
data="$root/examples/breast-cancer/data/breast_cancer.csv"
[ -f "$data" ] || { log "error: $data is missing; run scripts/setup.sh"; exit 2; }

if [ -z "${KAIZEN_BENCH_BIN:-}" ]; then
    log "cargo build --release -p kaizen"
    (cd "$root" && cargo build --release -p kaizen)
    KAIZEN_BENCH_BIN="${CARGO_TARGET_DIR:-$root/target}/release/kaizen"
fi

exec "$venv/bin/python" "$here/bench.py" --kaizen "$KAIZEN_BENCH_BIN" --data "$data" \
    --seconds "$seconds" --concurrency "${BENCH_CONCURRENCY:-1,16,64}" \
    --threads "${BENCH_WRK_THREADS:-1}" --mlflow-workers "${BENCH_MLFLOW_WORKERS:-2}" \
    --results "$here/RESULTS.md" --workdir "${KAIZEN_BENCH_DIR:-/tmp/kaizen-serve-bench}"
