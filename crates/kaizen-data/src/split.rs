//! Splitting a table into named parts: random, stratified, or in time order.

use std::collections::HashMap;
use std::fmt;

use datafusion::arrow::array::{Array, ArrayRef, Scalar, StringArray};
use datafusion::arrow::compute::kernels::cmp;
use datafusion::arrow::compute::{CastOptions, SortOptions, cast_with_options, sort_to_indices};
use datafusion::arrow::row::{RowConverter, Rows, SortField};
use serde::de::{MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::types::{is_temporal, type_name};
use crate::{DataError, Result, Table};

/// Named fractions in order, e.g. `{"train": 0.8, "test": 0.2}`. The order as written is kept:
/// it is the order of the returned parts and, for time splits, the time order.
#[derive(Debug, Clone, PartialEq)]
pub struct Fractions(pub Vec<(String, f64)>);

impl Fractions {
    pub fn new<S: Into<String>>(parts: impl IntoIterator<Item = (S, f64)>) -> Self {
        Fractions(parts.into_iter().map(|(n, f)| (n.into(), f)).collect())
    }

    fn check(&self) -> Result<()> {
        let invalid = |reason: String| Err(DataError::InvalidSplit { reason });
        if self.0.is_empty() {
            return invalid("no fractions given".into());
        }
        let mut names = std::collections::HashSet::new();
        for (name, f) in &self.0 {
            if !names.insert(name.as_str()) {
                return invalid(format!("part `{name}` is named twice"));
            }
            if !f.is_finite() || *f < 0.0 {
                return invalid(format!(
                    "fraction of `{name}` is {f}; it must be a number >= 0"
                ));
            }
        }
        let sum: f64 = self.0.iter().map(|(_, f)| f).sum();
        if (sum - 1.0).abs() > 1e-6 {
            return invalid(format!("fractions sum to {sum}, not 1"));
        }
        Ok(())
    }

    /// Row counts for `n` rows: floors, then the leftover rows to the largest remainders (ties to
    /// the earlier part). Always sums to `n`.
    fn counts(&self, n: usize) -> Vec<usize> {
        let exact: Vec<f64> = self.0.iter().map(|(_, f)| f * n as f64).collect();
        let mut counts: Vec<usize> = exact.iter().map(|x| x.floor() as usize).collect();
        let mut left = n.saturating_sub(counts.iter().sum());
        let mut order: Vec<usize> = (0..counts.len()).collect();
        order.sort_by(|&a, &b| {
            (exact[b] - exact[b].floor())
                .total_cmp(&(exact[a] - exact[a].floor()))
                .then(a.cmp(&b))
        });
        for &i in order.iter().cycle() {
            if left == 0 {
                break;
            }
            if self.0[i].1 > 0.0 {
                counts[i] += 1;
                left -= 1;
            }
        }
        counts
    }
}

impl Serialize for Fractions {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (name, f) in &self.0 {
            map.serialize_entry(name, f)?;
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for Fractions {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Fractions;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a map of part names to fractions")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Fractions, A::Error> {
                let mut parts = Vec::new();
                while let Some((name, f)) = map.next_entry::<String, f64>()? {
                    parts.push((name, f));
                }
                Ok(Fractions(parts))
            }
        }
        deserializer.deserialize_map(V)
    }
}

/// How to split. Deserializes from `{"method": "random", "fractions": {...}, "seed": 7}` etc.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "method", rename_all = "snake_case", deny_unknown_fields)]
pub enum SplitSpec {
    /// Rows shuffled with `seed`, then cut by the fractions.
    Random {
        fractions: Fractions,
        #[serde(default)]
        seed: u64,
    },
    /// Like random, within each value of `column`, so every part keeps the class proportions.
    Stratified {
        column: String,
        fractions: Fractions,
        #[serde(default)]
        seed: u64,
    },
    /// Rows sorted by the date/timestamp `column` and cut by the fractions in order: the first part
    /// is the earliest. Rows with the same time stay in the same part.
    Time {
        column: String,
        fractions: Fractions,
    },
    /// Rows before `cutoff` (parsed in the column's type, e.g. `2024-06-01`) go to `before`, the
    /// others to `after`.
    TimeCutoff {
        column: String,
        cutoff: String,
        #[serde(default = "train")]
        before: String,
        #[serde(default = "test")]
        after: String,
    },
}

fn train() -> String {
    "train".into()
}

fn test() -> String {
    "test".into()
}

/// The SplitMix64 generator: tiny, and fixed here so that seeded splits never change with a
/// dependency's version.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (multiply-shift; the bias is below 2^-32 for tables under 2^32 rows).
    fn below(&mut self, n: usize) -> usize {
        ((self.next() as u128 * n as u128) >> 64) as usize
    }

    fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            items.swap(i, self.below(i + 1));
        }
    }
}

/// Splits `table` into the named parts of `spec`, in the spec's order. Rows keep their original
/// order within each part (except time splits, which are in time order).
pub fn split(table: &Table, spec: &SplitSpec) -> Result<Vec<(String, Table)>> {
    let n = table.num_rows();
    let (names, parts): (Vec<String>, Vec<Vec<u32>>) = match spec {
        SplitSpec::Random { fractions, seed } => {
            fractions.check()?;
            let mut rows: Vec<u32> = (0..n as u32).collect();
            SplitMix64(*seed).shuffle(&mut rows);
            let mut parts = cut(&rows, &fractions.counts(n));
            parts.iter_mut().for_each(|p| p.sort_unstable());
            (names(fractions), parts)
        }
        SplitSpec::Stratified {
            column,
            fractions,
            seed,
        } => {
            fractions.check()?;
            let array = table.column(column)?;
            let rows = encode(&array)?;
            let mut groups: Vec<Vec<u32>> = Vec::new();
            let mut index = HashMap::new();
            for i in 0..n {
                let g = *index.entry(rows.row(i)).or_insert_with(|| {
                    groups.push(Vec::new());
                    groups.len() - 1
                });
                groups[g].push(i as u32);
            }
            let mut rng = SplitMix64(*seed);
            let mut parts = vec![Vec::new(); fractions.0.len()];
            for mut group in groups {
                rng.shuffle(&mut group);
                for (part, rows) in parts
                    .iter_mut()
                    .zip(cut(&group, &fractions.counts(group.len())))
                {
                    part.extend(rows);
                }
            }
            parts.iter_mut().for_each(|p| p.sort_unstable());
            (names(fractions), parts)
        }
        SplitSpec::Time { column, fractions } => {
            fractions.check()?;
            let array = time_column(table, column)?;
            let sorted = sort_to_indices(&array, Some(SortOptions::default()), None)
                .map_err(DataError::arrow("sorting by time"))?;
            let sorted: Vec<u32> = sorted.values().to_vec();
            let rows = encode(&array)?;
            let mut parts = Vec::new();
            let mut start = 0;
            let mut target = 0;
            for count in fractions.counts(n) {
                target += count;
                let mut end = target.max(start);
                // Keep rows with the same time together: a part never ends inside a tie.
                while end > 0
                    && end < n
                    && rows.row(sorted[end] as usize) == rows.row(sorted[end - 1] as usize)
                {
                    end += 1;
                }
                parts.push(sorted[start..end].to_vec());
                start = end;
            }
            (names(fractions), parts)
        }
        SplitSpec::TimeCutoff {
            column,
            cutoff,
            before,
            after,
        } => {
            if before == after {
                return Err(DataError::InvalidSplit {
                    reason: format!("both parts are named `{before}`"),
                });
            }
            let array = time_column(table, column)?;
            let raw: ArrayRef = std::sync::Arc::new(StringArray::from(vec![cutoff.as_str()]));
            let strict = CastOptions {
                safe: false,
                ..Default::default()
            };
            let bound = cast_with_options(&raw, array.data_type(), &strict).map_err(|e| {
                DataError::InvalidSplit {
                    reason: format!(
                        "cutoff `{cutoff}` is not a {} value: {e}",
                        type_name(array.data_type())
                    ),
                }
            })?;
            let mask = cmp::lt(&array, &Scalar::new(bound))
                .map_err(DataError::arrow("comparing with the cutoff"))?;
            let (mut early, mut late) = (Vec::new(), Vec::new());
            for i in 0..n {
                if mask.value(i) {
                    early.push(i as u32)
                } else {
                    late.push(i as u32)
                }
            }
            (vec![before.clone(), after.clone()], vec![early, late])
        }
    };
    names
        .into_iter()
        .zip(parts)
        .map(|(name, rows)| Ok((name, table.take(&rows)?)))
        .collect()
}

fn names(fractions: &Fractions) -> Vec<String> {
    fractions.0.iter().map(|(n, _)| n.clone()).collect()
}

fn cut(rows: &[u32], counts: &[usize]) -> Vec<Vec<u32>> {
    let mut start = 0;
    counts
        .iter()
        .map(|&c| {
            let part = rows[start..start + c].to_vec();
            start += c;
            part
        })
        .collect()
}

fn encode(array: &ArrayRef) -> Result<Rows> {
    let converter = RowConverter::new(vec![SortField::new(array.data_type().clone())])
        .map_err(DataError::arrow("encoding rows"))?;
    converter
        .convert_columns(std::slice::from_ref(array))
        .map_err(DataError::arrow("encoding rows"))
}

fn time_column(table: &Table, column: &str) -> Result<ArrayRef> {
    let array = table.column(column)?;
    if !is_temporal(array.data_type()) {
        return Err(DataError::ColumnType {
            column: column.to_owned(),
            data_type: type_name(array.data_type()),
            operation: "a time split",
            expected: "a date or timestamp",
        });
    }
    if array.null_count() > 0 {
        return Err(DataError::NullsNotAllowed {
            column: column.to_owned(),
            count: array.null_count(),
            operation: "a time split",
        });
    }
    Ok(array)
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{Date32Array, Int64Array, RecordBatch, StringArray as Strings};
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    use std::sync::Arc;

    fn table(n: usize) -> Table {
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("class", DataType::Utf8, false),
            Field::new("day", DataType::Date32, false),
        ]));
        let ids: Vec<i64> = (0..n as i64).collect();
        let class: Vec<&str> = (0..n)
            .map(|i| if i % 4 == 0 { "rare" } else { "common" })
            .collect();
        // Days in reverse order, so time order differs from row order.
        let days: Vec<i32> = (0..n as i32).map(|i| 20_000 - i).collect();
        let batch = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(Int64Array::from(ids)),
                Arc::new(Strings::from(class)),
                Arc::new(Date32Array::from(days)),
            ],
        )
        .unwrap();
        Table::from_batch(batch)
    }

    fn ids(t: &Table) -> Vec<i64> {
        use datafusion::arrow::array::AsArray;
        use datafusion::arrow::datatypes::Int64Type;
        t.column("id")
            .unwrap()
            .as_primitive::<Int64Type>()
            .values()
            .to_vec()
    }

    fn spec(json: &str) -> SplitSpec {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn random_split_is_deterministic_and_complete() {
        let t = table(100);
        let s =
            spec(r#"{"method": "random", "fractions": {"train": 0.8, "test": 0.2}, "seed": 42}"#);
        let a = split(&t, &s).unwrap();
        let b = split(&t, &s).unwrap();
        assert_eq!(a[0].0, "train");
        assert_eq!(a[1].0, "test");
        assert_eq!((a[0].1.num_rows(), a[1].1.num_rows()), (80, 20));
        assert_eq!(ids(&a[1].1), ids(&b[1].1));
        assert_eq!(
            a[1].1.content_hash().unwrap(),
            b[1].1.content_hash().unwrap()
        );
        // Pinned: the generator is ours, so this never changes.
        assert_eq!(&ids(&a[1].1)[..5], &[3, 7, 8, 15, 17][..]);
        let mut all = [ids(&a[0].1), ids(&a[1].1)].concat();
        all.sort();
        assert_eq!(all, (0..100).collect::<Vec<_>>());
        let other = split(
            &t,
            &spec(r#"{"method": "random", "fractions": {"train": 0.8, "test": 0.2}, "seed": 7}"#),
        )
        .unwrap();
        assert_ne!(ids(&other[1].1), ids(&a[1].1));
    }

    #[test]
    fn stratified_split_keeps_class_proportions() {
        let t = table(100);
        let s = spec(
            r#"{"method": "stratified", "column": "class", "fractions": {"train": 0.6, "val": 0.2, "test": 0.2}, "seed": 1}"#,
        );
        let parts = split(&t, &s).unwrap();
        let rare = |t: &Table| ids(t).iter().filter(|i| *i % 4 == 0).count();
        assert_eq!(
            parts.iter().map(|(_, p)| p.num_rows()).collect::<Vec<_>>(),
            [60, 20, 20]
        );
        assert_eq!(
            parts.iter().map(|(_, p)| rare(p)).collect::<Vec<_>>(),
            [15, 5, 5]
        );
        assert_eq!(ids(&split(&t, &s).unwrap()[2].1), ids(&parts[2].1));
    }

    #[test]
    fn time_split_puts_earliest_rows_first() {
        let t = table(10);
        let parts = split(
            &t,
            &spec(
                r#"{"method": "time", "column": "day", "fractions": {"train": 0.7, "test": 0.3}}"#,
            ),
        )
        .unwrap();
        assert_eq!(ids(&parts[1].1), [2, 1, 0]);
        assert_eq!(parts[0].1.num_rows(), 7);
        let cut = split(
            &t,
            &spec(r#"{"method": "time_cutoff", "column": "day", "cutoff": "2024-10-01"}"#),
        )
        .unwrap();
        // Day 20000 is 2024-10-04: ids 0..=3 are on or after the cutoff.
        assert_eq!(ids(&cut[1].1), [0, 1, 2, 3]);
        assert_eq!(cut[0].0, "train");
    }

    #[test]
    fn fractions_keep_written_order_in_json_and_toml() {
        let from_json =
            spec(r#"{"method": "time", "column": "day", "fractions": {"z": 0.5, "a": 0.5}}"#);
        let from_toml: SplitSpec =
            toml::from_str("method = \"time\"\ncolumn = \"day\"\n[fractions]\nz = 0.5\na = 0.5\n")
                .unwrap();
        assert_eq!(from_json, from_toml);
        let SplitSpec::Time { fractions, .. } = from_toml else {
            panic!()
        };
        assert_eq!(fractions.0[0].0, "z");
    }

    #[test]
    fn bad_specs_are_errors() {
        let t = table(10);
        let err = |json: &str| split(&t, &spec(json)).unwrap_err();
        assert!(matches!(
            err(r#"{"method": "random", "fractions": {"a": 0.5, "b": 0.2}}"#),
            DataError::InvalidSplit { .. }
        ));
        assert!(matches!(
            err(r#"{"method": "random", "fractions": {"a": -0.5, "b": 1.5}}"#),
            DataError::InvalidSplit { .. }
        ));
        assert!(matches!(
            err(r#"{"method": "random", "fractions": {}}"#),
            DataError::InvalidSplit { .. }
        ));
        assert!(matches!(
            err(r#"{"method": "stratified", "column": "nope", "fractions": {"a": 1}}"#),
            DataError::ColumnNotFound { .. }
        ));
        assert!(matches!(
            err(r#"{"method": "time", "column": "class", "fractions": {"a": 1}}"#),
            DataError::ColumnType { .. }
        ));
        assert!(matches!(
            err(r#"{"method": "time_cutoff", "column": "day", "cutoff": "soon"}"#),
            DataError::InvalidSplit { .. }
        ));
        assert!(
            serde_json::from_str::<SplitSpec>(
                r#"{"method": "random", "fractions": {"a": 1}, "sed": 1}"#
            )
            .is_err()
        );
    }
}
