"""Serving benchmark: one ONNX model behind `mlflow models serve` and `kaizen serve`, loaded by wrk.

A StandardScaler + LogisticRegression on the breast cancer data (30 columns) is converted with
skl2onnx and saved with mlflow.onnx.save_model; both servers load that directory. After checking
that they answer the same prediction, wrk POSTs one row in `dataframe_split` JSON at each
concurrency for a fixed time, and the table of throughput, p50 and p99 (with ratios and the
targets' verdicts) goes to stdout and RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import requests


def log(msg: str) -> None:
    print(f"[serve] {msg}", file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_model(data: Path, out: Path) -> pd.DataFrame:
    import mlflow.onnx
    from mlflow.models import infer_signature
    from skl2onnx import to_onnx
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    df = pd.read_csv(data)
    x = df.drop(columns="target").astype(np.float32)
    y = df["target"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = Pipeline([("scale", StandardScaler()), ("model", LogisticRegression(max_iter=1000))])
        model.fit(x, y)
        proto = to_onnx(model, x[:1].to_numpy(), target_opset={"": 17, "ai.onnx.ml": 3})
        shutil.rmtree(out, ignore_errors=True)
        mlflow.onnx.save_model(
            proto, str(out), signature=infer_signature(x, model.predict(x)), input_example=x.iloc[:2]
        )
    log(f"model: {[n.op_type for n in proto.graph.node]} saved to {out}")
    return x


def start(argv: list[str], url: str, log_path: Path, env: dict, timeout: float = 120) -> subprocess.Popen:
    proc = subprocess.Popen(
        argv, stdout=open(log_path, "wb"), stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        env=env, start_new_session=True,
    )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"{argv[0]} exited: {log_path.read_text()[-3000:]}")
        try:
            if requests.get(url + "/ping", timeout=1).status_code == 200:
                return proc
        except requests.RequestException:
            pass
        time.sleep(0.3)
    stop(proc)
    raise SystemExit(f"{' '.join(argv)} not up within {timeout} s: {log_path.read_text()[-3000:]}")


def stop(proc: subprocess.Popen) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=15)
            return
        except subprocess.TimeoutExpired:
            continue


UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3}


def to_ms(text: str) -> float:
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    if not m:
        raise ValueError(f"wrk latency {text!r}")
    return float(m.group(1)) * UNITS[m.group(2)]


def wrk(url: str, lua: Path, connections: int, seconds: int, threads: int) -> dict:
    argv = ["wrk", f"-t{min(threads, connections)}", f"-c{connections}", f"-d{seconds}s", "--latency",
            "-s", str(lua), url + "/invocations"]
    out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    lat = dict(re.findall(r"^\s+(50|99)%\s+(\S+)$", out, re.M))
    total = int(re.search(r"(\d+) requests in", out).group(1))
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: (.*)", out)
    return {
        "rps": rps,
        "p50": to_ms(lat["50"]),
        "p99": to_ms(lat["99"]),
        "requests": total,
        "non_2xx": int(bad.group(1)) if bad else 0,
        "socket_errors": errors.group(1).strip() if errors else "",
    }


def check_same(mlflow_url: str, kaizen_url: str, body: dict) -> str:
    m = requests.post(mlflow_url + "/invocations", json=body, timeout=30)
    k = requests.post(kaizen_url + "/invocations?probabilities=true", json=body, timeout=30)
    assert m.status_code == 200 and k.status_code == 200, (m.text, k.text)
    mp, kp = m.json()["predictions"][0], k.json()["predictions"][0]
    assert mp["output_label"] == kp["label"], (mp, kp)
    for label, p in mp["output_probability"].items():
        assert abs(p - kp["probabilities"][str(label)]) < 1e-5, (mp, kp)
    return f"mlflow {json.dumps(mp)} / kaizen {json.dumps(kp)}"


def fmt_ms(v: float) -> str:
    return f"{v:.3f}" if v < 1 else f"{v:.2f}"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--kaizen", required=True)
    ap.add_argument("--data", required=True)
    ap.add_argument("--results", required=True)
    ap.add_argument("--workdir", required=True)
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--concurrency", default="1,16,64")
    ap.add_argument("--threads", type=int, default=1, help="wrk threads")
    ap.add_argument("--mlflow-workers", type=int, default=2)
    args = ap.parse_args()

    work = Path(args.workdir)
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    model_dir = work / "model"
    x = make_model(Path(args.data), model_dir)
    row = x.iloc[[7]]
    body = {"dataframe_split": {"columns": list(row.columns), "data": row.to_numpy().astype(float).tolist()}}
    lua = work / "post.lua"
    lua.write_text(
        'wrk.method = "POST"\n'
        'wrk.headers["Content-Type"] = "application/json"\n'
        f"wrk.body = [==[{json.dumps(body)}]==]\n"
    )
    levels = [int(c) for c in args.concurrency.split(",")]

    # mlflow starts uvicorn by name: the venv's bin must be on PATH.
    bin_dir = str(Path(sys.executable).parent)
    env = dict(os.environ, PATH=bin_dir + os.pathsep + os.environ.get("PATH", ""))
    mlflow_bin = str(Path(bin_dir) / "mlflow")
    mlflow_port, kaizen_port, nolog_port = free_port(), free_port(), free_port()
    servers = {
        "mlflow": (
            [mlflow_bin, "models", "serve", "-m", str(model_dir), "--env-manager", "local",
             "--host", "127.0.0.1", "-p", str(mlflow_port), "--workers", str(args.mlflow_workers)],
            f"http://127.0.0.1:{mlflow_port}",
        ),
        "kaizen": (
            [args.kaizen, "serve", str(model_dir), "--port", str(kaizen_port)],
            f"http://127.0.0.1:{kaizen_port}",
        ),
        "kaizen --no-log": (
            [args.kaizen, "serve", str(model_dir), "--port", str(nolog_port), "--no-log"],
            f"http://127.0.0.1:{nolog_port}",
        ),
    }
    env_kaizen = dict(env, KAIZEN_HOME=str(work / "home"))

    results: dict[str, dict[int, dict]] = {}
    # Check both answer the same, then load one server at a time (they share the two cores).
    m_proc = start(servers["mlflow"][0], servers["mlflow"][1], work / "mlflow.log", env, timeout=180)
    k_proc = start(servers["kaizen"][0], servers["kaizen"][1], work / "kaizen.log", env_kaizen)
    try:
        same = check_same(servers["mlflow"][1], servers["kaizen"][1], body)
        log(f"same prediction: {same}")
        stop(k_proc)
        for c in levels:
            results.setdefault("mlflow", {})[c] = r = wrk(servers["mlflow"][1], lua, c, args.seconds, args.threads)
            log(f"mlflow c={c}: {r}")
    finally:
        stop(m_proc)
        stop(k_proc)
    for name in ("kaizen", "kaizen --no-log"):
        proc = start(servers[name][0], servers[name][1], work / f"{name.replace(' ', '')}.log", env_kaizen)
        try:
            requests.post(servers[name][1] + "/invocations", json=body, timeout=10).raise_for_status()
            for c in levels:
                results.setdefault(name, {})[c] = r = wrk(servers[name][1], lua, c, args.seconds, args.threads)
                log(f"{name} c={c}: {r}")
        finally:
            stop(proc)
    logged = sum(1 for f in (work / "home" / "inference_log").glob("*.jsonl") for _ in open(f))

    import mlflow
    import onnxruntime
    import skl2onnx
    import sklearn

    lines = [
        "# Serving benchmark: `kaizen serve` against `mlflow models serve`",
        "",
        "`make bench-serve` (benches/serve/run.sh). One ONNX model, a scikit-learn StandardScaler +",
        "LogisticRegression on the breast cancer data (30 columns) converted with skl2onnx and saved",
        "with `mlflow.onnx.save_model`, served from the same directory by `mlflow models serve",
        f"--env-manager local --workers {args.mlflow_workers}` (onnxruntime) and by `kaizen serve` (release build,",
        "pure-Rust evaluator, inference log on; `--no-log` for comparison). wrk POSTs one row as",
        f"`dataframe_split` JSON for {args.seconds} s per concurrency, with {args.threads} wrk thread(s): wrk",
        f"shares the machine's {os.cpu_count()} cores with the server under test (one server runs at a time).",
        "Before loading, both servers answered the same label and probabilities (to 1e-5).",
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, {platform.platform()}; mlflow {mlflow.__version__},",
        f"onnxruntime {onnxruntime.__version__}, skl2onnx {skl2onnx.__version__}, scikit-learn {sklearn.__version__}.",
        "",
        "| concurrency | server | requests/s | p50 ms | p99 ms | throughput × mlflow | p99 ÷ mlflow |",
        "|---:|---|---:|---:|---:|---:|---:|",
    ]
    for c in levels:
        base = results["mlflow"][c]
        for name in ("mlflow", "kaizen", "kaizen --no-log"):
            r = results[name][c]
            ratio = "" if name == "mlflow" else f"{r['rps'] / base['rps']:.1f}×"
            p99r = "" if name == "mlflow" else f"{r['p99'] / base['p99']:.3f}"
            lines.append(
                f"| {c} | {name} | {r['rps']:,.0f} | {fmt_ms(r['p50'])} | {fmt_ms(r['p99'])} | {ratio} | {p99r} |"
            )
    errors = {f"{n} c={c}": (r["non_2xx"], r["socket_errors"]) for n, rs in results.items() for c, r in rs.items()
              if r["non_2xx"] or r["socket_errors"]}
    c16 = 16 if 16 in levels else levels[len(levels) // 2]
    k, m = results["kaizen"][c16], results["mlflow"][c16]
    ratio = k["rps"] / m["rps"]
    lines += [
        "",
        f"Targets at concurrency {c16} (kaizen with its inference log on):",
        f"- throughput ≥ 20× mlflow: {ratio:.1f}× — {'met' if ratio >= 20 else 'NOT met'}",
        f"- p99 < 2 ms: {fmt_ms(k['p99'])} ms — {'met' if k['p99'] < 2 else 'NOT met'}",
        "",
        f"Inference log: {logged:,} records written by the logged kaizen runs.",
        "Errors (non-2xx, socket): " + (json.dumps(errors) if errors else "none") + ".",
        "",
    ]
    text = "\n".join(lines)
    Path(args.results).write_text(text)
    print(text)


if __name__ == "__main__":
    main()
