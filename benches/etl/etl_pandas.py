"""The same ETL as benches/etl/project/kaizen.toml in pandas (pyarrow engine), as a data
scientist would write it: read, filter, merge, group by, write Parquet."""
import sys
from pathlib import Path

import pandas as pd

data, out = Path(sys.argv[1]), Path(sys.argv[2])
sales = pd.read_parquet(data / "sales.parquet")
products = pd.read_parquet(data / "products.parquet")
stores = pd.read_parquet(data / "stores.parquet")
sales = sales[(sales["status"] == "completed") & (sales["units"] > 0)]
df = sales.merge(products, on="product_id").merge(stores, on="store_id")
df["month"] = df["day"].astype("datetime64[ns]").dt.to_period("M").dt.to_timestamp()
df["revenue"] = df["units"] * df["price"]
result = (
    df.groupby(["category", "region", "month"], as_index=False)
    .agg(units=("units", "sum"), revenue=("revenue", "sum"), orders=("order_id", "count"))
    .sort_values(["category", "region", "month"])
)
result.to_parquet(out, index=False)
print(f"{len(result)} groups, {int(result['units'].sum())} units")
