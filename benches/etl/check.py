"""Checks that kaizen's and pandas' ETL results agree (same groups, units and order counts
exactly, revenue to 1e-9 relative)."""
import sys

import pandas as pd

a = pd.read_parquet(sys.argv[1]).sort_values(["category", "region", "month"]).reset_index(drop=True)
b = pd.read_parquet(sys.argv[2]).sort_values(["category", "region", "month"]).reset_index(drop=True)
assert len(a) == len(b), (len(a), len(b))
assert (a["category"] == b["category"]).all() and (a["region"] == b["region"]).all()
assert (pd.to_datetime(a["month"]).values == pd.to_datetime(b["month"]).values).all()
assert (a["units"].astype("int64") == b["units"].astype("int64")).all()
assert (a["orders"].astype("int64") == b["orders"].astype("int64")).all()
rel = ((a["revenue"] - b["revenue"]).abs() / b["revenue"].abs()).max()
assert rel < 1e-9, rel
print(f"results agree: {len(a)} groups, max revenue rel. diff {rel:.1e}")
