"""Shared helpers for the end-to-end tests: starting servers, PostgreSQL databases, raw REST calls.

Importable from the test modules as ``import e2e_util`` (pytest puts this directory on sys.path).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import requests

REPO_ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = REPO_ROOT / "scripts"

#: "kaizen" (default) or "mlflow": which server the suite runs against.
SERVER_CMD = os.environ.get("E2E_SERVER_CMD", "kaizen").strip() or "kaizen"
if SERVER_CMD not in ("kaizen", "mlflow"):
    raise RuntimeError(f"E2E_SERVER_CMD must be 'kaizen' or 'mlflow', got {SERVER_CMD!r}")
IS_MLFLOW = SERVER_CMD == "mlflow"
IS_KAIZEN = not IS_MLFLOW

HEALTH_TIMEOUT_S = float(os.environ.get("E2E_HEALTH_TIMEOUT", "30" if IS_KAIZEN else "180"))

# Keep client behaviour bounded: no retries with exponential backoff on 5xx / connection errors
# (a 5xx surfaces at once instead of after minutes), and a finite request timeout.
os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "120")
os.environ.setdefault("MLFLOW_ENABLE_ASYNC_LOGGING", "false")
os.environ.setdefault("GIT_PYTHON_REFRESH", "quiet")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def short_tmpdir(prefix: str) -> Path:
    """A fresh directory directly under /tmp (short paths; reachable by the postgres user)."""
    return Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))


def backends() -> list[str]:
    """Backend store kinds to run against: env E2E_BACKENDS (comma-separated), sqlite only for mlflow."""
    if IS_MLFLOW:
        return ["sqlite"]
    raw = os.environ.get("E2E_BACKENDS", "sqlite,postgresql")
    out = [b.strip() for b in raw.split(",") if b.strip()]
    for b in out:
        if b not in ("sqlite", "postgresql"):
            raise RuntimeError(f"unknown backend {b!r} in E2E_BACKENDS")
    return out


def kaizen_bin_path() -> Path:
    p = Path(os.environ.get("KAIZEN_BIN", str(REPO_ROOT / "target" / "debug" / "kaizen")))
    if not p.is_absolute():
        p = REPO_ROOT / p
    return p


def mlflow_bin_path() -> Path:
    p = os.environ.get("MLFLOW_BIN")
    if p:
        return Path(p)
    venv = REPO_ROOT / ".venv" / "bin" / "mlflow"
    if venv.exists():
        return venv
    found = shutil.which("mlflow")
    if not found:
        raise RuntimeError("E2E_SERVER_CMD=mlflow but no mlflow executable found (.venv/bin/mlflow)")
    return Path(found)


# --------------------------------------------------------------------------------------------
# PostgreSQL


def find_pg_bin(name: str) -> str:
    cands = sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"), reverse=True)
    if cands:
        return str(cands[0])
    found = shutil.which(name)
    if found:
        return found
    raise RuntimeError(f"PostgreSQL client '{name}' not found")


@dataclass
class PostgresCluster:
    dir: Path | None  # None: a cluster this suite did not start (and will not stop)
    port: int
    uri: str
    host: str = "127.0.0.1"
    user: str = "postgres"

    def create_database(self) -> str:
        """CREATE DATABASE kaizen_<random>; returns its URI."""
        name = "kaizen_" + secrets.token_hex(6)
        r = subprocess.run(
            [find_pg_bin("psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", self.host,
             "-p", str(self.port), "-U", self.user, "-d", "postgres",
             "-c", f"CREATE DATABASE {name}"],
            capture_output=True, text=True, timeout=60,
        )
        if r.returncode != 0:
            raise RuntimeError(f"CREATE DATABASE {name} failed on {self.uri}: {r.stderr.strip()}")
        return f"postgresql://{self.user}@{self.host}:{self.port}/{name}"


def start_postgres() -> PostgresCluster:
    """Uses the cluster in env KAIZEN_TEST_POSTGRES_URI (trust auth, as scripts/pg-start.sh makes)
    when set, else starts a throwaway one with scripts/pg-start.sh."""
    external = os.environ.get("E2E_POSTGRES_URI") or os.environ.get("KAIZEN_TEST_POSTGRES_URI")
    if external:
        p = urllib.parse.urlparse(external)
        return PostgresCluster(dir=None, port=p.port or 5432, uri=external, host=p.hostname or "127.0.0.1",
                               user=p.username or "postgres")
    d = short_tmpdir("kz-pg-")
    last_err = ""
    for _ in range(3):
        port = free_port()
        r = subprocess.run(
            ["bash", str(SCRIPTS / "pg-start.sh"), str(d), str(port)],
            capture_output=True, text=True, timeout=900,
        )
        if r.returncode == 0:
            uri = r.stdout.strip().splitlines()[-1]
            return PostgresCluster(dir=d, port=port, uri=uri)
        last_err = r.stderr[-4000:]
        if "Address already in use" not in last_err:
            break
    raise RuntimeError(f"scripts/pg-start.sh failed:\n{last_err}")


def stop_postgres(cluster: PostgresCluster) -> None:
    if cluster.dir is None:
        return
    subprocess.run(["bash", str(SCRIPTS / "pg-stop.sh"), str(cluster.dir)],
                   capture_output=True, text=True, timeout=120)
    shutil.rmtree(cluster.dir, ignore_errors=True)


# --------------------------------------------------------------------------------------------
# Servers


@dataclass
class Server:
    url: str
    proc: subprocess.Popen
    backend: str
    kind: str  # "kaizen" or "mlflow"
    port: int
    base_dir: Path
    store_uri: str
    artifacts_dir: Path
    log_path: Path
    argv: list[str] = field(default_factory=list)
    env: dict = field(default_factory=dict)

    @property
    def is_mlflow(self) -> bool:
        return self.kind == "mlflow"

    def log_tail(self, n: int = 4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-n:]
        except OSError:
            return ""

    def _signal_group(self, sig: int) -> None:
        try:
            os.killpg(self.proc.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass

    def kill9(self) -> None:
        """SIGKILL the server (its whole process group) and reap it."""
        self._signal_group(signal.SIGKILL)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            pass

    def stop(self) -> None:
        if self.proc.poll() is None:
            self._signal_group(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                pass
        # Children (mlflow's uvicorn workers) may outlive the leader: always sweep the group.
        self._signal_group(signal.SIGKILL)
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            pass


def server_argv(kind: str, port: int, store_uri: str, artifacts_uri: str, extra_args=()) -> list[str]:
    if kind == "mlflow":
        return [str(mlflow_bin_path()), "server", "--host", "127.0.0.1", "--port", str(port),
                "--backend-store-uri", store_uri, "--artifacts-destination", artifacts_uri,
                "--workers", "1", *extra_args]
    return [str(kaizen_bin_path()), "server", "--host", "127.0.0.1", "--port", str(port),
            "--backend-store-uri", store_uri, "--artifacts-destination", artifacts_uri, *extra_args]


def wait_healthy(server: Server, timeout: float = HEALTH_TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            raise RuntimeError(
                f"{server.kind} server exited with code {server.proc.returncode} before it was healthy\n"
                f"argv: {server.argv}\n--- log tail ---\n{server.log_tail()}"
            )
        try:
            r = requests.get(server.url + "/health", timeout=2)
            if r.status_code == 200:
                return
            last = f"HTTP {r.status_code}"
        except requests.RequestException as e:
            last = repr(e)
        time.sleep(0.2)
    server.stop()
    raise RuntimeError(
        f"{server.kind} server not healthy within {timeout:.0f} s (last: {last})\n"
        f"argv: {server.argv}\n--- log tail ---\n{server.log_tail()}"
    )


def start_server(
    backend: str,
    store_uri: str,
    base_dir: Path,
    artifacts_dir: Path | None = None,
    kind: str = SERVER_CMD,
    extra_args=(),
    port: int | None = None,
) -> Server:
    """Starts a server on a free port and waits for GET /health == 200."""
    base_dir.mkdir(parents=True, exist_ok=True)
    artifacts_dir = artifacts_dir or (base_dir / "artifacts")
    artifacts_dir.mkdir(parents=True, exist_ok=True)
    artifacts_uri = artifacts_dir.resolve().as_uri()
    env = dict(os.environ)
    if kind == "mlflow":
        env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] = "false"
        # Reference behaviour for over-long values is a 400 (not silent truncation).
        env["MLFLOW_TRUNCATE_LONG_VALUES"] = "false"
    else:
        env["KAIZEN_HOME"] = str(base_dir / "home")
        env.setdefault("RUST_BACKTRACE", "1")
    for attempt in range(3):
        p = port or free_port()
        argv = server_argv(kind, p, store_uri, artifacts_uri, extra_args)
        log_path = base_dir / f"server-{p}.log"
        with open(log_path, "ab") as log:
            proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    env=env, cwd=str(base_dir), start_new_session=True)
        server = Server(url=f"http://127.0.0.1:{p}", proc=proc, backend=backend, kind=kind, port=p,
                        base_dir=base_dir, store_uri=store_uri, artifacts_dir=artifacts_dir,
                        log_path=log_path, argv=argv, env=env)
        try:
            wait_healthy(server)
            return server
        except RuntimeError as e:
            server.stop()
            if port is None and attempt < 2 and "in use" in str(e).lower():
                continue
            raise
    raise AssertionError("unreachable")


def sqlite_uri(path: Path) -> str:
    return "sqlite:///" + str(path.resolve())


# --------------------------------------------------------------------------------------------
# Raw REST


class Api:
    """Thin wrapper over requests for raw REST calls against a server."""

    def __init__(self, base_url: str):
        self.base = base_url.rstrip("/")
        self.s = requests.Session()

    def url(self, path: str) -> str:
        return self.base + path

    def get(self, path, params=None, **kw):
        return self.s.get(self.url(path), params=params, timeout=kw.pop("timeout", 120), **kw)

    def post(self, path, json_body=None, **kw):
        return self.s.post(self.url(path), json=json_body, timeout=kw.pop("timeout", 120), **kw)

    def patch(self, path, json_body=None, **kw):
        return self.s.patch(self.url(path), json=json_body, timeout=kw.pop("timeout", 120), **kw)

    def delete(self, path, json_body=None, **kw):
        return self.s.delete(self.url(path), json=json_body, timeout=kw.pop("timeout", 120), **kw)

    def put(self, path, data=None, **kw):
        return self.s.put(self.url(path), data=data, timeout=kw.pop("timeout", 600), **kw)

    def raw_post(self, path, body: bytes, content_type="application/json", **kw):
        return self.s.post(self.url(path), data=body, headers={"Content-Type": content_type},
                           timeout=kw.pop("timeout", 120), **kw)

    def ok(self, resp) -> dict:
        assert resp.status_code == 200, f"{resp.request.method} {resp.url} -> {resp.status_code}: {resp.text[:2000]}"
        return resp.json() if resp.content.strip() else {}


def assert_error(resp, status, codes) -> dict:
    """The response is a JSON error with the given HTTP status and one of the error codes."""
    if isinstance(codes, str):
        codes = (codes,)
    assert resp.status_code == status, (
        f"{resp.request.method} {resp.url}: expected HTTP {status}, got {resp.status_code}: {resp.text[:2000]}"
    )
    try:
        body = resp.json()
    except ValueError:
        raise AssertionError(f"error body is not JSON: {resp.text[:2000]!r}")
    assert isinstance(body, dict), body
    assert body.get("error_code") in codes, f"expected error_code in {codes}, got {body}"
    assert isinstance(body.get("message"), str) and body["message"], body
    return body


def raw_http_exchange(port: int, method: str, path: str, headers: dict, body_chunks, total_len: int,
                      timeout: float = 120.0) -> tuple[int, dict, bytes]:
    """Sends a request with a Content-Length body over a plain socket, stopping early if the server
    answers (or closes) before the body is fully sent; returns (status, headers, body).

    Needed for bodies the server refuses early (413): requests would die with a broken pipe
    instead of reading the answer.
    """
    import select

    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        head = [f"{method} {path} HTTP/1.1", f"Host: 127.0.0.1:{port}", f"Content-Length: {total_len}",
                "Connection: close"]
        head += [f"{k}: {v}" for k, v in headers.items()]
        sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode())
        for chunk in body_chunks:
            r, _, _ = select.select([sock], [], [], 0)
            if r:
                break  # the server answered early
            try:
                sock.sendall(chunk)
            except (BrokenPipeError, ConnectionResetError):
                break
        try:
            sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        data = b""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                part = sock.recv(65536)
            except ConnectionResetError:
                break
            except socket.timeout:
                break
            if not part:
                break
            data += part
            if _http_response_complete(data):
                break
    finally:
        sock.close()
    if not data:
        raise AssertionError("server closed the connection without an HTTP answer")
    head, _, rest = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    hdrs = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        hdrs[k.strip().lower()] = v.strip()
    if hdrs.get("transfer-encoding", "").lower() == "chunked":
        rest = _dechunk(rest)
    return status, hdrs, rest


def _http_response_complete(data: bytes) -> bool:
    if b"\r\n\r\n" not in data:
        return False
    head, _, rest = data.partition(b"\r\n\r\n")
    for line in head.decode("latin-1").split("\r\n")[1:]:
        k, _, v = line.partition(":")
        if k.strip().lower() == "content-length":
            return len(rest) >= int(v.strip())
        if k.strip().lower() == "transfer-encoding" and "chunked" in v.lower():
            return rest.endswith(b"0\r\n\r\n")
    return False


def _dechunk(data: bytes) -> bytes:
    out = b""
    while data:
        size_line, _, data = data.partition(b"\r\n")
        size = int(size_line.split(b";")[0] or b"0", 16)
        if size == 0:
            break
        out += data[:size]
        data = data[size + 2:]
    return out


def quote_path(p: str) -> str:
    return urllib.parse.quote(p, safe="/")


def dumps(obj) -> str:
    return json.dumps(obj)


class LocalServer:
    """A stand-in for a remote service: `handler` (a BaseHTTPRequestHandler class) served on
    127.0.0.1 from a thread; `base` is its URL, `close()` stops it."""

    def __init__(self, handler: type[BaseHTTPRequestHandler]):
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


PRETRAINED_FIXTURES = REPO_ROOT / "tests" / "fixtures" / "pretrained"


class FixtureServer(LocalServer):
    """A local stand-in for the web: the article as an HTML page at /article.html and the MediaWiki
    API at /w/api.php, answering `Tide mill` with the fixture and every other title as missing."""

    def __init__(self):
        page = (PRETRAINED_FIXTURES / "wiki_tide_mill.json").read_bytes()
        html = (PRETRAINED_FIXTURES / "article.html").read_bytes()
        requests_seen = self.requests = []

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def send(self, status, body, content_type):
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self):  # noqa: N802
                url = urllib.parse.urlsplit(self.path)
                query = urllib.parse.parse_qs(url.query)
                requests_seen.append((url.path, query))
                if url.path == "/article.html":
                    self.send(200, html, "text/html; charset=utf-8")
                elif url.path == "/w/api.php":
                    assert query.get("action") == ["query"] and query.get("prop") == ["extracts"]
                    assert query.get("explaintext") == ["1"] and query.get("format") == ["json"]
                    title = query["titles"][0]
                    if title.replace("_", " ").lower() == "tide mill":
                        self.send(200, page, "application/json; charset=utf-8")
                    else:
                        missing = {"batchcomplete": "", "query": {"pages": {"-1": {
                            "ns": 0, "title": title, "missing": ""}}}}
                        self.send(200, json.dumps(missing).encode(), "application/json")
                else:
                    self.send(404, b"not found", "text/plain")

        super().__init__(Handler)
        self.url = self.base
