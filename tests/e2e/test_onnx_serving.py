"""ONNX models users bring, served by kaizen and checked against onnxruntime.

scikit-learn models (a scaled logistic regression, a random forest and gradient boosting, a
regressor) are converted with skl2onnx, with ZipMap and with ``zipmap: False`` (a 2-D
probability tensor), saved with ``mlflow.onnx.save_model`` (or as a bare ``.onnx`` file), served
with ``kaizen serve`` and scored with ``kaizen predict``: labels must equal onnxruntime's and
probabilities and values agree to 1e-5. An operator kaizen does not run is refused at start-up,
naming it.
"""

from __future__ import annotations

import os
import subprocess
import time
import warnings

import mlflow.onnx
import numpy as np
import onnx
import onnxruntime as ort
import pandas as pd
import pytest
import requests
from mlflow.models import infer_signature
from onnx import TensorProto, helper
from skl2onnx import to_onnx
from sklearn.datasets import make_regression
from sklearn.ensemble import (
    GradientBoostingClassifier,
    GradientBoostingRegressor,
    RandomForestClassifier,
)
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

import e2e_util as u

pytestmark = pytest.mark.kaizen_only

TOLERANCE = 1e-5
OPSET = {"": 17, "ai.onnx.ml": 3}
BREAST_CANCER = u.REPO_ROOT / "examples" / "breast-cancer" / "data" / "breast_cancer.csv"


def breast_cancer():
    df = pd.read_csv(BREAST_CANCER)
    return df.drop(columns="target"), df["target"]


def regression():
    x, y = make_regression(n_samples=300, n_features=6, noise=5.0, random_state=0)
    return pd.DataFrame(x, columns=[f"x{i}" for i in range(6)]), y


class Model:
    def __init__(self, path, x, task):
        self.path, self.x, self.task = path, x, task
        onnx_file = path / "model.onnx" if path.is_dir() else path
        self.session = ort.InferenceSession(str(onnx_file), providers=["CPUExecutionProvider"])

    def reference(self, rows: pd.DataFrame):
        """onnxruntime's labels and probabilities (or values) for ``rows``, as float32 input."""
        [inp] = self.session.get_inputs()
        outs = self.session.run(None, {inp.name: rows.to_numpy(dtype=np.float32)})
        if self.task == "regression":
            return None, np.asarray(outs[0], dtype=np.float64).reshape(-1)
        labels, probs = outs[0], outs[1]
        if isinstance(probs, list):  # ZipMap: one dict per row
            keys = sorted(probs[0])
            probs = np.array([[row[k] for k in keys] for row in probs])
        return np.asarray(labels).reshape(-1), np.asarray(probs, dtype=np.float64)


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("onnx_models")
    x, y = breast_cancer()
    xr, yr = regression()
    x32, xr32 = x.astype(np.float32), xr.astype(np.float32)
    made = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        logistic = Pipeline([("scale", StandardScaler()), ("model", LogisticRegression(max_iter=1000))])
        logistic.fit(x32, y)
        forest = RandomForestClassifier(n_estimators=20, max_depth=6, random_state=0).fit(x32, y)
        boosting = GradientBoostingClassifier(n_estimators=30, random_state=0).fit(x32, y)
        regressor = GradientBoostingRegressor(n_estimators=40, random_state=0).fit(xr32, yr)
        ridge = Pipeline([("scale", StandardScaler()), ("model", Ridge())]).fit(xr32, yr)

        def save(name, model, xs, options=None, signature=True, example=True):
            proto = to_onnx(model, xs[:1].to_numpy(), options=options, target_opset=OPSET)
            path = root / name
            mlflow.onnx.save_model(
                proto,
                str(path),
                signature=infer_signature(xs, model.predict(xs)) if signature else None,
                input_example=xs.iloc[:2] if example else None,
            )
            return path

        # A column signature: request columns by name, stacked into the one input.
        made["logistic_zipmap"] = Model(save("logistic_zipmap", logistic, x32), x, "classification")
        made["logistic_2d"] = Model(
            save("logistic_2d", logistic, x32, options={id(logistic): {"zipmap": False}}), x, "classification"
        )
        # No signature: the columns come from the saved input example.
        made["forest_2d"] = Model(
            save("forest_2d", forest, x32, options={id(forest): {"zipmap": False}}, signature=False),
            x,
            "classification",
        )
        made["boosting_zipmap"] = Model(save("boosting_zipmap", boosting, x32), x, "classification")
        made["boosting_regressor"] = Model(save("boosting_regressor", regressor, xr32), xr, "regression")
        # A bare .onnx file: columns 0, 1, ... as pandas names an unnamed frame.
        bare = root / "ridge.onnx"
        bare.write_bytes(to_onnx(ridge, xr32[:1].to_numpy(), target_opset=OPSET).SerializeToString())
        made["ridge_bare"] = Model(bare, xr.set_axis([str(i) for i in range(6)], axis=1), "regression")
    return made


def serve(path, tmp_path):
    port = u.free_port()
    log = open(tmp_path / f"serve-{port}.log", "wb")
    env = dict(os.environ, KAIZEN_HOME=str(tmp_path / "home"))
    proc = subprocess.Popen(
        [str(u.kaizen_bin_path()), "serve", str(path), "--port", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        env=env,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError((tmp_path / f"serve-{port}.log").read_text())
        try:
            if requests.get(url + "/ping", timeout=1).status_code == 200:
                return proc, url
        except requests.RequestException:
            pass
        time.sleep(0.2)
    proc.kill()
    raise AssertionError("kaizen serve did not start")


def stop(proc):
    proc.terminate()
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()


@pytest.mark.parametrize(
    "name", ["logistic_zipmap", "logistic_2d", "forest_2d", "boosting_zipmap", "boosting_regressor", "ridge_bare"]
)
def test_served_predictions_equal_onnxruntime(models, name, tmp_path):
    model = models[name]
    rows = model.x.iloc[:80]
    labels, want = model.reference(rows)
    proc, url = serve(model.path, tmp_path)
    try:
        body = {"dataframe_split": {"columns": list(rows.columns), "data": rows.to_numpy().tolist()}}
        r = requests.post(url + "/invocations?probabilities=true", json=body, timeout=30)
        assert r.status_code == 200, r.text
        predictions = r.json()["predictions"]
        assert len(predictions) == len(rows)
        if model.task == "regression":
            got = np.array(predictions, dtype=np.float64)
        else:
            assert [p["label"] for p in predictions] == labels.tolist()
            classes = sorted(predictions[0]["probabilities"], key=int)
            got = np.array([[p["probabilities"][c] for c in classes] for p in predictions])
            # Without probabilities, the label alone, as MLflow's scikit-learn models answer.
            plain = requests.post(url + "/invocations", json=body, timeout=30).json()["predictions"]
            assert plain == labels.tolist()
        np.testing.assert_allclose(got, want, rtol=TOLERANCE, atol=TOLERANCE)

        health = requests.get(url + "/health", timeout=5).json()
        assert [c["name"] for c in health["inputs"]] == list(rows.columns)
        # Other formats carry the same rows.
        records = {"dataframe_records": rows.iloc[:3].to_dict(orient="records")}
        r2 = requests.post(url + "/invocations?probabilities=true", json=records, timeout=30)
        assert r2.json()["predictions"] == predictions[:3]
        lists = {"inputs": rows.iloc[:3].to_numpy().tolist()}
        r3 = requests.post(url + "/invocations?probabilities=true", json=lists, timeout=30)
        assert r3.json()["predictions"] == predictions[:3]
        # A missing column is refused by name.
        bad = {"dataframe_split": {"columns": list(rows.columns[1:]), "data": rows.iloc[:1, 1:].to_numpy().tolist()}}
        r4 = requests.post(url + "/invocations", json=bad, timeout=30)
        assert r4.status_code == 400 and str(rows.columns[0]) in r4.json()["message"]
    finally:
        stop(proc)


@pytest.mark.parametrize("name", ["logistic_zipmap", "forest_2d", "boosting_regressor"])
def test_predict_writes_onnxruntime_predictions(models, name, tmp_path):
    model = models[name]
    rows = model.x.iloc[:100]
    labels, want = model.reference(rows)
    source, out = tmp_path / "rows.csv", tmp_path / "out.csv"
    rows.to_csv(source, index=False)
    env = dict(os.environ, KAIZEN_HOME=str(tmp_path / "home"))
    subprocess.run(
        [str(u.kaizen_bin_path()), "predict", "--model", str(model.path), "--input", str(source), "--output", str(out)],
        check=True,
        env=env,
        timeout=120,
    )
    result = pd.read_csv(out)
    if model.task == "regression":
        np.testing.assert_allclose(result["prediction"], want, rtol=TOLERANCE, atol=TOLERANCE)
    else:
        assert result["prediction"].tolist() == labels.tolist()
        got = result[[c for c in result.columns if c.startswith("probability_")]].to_numpy()
        np.testing.assert_allclose(got, want, rtol=TOLERANCE, atol=TOLERANCE)


def test_an_unsupported_operator_is_refused_at_start_naming_it(tmp_path):
    x = helper.make_tensor_value_info("X", TensorProto.FLOAT, [None, 4])
    y = helper.make_tensor_value_info("Y", TensorProto.FLOAT, [None, 4])
    graph = helper.make_graph([helper.make_node("Erf", ["X"], ["Y"])], "unsupported", [x], [y])
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    path = tmp_path / "erf.onnx"
    onnx.save(proto, str(path))
    env = dict(os.environ, KAIZEN_HOME=str(tmp_path / "home"))
    for argv in (
        ["serve", str(path), "--port", str(u.free_port())],
        ["predict", "--model", str(path), "--input", str(BREAST_CANCER), "--output", str(tmp_path / "o.csv")],
    ):
        done = subprocess.run(
            [str(u.kaizen_bin_path()), *argv], capture_output=True, text=True, env=env, timeout=60
        )
        assert done.returncode == 1, done.stderr
        assert "unsupported ONNX operator `Erf` (domain `ai.onnx`" in done.stderr, done.stderr
