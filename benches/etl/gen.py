"""Writes the synthetic sales tables of the ETL benchmark as Parquet: N orders (default
10,000,000), 10,000 products in 40 categories, 500 stores in 8 regions. Seeded, so every run
measures the same data."""
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

out = Path(sys.argv[1])
n = int(sys.argv[2]) if len(sys.argv) > 2 else 10_000_000
out.mkdir(parents=True, exist_ok=True)
rng = np.random.default_rng(7)

products = pa.table({
    "product_id": np.arange(10_000, dtype=np.int32),
    "category": pa.array([f"category-{i % 40:02d}" for i in range(10_000)]),
    "brand": pa.array([f"brand-{i % 250}" for i in range(10_000)]),
})
stores = pa.table({
    "store_id": np.arange(500, dtype=np.int32),
    "region": pa.array([["north", "south", "east", "west", "center", "coast", "hills", "lakes"][i % 8] for i in range(500)]),
})
pq.write_table(products, out / "products.parquet")
pq.write_table(stores, out / "stores.parquet")

writer = None
chunk = 1_000_000
statuses = np.array(["completed", "cancelled", "returned"])
start = np.datetime64("2023-01-01")
for lo in range(0, n, chunk):
    m = min(chunk, n - lo)
    t = pa.table({
        "order_id": np.arange(lo, lo + m, dtype=np.int64),
        "store_id": rng.integers(0, 500, m, dtype=np.int32),
        "product_id": rng.integers(0, 10_000, m, dtype=np.int32),
        "day": pa.array(start + rng.integers(0, 730, m).astype("timedelta64[D]")),
        "units": rng.integers(-1, 12, m, dtype=np.int32),
        "price": np.round(rng.uniform(1.0, 500.0, m), 2),
        "status": pa.array(statuses[rng.choice(3, m, p=[0.8, 0.15, 0.05])]),
    })
    if writer is None:
        writer = pq.ParquetWriter(out / "sales.parquet", t.schema)
    writer.write_table(t, row_group_size=chunk)
writer.close()
print(f"wrote {n} orders to {out}")
