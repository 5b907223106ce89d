#!/usr/bin/env bash
# Pretrained-model benchmark: MiniLM sentence embeddings, kaizen (candle) against onnxruntime on
# the same weights, in one run (see bench.py for what is compared and how).
#
#   benches/pretrained/run.sh [--quick] [--json OUT] [--threads N]
#
# --threads N limits both engines to N threads (onnxruntime's intra-op pool, kaizen's rayon pool);
# by default both use every core.
#
# - Python: the repository's .venv from scripts/setup.sh (onnx, onnxruntime, tokenizers) and the
#   model at models/all-MiniLM-L6-v2 (or $KAIZEN_MODELS).
# - kaizen: `cargo build --release -p kaizen` (target/release/kaizen), unless KAIZEN_BIN names a
#   binary to use as is.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
VENV="${KAIZEN_BENCH_VENV:-$ROOT/.venv}"
MODELS="${KAIZEN_MODELS:-$ROOT/models}"

if [ ! -f "$MODELS/all-MiniLM-L6-v2/model.safetensors" ]; then
    echo "[run.sh] no model at $MODELS/all-MiniLM-L6-v2: run scripts/setup.sh" >&2
    exit 2
fi
if [ -z "${KAIZEN_BIN:-}" ]; then
    echo "[run.sh] cargo build --release -p kaizen" >&2
    cargo build --release -p kaizen >&2
    KAIZEN_BIN="$ROOT/target/release/kaizen"
fi

threads=0
args=("$@")
for ((i = 0; i < ${#args[@]}; i++)); do
    [ "${args[$i]}" = "--threads" ] && threads="${args[$((i + 1))]}"
done
rayon=()
[ "$threads" != "0" ] && rayon=(RAYON_NUM_THREADS="$threads")

work="$(mktemp -d /tmp/kaizen-bench-pretrained.XXXXXX)"
port="$("$VENV/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
env "${rayon[@]}" KAIZEN_HOME="$work/home" KAIZEN_MODELS="$MODELS" KAIZEN_LOG=warn \
    "$KAIZEN_BIN" server --host 127.0.0.1 --port "$port" \
    --backend-store-uri "sqlite://$work/kaizen.db" --artifacts-destination "file://$work/artifacts" \
    >"$work/server.log" 2>&1 &
server=$!
trap 'kill "$server" 2>/dev/null; wait "$server" 2>/dev/null; rm -rf "$work"' EXIT
for _ in $(seq 1 150); do
    curl -sf "http://127.0.0.1:$port/health" >/dev/null 2>&1 && break
    sleep 0.2
done
echo "[run.sh] $(nproc) CPUs; kaizen at http://127.0.0.1:$port" >&2
"$VENV/bin/python" benches/pretrained/bench.py --kaizen-url "http://127.0.0.1:$port" \
    --model "$MODELS/all-MiniLM-L6-v2" "$@"
