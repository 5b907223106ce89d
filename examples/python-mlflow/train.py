"""Fits y = a*x + b by least squares with ridge `alpha`, logging to kaizen with mlflow."""
import json
import os

import mlflow
import pyarrow.parquet as pq

alpha = float(os.environ["KAIZEN_PARAM_ALPHA"])
table = pq.read_table(os.environ["KAIZEN_INPUT_POINTS_POINTS_PARQUET"]).to_pydict()
xs, ys = table["x"], table["y"]
n = len(xs)
mx, my = sum(xs) / n, sum(ys) / n
sxx = sum((x - mx) ** 2 for x in xs)
sxy = sum((x - mx) * (y - my) for x, y in zip(xs, ys))
a = sxy / (sxx + alpha)
b = my - a * mx
rmse = (sum((a * x + b - y) ** 2 for x, y in zip(xs, ys)) / n) ** 0.5

# MLFLOW_RUN_ID makes this the step's own run.
with mlflow.start_run():
    mlflow.log_param("alpha", alpha)
    mlflow.log_metric("rmse", rmse)
    mlflow.log_metric("slope", a)

with open(os.path.join(os.environ["KAIZEN_OUTPUT_DIR"], "model.json"), "w") as f:
    json.dump({"a": a, "b": b, "rmse": rmse}, f)
print(f"fitted a={a:.3f} b={b:.3f} rmse={rmse:.3f}")
