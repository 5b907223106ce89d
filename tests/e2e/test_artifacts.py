"""Artifacts through the `mlflow-artifacts` proxy (server started with --artifacts-destination):
the client's upload/list/download, large files, raw REST delete and multipart upload."""

from __future__ import annotations

import hashlib
import os
import urllib.parse
from pathlib import Path

import mlflow
import pytest

import e2e_util as u

MPU_UNSUPPORTED = "Multipart upload is not supported for the current artifact repository"


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def proxy_path(artifact_uri: str) -> str:
    """The path under /api/2.0/mlflow-artifacts/artifacts/ of a run's artifact URI."""
    parsed = urllib.parse.urlparse(artifact_uri)
    if parsed.scheme == "mlflow-artifacts":
        return parsed.path.lstrip("/")
    anchor = "/api/2.0/mlflow-artifacts/artifacts/"
    assert anchor in artifact_uri, artifact_uri
    return artifact_uri.split(anchor, 1)[1]


@pytest.fixture
def run_id(client, uniq):
    exp_id = client.create_experiment(f"e2e-art-{uniq}")
    return client.create_run(exp_id).info.run_id


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_run_artifact_uri_is_proxied(client, run_id):
    uri = client.get_run(run_id).info.artifact_uri
    assert uri.startswith("mlflow-artifacts:"), uri
    assert run_id in uri


def test_log_artifact_list_download(client, run_id, tmp_path):
    f = tmp_path / "hello.txt"
    f.write_text("hello kaizen\n")
    client.log_artifact(run_id, str(f))
    client.log_artifact(run_id, str(f), artifact_path="nested/dir")

    root = client.list_artifacts(run_id)
    assert [(a.path, a.is_dir) for a in root] == [("hello.txt", False), ("nested", True)]
    assert root[0].file_size == len("hello kaizen\n")
    assert [(a.path, a.is_dir) for a in client.list_artifacts(run_id, "nested")] == [("nested/dir", True)]
    assert [(a.path, a.file_size) for a in client.list_artifacts(run_id, "nested/dir")] == [
        ("nested/dir/hello.txt", 13)]

    dst = tmp_path / "dl"
    dst.mkdir()
    local = client.download_artifacts(run_id, "hello.txt", str(dst))
    assert Path(local).read_text() == "hello kaizen\n"
    local = mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path="nested/dir/hello.txt",
                                                dst_path=str(dst / "x"))
    assert Path(local).read_text() == "hello kaizen\n"


def test_log_artifacts_directory_with_subfolders(client, run_id, tmp_path):
    src = tmp_path / "src"
    (src / "sub" / "deeper").mkdir(parents=True)
    (src / "a.txt").write_text("A")
    (src / "sub" / "b.json").write_text('{"b": 1}')
    (src / "sub" / "deeper" / "c.bin").write_bytes(bytes(range(256)) * 40)
    (src / "with space.txt").write_text("space")
    client.log_artifacts(run_id, str(src), artifact_path="outputs")

    assert [(a.path, a.is_dir) for a in client.list_artifacts(run_id)] == [("outputs", True)]
    listing = client.list_artifacts(run_id, "outputs")
    assert [(a.path, a.is_dir) for a in listing] == [
        ("outputs/a.txt", False), ("outputs/sub", True), ("outputs/with space.txt", False)]
    assert listing[0].file_size == 1
    assert listing[1].file_size is None
    sub = client.list_artifacts(run_id, "outputs/sub")
    assert [(a.path, a.is_dir) for a in sub] == [("outputs/sub/b.json", False), ("outputs/sub/deeper", True)]
    deeper = client.list_artifacts(run_id, "outputs/sub/deeper")
    assert [(a.path, a.file_size) for a in deeper] == [("outputs/sub/deeper/c.bin", 256 * 40)]

    dst = tmp_path / "dst"
    dst.mkdir()
    local = client.download_artifacts(run_id, "outputs", str(dst))
    assert _tree(Path(local)) == _tree(src)
    # The whole run.
    dst2 = tmp_path / "dst2"
    dst2.mkdir()
    local = client.download_artifacts(run_id, "", str(dst2))
    assert _tree(Path(local) / "outputs") == _tree(src)


def test_list_file_or_missing_path_is_empty(client, run_id, tmp_path, api):
    f = tmp_path / "only.txt"
    f.write_text("x")
    client.log_artifact(run_id, str(f), artifact_path="d")
    assert client.list_artifacts(run_id, "d/only.txt") == []
    assert client.list_artifacts(run_id, "missing") == []
    assert client.list_artifacts(run_id, "d/missing/deeper") == []
    # Raw: the proxy answers an empty listing for a file and for a missing path.
    base = proxy_path(client.get_run(run_id).info.artifact_uri)
    for p in (f"{base}/d/only.txt", f"{base}/missing"):
        body = api.ok(api.get("/api/2.0/mlflow-artifacts/artifacts", params={"path": p}))
        assert body.get("files", []) == [], body


def test_fluent_text_and_dict_artifacts(client, uniq):
    exp_id = client.create_experiment(f"e2e-art-fluent-{uniq}")
    with mlflow.start_run(experiment_id=exp_id) as run:
        mlflow.log_text("some text ✓", "notes/readme.txt")
        mlflow.log_dict({"a": [1, 2, 3]}, "cfg/config.json")
        mlflow.log_dict({"y": 1}, "cfg/config.yaml")
    base = client.get_run(run.info.run_id).info.artifact_uri
    assert mlflow.artifacts.load_text(f"{base}/notes/readme.txt") == "some text ✓"
    assert mlflow.artifacts.load_dict(f"{base}/cfg/config.json") == {"a": [1, 2, 3]}
    assert mlflow.artifacts.load_text(f"{base}/cfg/config.yaml").strip() == "y: 1"
    assert [a.path for a in client.list_artifacts(run.info.run_id, "cfg")] == ["cfg/config.json", "cfg/config.yaml"]


def test_raw_put_get_list_delete(client, run_id, api):
    base = proxy_path(client.get_run(run_id).info.artifact_uri)
    payload = os.urandom(4096)
    api.ok(api.put(f"/api/2.0/mlflow-artifacts/artifacts/{base}/raw/blob.bin", data=payload))
    api.ok(api.put(f"/api/2.0/mlflow-artifacts/artifacts/{base}/raw/keep.txt", data=b"keep"))

    r = api.get(f"/api/2.0/mlflow-artifacts/artifacts/{base}/raw/blob.bin")
    assert r.status_code == 200 and r.content == payload

    body = api.ok(api.get("/api/2.0/mlflow-artifacts/artifacts", params={"path": f"{base}/raw"}))
    files = sorted(body["files"], key=lambda f: f["path"])
    assert files == [{"path": "blob.bin", "is_dir": False, "file_size": 4096},
                     {"path": "keep.txt", "is_dir": False, "file_size": 4}]
    body = api.ok(api.get("/api/2.0/mlflow-artifacts/artifacts", params={"path": base}))
    assert body["files"] == [{"path": "raw", "is_dir": True}]

    # Overwrite with a PUT to the same path.
    api.ok(api.put(f"/api/2.0/mlflow-artifacts/artifacts/{base}/raw/keep.txt", data=b"kept2"))
    assert api.get(f"/api/2.0/mlflow-artifacts/artifacts/{base}/raw/keep.txt").content == b"kept2"

    api.ok(api.delete(f"/api/2.0/mlflow-artifacts/artifacts/{base}/raw/blob.bin"))
    u.assert_error(api.get(f"/api/2.0/mlflow-artifacts/artifacts/{base}/raw/blob.bin"), 404,
                   "RESOURCE_DOES_NOT_EXIST")
    body = api.ok(api.get("/api/2.0/mlflow-artifacts/artifacts", params={"path": f"{base}/raw"}))
    assert [f["path"] for f in body["files"]] == ["keep.txt"]
    assert [a.path for a in client.list_artifacts(run_id, "raw")] == ["raw/keep.txt"]

    # Deleting a directory removes everything under it.
    api.ok(api.delete(f"/api/2.0/mlflow-artifacts/artifacts/{base}/raw"))
    assert client.list_artifacts(run_id, "raw") == []
    # Downloading a missing artifact is a 404 with the JSON shape.
    u.assert_error(api.get(f"/api/2.0/mlflow-artifacts/artifacts/{base}/never/was.txt"), 404,
                   "RESOURCE_DOES_NOT_EXIST")


def test_tracking_artifacts_list_endpoint(client, run_id, tmp_path, api):
    src = tmp_path / "s"
    (src / "sub").mkdir(parents=True)
    (src / "top.txt").write_text("t")
    (src / "sub" / "in.txt").write_text("in")
    client.log_artifacts(run_id, str(src))
    body = api.ok(api.get("/api/2.0/mlflow/artifacts/list", params={"run_id": run_id}))
    assert body["root_uri"] == client.get_run(run_id).info.artifact_uri
    files = sorted(body["files"], key=lambda f: f["path"])
    assert files == [{"path": "sub", "is_dir": True}, {"path": "top.txt", "is_dir": False, "file_size": 1}]
    body = api.ok(api.get("/api/2.0/mlflow/artifacts/list", params={"run_id": run_id, "path": "sub"}))
    assert body["files"] == [{"path": "sub/in.txt", "is_dir": False, "file_size": 2}]


@pytest.mark.large
def test_100mb_artifact_round_trip(client, run_id, tmp_path):
    big = tmp_path / "big.bin"
    block = os.urandom(1 << 20)
    with open(big, "wb") as f:
        for i in range(100):
            f.write(hashlib.sha256(block + bytes([i])).digest() * 32 + block[1024:])
    assert big.stat().st_size == 100 * (1 << 20)
    digest = sha256_file(big)
    client.log_artifact(run_id, str(big), artifact_path="large")
    listing = client.list_artifacts(run_id, "large")
    assert [(a.path, a.file_size) for a in listing] == [("large/big.bin", 100 * (1 << 20))]
    big.unlink()
    dst = tmp_path / "dl"
    dst.mkdir()
    local = Path(client.download_artifacts(run_id, "large/big.bin", str(dst)))
    assert local.stat().st_size == 100 * (1 << 20)
    assert sha256_file(local) == digest


# --------------------------------------------------------------------------------------------
# Multipart upload


def test_multipart_upload_through_client(client, run_id, tmp_path, monkeypatch, http_log, server):
    """The client's own multipart path: MLFLOW_ENABLE_PROXY_MULTIPART_UPLOAD with a small minimum
    size and chunk size. Against a server without multipart support the client falls back to a
    plain PUT after a 501 from mpu/create."""
    monkeypatch.setenv("MLFLOW_ENABLE_PROXY_MULTIPART_UPLOAD", "true")
    monkeypatch.setenv("MLFLOW_MULTIPART_UPLOAD_MINIMUM_FILE_SIZE", str(1 << 20))
    monkeypatch.setenv("MLFLOW_MULTIPART_UPLOAD_CHUNK_SIZE", str(1 << 20))
    f = tmp_path / "parts.bin"
    f.write_bytes(os.urandom(3 * (1 << 20) + 12345))  # 4 parts, the last one short
    digest = sha256_file(f)
    client.log_artifact(run_id, str(f), artifact_path="mpu")

    calls = [(m, url.split("?")[0], st) for m, url, st in http_log()]
    creates = [c for c in calls if "/mlflow-artifacts/mpu/create/" in c[1]]
    assert creates, calls
    if not server.is_mlflow:
        assert all(st == 200 for _, _, st in creates), creates
        assert any("/mlflow-artifacts/mpu/complete/" in c[1] and c[2] == 200 for c in calls), calls
        part_puts = [c for c in calls if c[0] == "PUT" and "/mpu/" in c[1]]
        assert len(part_puts) == 4, calls
        assert not any(c[0] == "PUT" and c[1].endswith("/mpu/parts.bin") for c in calls), calls

    listing = client.list_artifacts(run_id, "mpu")
    assert [(a.path, a.file_size) for a in listing] == [("mpu/parts.bin", f.stat().st_size)]
    assert [a.path for a in client.list_artifacts(run_id)] == ["mpu"]
    dst = tmp_path / "dl"
    dst.mkdir()
    assert sha256_file(Path(client.download_artifacts(run_id, "mpu/parts.bin", str(dst)))) == digest


def _mpu_create(api, dir_path, local_name, num_parts):
    return api.post(f"/api/2.0/mlflow-artifacts/mpu/create/{dir_path}",
                    {"path": f"/some/local/dir/{local_name}", "num_parts": num_parts})


def test_multipart_upload_raw_rest(client, run_id, api, server):
    base = proxy_path(client.get_run(run_id).info.artifact_uri)
    r = _mpu_create(api, f"{base}/raw-mpu", "joined.bin", 3)
    if server.is_mlflow:
        # The reference server's local artifact store has no multipart support.
        body = u.assert_error(r, 501, "NOT_IMPLEMENTED")
        assert body["message"].startswith(MPU_UNSUPPORTED)
        pytest.skip("reference server: multipart upload unsupported on a local artifact store")
    body = api.ok(r)
    upload_id = body["upload_id"]
    creds = body["credentials"]
    assert isinstance(upload_id, str) and upload_id
    assert [c["part_number"] for c in creds] == [1, 2, 3]
    assert all(c["url"].startswith("http") for c in creds)

    parts_data = [os.urandom(1000 + i) for i in range(3)]
    parts = []
    # Upload out of order, as the client's thread pool may.
    for idx in (2, 0, 1):
        c = creds[idx]
        resp = api.s.put(c["url"], data=parts_data[idx], headers=c.get("headers") or {}, timeout=60)
        assert resp.status_code == 200, resp.text
        parts.append({"part_number": c["part_number"], "etag": resp.headers.get("ETag", ""), "url": c["url"]})
    parts.sort(key=lambda p: p["part_number"])
    # Not visible before completion.
    u.assert_error(api.get(f"/api/2.0/mlflow-artifacts/artifacts/{base}/raw-mpu/joined.bin"), 404,
                   "RESOURCE_DOES_NOT_EXIST")
    api.ok(api.post(f"/api/2.0/mlflow-artifacts/mpu/complete/{base}/raw-mpu",
                    {"path": "/some/local/dir/joined.bin", "upload_id": upload_id, "parts": parts}))
    got = api.get(f"/api/2.0/mlflow-artifacts/artifacts/{base}/raw-mpu/joined.bin")
    assert got.status_code == 200
    assert got.content == b"".join(parts_data)
    assert [a.path for a in client.list_artifacts(run_id, "raw-mpu")] == ["raw-mpu/joined.bin"]

    # Abort: the parts are dropped and no object appears.
    r = api.ok(_mpu_create(api, f"{base}/raw-mpu", "aborted.bin", 2))
    c = r["credentials"][0]
    assert api.s.put(c["url"], data=b"partial", headers=c.get("headers") or {}, timeout=60).status_code == 200
    api.ok(api.post(f"/api/2.0/mlflow-artifacts/mpu/abort/{base}/raw-mpu",
                    {"path": "/some/local/dir/aborted.bin", "upload_id": r["upload_id"]}))
    u.assert_error(api.get(f"/api/2.0/mlflow-artifacts/artifacts/{base}/raw-mpu/aborted.bin"), 404,
                   "RESOURCE_DOES_NOT_EXIST")
    # Completing an aborted upload fails cleanly (4xx, never 5xx).
    r2 = api.post(f"/api/2.0/mlflow-artifacts/mpu/complete/{base}/raw-mpu",
                  {"path": "/some/local/dir/aborted.bin", "upload_id": r["upload_id"],
                   "parts": [{"part_number": 1, "etag": "x"}]})
    assert 400 <= r2.status_code < 500, r2.text
    assert [a.path for a in client.list_artifacts(run_id, "raw-mpu")] == ["raw-mpu/joined.bin"]
    # Staging data never shows at the root of the artifact store.
    body = api.ok(api.get("/api/2.0/mlflow-artifacts/artifacts"))
    assert all(not f["path"].startswith("_") for f in body.get("files", [])), body
