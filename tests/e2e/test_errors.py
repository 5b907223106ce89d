"""Client errors over raw REST: right HTTP status, a JSON body with `error_code` and `message`,
nothing written, never a 5xx. Plus wire details the mlflow client and UI rely on."""

from __future__ import annotations

import http.client
import json
import math
import os
from pathlib import Path

import pytest

import e2e_util as u

INVALID_OR_MALFORMED = ("INVALID_PARAMETER_VALUE", "MALFORMED_REQUEST", "BAD_REQUEST")


@pytest.fixture
def exp_id(api, uniq):
    return api.ok(api.post("/api/2.0/mlflow/experiments/create", {"name": f"err-{uniq}"}))["experiment_id"]


@pytest.fixture
def run_id(api, exp_id):
    return api.ok(api.post("/api/2.0/mlflow/runs/create", {"experiment_id": exp_id}))["run"]["info"]["run_id"]


def get_run(api, run_id):
    return api.ok(api.get("/api/2.0/mlflow/runs/get", params={"run_id": run_id}))["run"]


def metric_keys(api, run_id):
    return {m["key"] for m in get_run(api, run_id)["data"].get("metrics", [])}


def params_of(api, run_id):
    return {p["key"]: p["value"] for p in get_run(api, run_id)["data"].get("params", [])}


def raw_request(server, method, path, body=b"", headers=None):
    """http.client sends the path exactly as given (no dot-segment normalisation)."""
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        data = resp.read()
        return resp.status, data
    finally:
        conn.close()


def assert_json_error(status, data, want_status, codes):
    assert status == want_status, (status, data[:1000])
    body = json.loads(data)
    if isinstance(codes, str):
        codes = (codes,)
    assert body.get("error_code") in codes, body
    assert isinstance(body.get("message"), str) and body["message"]
    return body


# --------------------------------------------------------------------------------------------
# Malformed bodies


def test_malformed_json_body_experiment_create(api, uniq):
    name = f"malformed-{uniq}"
    r = api.raw_post("/api/2.0/mlflow/experiments/create", ('{"name": "%s"' % name).encode())
    u.assert_error(r, 400, INVALID_OR_MALFORMED)
    assert api.get("/api/2.0/mlflow/experiments/get-by-name", params={"experiment_name": name}).status_code == 404


@pytest.mark.kaizen_only  # the reference server answers these with an HTML 500
def test_malformed_json_bodies_elsewhere(api, run_id, uniq):
    bodies = [
        b'{"run_id": "%s", "metrics": [{"key": "zz", "value": 1, "timestamp": 1' % run_id.encode(),
        b"[1, 2, 3]",
        b'"just a string"',
        b"\xff\xfe not utf-8",
        b'{"run_id": "%s", "metrics": [{"key": "zz", "value": 1, "timestamp": 1}]} trailing' % run_id.encode(),
    ]
    for body in bodies:
        r = api.raw_post("/api/2.0/mlflow/runs/log-batch", body)
        u.assert_error(r, 400, INVALID_OR_MALFORMED)
    assert "zz" not in metric_keys(api, run_id)
    r = api.raw_post("/api/2.0/mlflow/registered-models/create", b'{"name": ')
    u.assert_error(r, 400, INVALID_OR_MALFORMED)


# --------------------------------------------------------------------------------------------
# Unknown resources


def test_unknown_run_is_404(api):
    missing = "0123456789abcdef0123456789abcdef"
    u.assert_error(api.get("/api/2.0/mlflow/runs/get", params={"run_id": missing}), 404, "RESOURCE_DOES_NOT_EXIST")
    r = api.post("/api/2.0/mlflow/runs/log-metric", {"run_id": missing, "key": "m", "value": 1, "timestamp": 1})
    u.assert_error(r, 404, "RESOURCE_DOES_NOT_EXIST")
    r = api.post("/api/2.0/mlflow/runs/set-tag", {"run_id": missing, "key": "k", "value": "v"})
    u.assert_error(r, 404, "RESOURCE_DOES_NOT_EXIST")
    r = api.post("/api/2.0/mlflow/runs/update", {"run_id": missing, "status": "FINISHED"})
    u.assert_error(r, 404, "RESOURCE_DOES_NOT_EXIST")
    if u.IS_KAIZEN:  # the reference server answers 200 with an empty history
        r = api.get("/api/2.0/mlflow/metrics/get-history", params={"run_id": missing, "metric_key": "m"})
        u.assert_error(r, 404, "RESOURCE_DOES_NOT_EXIST")


def test_unknown_experiment_is_404(api):
    u.assert_error(api.get("/api/2.0/mlflow/experiments/get", params={"experiment_id": "987654321"}), 404,
                   "RESOURCE_DOES_NOT_EXIST")
    u.assert_error(api.get("/api/2.0/mlflow/experiments/get-by-name",
                           params={"experiment_name": "no such experiment at all"}), 404, "RESOURCE_DOES_NOT_EXIST")
    u.assert_error(api.post("/api/2.0/mlflow/runs/create", {"experiment_id": "987654321"}), 404,
                   "RESOURCE_DOES_NOT_EXIST")
    u.assert_error(api.post("/api/2.0/mlflow/experiments/update",
                            {"experiment_id": "987654321", "new_name": "x"}), 404, "RESOURCE_DOES_NOT_EXIST")


def test_unknown_registered_model_is_404(api, run_id):
    u.assert_error(api.get("/api/2.0/mlflow/registered-models/get", params={"name": "no-such-model"}), 404,
                   "RESOURCE_DOES_NOT_EXIST")
    u.assert_error(api.get("/api/2.0/mlflow/model-versions/get", params={"name": "no-such-model", "version": "1"}),
                   404, "RESOURCE_DOES_NOT_EXIST")
    artifact_uri = get_run(api, run_id)["info"]["artifact_uri"]
    r = api.post("/api/2.0/mlflow/model-versions/create",
                 {"name": "no-such-model", "source": f"{artifact_uri}/model", "run_id": run_id})
    u.assert_error(r, 404, "RESOURCE_DOES_NOT_EXIST")
    r = api.post("/api/2.0/mlflow/registered-models/rename", {"name": "no-such-model", "new_name": "x"})
    u.assert_error(r, 404, "RESOURCE_DOES_NOT_EXIST")


def test_unknown_endpoint_is_404(api):
    r = api.get("/api/2.0/mlflow/no-such-endpoint")
    assert r.status_code == 404
    if u.IS_KAIZEN:
        u.assert_error(r, 404, ("ENDPOINT_NOT_FOUND", "RESOURCE_DOES_NOT_EXIST"))


def test_missing_required_parameter_is_400(api):
    u.assert_error(api.get("/api/2.0/mlflow/runs/get"), 400, "INVALID_PARAMETER_VALUE")
    u.assert_error(api.post("/api/2.0/mlflow/experiments/create", {}), 400, "INVALID_PARAMETER_VALUE")


# --------------------------------------------------------------------------------------------
# Conflicts


def test_existing_experiment_is_400_already_exists(api, uniq):
    name = f"dup-exp-{uniq}"
    api.ok(api.post("/api/2.0/mlflow/experiments/create", {"name": name}))
    body = u.assert_error(api.post("/api/2.0/mlflow/experiments/create", {"name": name}), 400,
                          "RESOURCE_ALREADY_EXISTS")
    if u.IS_KAIZEN:
        assert "sqlite" not in body["message"].lower() and "INSERT" not in body["message"]
    found = api.ok(api.post("/api/2.0/mlflow/experiments/search",
                            {"filter": f"name = '{name}'", "max_results": 10, "view_type": "ALL"}))
    assert len(found["experiments"]) == 1


def test_existing_registered_model_is_400_already_exists(api, uniq):
    name = f"dup-rm-{uniq}"
    api.ok(api.post("/api/2.0/mlflow/registered-models/create", {"name": name, "description": "first"}))
    u.assert_error(api.post("/api/2.0/mlflow/registered-models/create", {"name": name, "description": "second"}),
                   400, "RESOURCE_ALREADY_EXISTS")
    got = api.ok(api.get("/api/2.0/mlflow/registered-models/get", params={"name": name}))
    assert got["registered_model"]["description"] == "first"


def test_changing_a_param_is_400(api, run_id):
    api.ok(api.post("/api/2.0/mlflow/runs/log-parameter", {"run_id": run_id, "key": "p", "value": "1"}))
    api.ok(api.post("/api/2.0/mlflow/runs/log-parameter", {"run_id": run_id, "key": "p", "value": "1"}))
    u.assert_error(api.post("/api/2.0/mlflow/runs/log-parameter", {"run_id": run_id, "key": "p", "value": "2"}),
                   400, "INVALID_PARAMETER_VALUE")
    # A batch that changes a param is refused whole: its other entries are not written.
    r = api.post("/api/2.0/mlflow/runs/log-batch", {
        "run_id": run_id,
        "params": [{"key": "p", "value": "3"}],
        "metrics": [{"key": "batch_metric", "value": 1, "timestamp": 1, "step": 0}],
        "tags": [{"key": "batch_tag", "value": "x"}]})
    u.assert_error(r, 400, "INVALID_PARAMETER_VALUE")
    assert params_of(api, run_id) == {"p": "1"}
    if u.IS_KAIZEN:  # the reference server writes metrics before checking params
        assert "batch_metric" not in metric_keys(api, run_id)
        assert "batch_tag" not in {t["key"] for t in get_run(api, run_id)["data"].get("tags", [])}


# --------------------------------------------------------------------------------------------
# Wrong types and limits


@pytest.mark.parametrize("patch", [
    {"value": "abc"},
    {"step": "x"},
    {"timestamp": "yesterday"},
    pytest.param({"value": {"nested": 1}}, marks=pytest.mark.kaizen_only),  # reference: HTML 500
    pytest.param({"value": [1, 2]}, marks=pytest.mark.kaizen_only),  # reference: HTML 500
])
def test_log_metric_wrong_types_are_400(api, run_id, patch):
    body = {"run_id": run_id, "key": "typed", "value": 1.0, "timestamp": 1000, "step": 0}
    body.update(patch)
    u.assert_error(api.post("/api/2.0/mlflow/runs/log-metric", body), 400, INVALID_OR_MALFORMED)
    assert "typed" not in metric_keys(api, run_id)


def test_log_batch_wrong_types_are_400(api, run_id):
    r = api.post("/api/2.0/mlflow/runs/log-batch", {"run_id": run_id, "metrics": "not a list"})
    u.assert_error(r, 400, INVALID_OR_MALFORMED)
    if u.IS_MLFLOW:
        return  # the reference server stores a metric value "abc" in a batch as 0.0
    r = api.post("/api/2.0/mlflow/runs/log-batch", {
        "run_id": run_id, "metrics": [{"key": "ok", "value": 1, "timestamp": 1, "step": 0},
                                      {"key": "bad", "value": "abc", "timestamp": 1, "step": 0}]})
    u.assert_error(r, 400, INVALID_OR_MALFORMED)
    assert metric_keys(api, run_id) == set()


def test_param_value_over_6000_chars_is_400(api, run_id):
    r = api.post("/api/2.0/mlflow/runs/log-parameter", {"run_id": run_id, "key": "long", "value": "x" * 6001})
    u.assert_error(r, 400, "INVALID_PARAMETER_VALUE")
    r = api.post("/api/2.0/mlflow/runs/log-batch", {"run_id": run_id, "params": [{"key": "long2", "value": "y" * 6001}]})
    u.assert_error(r, 400, "INVALID_PARAMETER_VALUE")
    assert params_of(api, run_id) == {}
    api.ok(api.post("/api/2.0/mlflow/runs/log-parameter", {"run_id": run_id, "key": "max", "value": "z" * 6000}))
    assert params_of(api, run_id) == {"max": "z" * 6000}


def test_key_over_250_chars_is_400(api, run_id):
    r = api.post("/api/2.0/mlflow/runs/set-tag", {"run_id": run_id, "key": "k" * 251, "value": "v"})
    u.assert_error(r, 400, "INVALID_PARAMETER_VALUE")
    r = api.post("/api/2.0/mlflow/runs/log-metric", {"run_id": run_id, "key": "m" * 251, "value": 1, "timestamp": 1})
    u.assert_error(r, 400, "INVALID_PARAMETER_VALUE")


def test_search_argument_errors_are_400(api, exp_id):
    for body in ({"experiment_ids": [exp_id], "filter": "metrics.acc >>> 1"},
                 {"experiment_ids": [exp_id], "page_token": "garbage!!"},
                 {"experiment_ids": [exp_id], "max_results": -1},
                 {"experiment_ids": [exp_id], "max_results": 100000},
                 {"experiment_ids": [exp_id], "order_by": ["nonsense.key DESC"]}):
        u.assert_error(api.post("/api/2.0/mlflow/runs/search", body), 400, INVALID_OR_MALFORMED)


def test_log_batch_nan_and_infinity_as_strings(api, run_id):
    r = api.post("/api/2.0/mlflow/runs/log-batch", {"run_id": run_id, "metrics": [
        {"key": "nan", "value": "NaN", "timestamp": 1, "step": 0},
        {"key": "pinf", "value": "Infinity", "timestamp": 1, "step": 0},
        {"key": "ninf", "value": "-Infinity", "timestamp": 1, "step": 0}]})
    api.ok(r)
    # Python's json parses NaN/Infinity tokens and strings alike.
    metrics = {m["key"]: m["value"] for m in get_run(api, run_id)["data"]["metrics"]}
    assert math.isnan(float(metrics["nan"]))
    if u.IS_KAIZEN:
        assert float(metrics["pinf"]) == math.inf and float(metrics["ninf"]) == -math.inf
    else:
        assert float(metrics["pinf"]) > 1e308 and float(metrics["ninf"]) < -1e308


# --------------------------------------------------------------------------------------------
# Artifact paths


TRAVERSALS = [
    ("PUT", "/api/2.0/mlflow-artifacts/artifacts/a/../../{name}"),
    ("PUT", "/api/2.0/mlflow-artifacts/artifacts/a/../../../../../../../../tmp/{name}"),
    ("PUT", "/api/2.0/mlflow-artifacts/artifacts/a/%2E%2E/%2E%2E/{name}"),
    ("PUT", "/api/2.0/mlflow-artifacts/artifacts/a/..%2F..%2F{name}"),
    ("PUT", "/api/2.0/mlflow-artifacts/artifacts//tmp/{name}"),
    ("PUT", "/api/2.0/mlflow-artifacts/artifacts/%2Ftmp%2F{name}"),
    ("PUT", "/api/2.0/mlflow-artifacts/artifacts/.."),
    ("GET", "/api/2.0/mlflow-artifacts/artifacts/a/../../kaizen.db"),
    ("GET", "/api/2.0/mlflow-artifacts/artifacts/a/..%2F..%2Fkaizen.db"),
    ("GET", "/api/2.0/mlflow-artifacts/artifacts/%2Fetc%2Fpasswd"),
    ("GET", "/api/2.0/mlflow-artifacts/artifacts?path=..%2F.."),
    ("GET", "/api/2.0/mlflow-artifacts/artifacts?path=%2Fetc"),
    ("GET", "/api/2.0/mlflow-artifacts/artifacts?path=a%2F..%2F..%2F.."),
    ("DELETE", "/api/2.0/mlflow-artifacts/artifacts/a/..%2F..%2F{name}"),
]


def _files_named(roots, name):
    hits = []
    for root in roots:
        root = Path(root)
        if root.is_dir():
            hits += [str(p) for p in root.rglob(f"*{name}*")]
    return hits


@pytest.mark.parametrize("method, path", TRAVERSALS)
def test_artifact_path_traversal_is_400(server, method, path, uniq):
    name = f"evil-{uniq}.txt"
    status, data = raw_request(server, method, path.format(name=name), body=b"pwned" if method == "PUT" else b"")
    assert_json_error(status, data, 400, INVALID_OR_MALFORMED)
    assert b"root:" not in data
    assert not _files_named([server.base_dir], name)
    for p in (Path("/tmp") / name, Path("/etc") / name, server.base_dir.parent / name,
              server.artifacts_dir.parent / name):
        assert not p.exists(), p


def test_mpu_path_traversal_is_400(server, uniq):
    name = f"evil-mpu-{uniq}.bin"
    body = json.dumps({"path": f"/local/{name}", "num_parts": 1}).encode()
    status, data = raw_request(server, "POST", "/api/2.0/mlflow-artifacts/mpu/create/a/..%2F..%2F..",
                               body=body, headers={"Content-Type": "application/json"})
    assert_json_error(status, data, 400, INVALID_OR_MALFORMED)


@pytest.mark.kaizen_only
def test_mpu_file_name_cannot_escape(server, uniq):
    """The file name in an mpu request body (the client's local path) must not escape the target
    directory: a name that is not a file name is refused, and a path only contributes its base
    name."""
    for local in ("..", "/", "", "."):
        body = json.dumps({"path": local, "num_parts": 1}).encode()
        status, data = raw_request(server, "POST", "/api/2.0/mlflow-artifacts/mpu/create/dir",
                                   body=body, headers={"Content-Type": "application/json"})
        assert 400 <= status < 500, (local, status, data)
    api = u.Api(server.url)
    name = f"evil-{uniq}.bin"
    r = api.post("/api/2.0/mlflow-artifacts/mpu/create/mpu-esc", {"path": f"../../{name}", "num_parts": 1})
    if r.status_code != 200:
        u.assert_error(r, 400, INVALID_OR_MALFORMED)
        return
    cred = r.json()["credentials"][0]
    put = api.s.put(cred["url"], data=b"payload", headers=cred.get("headers") or {}, timeout=60)
    assert put.status_code == 200, put.text
    api.ok(api.post("/api/2.0/mlflow-artifacts/mpu/complete/mpu-esc",
                    {"path": f"../../{name}", "upload_id": r.json()["upload_id"],
                     "parts": [{"part_number": 1, "etag": put.headers.get("ETag", "")}]}))
    assert api.get(f"/api/2.0/mlflow-artifacts/artifacts/mpu-esc/{name}").content == b"payload"
    hits = _files_named([server.base_dir], name)
    assert hits == [str(server.artifacts_dir / "mpu-esc" / name)], hits
    for p in (Path("/tmp") / name, server.base_dir.parent / name, server.artifacts_dir.parent / name):
        assert not p.exists(), p


# --------------------------------------------------------------------------------------------
# Request size limits (kaizen only: `kaizen server --max-body-size BYTES`)


def _oversized_log_batch(run_id: str, total: int):
    """A syntactically valid log-batch body of `total` bytes, produced lazily in 1 MiB chunks."""
    head = ('{"run_id": "%s", "tags": [{"key": "big", "value": "' % run_id).encode()
    tail = b'"}]}'
    fill = total - len(head) - len(tail)

    def chunks():
        yield head
        left = fill
        block = b"x" * (1 << 20)
        while left > 0:
            n = min(left, len(block))
            yield block[:n]
            left -= n
        yield tail

    return chunks()


@pytest.mark.kaizen_only
def test_body_over_configured_limit_is_413(make_server):
    srv = make_server("sqlite", extra_args=["--max-body-size", str(1 << 20)])
    api = u.Api(srv.url)
    exp = api.ok(api.post("/api/2.0/mlflow/experiments/create", {"name": "limit"}))["experiment_id"]
    rid = api.ok(api.post("/api/2.0/mlflow/runs/create", {"experiment_id": exp}))["run"]["info"]["run_id"]
    total = 2 << 20
    status, headers, data = u.raw_http_exchange(srv.port, "POST", "/api/2.0/mlflow/runs/log-batch",
                                                {"Content-Type": "application/json"},
                                                _oversized_log_batch(rid, total), total)
    assert status == 413, (status, data[:500])
    body = json.loads(data)
    assert body.get("error_code") == "REQUEST_LIMIT_EXCEEDED", body
    assert isinstance(body.get("message"), str) and body["message"]
    # Nothing was written, and the server is fine.
    assert "big" not in {t["key"] for t in get_run(api, rid)["data"].get("tags", [])}
    assert api.get("/health").status_code == 200
    # Just under the limit is accepted (the tag value limit still applies, so use metrics).
    metrics = [{"key": f"m{i}", "value": i, "timestamp": 1, "step": 0} for i in range(900)]
    body = json.dumps({"run_id": rid, "metrics": metrics}).encode()
    assert len(body) < (1 << 20)
    api.ok(api.raw_post("/api/2.0/mlflow/runs/log-batch", body))


@pytest.mark.kaizen_only
def test_600mb_body_refused_without_5xx(server, api, run_id):
    total = 600 * (1 << 20)
    status, headers, data = u.raw_http_exchange(server.port, "POST", "/api/2.0/mlflow/runs/log-batch",
                                                {"Content-Type": "application/json"},
                                                _oversized_log_batch(run_id, total), total)
    assert status == 413, (status, data[:500])
    body = json.loads(data)
    assert body.get("error_code") and body.get("message")
    assert api.get("/health").status_code == 200
    assert "big" not in {t["key"] for t in get_run(api, run_id)["data"].get("tags", [])}


# --------------------------------------------------------------------------------------------
# Wire details


def test_get_query_string_plus_for_spaces(server, api, uniq):
    name = f"my experiment {uniq}"
    exp = api.ok(api.post("/api/2.0/mlflow/experiments/create", {"name": name}))["experiment_id"]
    path = "/api/2.0/mlflow/experiments/get-by-name?experiment_name=" + name.replace(" ", "+")
    status, data = raw_request(server, "GET", path)
    assert status == 200, data
    assert json.loads(data)["experiment"]["experiment_id"] == exp
    status, data = raw_request(server, "GET", path.replace("+", "%20"))
    assert status == 200 and json.loads(data)["experiment"]["experiment_id"] == exp
    # Repeated query parameters and + in filters: GET experiments/search.
    r = api.s.get(api.url("/api/2.0/mlflow/experiments/search?max_results=5&filter=name+%3D+%27"
                          + name.replace(" ", "+") + "%27"), timeout=60)
    assert [e["experiment_id"] for e in api.ok(r)["experiments"]] == [exp]


def test_delete_with_json_body(api, uniq):
    name = f"deltag-{uniq}"
    api.ok(api.post("/api/2.0/mlflow/registered-models/create",
                    {"name": name, "tags": [{"key": "a", "value": "1"}, {"key": "b", "value": "2"}]}))
    api.ok(api.delete("/api/2.0/mlflow/registered-models/delete-tag", {"name": name, "key": "a"}))
    tags = api.ok(api.get("/api/2.0/mlflow/registered-models/get", params={"name": name}))["registered_model"]["tags"]
    assert tags == [{"key": "b", "value": "2"}]


def test_unknown_fields_are_ignored(api, exp_id):
    r = api.post("/api/2.0/mlflow/runs/create", {"experiment_id": exp_id, "future_field": {"x": [1]},
                                                 "another": "y", "run_name": "unknowns"})
    rid = api.ok(r)["run"]["info"]["run_id"]
    api.ok(api.post("/api/2.0/mlflow/runs/set-tag", {"run_id": rid, "key": "k", "value": "v", "bogus": 5}))
    r = api.get("/api/2.0/mlflow/runs/get", params={"run_id": rid, "unknown_param": "1"})
    run = api.ok(r)["run"]
    assert run["info"]["run_name"] == "unknowns"
    assert {"key": "k", "value": "v"} in run["data"]["tags"]


def test_enums_as_names_and_int64_as_strings(api, exp_id):
    rid = api.ok(api.post("/api/2.0/mlflow/runs/create",
                          {"experiment_id": exp_id, "start_time": "1700000000000"}))["run"]["info"]["run_id"]
    info = api.ok(api.post("/api/2.0/mlflow/runs/update", {"run_id": rid, "status": "KILLED",
                                                            "end_time": 1700000001000}))["run_info"]
    assert info["status"] == "KILLED"
    run = get_run(api, rid)
    assert run["info"]["status"] == "KILLED"
    assert int(run["info"]["start_time"]) == 1700000000000
    api.ok(api.post("/api/2.0/mlflow/runs/log-metric",
                    {"run_id": rid, "key": "s", "value": 1.5, "timestamp": "1234", "step": "3"}))
    hist = api.ok(api.get("/api/2.0/mlflow/metrics/get-history", params={"run_id": rid, "metric_key": "s"}))
    assert [(float(m["value"]), int(m["timestamp"]), int(m["step"])) for m in hist["metrics"]] == [(1.5, 1234, 3)]

    api.ok(api.post("/api/2.0/mlflow/runs/delete", {"run_id": rid}))
    found = api.ok(api.post("/api/2.0/mlflow/runs/search",
                            {"experiment_ids": [exp_id], "run_view_type": "DELETED_ONLY", "max_results": "5"}))
    assert [r["info"]["run_id"] for r in found["runs"]] == [rid]
    assert found["runs"][0]["info"]["lifecycle_stage"] == "deleted"
    found = api.ok(api.post("/api/2.0/mlflow/experiments/search", {"view_type": "ACTIVE_ONLY", "max_results": 1000}))
    assert any(e["experiment_id"] == exp_id for e in found["experiments"])
    found = api.ok(api.post("/api/2.0/mlflow/experiments/search", {"view_type": "DELETED_ONLY", "max_results": 1000}))
    assert all(e["experiment_id"] != exp_id for e in found.get("experiments", []))


def test_response_shapes(api, exp_id):
    """Field names and value types the client parses."""
    run = api.ok(api.post("/api/2.0/mlflow/runs/create", {"experiment_id": exp_id, "run_name": "shape",
                                                          "tags": [{"key": "t", "value": "1"}]}))["run"]
    info = run["info"]
    assert info["run_id"] == info["run_uuid"]
    assert info["experiment_id"] == exp_id and isinstance(info["experiment_id"], str)
    assert info["status"] == "RUNNING"
    assert info["lifecycle_stage"] == "active"
    assert info["run_name"] == "shape"
    assert isinstance(info["start_time"], int)
    assert {"key": "t", "value": "1"} in run["data"]["tags"]
    exp = api.ok(api.get("/api/2.0/mlflow/experiments/get", params={"experiment_id": exp_id}))["experiment"]
    assert exp["experiment_id"] == exp_id
    assert exp["lifecycle_stage"] == "active"
    assert isinstance(exp["creation_time"], int) and isinstance(exp["last_update_time"], int)
    empty = api.ok(api.post("/api/2.0/mlflow/runs/search", {"experiment_ids": [exp_id],
                                                            "filter": "tags.t = 'nope'"}))
    assert empty.get("runs", []) == [] and not empty.get("next_page_token")


def test_no_5xx_on_odd_but_valid_requests(api, exp_id, run_id):
    """Odd inputs get a 2xx or 4xx answer, never 5xx (the watchdog fails the test on a 5xx)."""
    calls = [
        ("post", "/api/2.0/mlflow/runs/update", {"run_id": run_id, "status": "BOGUS"}),
        ("post", "/api/2.0/mlflow/runs/search", {"experiment_ids": []}),
        ("post", "/api/2.0/mlflow/runs/search", {"experiment_ids": ["not-a-number"]}),
        ("get", "/api/2.0/mlflow/experiments/get", {"experiment_id": "abc"}),
        ("post", "/api/2.0/mlflow/runs/log-batch", {"run_id": run_id}),
        ("post", "/api/2.0/mlflow/runs/log-batch", {"run_id": run_id, "metrics": [], "params": [], "tags": []}),
        ("post", "/api/2.0/mlflow/runs/set-tag", {"run_id": run_id, "key": "", "value": "v"}),
        ("post", "/api/2.0/mlflow/runs/log-metric", {"run_id": run_id, "key": "k", "value": 1e308 * 10,
                                                     "timestamp": -1}),
        ("get", "/api/2.0/mlflow/metrics/get-history", {"run_id": run_id, "metric_key": "nope"}),
        ("get", "/api/2.0/mlflow/registered-models/search", {"max_results": "0"}),
        ("get", "/api/2.0/mlflow/model-versions/search", {"filter": "name = 'x' AND"}),
        ("post", "/api/2.0/mlflow/experiments/create", {"name": ""}),
        ("post", "/api/2.0/mlflow/experiments/create", {"name": 12345}),
    ]
    for method, path, body in calls:
        if method == "get":
            r = api.get(path, params=body)
        else:
            r = api.raw_post(path, json.dumps(body, allow_nan=True).encode())
        assert r.status_code < 500, (path, body, r.status_code, r.text[:500])
        if r.status_code >= 400:
            j = r.json()
            assert j.get("error_code") and isinstance(j.get("message"), str), (path, j)
