"""kaizen's ONNX export scored by the real onnxruntime.

``cargo test --workspace --test onnx_fixtures`` with ``KAIZEN_ONNX_CHECK_DIR`` writes one model
per kind (linear, ridge and logistic with imputation and scaling in the graph, multinomial
logistic, gradient-boosted trees for regression, binary and multiclass), its input rows (with
missing values) and kaizen's own predictions; here onnxruntime scores the same rows and the two
must agree to 1e-5.
"""

from __future__ import annotations

import json
import os
import subprocess

import numpy as np
import onnxruntime as ort
import pytest

import e2e_util as u

KINDS = [
    "linear",
    "ridge_preprocessed",
    "logistic_binary_preprocessed",
    "logistic_multiclass",
    "gbdt_regression",
    "gbdt_binary",
    "gbdt_multiclass",
]
TOLERANCE = 1e-5


@pytest.fixture(scope="module")
def fixtures(tmp_path_factory):
    out = tmp_path_factory.mktemp("onnx")
    env = dict(os.environ, KAIZEN_ONNX_CHECK_DIR=str(out))
    subprocess.run(
        # --workspace: the features of the workspace build `make test` just made, so nothing rebuilds.
        ["cargo", "test", "-q", "--workspace", "--locked", "--test", "onnx_fixtures"],
        cwd=u.REPO_ROOT,
        env=env,
        check=True,
        timeout=1800,
    )
    return out


@pytest.mark.parametrize("kind", KINDS)
def test_onnxruntime_matches_native(fixtures, kind):
    session = ort.InferenceSession(str(fixtures / f"{kind}.onnx"), providers=["CPUExecutionProvider"])
    meta = session.get_modelmeta().custom_metadata_map
    assert meta["kaizen.input_dtype"] == "double"
    [model_input] = session.get_inputs()
    assert model_input.name == "input" and model_input.type == "tensor(double)"

    rows = json.loads((fixtures / f"{kind}.input.json").read_text())
    x = np.array(rows["rows"], dtype=np.float64)  # null (NaN in kaizen) becomes nan
    assert np.isnan(x).any() == kind.startswith(("gbdt", "ridge", "logistic_binary"))
    native = json.loads((fixtures / f"{kind}.native.json").read_text())
    outputs = {o.name: v for o, v in zip(session.get_outputs(), session.run(None, {"input": x}))}

    if native["task"] == "regression":
        got = outputs["variable"].reshape(-1).astype(np.float64)
        want = np.array(native["values"])
    else:
        got = outputs["probabilities"].astype(np.float64)
        want = np.array(native["probabilities"])
        assert got.shape == want.shape
        np.testing.assert_allclose(got.sum(axis=1), 1.0, atol=1e-5)
        # The label is the most probable class (exact ties aside).
        top2 = np.sort(want, axis=1)[:, -2:]
        clear = top2[:, 1] - top2[:, 0] > 1e-4
        assert (outputs["label"][clear] == want.argmax(axis=1)[clear]).all()
    diff = float(np.max(np.abs(got - want)))
    assert diff < TOLERANCE, f"{kind}: max abs difference {diff}"
