"""MiniLM sentence embeddings: kaizen (candle, through `POST /v1/embed` of a running `kaizen server`)
against onnxruntime on the same weights, in one run.

No ONNX file of all-MiniLM-L6-v2 ships on PyPI and exporting one needs torch, so this script writes
the BERT graph itself with `onnx.helper` from the same safetensors (embeddings, 6 encoder layers,
mean pooling under the mask, L2 norm: the work kaizen does), and lets onnxruntime optimize it
(ORT_ENABLE_ALL: its LayerNorm, GELU and attention fusions). Both sides tokenize inside the timing
(kaizen in Rust, onnxruntime with the Hugging Face `tokenizers` package); kaizen's figures include
the HTTP round trip and the JSON encoding and decoding of the vectors (onnxruntime runs in this
process: no round trip).

Workloads: latency of one short sentence (p50/p95 over repeated calls) and throughput of a few
hundred sentences of the fixtures in batches of 32. Prints a table and the ratios (> 1: kaizen faster).
"""

from __future__ import annotations

import argparse
import http.client
import json
import math
import statistics
import struct
import sys
import time
import urllib.parse
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper
from tokenizers import Tokenizer

ROOT = Path(__file__).resolve().parents[2]


def load_safetensors(path: Path) -> dict[str, np.ndarray]:
    raw = path.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    out = {}
    for name, meta in header.items():
        if name == "__metadata__":
            continue
        start, end = meta["data_offsets"]
        dtype = {"F32": np.float32, "I64": np.int64}[meta["dtype"]]
        out[name] = np.frombuffer(raw[8 + n + start:8 + n + end], dtype=dtype).reshape(meta["shape"])
    return out


def bert_onnx(model_dir: Path) -> bytes:
    cfg = json.loads((model_dir / "config.json").read_text())
    w = load_safetensors(model_dir / "model.safetensors")
    p = "bert." if "bert.embeddings.word_embeddings.weight" in w else ""
    hidden, heads, eps = cfg["hidden_size"], cfg["num_attention_heads"], cfg["layer_norm_eps"]
    hd = hidden // heads
    inits, nodes = [], []

    def const(name, arr):
        inits.append(numpy_helper.from_array(np.asarray(arr), name))
        return name

    def node(op, inputs, name, **attrs):
        nodes.append(helper.make_node(op, inputs, [name], name=name, **attrs))
        return name

    def weight(key, transpose=False):
        arr = w[p + key]
        return const(key, np.ascontiguousarray(arr.T) if transpose else arr)

    def linear(x, key, out):
        m = node("MatMul", [x, weight(key + ".weight", transpose=True)], out + "_mm")
        return node("Add", [m, weight(key + ".bias")], out)

    def norm(x, key, out):
        return node("LayerNormalization", [x, weight(key + ".weight"), weight(key + ".bias")], out,
                    axis=-1, epsilon=eps)

    # Embeddings.
    word = node("Gather", [weight("embeddings.word_embeddings.weight"), "input_ids"], "word")
    seq_len = node("Gather", [node("Shape", ["input_ids"], "ids_shape"), const("one_i", np.array(1))], "seq_len")
    positions = node("Range", [const("zero_i", np.array(0)), seq_len, const("step_i", np.array(1))], "positions")
    pos = node("Gather", [weight("embeddings.position_embeddings.weight"), positions], "pos")
    type0 = node("Gather", [weight("embeddings.token_type_embeddings.weight"), const("type0_i", np.array(0))], "type0")
    x = node("Add", [node("Add", [word, pos], "emb_wp"), type0], "emb")
    x = norm(x, "embeddings.LayerNorm", "emb_norm")
    # Attention bias: (1 - mask) * -1e4, shape (B, 1, 1, L).
    maskf = node("Cast", ["attention_mask"], "mask_f", to=TensorProto.FLOAT)
    inv = node("Sub", [const("one_f", np.array(1.0, dtype=np.float32)), maskf], "mask_inv")
    bias = node("Mul", [inv, const("neg", np.array(-1e4, dtype=np.float32))], "mask_bias2")
    bias = node("Unsqueeze", [bias, const("axes12", np.array([1, 2]))], "mask_bias")
    split_shape = const("split_shape", np.array([0, 0, heads, hd]))
    merge_shape = const("merge_shape", np.array([0, 0, hidden]))
    scale = const("scale", np.array(1.0 / math.sqrt(hd), dtype=np.float32))
    for i in range(cfg["num_hidden_layers"]):
        pre = f"encoder.layer.{i}."

        def split(t, name):
            r = node("Reshape", [t, split_shape], name + "_r")
            return node("Transpose", [r], name + "_t", perm=[0, 2, 1, 3])

        q = split(linear(x, pre + "attention.self.query", f"l{i}_q"), f"l{i}_q")
        k = split(linear(x, pre + "attention.self.key", f"l{i}_k"), f"l{i}_k")
        v = split(linear(x, pre + "attention.self.value", f"l{i}_v"), f"l{i}_v")
        kt = node("Transpose", [k], f"l{i}_kt", perm=[0, 1, 3, 2])
        s = node("Mul", [node("MatMul", [q, kt], f"l{i}_qk"), scale], f"l{i}_s")
        s = node("Softmax", [node("Add", [s, bias], f"l{i}_sb")], f"l{i}_p", axis=-1)
        ctx = node("Transpose", [node("MatMul", [s, v], f"l{i}_ctx0")], f"l{i}_ctx1", perm=[0, 2, 1, 3])
        ctx = node("Reshape", [ctx, merge_shape], f"l{i}_ctx")
        a = linear(ctx, pre + "attention.output.dense", f"l{i}_ao")
        a = norm(node("Add", [a, x], f"l{i}_ar"), pre + "attention.output.LayerNorm", f"l{i}_an")
        h = linear(a, pre + "intermediate.dense", f"l{i}_h")
        erf = node("Erf", [node("Mul", [h, const(f"l{i}_isq2", np.array(1 / math.sqrt(2), dtype=np.float32))],
                                f"l{i}_hs")], f"l{i}_erf")
        g = node("Mul", [node("Mul", [h, const(f"l{i}_half", np.array(0.5, dtype=np.float32))], f"l{i}_hh"),
                         node("Add", [erf, const(f"l{i}_one", np.array(1.0, dtype=np.float32))], f"l{i}_e1")],
                 f"l{i}_gelu")
        o = linear(g, pre + "output.dense", f"l{i}_o")
        x = norm(node("Add", [o, a], f"l{i}_or"), pre + "output.LayerNorm", f"l{i}_out")
    # Mean pooling under the mask, then L2 norm.
    m3 = node("Unsqueeze", [maskf, const("axis2", np.array([2]))], "mask3")
    summed = node("ReduceSum", [node("Mul", [x, m3], "masked"), const("axis1", np.array([1]))], "summed", keepdims=0)
    count = node("ReduceSum", [m3, "axis1"], "count", keepdims=0)
    count = node("Max", [count, const("tiny", np.array(1e-9, dtype=np.float32))], "count_c")
    mean = node("Div", [summed, count], "mean")
    nodes.append(helper.make_node("LpNormalization", [mean], ["embeddings"], name="l2", axis=-1, p=2))
    graph = helper.make_graph(
        nodes, "minilm",
        [helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "seq"]),
         helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["batch", "seq"])],
        [helper.make_tensor_value_info("embeddings", TensorProto.FLOAT, ["batch", hidden])],
        inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model.SerializeToString()


class OrtEmbedder:
    def __init__(self, model_dir: Path, threads: int = 0):
        max_len = json.loads((model_dir / "sentence_bert_config.json").read_text())["max_seq_length"]
        self.tok = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
        self.tok.enable_truncation(max_len)
        self.tok.enable_padding(pad_id=0, pad_token="[PAD]")
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.intra_op_num_threads = threads
        self.session = ort.InferenceSession(bert_onnx(model_dir), opts, providers=["CPUExecutionProvider"])

    def embed(self, texts: list[str], batch: int = 32) -> np.ndarray:
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        out = np.zeros((len(texts), 384), dtype=np.float32)
        for start in range(0, len(order), batch):
            idx = order[start:start + batch]
            enc = self.tok.encode_batch([texts[i] for i in idx])
            ids = np.array([e.ids for e in enc], dtype=np.int64)
            mask = np.array([e.attention_mask for e in enc], dtype=np.int64)
            out[idx] = self.session.run(["embeddings"], {"input_ids": ids, "attention_mask": mask})[0]
        return out


class KaizenEmbedder:
    """`POST /v1/embed` over one kept-alive connection with the standard library's client:
    `requests` adds about half a millisecond of its own per call, which is Python's cost, not
    the server's."""

    def __init__(self, url: str):
        parsed = urllib.parse.urlsplit(url)
        self.conn = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=600)
        self.path = parsed.path.rstrip("/") + "/v1/embed"

    def embed(self, texts: list[str]) -> np.ndarray:
        self.conn.request("POST", self.path, json.dumps({"texts": texts}),
                          {"content-type": "application/json"})
        r = self.conn.getresponse()
        body = r.read()
        if r.status != 200:
            raise RuntimeError(f"kaizen answered {r.status}: {body[:200]!r}")
        return np.array(json.loads(body)["embeddings"], dtype=np.float32)


def corpus() -> list[str]:
    sys.path.insert(0, str(ROOT / "tests" / "e2e"))
    text = (ROOT / "tests" / "fixtures" / "pretrained" / "article.txt").read_text()
    wiki = json.loads((ROOT / "tests" / "fixtures" / "pretrained" / "wiki_tide_mill.json").read_text())
    text += "\n\n" + next(iter(wiki["query"]["pages"].values()))["extract"]
    sentences = [s.strip() for s in text.replace("\n", " ").split(". ") if len(s.split()) >= 4]
    return sentences


def timed(fn, repeat: int) -> list[float]:
    out = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return out


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--kaizen-url", required=True)
    ap.add_argument("--model", default=str(ROOT / "models" / "all-MiniLM-L6-v2"))
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--json", help="write the results here")
    ap.add_argument("--threads", type=int, default=0,
                    help="onnxruntime's intra-op threads (0: all cores); run.sh gives kaizen the same "
                         "through RAYON_NUM_THREADS")
    args = ap.parse_args()
    model = Path(args.model)
    engines = {"kaizen": KaizenEmbedder(args.kaizen_url), "onnxruntime": OrtEmbedder(model, args.threads)}
    sentences = corpus()
    n_through = 128 if args.quick else 512
    batch = (sentences * (n_through // len(sentences) + 1))[:n_through]
    short = "The tide mill ground grain twice a day."
    reps = 20 if args.quick else 100

    # Agreement first: the same vectors from both engines.
    a = engines["kaizen"].embed(sentences[:16])
    b = engines["onnxruntime"].embed(sentences[:16])
    cos = float(((a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))).min())
    print(f"agreement: min cosine kaizen vs onnxruntime over 16 sentences = {cos:.8f}", file=sys.stderr)

    results = {"agreement_min_cosine": cos, "throughput_texts": n_through, "threads": args.threads or "all"}
    for name, engine in engines.items():
        engine.embed([short])  # warm up (loads the model on the server)
        engine.embed(batch[:64])
        lat = timed(lambda: engine.embed([short]), reps)
        chunks = [batch[i:i + 32] for i in range(0, len(batch), 32)]
        through = timed(lambda: [engine.embed(c) for c in chunks], 3 if not args.quick else 1)
        results[name] = {
            "latency_p50_ms": statistics.median(lat) * 1e3,
            "latency_p95_ms": sorted(lat)[int(0.95 * (len(lat) - 1))] * 1e3,
            "texts_per_s": n_through / min(through),
        }
    k, o = results["kaizen"], results["onnxruntime"]
    results["ratios"] = {
        "latency_p50 (ort/kaizen)": o["latency_p50_ms"] / k["latency_p50_ms"],
        "throughput (kaizen/ort)": k["texts_per_s"] / o["texts_per_s"],
    }
    print(f"{'engine':<12} {'p50 ms':>8} {'p95 ms':>8} {'texts/s':>9}")
    for name in engines:
        r = results[name]
        print(f"{name:<12} {r['latency_p50_ms']:>8.2f} {r['latency_p95_ms']:>8.2f} {r['texts_per_s']:>9.1f}")
    for key, value in results["ratios"].items():
        print(f"ratio {key}: {value:.2f}  (> 1: kaizen faster)")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
