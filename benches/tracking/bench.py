#!/usr/bin/env python3
"""Tracking benchmark: `kaizen server` against `mlflow server`, same MLflow client workload.

Each server is started on its own free port on 127.0.0.1, benchmarked, and stopped before
the next one starts, so the two never compete for the machine's cores. Every workload is
driven by the unmodified `mlflow` client (``mlflow.MlflowClient``) or, where the client
itself would be the bottleneck, by raw HTTP against the same REST endpoints.

For each workload the client wall time and the server-side CPU time (utime+stime of the
server's whole process tree, read from /proc) are recorded; the server's start time
(spawn until ``GET /health`` answers 200) and its resident memory (sum of the tree's VmRSS)
are recorded too.

Usage (normally through ``benches/tracking/run.sh`` / ``make bench``)::

    python benches/tracking/bench.py [--quick] [--json OUT] [--only kaizen|mlflow]
                                     [--kaizen-bin PATH] [--mlflow-bin PATH]

All traffic goes to 127.0.0.1; every loop is bounded in count and time; the servers are
killed on exit (try/finally, atexit, SIGTERM).
"""

from __future__ import annotations

import argparse
import atexit
import hashlib
import http.client
import json
import math
import os
import platform
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from pathlib import Path

# --- client environment: set before mlflow is imported --------------------------------------
# No retries (a failing endpoint must fail fast, and retries would distort timings), no
# telemetry (all traffic stays on 127.0.0.1), plain single-request artifact upload/download
# for both servers (no /server-info capability probe, no presigned multipart paths).
_CLIENT_ENV = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "120",
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "DO_NOT_TRACK": "true",
    "MLFLOW_ENABLE_PROXY_MULTIPART_UPLOAD": "false",
    "MLFLOW_ENABLE_PROXY_MULTIPART_DOWNLOAD": "false",
    "NO_PROXY": "127.0.0.1,localhost",
    "no_proxy": "127.0.0.1,localhost",
}
os.environ.update(_CLIENT_ENV)
for _k in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI", "HTTP_PROXY", "HTTPS_PROXY",
           "http_proxy", "https_proxy", "ALL_PROXY", "all_proxy"):
    os.environ.pop(_k, None)

HOST = "127.0.0.1"
CLK_TCK = os.sysconf("SC_CLK_TCK")
REPO_ROOT = Path(__file__).resolve().parents[2]

# Targets from the issue (kaizen).
TARGET_SERVER_SPEEDUP = 20.0     # >= 20x less server-side time than mlflow
TARGET_SCALE_P95_MS = 10.0       # search over 10,000 runs, p95
TARGET_IDLE_RSS_MB = 30.0
TARGET_START_MS = 100.0


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------
# Workload sizes
# ---------------------------------------------------------------------------------------------

def sizes(quick: bool) -> dict:
    if quick:
        return dict(
            log_metric_n=500,
            batch_count=2, batch_size=1000,
            search_runs=50, search_reps=30,
            history_reps=10,
            artifact_mb=5,
            conc_clients=16, conc_seconds=3.0, conc_batch=100, conc_max_batches=2000,
            scale_runs=10_000, scale_reps=30, scale_threads=4,
            scale_mlflow=False,
            loop_budget_s=60.0,
        )
    return dict(
        log_metric_n=5000,
        batch_count=10, batch_size=1000,
        search_runs=200, search_reps=200,
        history_reps=50,
        artifact_mb=50,
        conc_clients=16, conc_seconds=20.0, conc_batch=100, conc_max_batches=20_000,
        scale_runs=10_000, scale_reps=100, scale_threads=4,
        scale_mlflow=True,
        loop_budget_s=120.0,
    )


# ---------------------------------------------------------------------------------------------
# /proc helpers: process tree, CPU, memory
# ---------------------------------------------------------------------------------------------

def _read_stat(pid: int):
    """(ppid, cpu_ticks) for a pid, or None. cpu = utime+stime+cutime+cstime (all threads;
    cutime/cstime hold children that exited and were reaped, so nothing is counted twice)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read().decode("ascii", "replace")
    except OSError:
        return None
    rest = data[data.rfind(")") + 2:].split()
    # rest[0] = state (field 3); ppid = field 4; utime..cstime = fields 14..17
    ppid = int(rest[1])
    ticks = int(rest[11]) + int(rest[12]) + int(rest[13]) + int(rest[14])
    return ppid, ticks


def process_tree(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        st = _read_stat(int(entry))
        if st is not None:
            children.setdefault(st[0], []).append(int(entry))
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        if pid in out:
            continue
        out.append(pid)
        todo.extend(children.get(pid, []))
    return out


def tree_cpu_s(root: int) -> float:
    total = 0
    for pid in process_tree(root):
        st = _read_stat(pid)
        if st is not None:
            total += st[1]
    return total / CLK_TCK


def _status_kb(pid: int, field: str) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def _pss_kb(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def tree_memory_mb(root: int) -> dict:
    pids = process_tree(root)
    rss = sum(_status_kb(p, "VmRSS") for p in pids)
    pss = sum(_pss_kb(p) for p in pids)
    return {"rss_mb": round(rss / 1024, 2), "pss_mb": round(pss / 1024, 2), "processes": len(pids)}


# ---------------------------------------------------------------------------------------------
# Raw HTTP (keep-alive, stdlib): used where the Python client would dominate the timing
# ---------------------------------------------------------------------------------------------

class RawHTTP:
    def __init__(self, port: int, timeout: float = 60.0):
        self.port = port
        self.timeout = timeout
        self.conn: http.client.HTTPConnection | None = None

    def close(self) -> None:
        if self.conn is not None:
            try:
                self.conn.close()
            except Exception:
                pass
            self.conn = None

    def request(self, method: str, path: str, body: bytes | str | None = None):
        if isinstance(body, str):
            body = body.encode()
        headers = {"Content-Type": "application/json"} if body is not None else {}
        for attempt in (0, 1):
            try:
                if self.conn is None:
                    self.conn = http.client.HTTPConnection(HOST, self.port, timeout=self.timeout)
                self.conn.request(method, path, body=body, headers=headers)
                resp = self.conn.getresponse()
                data = resp.read()
                if resp.getheader("Connection", "").lower() == "close":
                    self.close()
                return resp.status, data
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError,
                    http.client.CannotSendRequest, http.client.ResponseNotReady):
                # The server closed an idle keep-alive connection: reconnect once.
                self.close()
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def json(self, method: str, path: str, payload: dict | None = None) -> dict:
        status, data = self.request(method, path, None if payload is None else json.dumps(payload))
        if status != 200:
            raise RuntimeError(f"{method} {path} -> HTTP {status}: {data[:300]!r}")
        return json.loads(data) if data else {}


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def http_get_status(port: int, path: str, timeout: float = 1.0) -> int | None:
    try:
        conn = http.client.HTTPConnection(HOST, port, timeout=timeout)
        try:
            conn.request("GET", path)
            resp = conn.getresponse()
            resp.read()
            return resp.status
        finally:
            conn.close()
    except OSError:
        return None
    except http.client.HTTPException:
        return None


# ---------------------------------------------------------------------------------------------
# Servers
# ---------------------------------------------------------------------------------------------

_LIVE_SERVERS: list["Server"] = []


class Server:
    def __init__(self, name: str, cmd: list[str], env: dict, workdir: Path, port: int):
        self.name = name
        self.cmd = cmd
        self.env = env
        self.workdir = workdir
        self.port = port
        self.url = f"http://{HOST}:{port}"
        self.log_path = workdir / f"{name}-server.log"
        self.proc: subprocess.Popen | None = None
        self._log_file = None

    def start(self, timeout_s: float) -> float:
        """Spawns the server; returns seconds from spawn until GET /health answered 200."""
        self._log_file = open(self.log_path, "wb")
        t0 = time.perf_counter()
        self.proc = subprocess.Popen(
            self.cmd, env=self.env, cwd=self.workdir, stdin=subprocess.DEVNULL,
            stdout=self._log_file, stderr=subprocess.STDOUT, start_new_session=True,
        )
        _LIVE_SERVERS.append(self)
        deadline = t0 + timeout_s
        while True:
            if http_get_status(self.port, "/health", timeout=2.0) == 200:
                return time.perf_counter() - t0
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"{self.name} server exited with code {self.proc.returncode} before /health "
                    f"answered; log tail:\n{self.log_tail()}")
            if time.perf_counter() > deadline:
                raise RuntimeError(
                    f"{self.name} server: /health did not answer 200 within {timeout_s:.0f} s; "
                    f"log tail:\n{self.log_tail()}")
            time.sleep(0.002)

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def cpu_s(self) -> float:
        return tree_cpu_s(self.pid)

    def memory(self) -> dict:
        return tree_memory_mb(self.pid)

    def log_tail(self, n: int = 30) -> str:
        try:
            lines = self.log_path.read_text(errors="replace").splitlines()
            return "\n".join(lines[-n:])
        except OSError:
            return "(no log)"

    def stop(self) -> None:
        if self.proc is None:
            return
        pids = process_tree(self.proc.pid) if self.proc.poll() is None else []
        try:
            if self.proc.poll() is None:
                try:
                    os.killpg(self.proc.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
                try:
                    self.proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    pass
            # Whatever is left of the group (or of the tree, should a child have left it).
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
        finally:
            if self._log_file is not None:
                self._log_file.close()
                self._log_file = None
            if self in _LIVE_SERVERS:
                _LIVE_SERVERS.remove(self)


def stop_all_servers() -> None:
    for s in list(_LIVE_SERVERS):
        try:
            s.stop()
        except Exception:
            pass


def _on_sigterm(signum, frame):
    raise SystemExit(128 + signum)


class GlobalTimeout(Exception):
    pass


_TIMED_OUT = threading.Event()


def _on_alarm(signum, frame):
    # The flag survives code (the mlflow client) that wraps the exception into its own.
    _TIMED_OUT.set()
    raise GlobalTimeout("global benchmark time limit reached (--max-minutes)")


def mlflow_command(args) -> list[str]:
    if args.mlflow_bin:
        return [args.mlflow_bin]
    sibling = Path(sys.executable).parent / "mlflow"
    if sibling.exists():
        return [str(sibling)]
    found = shutil.which("mlflow")
    if found:
        return [found]
    return [sys.executable, "-m", "mlflow"]


def cpu_busy_fraction(seconds: float) -> float | None:
    """Share of all CPUs' time spent busy over the next `seconds` (from /proc/stat)."""
    def sample():
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:]]
        idle = v[3] + (v[4] if len(v) > 4 else 0)  # idle + iowait
        return sum(v[:8]), idle  # user..steal; guest time is already in user
    try:
        t0, i0 = sample()
        time.sleep(seconds)
        t1, i1 = sample()
    except (OSError, ValueError, IndexError):
        return None
    return None if t1 == t0 else 1.0 - (i1 - i0) / (t1 - t0)


def looks_like_debug_build(path: Path) -> bool:
    """A cargo dev-profile binary: under target/debug, or an ELF file with DWARF sections
    (the release profile of this workspace carries none)."""
    if "debug" in path.parts:
        return True
    try:
        import struct
        with open(path, "rb") as f:
            hdr = f.read(64)
            if hdr[:4] != b"\x7fELF" or hdr[4] != 2:  # 64-bit ELF only
                return False
            e_shoff, = struct.unpack_from("<Q", hdr, 0x28)
            e_shentsize, e_shnum, e_shstrndx = struct.unpack_from("<HHH", hdr, 0x3A)
            f.seek(e_shoff)
            sh = f.read(e_shentsize * e_shnum)
            off, size = struct.unpack_from("<QQ", sh, e_shstrndx * e_shentsize + 0x18)
            f.seek(off)
            names = f.read(size)
        return b".debug_info\x00" in names or b".debug_line\x00" in names
    except (OSError, struct.error, IndexError):
        return False


def resolve_kaizen_bin(arg: str | None) -> tuple[Path | None, str]:
    candidates = []
    if arg:
        candidates.append(Path(arg))
    elif os.environ.get("KAIZEN_BIN"):
        candidates.append(Path(os.environ["KAIZEN_BIN"]))
    else:
        target = Path(os.environ.get("CARGO_TARGET_DIR", REPO_ROOT / "target"))
        candidates += [target / "release" / "kaizen", target / "debug" / "kaizen"]
    for c in candidates:
        if c.is_file() and os.access(c, os.X_OK):
            note = ""
            if looks_like_debug_build(c.resolve()):
                note = ("kaizen binary looks like a DEBUG build: figures are not representative "
                        "(cargo build --release -p kaizen)")
            return c.resolve(), note
    return None, "kaizen binary not found (looked at: " + ", ".join(str(c) for c in candidates) + \
        "); build it with `cargo build --release -p kaizen` or set KAIZEN_BIN"


def make_server(name: str, args, workdir: Path) -> Server:
    port = free_port()
    env = dict(os.environ)
    if name == "mlflow":
        cmd = mlflow_command(args) + [
            "server", "--host", HOST, "--port", str(port), "--workers", "1",
            "--backend-store-uri", f"sqlite:///{workdir / 'mlflow.db'}",
            "--artifacts-destination", str(workdir / "artifacts"),
        ]
        env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] = "false"
    else:
        cmd = [str(args.kaizen_bin_path), "server", "--host", HOST, "--port", str(port),
               "--backend-store-uri", f"sqlite:///{workdir / 'kaizen.db'}",
               "--artifacts-destination", f"file://{workdir / 'artifacts'}"]
        env["KAIZEN_HOME"] = str(workdir / "home")
    (workdir / "artifacts").mkdir(parents=True, exist_ok=True)
    return Server(name, cmd, env, workdir, port)


# ---------------------------------------------------------------------------------------------
# Measuring
# ---------------------------------------------------------------------------------------------

def pct(samples: list[float], p: float) -> float | None:
    """Nearest-rank percentile."""
    if not samples:
        return None
    s = sorted(samples)
    k = max(0, min(len(s) - 1, math.ceil(p / 100.0 * len(s)) - 1))
    return s[k]


def latency_loop(fn, reps: int, budget_s: float, warmup: int = 2) -> list[float]:
    """Runs fn() reps times (after warmup), stopping early when budget_s is spent (but keeps
    at least 3 samples). Returns latencies in ms."""
    for _ in range(warmup):
        fn()
    out = []
    deadline = time.perf_counter() + budget_s
    for i in range(reps):
        t0 = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t0) * 1000.0)
        if time.perf_counter() > deadline and i >= 2:
            break
    return out


class Measure:
    """Context: client wall time and server-tree CPU over a block."""

    def __init__(self, server: Server):
        self.server = server

    def __enter__(self):
        self.cpu0 = self.server.cpu_s()
        self.t0 = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.wall_s = time.perf_counter() - self.t0
        self.cpu_s = self.server.cpu_s() - self.cpu0 if self.server.alive() else None
        return False


def lat_summary(prefix: str, samples: list[float], cpu_s: float | None) -> dict:
    d = {
        f"{prefix}p50_ms": pct(samples, 50),
        f"{prefix}p95_ms": pct(samples, 95),
        f"{prefix}mean_ms": (sum(samples) / len(samples)) if samples else None,
        f"{prefix}n": len(samples),
        f"{prefix}server_cpu_s": cpu_s,
    }
    if cpu_s is not None and samples:
        d[f"{prefix}server_cpu_per_call_ms"] = cpu_s * 1000.0 / len(samples)
    return d


# ---------------------------------------------------------------------------------------------
# Workloads
# ---------------------------------------------------------------------------------------------

def now_ms() -> int:
    return int(time.time() * 1000)


class Bench:
    def __init__(self, server: Server, sz: dict, workdir: Path, blob: Path, blob_sha: str):
        from mlflow import MlflowClient

        self.server = server
        self.sz = sz
        self.workdir = workdir
        self.blob = blob
        self.blob_sha = blob_sha
        self.client = MlflowClient(tracking_uri=server.url, registry_uri=server.url)
        self.raw = RawHTTP(server.port)
        self.state: dict = {}

    def new_experiment(self, name: str) -> str:
        return self.client.create_experiment(f"{name}-{os.getpid()}-{time.time_ns()}")

    # 1. log_metric x N ---------------------------------------------------------------------
    def w_log_metric(self) -> dict:
        n = self.sz["log_metric_n"]
        exp = self.new_experiment("log-metric")
        run_id = self.client.create_run(exp).info.run_id
        self.state["history_run"] = run_id
        budget = self.sz["loop_budget_s"] * 3
        done = 0
        with Measure(self.server) as m:
            deadline = time.perf_counter() + budget
            for i in range(n):
                self.client.log_metric(run_id, "m", math.sin(i / 50.0), step=i)
                done += 1
                if time.perf_counter() > deadline:
                    break
        self.state["history_points"] = done
        r = {"wall_s": m.wall_s, "server_cpu_s": m.cpu_s, "calls": done, "target_calls": n,
             "calls_per_s": done / m.wall_s}
        if done < n:
            r["note"] = f"stopped at the {budget:.0f} s budget"
        return r

    # 2. log_batch ---------------------------------------------------------------------------
    def w_log_batch(self) -> dict:
        from mlflow.entities import Metric

        count, size = self.sz["batch_count"], self.sz["batch_size"]
        run_id = self.client.create_run(self.new_experiment("log-batch")).info.run_id
        batches = []
        for b in range(count):
            ts = now_ms()
            batches.append([Metric(f"k{i % 10}", float(b * size + i) * 0.5, ts, b * size + i)
                            for i in range(size)])
        with Measure(self.server) as m:
            for batch in batches:
                self.client.log_batch(run_id, metrics=batch)
        total = count * size
        # Check they landed (outside the timed block).
        got = len(self.client.get_metric_history(run_id, "k0"))
        r = {"wall_s": m.wall_s, "server_cpu_s": m.cpu_s, "batches": count, "metrics": total,
             "metrics_per_s": total / m.wall_s}
        if got != total // 10:
            r["error"] = f"history of k0 has {got} points, expected {total // 10}"
        return r

    # 3. runs + search_runs --------------------------------------------------------------------
    def w_create_runs(self) -> dict:
        n = self.sz["search_runs"]
        exp = self.new_experiment("search")
        rng = random.Random(42)
        values = [rng.random() for _ in range(n)]
        with Measure(self.server) as m:
            for i, v in enumerate(values):
                rid = self.client.create_run(exp).info.run_id
                self.client.log_metric(rid, "m", v)
                self.client.log_param(rid, "p", str(i))
        self.state["search_exp"] = exp
        self.state["search_expected"] = sum(1 for v in values if v > 0.5)
        return {"wall_s": m.wall_s, "server_cpu_s": m.cpu_s, "runs": n,
                "calls": 3 * n, "calls_per_s": 3 * n / m.wall_s}

    def w_search(self) -> dict:
        exp = self.state["search_exp"]
        expected = self.state["search_expected"]
        flt = "metrics.m > 0.5"
        reps, budget = self.sz["search_reps"], self.sz["loop_budget_s"]

        got = len(self.client.search_runs([exp], filter_string=flt, max_results=1000))
        if got != expected:
            raise RuntimeError(f"search_runs returned {got} runs, expected {expected}")
        body = json.dumps({"experiment_ids": [exp], "filter": flt, "max_results": 1000})
        st, data = self.raw.request("POST", "/api/2.0/mlflow/runs/search", body)
        if st != 200 or len(json.loads(data).get("runs", [])) != expected:
            raise RuntimeError(f"raw runs/search: HTTP {st}, {data[:200]!r}")

        def client_call():
            self.client.search_runs([exp], filter_string=flt, max_results=1000)

        def raw_call():
            s, _ = self.raw.request("POST", "/api/2.0/mlflow/runs/search", body)
            if s != 200:
                raise RuntimeError(f"raw runs/search: HTTP {s}")

        for _ in range(2):
            client_call()
        with Measure(self.server) as m:
            lat = latency_loop(client_call, reps, budget, warmup=0)
        for _ in range(2):
            raw_call()
        with Measure(self.server) as mr:
            lat_raw = latency_loop(raw_call, reps, budget, warmup=0)
        r = {"runs": self.sz["search_runs"], "matches": expected, "filter": flt,
             "wall_s": m.wall_s, "server_cpu_s": m.cpu_s}
        r.update(lat_summary("", lat, m.cpu_s))
        r.update(lat_summary("raw_", lat_raw, mr.cpu_s))
        return r

    # 4. get_metric_history ----------------------------------------------------------------------
    def w_history(self) -> dict:
        run_id = self.state["history_run"]
        points = self.state["history_points"]
        reps, budget = self.sz["history_reps"], self.sz["loop_budget_s"]
        got = len(self.client.get_metric_history(run_id, "m"))
        if got != points:
            raise RuntimeError(f"get_metric_history returned {got} points, expected {points}")
        path = f"/api/2.0/mlflow/metrics/get-history?run_id={run_id}&metric_key=m"
        st, data = self.raw.request("GET", path)
        if st != 200 or len(json.loads(data).get("metrics", [])) != points:
            raise RuntimeError(f"raw get-history: HTTP {st}, {data[:200]!r}")

        def client_call():
            self.client.get_metric_history(run_id, "m")

        def raw_call():
            s, _ = self.raw.request("GET", path)
            if s != 200:
                raise RuntimeError(f"raw get-history: HTTP {s}")

        for _ in range(2):
            client_call()
        with Measure(self.server) as m:
            lat = latency_loop(client_call, reps, budget, warmup=0)
        for _ in range(2):
            raw_call()
        with Measure(self.server) as mr:
            lat_raw = latency_loop(raw_call, reps, budget, warmup=0)
        r = {"points": points, "wall_s": m.wall_s, "server_cpu_s": m.cpu_s}
        r.update(lat_summary("", lat, m.cpu_s))
        r.update(lat_summary("raw_", lat_raw, mr.cpu_s))
        return r

    # 5. artifact upload / download ----------------------------------------------------------
    def w_artifact(self) -> dict:
        run_id = self.client.create_run(self.new_experiment("artifact")).info.run_id
        size = self.blob.stat().st_size
        with Measure(self.server) as up:
            self.client.log_artifact(run_id, str(self.blob))
        dst = self.workdir / "download"
        if dst.exists():
            shutil.rmtree(dst)
        dst.mkdir()
        with Measure(self.server) as down:
            local = self.client.download_artifacts(run_id, self.blob.name, str(dst))
        h = hashlib.sha256()
        with open(local, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
        ok = h.hexdigest() == self.blob_sha
        shutil.rmtree(dst, ignore_errors=True)
        mb = size / (1024 * 1024)
        r = {"size_mb": mb,
             "upload_wall_s": up.wall_s, "upload_server_cpu_s": up.cpu_s,
             "upload_mb_per_s": mb / up.wall_s,
             "download_wall_s": down.wall_s, "download_server_cpu_s": down.cpu_s,
             "download_mb_per_s": mb / down.wall_s,
             "sha256_ok": ok}
        if not ok:
            r["error"] = "sha256 of the downloaded artifact differs from the uploaded file"
        return r

    # 6. concurrent raw log-batch ------------------------------------------------------------
    def w_concurrent(self) -> dict:
        nthreads = self.sz["conc_clients"]
        per_batch = self.sz["conc_batch"]
        seconds = self.sz["conc_seconds"]
        max_batches = self.sz["conc_max_batches"]
        exp = self.new_experiment("concurrent")
        run_ids = [self.client.create_run(exp).info.run_id for _ in range(nthreads)]
        ok_batches = [0] * nthreads
        errors = [0] * nthreads
        first_error: list[str] = []
        barrier = threading.Barrier(nthreads + 1)
        stop_at = [0.0]

        def worker(t: int):
            conn = RawHTTP(self.server.port, timeout=30)
            rid = run_ids[t]
            head = '{"run_id":"%s","metrics":[' % rid
            try:
                barrier.wait(timeout=60)
            except threading.BrokenBarrierError:
                return
            b = 0
            while b < max_batches and time.perf_counter() < stop_at[0] and not _TIMED_OUT.is_set():
                ts = now_ms()
                parts = [
                    '{"key":"c%d","value":%d.5,"timestamp":%d,"step":%d}'
                    % (i % 10, b + i, ts, b * 10 + i // 10)
                    for i in range(per_batch)
                ]
                body = head + ",".join(parts) + "]}"
                b += 1
                try:
                    status, data = conn.request("POST", "/api/2.0/mlflow/runs/log-batch", body)
                except Exception as e:  # noqa: BLE001 - counted and reported
                    status, data = None, repr(e).encode()
                    conn.close()
                if status == 200:
                    ok_batches[t] += 1
                else:
                    errors[t] += 1
                    if not first_error:
                        first_error.append(f"HTTP {status}: {data[:200]!r}")
                    if errors[t] > 100:
                        break
            conn.close()

        threads = [threading.Thread(target=worker, args=(t,), daemon=True) for t in range(nthreads)]
        for th in threads:
            th.start()
        with Measure(self.server) as m:
            stop_at[0] = time.perf_counter() + seconds
            barrier.wait(timeout=60)
            for th in threads:
                th.join(timeout=seconds + 120)
        stuck = sum(1 for th in threads if th.is_alive())
        metrics = sum(ok_batches) * per_batch
        r = {"clients": nthreads, "metrics_per_batch": per_batch, "seconds": seconds,
             "wall_s": m.wall_s, "server_cpu_s": m.cpu_s, "batches_ok": sum(ok_batches),
             "batches_failed": sum(errors), "metrics": metrics,
             "metrics_per_s": metrics / m.wall_s}
        if m.cpu_s is not None and metrics:
            r["server_cpu_ms_per_1k_metrics"] = m.cpu_s * 1000.0 / (metrics / 1000.0)
        if first_error:
            r["first_error"] = first_error[0]
        if stuck:
            r["error"] = f"{stuck} client threads did not finish"
        elif sum(errors) and not metrics:
            r["error"] = f"every batch failed: {first_error[0] if first_error else '?'}"
        return r

    # Scaling: search over 10,000 runs -------------------------------------------------------
    def w_scale(self, budget_s: float) -> dict:
        n = self.sz["scale_runs"]
        nthreads = self.sz["scale_threads"]
        exp = self.new_experiment("scale")
        rng = random.Random(7)
        values = [rng.random() for _ in range(n)]
        created = [0] * nthreads
        failures: list[str] = []
        abort = threading.Event()
        t_start = time.perf_counter()
        hard_deadline = t_start + budget_s

        def worker(t: int):
            conn = RawHTTP(self.server.port, timeout=60)
            try:
                for i in range(t, n, nthreads):
                    if abort.is_set() or time.perf_counter() > hard_deadline or _TIMED_OUT.is_set():
                        return
                    ts = now_ms()
                    run = conn.json("POST", "/api/2.0/mlflow/runs/create",
                                    {"experiment_id": exp, "start_time": ts, "run_name": f"r{i}"})
                    rid = run["run"]["info"]["run_id"]
                    conn.json("POST", "/api/2.0/mlflow/runs/log-batch", {
                        "run_id": rid,
                        "metrics": [{"key": "m", "value": values[i], "timestamp": ts, "step": 0}],
                        "params": [{"key": "p", "value": str(i)}],
                    })
                    created[t] += 1
            except Exception as e:  # noqa: BLE001 - reported
                failures.append(repr(e)[:300])
                abort.set()
            finally:
                conn.close()

        threads = [threading.Thread(target=worker, args=(t,), daemon=True) for t in range(nthreads)]
        skipped = None
        with Measure(self.server) as mc:
            for th in threads:
                th.start()
            # Watch progress; give up early when the projected time is over budget.
            while any(th.is_alive() for th in threads):
                time.sleep(0.5)
                done = sum(created)
                elapsed = time.perf_counter() - t_start
                if done >= max(200, n // 20) and elapsed > 10:
                    projected = elapsed / done * n
                    if projected > budget_s:
                        skipped = (f"skipped: creating {n} runs would take ~{projected:.0f} s "
                                   f"(> {budget_s:.0f} s budget; {done} created in {elapsed:.0f} s)")
                        abort.set()
                if time.perf_counter() > hard_deadline:
                    abort.set()
            for th in threads:
                th.join(timeout=60)
        done = sum(created)
        r = {"runs": n, "created": done, "create_wall_s": mc.wall_s,
             "create_server_cpu_s": mc.cpu_s, "create_runs_per_s": done / mc.wall_s}
        if failures:
            r["error"] = f"run creation failed: {failures[0]}"
            return r
        if skipped or done < n:
            r["skipped"] = skipped or f"skipped: only {done}/{n} runs created within {budget_s:.0f} s"
            return r

        expected = sum(1 for v in values if v > 0.5)
        page = 100
        flt = "metrics.m > 0.5"
        body = json.dumps({"experiment_ids": [exp], "filter": flt, "max_results": page})
        data = self.raw.json("POST", "/api/2.0/mlflow/runs/search", json.loads(body))
        runs = data.get("runs", [])
        if len(runs) != min(page, expected):
            raise RuntimeError(f"runs/search over {n} runs returned {len(runs)}, expected {min(page, expected)}")
        for run in runs:
            ms = {x["key"]: x["value"] for x in run.get("data", {}).get("metrics", [])}
            if not ms.get("m", 0) > 0.5:
                raise RuntimeError(f"runs/search returned a run with m={ms.get('m')!r} for '{flt}'")

        def raw_call():
            s, _ = self.raw.request("POST", "/api/2.0/mlflow/runs/search", body)
            if s != 200:
                raise RuntimeError(f"raw runs/search: HTTP {s}")

        def client_call():
            self.client.search_runs([exp], filter_string=flt, max_results=page)

        reps, lb = self.sz["scale_reps"], self.sz["loop_budget_s"]
        for _ in range(3):
            raw_call()
        with Measure(self.server) as mr:
            lat_raw = latency_loop(raw_call, reps, lb, warmup=0)
        for _ in range(2):
            client_call()
        with Measure(self.server) as m:
            lat = latency_loop(client_call, reps, lb, warmup=0)
        r.update({"matches": expected, "page": page, "filter": flt})
        r.update(lat_summary("raw_", lat_raw, mr.cpu_s))
        r.update(lat_summary("", lat, m.cpu_s))
        return r


def bench_server(name: str, args, sz: dict, blob: Path, blob_sha: str, base: Path,
                 results: dict) -> dict:
    workdir = base / name
    workdir.mkdir(parents=True, exist_ok=True)
    res: dict = {"available": False, "workloads": {}, "errors": []}
    results[name] = res  # partial results survive a global timeout
    server = make_server(name, args, workdir)
    res["command"] = " ".join(server.cmd)
    log(f"{name}: starting on {server.url}")
    try:
        start_s = server.start(timeout_s=args.start_timeout)
        res["available"] = True
        res["start_s"] = start_s
        res["pid"] = server.pid
        st, ver = None, b""
        try:
            conn = RawHTTP(server.port, timeout=5)
            st, ver = conn.request("GET", "/version")
            conn.close()
        except Exception:
            pass
        res["version"] = ver.decode(errors="replace").strip()[:100] if st == 200 else None
        time.sleep(args.settle)
        res["startup_cpu_s"] = server.cpu_s()
        res["idle_memory"] = server.memory()
        res["idle_rss_mb"] = res["idle_memory"]["rss_mb"]
        log(f"{name}: up in {start_s * 1000:.1f} ms, idle RSS {res['idle_rss_mb']:.1f} MB "
            f"({res['idle_memory']['processes']} processes)")

        b = Bench(server, sz, workdir, blob, blob_sha)
        plan = [
            ("log_metric", b.w_log_metric),
            ("log_batch", b.w_log_batch),
            ("create_runs", b.w_create_runs),
            ("search_runs", b.w_search),
            ("metric_history", b.w_history),
            ("artifact", b.w_artifact),
            ("concurrent_log_batch", b.w_concurrent),
        ]
        scale_budget = args.scale_budget
        run_scale = name == "kaizen" or sz["scale_mlflow"]
        if run_scale:
            plan.append(("scale_search", lambda: b.w_scale(scale_budget)))
        else:
            res["workloads"]["scale_search"] = {"skipped": "skipped for mlflow with --quick"}
        for wname, fn in plan:
            if _TIMED_OUT.is_set():
                raise GlobalTimeout("global benchmark time limit reached (--max-minutes)")
            if not server.alive():
                res["workloads"][wname] = {"error": "server is no longer running"}
                continue
            log(f"{name}: {wname} ...")
            try:
                r = fn()
            except GlobalTimeout:
                raise
            except Exception as e:  # noqa: BLE001 - reported per workload
                r = {"error": f"{type(e).__name__}: {e}"[:600]}
                if _TIMED_OUT.is_set():
                    res["workloads"][wname] = r
                    raise GlobalTimeout("global benchmark time limit reached (--max-minutes)") from e
                if args.verbose:
                    traceback.print_exc()
            res["workloads"][wname] = r
            summary = {k: (round(v, 4) if isinstance(v, float) else v) for k, v in r.items()
                       if k in ("wall_s", "server_cpu_s", "p50_ms", "p95_ms", "raw_p95_ms",
                                "metrics_per_s", "upload_wall_s", "download_wall_s", "error",
                                "skipped", "create_wall_s")}
            log(f"{name}: {wname}: {summary}")
        if server.alive():
            res["final_memory"] = server.memory()
            res["final_rss_mb"] = res["final_memory"]["rss_mb"]
            res["total_server_cpu_s"] = server.cpu_s()
        else:
            res["errors"].append(f"{name} server died; log tail:\n{server.log_tail()}")
    except GlobalTimeout as e:
        res["errors"].append(str(e))
        raise
    except Exception as e:  # noqa: BLE001
        res["errors"].append(f"{type(e).__name__}: {e}")
        log(f"{name}: {e}")
    finally:
        server.stop()
        log(f"{name}: stopped")
    return res


# ---------------------------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------------------------

def _get(res: dict | None, wl: str | None, key: str):
    if not res or not res.get("available"):
        return None
    src = res if wl is None else res.get("workloads", {}).get(wl, {})
    if wl is not None and ("error" in src or "skipped" in src):
        return None  # partial figures of a failed or skipped workload are not comparable
    return src.get(key)


def _status(res: dict | None, wl: str | None) -> str | None:
    if not res:
        return "-"
    if not res.get("available"):
        return "n/a"
    if wl is None:
        return None
    w = res.get("workloads", {}).get(wl)
    if w is None:
        return "-"
    if "error" in w:
        return "ERROR"
    if "skipped" in w:
        return "skipped"
    return None


# (label, workload, key, unit, scale, better)
ROWS = [
    ("server start (spawn -> /health 200)", None, "start_s", "ms", 1000, "lower"),
    ("idle RSS (process tree)", None, "idle_rss_mb", "MB", 1, "lower"),
    ("RSS after workloads", None, "final_rss_mb", "MB", 1, "lower"),
    ("log_metric x{log_metric_n}: wall", "log_metric", "wall_s", "s", 1, "lower"),
    ("log_metric x{log_metric_n}: server CPU", "log_metric", "server_cpu_s", "s", 1, "lower"),
    ("log_batch {batch_count}x{batch_size}: wall", "log_batch", "wall_s", "s", 1, "lower"),
    ("log_batch {batch_count}x{batch_size}: server CPU", "log_batch", "server_cpu_s", "s", 1, "lower"),
    ("create {search_runs} runs (+metric+param): wall", "create_runs", "wall_s", "s", 1, "lower"),
    ("create {search_runs} runs: server CPU", "create_runs", "server_cpu_s", "s", 1, "lower"),
    ("search_runs ({search_runs} runs, client) p50", "search_runs", "p50_ms", "ms", 1, "lower"),
    ("search_runs ({search_runs} runs, client) p95", "search_runs", "p95_ms", "ms", 1, "lower"),
    ("search_runs ({search_runs} runs) server CPU/call", "search_runs", "server_cpu_per_call_ms", "ms", 1, "lower"),
    ("search_runs ({search_runs} runs, raw HTTP) p95", "search_runs", "raw_p95_ms", "ms", 1, "lower"),
    ("get_metric_history ({log_metric_n} pts, client) p50", "metric_history", "p50_ms", "ms", 1, "lower"),
    ("get_metric_history ({log_metric_n} pts, client) p95", "metric_history", "p95_ms", "ms", 1, "lower"),
    ("get_metric_history ({log_metric_n} pts) server CPU/call", "metric_history", "server_cpu_per_call_ms", "ms", 1, "lower"),
    ("get_metric_history ({log_metric_n} pts, raw HTTP) p95", "metric_history", "raw_p95_ms", "ms", 1, "lower"),
    ("artifact {artifact_mb} MB upload: wall", "artifact", "upload_wall_s", "s", 1, "lower"),
    ("artifact {artifact_mb} MB upload: server CPU", "artifact", "upload_server_cpu_s", "s", 1, "lower"),
    ("artifact {artifact_mb} MB download: wall", "artifact", "download_wall_s", "s", 1, "lower"),
    ("artifact {artifact_mb} MB download: server CPU", "artifact", "download_server_cpu_s", "s", 1, "lower"),
    ("{conc_clients} clients log-batch x{conc_batch}: throughput", "concurrent_log_batch", "metrics_per_s", "metrics/s", 1, "higher"),
    ("{conc_clients} clients log-batch: server CPU/1k metrics", "concurrent_log_batch", "server_cpu_ms_per_1k_metrics", "ms", 1, "lower"),
    ("{conc_clients} clients log-batch: failed batches", "concurrent_log_batch", "batches_failed", "", 1, None),
    ("{scale_runs} runs: create (raw HTTP, {scale_threads} thr): wall", "scale_search", "create_wall_s", "s", 1, "lower"),
    ("{scale_runs} runs: search (raw HTTP) p50", "scale_search", "raw_p50_ms", "ms", 1, "lower"),
    ("{scale_runs} runs: search (raw HTTP) p95", "scale_search", "raw_p95_ms", "ms", 1, "lower"),
    ("{scale_runs} runs: search server CPU/call", "scale_search", "raw_server_cpu_per_call_ms", "ms", 1, "lower"),
    ("{scale_runs} runs: search (client) p95", "scale_search", "p95_ms", "ms", 1, "lower"),
]


def fmt_val(v, unit: str) -> str:
    if v is None:
        return "-"
    if isinstance(v, bool):
        return "yes" if v else "NO"
    if isinstance(v, int):
        return f"{v:,}"
    if unit == "metrics/s":
        return f"{v:,.0f} {unit}"
    a = abs(v)
    s = f"{v:.0f}" if a >= 100 else f"{v:.1f}" if a >= 10 else f"{v:.2f}" if a >= 1 else f"{v:.3f}"
    return f"{s} {unit}".strip()


def ratio(m, k, better) -> float | None:
    if m is None or k is None or better is None:
        return None
    if better == "lower":
        return m / k if k > 0 else None
    return k / m if m > 0 else None


def _cpu_total_key(key: str) -> str | None:
    """The server-CPU total (seconds) a row's figure is derived from, if any."""
    if key.endswith("server_cpu_per_call_ms"):
        return key[: -len("_per_call_ms")] + "_s"
    if key == "server_cpu_ms_per_1k_metrics":
        return "server_cpu_s"
    if key.endswith("server_cpu_s"):
        return key
    return None


def build_rows(results: dict, sz: dict) -> list[dict]:
    rows = []
    mres, kres = results.get("mlflow"), results.get("kaizen")
    for label, wl, key, unit, scale, better in ROWS:
        mv, kv = _get(mres, wl, key), _get(kres, wl, key)
        if isinstance(mv, (int, float)) and not isinstance(mv, bool):
            mv = mv * scale
        if isinstance(kv, (int, float)) and not isinstance(kv, bool):
            kv = kv * scale
        r = ratio(mv, kv, better)
        # CPU figures come in 1/CLK_TCK steps: flag ratios built on fewer than 5 ticks.
        approx = False
        total_key = _cpu_total_key(key)
        if total_key and r is not None and wl is not None:
            totals = [_get(x, wl, total_key) for x in (mres, kres)]
            if any(t is not None and t < 5.0 / CLK_TCK for t in totals):
                approx = True
        rows.append({"workload": label.format(**sz), "unit": unit, "better": better,
                     "mlflow": mv, "kaizen": kv, "ratio": r, "approx": approx,
                     "mlflow_status": _status(mres, wl) if mv is None else None,
                     "kaizen_status": _status(kres, wl) if kv is None else None})
    return rows


def build_targets(results: dict, sz: dict) -> list[dict]:
    mres, kres = results.get("mlflow"), results.get("kaizen")
    out = []

    def speedup(label, wl, key):
        m, k = _get(mres, wl, key), _get(kres, wl, key)
        r = (m / k) if (m is not None and k) else None
        if m is not None and k == 0:
            r = float("inf")
        approx = k is not None and k < 5.0 / CLK_TCK
        out.append({"target": f"{label}: server-side CPU >= {TARGET_SERVER_SPEEDUP:.0f}x less than mlflow",
                    "value": r, "unit": "x", "threshold": TARGET_SERVER_SPEEDUP,
                    "pass": None if r is None else r >= TARGET_SERVER_SPEEDUP,
                    "approx": approx})

    speedup("log_batch {batch_count}x{batch_size}".format(**sz), "log_batch", "server_cpu_s")
    speedup("search_runs", "search_runs", "server_cpu_s")
    speedup("get_metric_history", "metric_history", "server_cpu_s")
    p95 = _get(kres, "scale_search", "raw_p95_ms")
    out.append({"target": f"kaizen search over {sz['scale_runs']:,} runs p95 < {TARGET_SCALE_P95_MS:.0f} ms (raw HTTP)",
                "value": p95, "unit": "ms", "threshold": TARGET_SCALE_P95_MS,
                "pass": None if p95 is None else p95 < TARGET_SCALE_P95_MS})
    rss = _get(kres, None, "idle_rss_mb")
    out.append({"target": f"kaizen idle RSS < {TARGET_IDLE_RSS_MB:.0f} MB",
                "value": rss, "unit": "MB", "threshold": TARGET_IDLE_RSS_MB,
                "pass": None if rss is None else rss < TARGET_IDLE_RSS_MB})
    st = _get(kres, None, "start_s")
    st_ms = None if st is None else st * 1000
    out.append({"target": f"kaizen start < {TARGET_START_MS:.0f} ms",
                "value": st_ms, "unit": "ms", "threshold": TARGET_START_MS,
                "pass": None if st_ms is None else st_ms < TARGET_START_MS})
    return out


def print_report(results: dict, rows: list[dict], targets: list[dict], meta: dict) -> None:
    print()
    print(f"kaizen tracking benchmark ({'quick' if meta['quick'] else 'full'}) — "
          f"{meta['cpus']} CPUs, {meta['platform']}")
    for name in ("mlflow", "kaizen"):
        r = results.get(name)
        if r is not None:
            print(f"  {name}: version {r.get('version') or '?'}; {r.get('command', '')}")
    if meta.get("kaizen_note"):
        print(f"  NOTE: {meta['kaizen_note']}")
    print("  ratio = mlflow/kaizen for times, kaizen/mlflow for throughput: > 1 means kaizen is faster")
    print(f"  server CPU = utime+stime of the server's process tree (/proc, 1/{CLK_TCK} s ticks);"
          " '~' marks a ratio built on < 5 ticks")
    print()
    w0 = max(len(r["workload"]) for r in rows)
    hdr = f"{'workload':<{w0}} | {'mlflow':>16} | {'kaizen':>16} | {'ratio':>9}"
    print(hdr)
    print("-" * len(hdr))
    for r in rows:
        mv = fmt_val(r["mlflow"], r["unit"]) if r["mlflow"] is not None else (r["mlflow_status"] or "-")
        kv = fmt_val(r["kaizen"], r["unit"]) if r["kaizen"] is not None else (r["kaizen_status"] or "-")
        if r["ratio"] is None:
            rt = ""
        else:
            rt = ("~" if r["approx"] else "") + (f"{r['ratio']:.1f}x" if r["ratio"] < 1000 else f"{r['ratio']:.0f}x")
        print(f"{r['workload']:<{w0}} | {mv:>16} | {kv:>16} | {rt:>9}")
    print()
    print("targets:")
    for t in targets:
        mark = "PASS" if t["pass"] is True else "FAIL" if t["pass"] is False else "n/a "
        v = "-" if t["value"] is None else (f"{t['value']:.1f} {t['unit']}" if t["value"] != float("inf") else "inf")
        note = " (~: kaizen CPU under 5 ticks, too small to judge; use the full run)" if t.get("approx") else ""
        print(f"  [{mark}] {t['target']}: {v}{note}")
    problems = []
    for name in ("mlflow", "kaizen"):
        r = results.get(name)
        if not r:
            continue
        for e in r.get("errors", []):
            problems.append(f"{name}: {e}")
        for wl, w in r.get("workloads", {}).items():
            if "error" in w:
                problems.append(f"{name} {wl}: {w['error']}")
            elif "skipped" in w:
                problems.append(f"{name} {wl}: {w['skipped']}")
            if w.get("first_error"):
                problems.append(f"{name} {wl}: first failed batch: {w['first_error']}")
    if problems:
        print()
        print("errors / skipped:")
        for p in problems:
            print(f"  - {p}")
    print()


def _json_safe(o):
    if isinstance(o, float) and (math.isinf(o) or math.isnan(o)):
        return None
    if isinstance(o, dict):
        return {k: _json_safe(v) for k, v in o.items()}
    if isinstance(o, list):
        return [_json_safe(v) for v in o]
    return o


# ---------------------------------------------------------------------------------------------

def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="smaller workload (smoke test)")
    ap.add_argument("--json", metavar="OUT", help="write the results as JSON to OUT")
    ap.add_argument("--only", choices=["kaizen", "mlflow"], help="benchmark one server only")
    ap.add_argument("--kaizen-bin", help="kaizen binary (default: $KAIZEN_BIN, target/release/kaizen, target/debug/kaizen)")
    ap.add_argument("--mlflow-bin", help="mlflow CLI (default: the one beside this Python)")
    ap.add_argument("--start-timeout", type=float, default=120.0, help="seconds to wait for /health")
    ap.add_argument("--settle", type=float, default=1.0, help="seconds idle after start before reading RSS")
    ap.add_argument("--scale-budget", type=float, default=None,
                    help="seconds allowed for creating the 10,000 runs (default 300, quick 120)")
    ap.add_argument("--max-minutes", type=float, default=None,
                    help="hard limit for the whole run (default 45, quick 15)")
    ap.add_argument("--strict", action="store_true", help="exit 1 when a target FAILs")
    ap.add_argument("--keep-tmp", action="store_true", help="keep the temp dir (DBs, server logs)")
    ap.add_argument("-v", "--verbose", action="store_true", help="print tracebacks of failed workloads")
    args = ap.parse_args()

    sz = sizes(args.quick)
    if args.scale_budget is None:
        args.scale_budget = 120.0 if args.quick else 300.0
    if args.max_minutes is None:
        args.max_minutes = 15.0 if args.quick else 45.0
    names = [args.only] if args.only else ["mlflow", "kaizen"]

    kaizen_note = ""
    if "kaizen" in names:
        path, kaizen_note = resolve_kaizen_bin(args.kaizen_bin)
        if path is None:
            print(f"error: {kaizen_note}", file=sys.stderr)
            return 2
        args.kaizen_bin_path = path
        if kaizen_note:
            log(f"WARNING: {kaizen_note}")
    try:
        import mlflow  # noqa: F401
    except ImportError:
        print("error: the mlflow package is not importable from this Python "
              f"({sys.executable}); run benches/tracking/run.sh, which sets up the venv", file=sys.stderr)
        return 2

    atexit.register(stop_all_servers)
    signal.signal(signal.SIGTERM, _on_sigterm)
    signal.signal(signal.SIGALRM, _on_alarm)
    signal.alarm(int(args.max_minutes * 60))

    base = Path(tempfile.mkdtemp(prefix="kaizen-bench-"))
    log(f"temp dir {base}; servers: {', '.join(names)}; {'quick' if args.quick else 'full'} workload")
    busy = cpu_busy_fraction(1.0)
    if busy is not None and busy > 0.15:
        log(f"WARNING: the CPUs were {busy * 100:.0f}% busy just before the run: "
            "other work on this machine skews the figures")

    meta = {
        "quick": args.quick, "sizes": sz, "cpus": os.cpu_count(), "platform": platform.platform(),
        "python": sys.version.split()[0], "mlflow_client": __import__("mlflow").__version__,
        "clk_tck": CLK_TCK, "cpu_busy_before_start": busy, "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "kaizen_bin": str(getattr(args, "kaizen_bin_path", "")) or None, "kaizen_note": kaizen_note or None,
        "client_env": _CLIENT_ENV,
    }
    results: dict = {}
    exit_code = 0
    try:
        blob = base / "blob.bin"
        h = hashlib.sha256()
        with open(blob, "wb") as f:
            for _ in range(sz["artifact_mb"]):
                chunk = os.urandom(1 << 20)
                h.update(chunk)
                f.write(chunk)
        blob_sha = h.hexdigest()
        for name in names:
            bench_server(name, args, sz, blob, blob_sha, base, results)
    except GlobalTimeout as e:
        log(f"ERROR: {e}")
        exit_code = 1
    finally:
        signal.alarm(0)
        stop_all_servers()
        if args.keep_tmp:
            log(f"kept {base}")
        else:
            shutil.rmtree(base, ignore_errors=True)

    meta["finished_at"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    rows = build_rows(results, sz)
    targets = build_targets(results, sz)
    print_report(results, rows, targets, meta)
    if args.json:
        out = {"meta": meta, "results": results, "table": rows, "targets": targets}
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(_json_safe(out), indent=2, default=str) + "\n")
        log(f"wrote {args.json}")

    for name in names:
        r = results.get(name)
        if r is None or not r.get("available") or r.get("errors") or \
                any("error" in w for w in r.get("workloads", {}).values()):
            exit_code = 1
    if args.strict and any(t["pass"] is False for t in targets):
        exit_code = 1
    return exit_code


if __name__ == "__main__":
    try:
        sys.exit(main())
    finally:
        stop_all_servers()
