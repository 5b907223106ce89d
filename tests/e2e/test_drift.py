"""`kaizen drift` against the real libraries: every statistic, p-value and verdict of
`kaizen drift --json` is checked against scipy and against Evidently's own DataDriftPreset report
computed in the same test on the same files (read by pandas, as Evidently users do).

Tolerances: statistics 1e-9 relative, p-values 1e-6 relative, verdicts exact. An absolute floor
of 1e-12 covers values that are zero up to rounding (a p-value of 2·(1-Φ(|z|)) or 1-F computed
by cancellation is noise below that in scipy as well).
"""

from __future__ import annotations

import json
import math
import subprocess
import warnings

import numpy as np
import pandas as pd
import pytest

pytestmark = pytest.mark.kaizen_only

evidently = pytest.importorskip("evidently")
from evidently import Report  # noqa: E402
from evidently.core.datasets import infer_column_type  # noqa: E402
from evidently.legacy.calculations.stattests.utils import get_binned_data  # noqa: E402
from evidently.legacy.core import ColumnType  # noqa: E402
from evidently.presets import DataDriftPreset  # noqa: E402
from scipy import stats  # noqa: E402
from scipy.spatial import distance  # noqa: E402

STAT_RTOL = 1e-9
P_RTOL = 1e-6
ABS_FLOOR = 1e-12

# Evidently's display names of auto-chosen tests, and its names for ours.
DISPLAY = {
    "K-S p_value": "ks",
    "Wasserstein distance (normed)": "wasserstein",
    "chi-square p_value": "chisquare",
    "Z-test p_value": "z",
    "Jensen-Shannon distance": "jensenshannon",
}
EVIDENTLY_NAME = {"energy_distance": "ed"}
NUMERIC_TESTS = ["ks", "wasserstein", "anderson", "cramer_von_mises", "energy_distance"]
BOTH_TESTS = ["jensenshannon", "psi", "kl_div", "hellinger"]
CATEGORICAL_TESTS = ["chisquare", "z"]


def make_frames(rng, n_ref: int, n_cur: int):
    """Reference and current frames covering every column kind the tests choose between."""

    def frame(n, shift, probs3, probs2):
        df = pd.DataFrame({
            "num_shift": rng.normal(shift, 1.0, n),
            "num_same": rng.normal(5.0, 2.0, n),
            "num_dirty": rng.gamma(2.0, 1.0 + shift, n),
            "int_many": rng.integers(0, 60 + int(10 * shift), n),
            "float_low3": rng.choice([0.5, 1.5, 2.5], n, p=probs3),
            "float_low2": rng.choice([1.0, 2.0], n, p=probs2),
            "int_cat": rng.choice([1, 2, 3, 4], n, p=[0.4, 0.3, 0.2, 0.1] if shift == 0 else [0.25, 0.25, 0.25, 0.25]),
            "cat3": rng.choice(["red", "green", "blue", "black"], n, p=[0.4, 0.3, 0.2, 0.1] if shift == 0 else [0.3, 0.3, 0.2, 0.2]),
            "cat2": rng.choice(["no", "yes"], n, p=probs2),
            "cat_dirty": rng.choice(["a", "b", "c"], n).astype(object),
        })
        dirty = rng.random(n)
        df.loc[dirty < 0.05, "num_dirty"] = np.nan
        df.loc[(dirty >= 0.05) & (dirty < 0.07), "num_dirty"] = np.inf
        df.loc[(dirty >= 0.07) & (dirty < 0.08), "num_dirty"] = -np.inf
        df.loc[rng.random(n) < 0.1, "cat_dirty"] = None
        return df

    ref = frame(n_ref, 0.0, [0.5, 0.3, 0.2], [0.6, 0.4])
    cur = frame(n_cur, 0.3, [0.4, 0.3, 0.3], [0.5, 0.5])
    # A category the reference never saw.
    cur.loc[cur.index[:7], "cat3"] = "purple"
    return ref, cur


@pytest.fixture(scope="module")
def datasets(tmp_path_factory):
    rng = np.random.default_rng(20240601)
    out = {}
    for name, n_ref, n_cur in [("small", 600, 450), ("large", 3000, 2500), ("equal", 400, 400)]:
        d = tmp_path_factory.mktemp(f"drift-{name}")
        ref, cur = make_frames(rng, n_ref, n_cur)
        ref_path, cur_path = d / "reference.csv", d / "current.csv"
        ref.to_csv(ref_path, index=False)
        cur.to_csv(cur_path, index=False)
        out[name] = (ref_path, cur_path)
    # KS with more than 10,000 current rows: scipy's asymptotic (kstwo) branch.
    d = tmp_path_factory.mktemp("drift-asymp")
    ref = pd.DataFrame({"x": rng.normal(0, 1, 900), "y": rng.normal(0, 1, 900)})
    cur = pd.DataFrame({"x": rng.normal(0.08, 1, 12000), "y": rng.normal(0, 1, 12000)})
    ref.to_parquet(d / "reference.parquet", index=False)
    cur.to_parquet(d / "current.parquet", index=False)
    out["asymp"] = (d / "reference.parquet", d / "current.parquet")
    return out


def run_drift(kaizen_bin, ref, cur, *extra, check=True):
    proc = subprocess.run([str(kaizen_bin), "drift", "--reference", str(ref), "--current", str(cur), *extra],
                          capture_output=True, text=True, timeout=120)
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc


def kaizen_json(kaizen_bin, ref, cur, *extra):
    proc = run_drift(kaizen_bin, ref, cur, "--json", *extra)
    return json.loads(proc.stdout)


def read(path):
    return pd.read_parquet(path) if str(path).endswith(".parquet") else pd.read_csv(path)


def evidently_report(ref_df, cur_df, per_column_method=None):
    """{column: (test name, score, threshold, drifted)} and the dataset (count, share, drifted)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        snap = Report([DataDriftPreset(per_column_method=per_column_method)], include_tests=True).run(cur_df, ref_df)
    d = snap.dict()
    status = {}
    dataset_drifted = None
    for t in d["tests"]:
        if t["name"].startswith("Value Drift for column "):
            status[t["name"][len("Value Drift for column "):]] = t["status"] == "FAIL"
        elif t["name"].startswith("Share of Drifted Columns"):
            dataset_drifted = t["status"] == "FAIL"
    columns = {}
    dataset = None
    for m in d["metrics"]:
        cfg = m["config"]
        if cfg["type"].endswith("ValueDrift"):
            method = cfg["method"]
            method = DISPLAY.get(method, method)
            method = {"ed": "energy_distance"}.get(method, method)
            columns[cfg["column"]] = (method, m["value"], cfg["threshold"], status[cfg["column"]])
        elif cfg["type"].endswith("DriftedColumnsCount"):
            dataset = (m["value"]["count"], m["value"]["share"], dataset_drifted)
    return columns, dataset


def clean(s: pd.Series) -> pd.Series:
    return s.replace([np.inf, -np.inf], np.nan).dropna()


def scipy_values(test, ref: pd.Series, cur: pd.Series, numeric: bool):
    """(statistic, p-value or None) from scipy, computed the way Evidently feeds it."""
    r, c = clean(ref), clean(cur)
    ctype = ColumnType.Numerical if numeric else ColumnType.Categorical
    if test == "ks":
        res = stats.ks_2samp(r, c)
        return res.statistic, res.pvalue
    if test == "wasserstein":
        return stats.wasserstein_distance(r, c) / max(float(np.std(r)), 0.001), None
    if test == "energy_distance":
        return stats.energy_distance(r, c), None
    if test == "anderson":
        res = stats.anderson_ksamp([r.values, c.values])
        return res[0], res[2]
    if test == "cramer_von_mises":
        res = stats.cramervonmises_2samp(r.values, c.values)
        return res.statistic, res.pvalue
    if test == "chisquare":
        keys = list(set(r.unique()) | set(c.unique()))
        rc, cc = r.value_counts(), c.value_counts()
        k = len(c) / len(r)
        f_exp = [rc.get(key, 0) * k for key in keys]
        f_obs = [cc.get(key, 0) for key in keys]
        with np.errstate(divide="ignore", invalid="ignore"):
            res = stats.chisquare(f_obs, f_exp)
        return res.statistic, res.pvalue
    if test == "z":
        keys = sorted(set(r.unique()) | set(c.unique()))
        if len(keys) == 1:
            return 0.0, 1.0
        x1 = (r != keys[0]).sum()
        x2 = (c != keys[0]).sum()
        n1, n2 = len(r), len(c)
        p1, p2 = x1 / n1, x2 / n2
        p = (p1 * n1 + p2 * n2) / (n1 + n2)
        z = (p1 - p2) / np.sqrt(p * (1 - p) * (1 / n1 + 1 / n2))
        return z, 2 * (1 - stats.norm.cdf(abs(z)))
    if test in ("jensenshannon", "psi", "kl_div"):
        rp, cp = get_binned_data(r, c, ctype, 30, test != "jensenshannon")
        if test == "jensenshannon":
            return distance.jensenshannon(rp, cp), None
        if test == "psi":
            return float(np.sum((rp - cp) * np.log(rp / cp))), None
        return stats.entropy(rp, cp), None
    if test == "hellinger":
        from evidently.legacy.calculations.stattests.hellinger_distance import _hellinger_distance

        return _hellinger_distance(r.copy(), c.copy(), ctype, 0.1)[0], None
    raise AssertionError(test)


def missing_count(s: pd.Series) -> int:
    if pd.api.types.is_numeric_dtype(s):
        return int((~np.isfinite(s.astype(float))).sum())
    return int(s.isna().sum())


def close(got, want, rtol):
    if want is not None and math.isinf(want):
        return got is None or got == want  # JSON has no infinity: kaizen writes null
    if want is None or got is None:
        return got == want
    return math.isclose(got, want, rel_tol=rtol, abs_tol=ABS_FLOOR)


def check_against_references(report, ref_df, cur_df, per_column_method=None):
    ev_columns, ev_dataset = evidently_report(ref_df, cur_df, per_column_method)
    ours = {c["column"]: c for c in report["columns"]}
    assert set(ours) == set(ev_columns), (set(ours), set(ev_columns))
    problems = []
    for name, (ev_test, ev_score, ev_threshold, ev_drifted) in ev_columns.items():
        c = ours[name]
        numeric = infer_column_type(cur_df[name]) == ColumnType.Numerical
        assert c["type"] == ("numeric" if numeric else "categorical"), name
        if c["test"] != ev_test:
            problems.append(f"{name}: test {c['test']} != Evidently's {ev_test}")
            continue
        score = c["p_value"] if c["p_value"] is not None else c["statistic"]
        rtol = P_RTOL if c["p_value"] is not None else STAT_RTOL
        if not close(score, ev_score, rtol):
            problems.append(f"{name} ({ev_test}): score {score!r} != Evidently's {ev_score!r}")
        if c["threshold"] != ev_threshold:
            problems.append(f"{name}: threshold {c['threshold']} != {ev_threshold}")
        if c["drifted"] != ev_drifted:
            problems.append(f"{name}: drifted {c['drifted']} != Evidently's {ev_drifted}")
        stat, p = scipy_values(c["test"], ref_df[name], cur_df[name], numeric)
        if not close(c["statistic"], float(stat), STAT_RTOL):
            problems.append(f"{name} ({ev_test}): statistic {c['statistic']!r} != scipy's {stat!r}")
        if p is not None and not close(c["p_value"], float(p), P_RTOL):
            problems.append(f"{name} ({ev_test}): p-value {c['p_value']!r} != scipy's {p!r}")
        missing = missing_count(ref_df[name]) + missing_count(cur_df[name])
        if c["missing"] != missing:
            problems.append(f"{name}: missing {c['missing']} != {missing}")
    count, share, drifted = ev_dataset
    d = report["dataset"]
    if (d["drifted_columns"], d["columns"], d["drifted"]) != (count, len(ev_columns), drifted):
        problems.append(f"dataset {d} != Evidently's count {count}, share {share}, drifted {drifted}")
    if not math.isclose(d["share"], share, rel_tol=1e-12):
        problems.append(f"share {d['share']} != {share}")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("name", ["small", "large", "equal", "asymp"])
def test_default_tests_match_evidently_and_scipy(kaizen_bin, datasets, name):
    ref_path, cur_path = datasets[name]
    report = kaizen_json(kaizen_bin, ref_path, cur_path)
    for key in ("columns", "dataset"):
        assert key in report
    for c in report["columns"]:
        assert {"column", "type", "test", "statistic", "p_value", "threshold", "drifted", "missing"} <= set(c)
    check_against_references(report, read(ref_path), read(cur_path))
    tests = {c["column"]: c["test"] for c in report["columns"]}
    if name in ("small", "equal"):
        assert tests["num_shift"] == "ks" and tests["float_low3"] == "chisquare" and tests["float_low2"] == "z"
        assert tests["cat2"] == "z" and tests["cat3"] == "chisquare" and tests["int_cat"] == "chisquare"
    elif name == "large":
        assert tests["num_shift"] == "wasserstein" and tests["float_low3"] == "jensenshannon"
        assert tests["cat3"] == "jensenshannon"
    else:
        assert tests == {"x": "ks", "y": "ks"}


@pytest.mark.parametrize("name", ["small", "large"])
def test_selectable_tests_match_evidently_and_scipy(kaizen_bin, datasets, name):
    ref_path, cur_path = datasets[name]
    ref_df, cur_df = read(ref_path), read(cur_path)
    numeric = [c for c in cur_df.columns if infer_column_type(cur_df[c]) == ColumnType.Numerical]
    categorical = [c for c in cur_df.columns if c not in numeric]
    for test in NUMERIC_TESTS + BOTH_TESTS + CATEGORICAL_TESTS:
        if test in NUMERIC_TESTS:
            cols = numeric
        elif test in CATEGORICAL_TESTS:
            cols = categorical
        else:
            cols = list(cur_df.columns)
        args = []
        for col in cols:
            args += ["--test", f"{col}={test}"]
        report = kaizen_json(kaizen_bin, ref_path, cur_path, "--columns", ",".join(cols), *args)
        assert all(c["test"] == test for c in report["columns"])
        check_against_references(report, ref_df[cols], cur_df[cols],
                                 {c: EVIDENTLY_NAME.get(test, test) for c in cols})


def test_quality_and_html(kaizen_bin, datasets, tmp_path):
    ref_path, cur_path = datasets["small"]
    html = tmp_path / "report.html"
    report = kaizen_json(kaizen_bin, ref_path, cur_path, "--html", str(html))
    quality = {q["column"]: q for q in report["quality"]["columns"]}
    assert quality["cat3"]["new_categories"] == ["purple"]
    cur = read(cur_path)
    ref = read(ref_path)
    assert quality["cat_dirty"]["missing_share_current"] == pytest.approx(cur["cat_dirty"].isna().mean())
    finite_ref = clean(ref["num_shift"])
    out = ((cur["num_shift"] < finite_ref.min()) | (cur["num_shift"] > finite_ref.max())).sum()
    assert quality["num_shift"]["out_of_range"] == out
    page = html.read_text()
    assert page.startswith("<!DOCTYPE html>") and "<svg" in page and "<script" not in page
    assert "num_shift" in page and "http" not in page.replace('xmlns="http://www.w3.org/2000/svg"', "")
    # The readable table.
    text = run_drift(kaizen_bin, ref_path, cur_path).stdout
    assert "COLUMN" in text and "num_shift" in text and "columns drifted" in text


def test_share_threshold(kaizen_bin, datasets):
    ref_path, cur_path = datasets["small"]
    low = kaizen_json(kaizen_bin, ref_path, cur_path, "--share-threshold", "0.0")
    assert low["dataset"]["drifted"] is True
    high = kaizen_json(kaizen_bin, ref_path, cur_path, "--share-threshold", "1.0")
    assert high["dataset"]["drifted"] is (high["dataset"]["drifted_columns"] == high["dataset"]["columns"])


def test_bad_input_exits_1(kaizen_bin, datasets, tmp_path):
    ref_path, cur_path = datasets["small"]
    cases = [
        ((str(tmp_path / "nope.csv"), cur_path), (), "nope.csv"),
        ((ref_path, cur_path), ("--columns", "num_shift,no_such"), "no_such"),
        ((ref_path, cur_path), ("--test", "num_shift=bogus"), "bogus"),
        ((ref_path, cur_path), ("--test", "cat3=ks"), "cat3"),
    ]
    empty = tmp_path / "empty.csv"
    pd.DataFrame({"num_shift": [np.nan] * 5}).to_csv(empty, index=False)
    cases.append(((ref_path, empty), ("--columns", "num_shift"), "num_shift"))
    for (ref, cur), extra, needle in cases:
        proc = run_drift(kaizen_bin, ref, cur, "--json", *extra, check=False)
        assert proc.returncode == 1, (extra, proc.returncode, proc.stderr)
        assert needle in proc.stderr, proc.stderr
        assert proc.stdout == ""
