"""kaizen generate against llama-cpp-python on one GGUF file, greedy, in one process each.

Both engines get the same chat prompt (a summary request over the fixture article, ChatML as the
model's template writes it), the same number of threads, and generate the same number of tokens
(past the end of the answer: kaizen's --ignore-eos, llama.cpp's generator does not stop by
itself), with the repetition penalty off. Measured:

- prompt processing: tokens of the prompt / seconds to evaluate it (prefill);
- generation: (generated tokens - 1) / seconds from the first generated token to the last (each
  step is one forward pass of one token and a greedy pick).

Model loading is not timed. Each engine runs --repeats times; the median is reported. kaizen's
times come from its own --json report (the same clock points as llama.cpp's).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

SYSTEM = "You summarize texts faithfully."


def kaizen_run(binary: str, model: str, user: str, gen: int, threads: int) -> dict:
    env = dict(os.environ, RAYON_NUM_THREADS=str(threads), KAIZEN_LOG="warn")
    proc = subprocess.run(
        [binary, "generate", "--model", model, "--system", SYSTEM, "--prompt", "-", "--max-tokens", str(gen),
         "--repeat-penalty", "1.0", "--ignore-eos", "--json"],
        input=user, capture_output=True, text=True, env=env, check=False)
    if proc.returncode != 0:
        sys.exit(f"kaizen generate failed:\n{proc.stderr}")
    out = json.loads(proc.stdout)
    return {
        "prompt_tokens": out["prompt_tokens"],
        "generated": out["generated_tokens"],
        "prompt_s": out["prompt_seconds"],
        "gen_s": out["generate_seconds"],
        "text": out["text"],
    }


def llama_run(llm, user: str, gen: int) -> dict:
    prompt = (f"<|im_start|>system\n{SYSTEM}<|im_end|>\n<|im_start|>user\n{user}<|im_end|>\n"
              f"<|im_start|>assistant\n")
    tokens = llm.tokenize(prompt.encode(), add_bos=False, special=True)
    llm.reset()
    out = []
    started = time.perf_counter()
    first = None
    for token in llm.generate(tokens, top_k=1, top_p=1.0, min_p=0.0, temp=0.0, repeat_penalty=1.0, reset=True):
        if first is None:
            first = time.perf_counter()
        out.append(token)
        if len(out) == gen:
            break
    done = time.perf_counter()
    return {
        "prompt_tokens": len(tokens),
        "generated": len(out),
        "prompt_s": first - started,
        "gen_s": done - first,
        "text": llm.detokenize(out).decode("utf-8", "replace").strip(),
    }


def summary(runs: list[dict]) -> dict:
    prompt_s = statistics.median(r["prompt_s"] for r in runs)
    gen_s = statistics.median(r["gen_s"] for r in runs)
    r = runs[0]
    return {
        "prompt_tokens": r["prompt_tokens"],
        "generated": r["generated"],
        "prompt_s": prompt_s,
        "gen_s": gen_s,
        "prompt_tps": r["prompt_tokens"] / prompt_s,
        "gen_tps": (r["generated"] - 1) / gen_s,
        "text": r["text"],
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--kaizen", required=True)
    ap.add_argument("--model", required=True)
    ap.add_argument("--prompt-file", required=True)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--gen", type=int, default=128)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--json", help="also write the results to this file")
    args = ap.parse_args()

    from importlib.metadata import version

    from llama_cpp import Llama

    article = open(args.prompt_file).read()
    user = f"Summarize this text in at most 3 sentences:\n\n{article}"

    kaizen_runs = [kaizen_run(args.kaizen, args.model, user, args.gen, args.threads) for _ in range(args.repeats)]
    llm = Llama(model_path=args.model, n_ctx=2048, n_batch=512, n_threads=args.threads,
                n_threads_batch=args.threads, verbose=False)
    llama_runs = [llama_run(llm, user, args.gen) for _ in range(args.repeats)]

    k, l = summary(kaizen_runs), summary(llama_runs)
    print(f"SmolLM2-135M-Instruct Q4_1, {args.threads} threads, greedy, {args.gen} tokens generated, "
          f"median of {args.repeats}; llama-cpp-python {version('llama_cpp_python')}")
    print(f"prompt tokens: kaizen {k['prompt_tokens']}, llama.cpp {l['prompt_tokens']}"
          f" ({'same' if k['prompt_tokens'] == l['prompt_tokens'] else 'DIFFERENT'} tokenization length)")
    print(f"{'':22}{'kaizen':>12}{'llama.cpp':>12}{'ratio':>9}")
    print(f"{'prompt tokens/s':22}{k['prompt_tps']:12.1f}{l['prompt_tps']:12.1f}{k['prompt_tps'] / l['prompt_tps']:8.2f}x")
    print(f"{'generation tokens/s':22}{k['gen_tps']:12.1f}{l['gen_tps']:12.1f}{k['gen_tps'] / l['gen_tps']:8.2f}x")
    print(f"{'prompt latency ms':22}{1000 * k['prompt_s']:12.1f}{1000 * l['prompt_s']:12.1f}")
    print(f"{'ms per token':22}{1000 * k['gen_s'] / (k['generated'] - 1):12.2f}"
          f"{1000 * l['gen_s'] / (l['generated'] - 1):12.2f}")
    same = 0
    for a, b in zip(k["text"].split(), l["text"].split()):
        if a != b:
            break
        same += 1
    print(f"greedy outputs agree on their first {same} words")
    print(f"kaizen:    {k['text'][:160]!r}")
    print(f"llama.cpp: {l['text'][:160]!r}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"kaizen": k, "llama_cpp": l, "threads": args.threads, "gen": args.gen}, f, indent=2)


if __name__ == "__main__":
    main()
