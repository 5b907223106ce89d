"""Crash durability: every log-batch answered 200 survives a `kill -9` of the server, and the store
opens cleanly afterwards (kaizen only)."""

from __future__ import annotations

import threading
import time

import pytest
import requests

import e2e_util as u

pytestmark = pytest.mark.kaizen_only

CLIENTS = 8
METRICS_PER_BATCH = 10
LOAD_SECONDS = 3.0
MAX_BATCHES_PER_CLIENT = 20_000  # a bound, never reached in practice
HARD_DEADLINE_S = 60.0


def _batch(run_id: str, n: int) -> dict:
    return {
        "run_id": run_id,
        "metrics": [
            {"key": f"b{n:06d}_k{j}", "value": n * 100 + j + 0.5, "timestamp": 1_700_000_000_000 + n, "step": n}
            for j in range(METRICS_PER_BATCH)
        ],
    }


@pytest.mark.parametrize("backend", u.backends())
def test_acknowledged_batches_survive_kill9(make_server, backend):
    srv = make_server(backend)
    api = u.Api(srv.url)
    exp_id = api.ok(api.post("/api/2.0/mlflow/experiments/create", {"name": "durability"}))["experiment_id"]
    runs = [api.ok(api.post("/api/2.0/mlflow/runs/create", {"experiment_id": exp_id, "run_name": f"client-{i}"}))
            ["run"]["info"]["run_id"] for i in range(CLIENTS)]

    acked: list[list[int]] = [[] for _ in range(CLIENTS)]
    bad: list[str] = []
    stop = threading.Event()
    url = srv.url + "/api/2.0/mlflow/runs/log-batch"

    def worker(i: int) -> None:
        s = requests.Session()
        for n in range(MAX_BATCHES_PER_CLIENT):
            if stop.is_set():
                return
            try:
                r = s.post(url, json=_batch(runs[i], n), timeout=30)
            except requests.RequestException:
                return  # the server is gone: this batch is not acknowledged
            if r.status_code == 200:
                acked[i].append(n)
            else:
                bad.append(f"client {i} batch {n}: HTTP {r.status_code} {r.text[:300]}")
                return

    threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(CLIENTS)]
    for t in threads:
        t.start()
    started = time.monotonic()
    # Load for ~3 s (longer only if nothing was acknowledged yet, up to a hard bound).
    while True:
        time.sleep(0.1)
        elapsed = time.monotonic() - started
        total = sum(len(a) for a in acked)
        if elapsed >= LOAD_SECONDS and total > 0:
            break
        if elapsed >= HARD_DEADLINE_S or bad:
            break
    srv.kill9()
    stop.set()
    for t in threads:
        t.join(timeout=60)
    assert not any(t.is_alive() for t in threads), "client threads did not stop"
    assert not bad, bad
    total = sum(len(a) for a in acked)
    assert total > 0, "no batch was acknowledged before the kill"
    print(f"{backend}: {total} batches acknowledged by {CLIENTS} clients before kill -9")

    # Restart on the same store and artifact directory.
    srv2 = make_server(backend, base_dir=srv.base_dir, store_uri=srv.store_uri)
    api2 = u.Api(srv2.url)
    assert api2.get("/health").status_code == 200

    missing = []
    for i, rid in enumerate(runs):
        run = api2.ok(api2.get("/api/2.0/mlflow/runs/get", params={"run_id": rid}))["run"]
        metrics = {m["key"]: float(m["value"]) for m in run["data"].get("metrics", [])}
        for n in acked[i]:
            for j in range(METRICS_PER_BATCH):
                key = f"b{n:06d}_k{j}"
                if metrics.get(key) != n * 100 + j + 0.5:
                    missing.append((i, n, key, metrics.get(key)))
        # Batches are atomic: any batch present at all is present whole.
        present = {}
        for key in metrics:
            b = key.split("_", 1)[0]
            present[b] = present.get(b, 0) + 1
        partial = {b: c for b, c in present.items() if c != METRICS_PER_BATCH}
        assert not partial, f"client {i}: partially written batches {partial}"
    assert not missing, f"{len(missing)} acknowledged metrics lost, e.g. {missing[:10]} (acked {total} batches)"

    # Spot-check the history endpoint on the last acknowledged batch of each client.
    for i, rid in enumerate(runs):
        if not acked[i]:
            continue
        n = acked[i][-1]
        hist = api2.ok(api2.get("/api/2.0/mlflow/metrics/get-history",
                                params={"run_id": rid, "metric_key": f"b{n:06d}_k0"}))["metrics"]
        assert [(float(m["value"]), int(m["step"])) for m in hist] == [(n * 100 + 0.5, n)]

    # The store takes new writes.
    new_exp = api2.ok(api2.post("/api/2.0/mlflow/experiments/create", {"name": "after-crash"}))["experiment_id"]
    new_run = api2.ok(api2.post("/api/2.0/mlflow/runs/create", {"experiment_id": new_exp}))["run"]["info"]["run_id"]
    api2.ok(api2.post("/api/2.0/mlflow/runs/log-batch", _batch(new_run, 0)))
    api2.ok(api2.post("/api/2.0/mlflow/runs/log-batch", _batch(runs[0], MAX_BATCHES_PER_CLIENT + 1)))
    run = api2.ok(api2.get("/api/2.0/mlflow/runs/get", params={"run_id": new_run}))["run"]
    assert len(run["data"]["metrics"]) == METRICS_PER_BATCH
    # Artifacts still work after the restart.
    api2.ok(api2.put("/api/2.0/mlflow-artifacts/artifacts/after-crash/probe.txt", data=b"ok"))
    assert api2.get("/api/2.0/mlflow-artifacts/artifacts/after-crash/probe.txt").content == b"ok"
