"""Drift benchmark driver (run by run.sh): generates the data, times `kaizen drift` and Evidently's
DataDriftPreset under /usr/bin/time -v, checks that both flag the same columns, prints and writes
the results table."""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import time
from pathlib import Path

COLUMNS = 20
SHIFTED = 5  # current shifted on the first 5 columns

EVIDENTLY_SCRIPT = r"""
import json, sys, warnings
warnings.filterwarnings("ignore")
import pandas as pd
from evidently import Report
from evidently.presets import DataDriftPreset
ref = pd.read_parquet(sys.argv[1])
cur = pd.read_parquet(sys.argv[2])
snap = Report([DataDriftPreset()], include_tests=True).run(cur, ref)
drifted = sorted(t["name"][len("Value Drift for column "):] for t in snap.dict()["tests"]
                 if t["name"].startswith("Value Drift for column ") and t["status"] == "FAIL")
json.dump({"drifted": drifted}, open(sys.argv[3], "w"))
"""


def generate(workdir: Path, rows: int) -> tuple[Path, Path]:
    import numpy as np
    import pandas as pd

    ref_path = workdir / f"reference-{rows}.parquet"
    cur_path = workdir / f"current-{rows}.parquet"
    if ref_path.exists() and cur_path.exists():
        return ref_path, cur_path
    rng = np.random.default_rng(rows)
    for path, shift in ((ref_path, 0.0), (cur_path, 0.25)):
        data = {}
        for i in range(COLUMNS):
            s = shift if i < SHIFTED else 0.0
            if i % 4 == 3:
                data[f"f{i:02d}"] = rng.gamma(2.0, 1.0 + s, rows)
            else:
                data[f"f{i:02d}"] = rng.normal(10.0 * i + s, 1.0 + i / 10, rows)
        pd.DataFrame(data).to_parquet(path, index=False)
    return ref_path, cur_path


def timed(cmd: list[str], stdout=None) -> tuple[float, int]:
    """(wall seconds, peak RSS in KiB) of cmd under GNU time."""
    proc = subprocess.run(["/usr/bin/time", "-v", *cmd], stdout=stdout or subprocess.DEVNULL,
                          stderr=subprocess.PIPE, text=True)
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr[-3000:])
        raise SystemExit(f"command failed: {' '.join(cmd)}")
    wall = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): (\S+)", proc.stderr).group(1)
    parts = [float(p) for p in wall.split(":")]
    seconds = sum(p * 60 ** i for i, p in enumerate(reversed(parts)))
    rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", proc.stderr).group(1))
    return seconds, rss


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--kaizen-bin", required=True)
    ap.add_argument("--rows", default="100000,1000000")
    ap.add_argument("--results", required=True)
    ap.add_argument("--workdir", required=True)
    args = ap.parse_args()
    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    results = []
    for rows in [int(r) for r in args.rows.split(",") if r]:
        ref, cur = generate(workdir, rows)
        print(f"[bench] {rows:,} rows x {COLUMNS} columns", file=sys.stderr)
        out_json = workdir / f"kaizen-{rows}.json"
        with open(out_json, "w") as f:
            k_wall, k_rss = timed([args.kaizen_bin, "drift", "--reference", str(ref), "--current", str(cur), "--json"], f)
        k_drifted = sorted(c["column"] for c in json.load(open(out_json))["columns"] if c["drifted"])
        print(f"[bench]   kaizen: {k_wall:.2f} s, {k_rss / 1024:.0f} MiB", file=sys.stderr)
        ev_json = workdir / f"evidently-{rows}.json"
        script = workdir / "evidently_drift.py"
        script.write_text(EVIDENTLY_SCRIPT)
        e_wall, e_rss = timed([sys.executable, str(script), str(ref), str(cur), str(ev_json)])
        e_drifted = json.load(open(ev_json))["drifted"]
        print(f"[bench]   evidently: {e_wall:.2f} s, {e_rss / 1024:.0f} MiB", file=sys.stderr)
        results.append({
            "rows": rows, "kaizen_s": k_wall, "kaizen_rss_kib": k_rss, "evidently_s": e_wall,
            "evidently_rss_kib": e_rss, "same_verdicts": k_drifted == e_drifted,
            "drifted": k_drifted,
        })

    from importlib.metadata import version
    header = (f"| rows x cols | kaizen wall | Evidently wall | speed-up | kaizen peak RSS | "
              f"Evidently peak RSS | memory ratio | same drifted columns |\n"
              f"|---|---|---|---|---|---|---|---|\n")
    lines = []
    for r in results:
        lines.append(
            f"| {r['rows']:,} x {COLUMNS} | {r['kaizen_s']:.2f} s | {r['evidently_s']:.2f} s | "
            f"{r['evidently_s'] / max(r['kaizen_s'], 1e-3):.0f}x | {r['kaizen_rss_kib'] / 1024:.0f} MiB | "
            f"{r['evidently_rss_kib'] / 1024:.0f} MiB | 1/{r['evidently_rss_kib'] / r['kaizen_rss_kib']:.1f} | "
            f"{'yes' if r['same_verdicts'] else 'NO'} ({len(r['drifted'])}) |")
    table = header + "\n".join(lines) + "\n"
    print(table)
    env = (f"Machine: {platform.machine()}, {os.cpu_count()} CPUs, Linux {platform.release()}; "
           f"Python {platform.python_version()}, evidently {version('evidently')}, pandas {version('pandas')}, "
           f"scipy {version('scipy')}; run {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}.")
    Path(args.results).write_text(
        "# Drift benchmark results\n\n"
        "`benches/drift/run.sh`: `kaizen drift --json` (release build) against Evidently's "
        "`Report([DataDriftPreset()])` on the same Parquet files (reference and current, 20 numeric "
        "columns, the current shifted on 5), each as its own process under `/usr/bin/time -v`: wall "
        "time and peak RSS include starting up and reading the files. Both choose the normed "
        "Wasserstein distance for every column (reference > 1,000 rows). Target: at least 100x faster "
        "at no more than a fifth of the memory.\n\n"
        + table + "\n" + env + "\n")


if __name__ == "__main__":
    main()
