#!/usr/bin/env bash
# ETL benchmark (`make bench-etl`): the same filter/join/group-by over a synthetic sales table
# (10,000,000 orders in Parquet) as a kaizen pipeline `sql` step and in pandas, in one run.
# Reports the median wall time and peak RSS of each (whole processes, startup included) and the
# ratios, checks that both results agree, and writes benches/etl/RESULTS.md.
#
#   benches/etl/run.sh [ROWS] [REPEATS]      (defaults 10000000 and 3)
#
# Python (pandas, pyarrow) goes in benches/etl/.venv, made here. kaizen is built with
# `cargo build --release -p kaizen` unless KAIZEN_BIN names a binary.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
rows="${1:-10000000}"
repeats="${2:-3}"
log() { echo "[etl] $*" >&2; }

if [ ! -x /usr/bin/time ]; then
    log "installing Debian's time (for peak RSS)"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq time >&2
fi
venv="$here/.venv"
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c 'import pandas, pyarrow' 2>/dev/null; then
    log "creating $venv with pandas and pyarrow"
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q --disable-pip-version-check "pandas==2.3.3" "pyarrow==21.0.0" "numpy<2.4"
fi
py="$venv/bin/python"
pandas_version=$("$py" -c 'import pandas; print(pandas.__version__)')

data="$here/project/data"
if [ ! -f "$data/.rows-$rows" ]; then
    log "generating $rows orders"
    rm -rf "$data"
    "$py" "$here/gen.py" "$data" "$rows" >&2
    touch "$data/.rows-$rows"
fi

if [ -z "${KAIZEN_BIN:-}" ]; then
    log "cargo build --release -p kaizen"
    (cd "$root" && cargo build --release -p kaizen)
    KAIZEN_BIN="$root/target/release/kaizen"
fi

work=$(mktemp -d /tmp/kaizen-etl.XXXXXX)
trap 'rm -rf "$work"' EXIT

# measure NAME CMD...: runs CMD under /usr/bin/time, appends "NAME seconds max_rss_kb".
measure() {
    local name=$1; shift
    /usr/bin/time -f "%e %M" -o "$work/time" "$@" > "$work/$name.out" 2> "$work/$name.err" || {
        log "$name failed:"; cat "$work/$name.err" >&2; exit 1; }
    echo "$name $(cat "$work/time")" >> "$work/results"
}

for i in $(seq 1 "$repeats"); do
    home="$work/home-$i"
    measure kaizen env KAIZEN_HOME="$home" KAIZEN_LOG=error "$KAIZEN_BIN" pipeline run "$here/project" --no-cache --json
    run_id=$("$py" -c 'import json,sys; print(json.loads(open(sys.argv[1]).read().splitlines()[-1])["run_id"])' "$work/kaizen.out")
    kaizen_result="$home/pipelines/$run_id/revenue/out/revenue.parquet"
    measure pandas "$py" "$here/etl_pandas.py" "$data" "$work/pandas.parquet"
    log "round $i: $(tail -2 "$work/results" | tr '\n' ' ')"
done
"$py" "$here/check.py" "$kaizen_result" "$work/pandas.parquet" >&2

report=$("$py" - "$work/results" "$rows" "$pandas_version" "$(nproc)" <<'PY'
import statistics, sys
rows = {}
for line in open(sys.argv[1]):
    name, secs, kb = line.split()
    rows.setdefault(name, []).append((float(secs), int(kb)))
n, pandas_version, cores = int(sys.argv[2]), sys.argv[3], sys.argv[4]
k_t = statistics.median(t for t, _ in rows["kaizen"]); p_t = statistics.median(t for t, _ in rows["pandas"])
k_m = max(m for _, m in rows["kaizen"]) / 1024; p_m = max(m for _, m in rows["pandas"]) / 1024
print(f"ETL over {n:,} orders (filter, 2 joins, group by month), {len(rows['kaizen'])} runs each, {cores} cores")
print(f"{'':<24}|{'pandas ' + pandas_version:>18} |{'kaizen':>12} | ratio")
print("-" * 68)
print(f"{'wall time (median)':<24}|{p_t:>16.2f} s |{k_t:>10.2f} s | {p_t / k_t:5.1f}x faster")
print(f"{'peak RSS (max)':<24}|{p_m:>15.0f} MB |{k_m:>9.0f} MB | {k_m / p_m:5.2f} of pandas")
print()
print(f"target: >= 5x faster: {'PASS' if p_t / k_t >= 5 else 'FAIL'} ({p_t / k_t:.1f}x); "
      f"<= 1/3 of the memory: {'PASS' if k_m <= p_m / 3 else 'FAIL'} ({k_m / p_m:.2f})")
PY
)
echo "$report"
{
    echo "# ETL benchmark: kaizen pipeline vs pandas"
    echo
    echo "Last full run: \`benches/etl/run.sh $rows $repeats\` on $(date -u +%Y-%m-%d). kaizen's time is the whole"
    echo "\`kaizen pipeline run --no-cache\` process (store, input fingerprints, the SQL step, the output"
    echo "in the artifact store and the catalog); pandas' is the whole Python process (imports included)."
    echo
    echo '```'
    echo "$report"
    echo '```'
} > "$here/RESULTS.md"
