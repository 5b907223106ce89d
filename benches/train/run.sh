#!/usr/bin/env bash
# Training benchmark (`make bench-train`): kaizen's gradient-boosted trees against LightGBM on the
# same features and hyperparameters, in one run: (a) the breast cancer data (binary: accuracy,
# AUC), (b) a synthetic regression of 200,000 rows x 20 features (RMSE); train time of each, and
# the largest difference between kaizen's predictions and onnxruntime's on kaizen's ONNX export.
# Writes benches/train/RESULTS.md and prints the table.
#
#   benches/train/run.sh [REPEATS]      (default 3: the median train time is reported)
#
# Python (lightgbm, scikit-learn, onnxruntime) goes in benches/train/.venv, made here; override
# with KAIZEN_BENCH_VENV=/path. kaizen's side is the example `bench_train` of kaizen-ml, built
# with `cargo build --release -p kaizen-ml --example bench_train` unless KAIZEN_BENCH_TRAIN names
# a binary.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
repeats="${1:-3}"
log() { echo "[train] $*" >&2; }

LIGHTGBM_VERSION="4.7.0"
venv="${KAIZEN_BENCH_VENV:-$here/.venv}"
venv_ok() {
    [ -x "$venv/bin/python" ] && "$venv/bin/python" - "$LIGHTGBM_VERSION" <<'PY' >/dev/null 2>&1
import sys
from importlib.metadata import version
assert version("lightgbm") == sys.argv[1]
import sklearn, onnxruntime, pandas  # noqa: F401
PY
}
if ! venv_ok; then
    log "setting up $venv with lightgbm==$LIGHTGBM_VERSION"
    [ -x "$venv/bin/python" ] || python3 -m venv "$venv"
    "$venv/bin/pip" install -q --disable-pip-version-check "lightgbm==$LIGHTGBM_VERSION" \
        "scikit-learn==1.9.1" "onnxruntime==1.32.0" "pandas==2.3.3"
    venv_ok || { log "error: $venv still lacks lightgbm==$LIGHTGBM_VERSION"; exit 2; }
fi

if [ -z "${KAIZEN_BENCH_TRAIN:-}" ]; then
    log "cargo build --release -p kaizen-ml --example bench_train"
    (cd "$root" && cargo build --release -p kaizen-ml --example bench_train)
    KAIZEN_BENCH_TRAIN="${CARGO_TARGET_DIR:-$root/target}/release/examples/bench_train"
fi

exec "$venv/bin/python" "$here/bench.py" --kaizen "$KAIZEN_BENCH_TRAIN" --repeats "$repeats" \
    --breast-cancer "$root/examples/breast-cancer/data/breast_cancer.csv" \
    --results "$here/RESULTS.md" --workdir "${KAIZEN_BENCH_DIR:-/tmp/kaizen-train-bench}"
