//! Preprocessing: a spec per input column ([`PreprocessSpec`]) fitted on a [`Frame`] into a
//! [`Preprocessor`] that turns frames into the feature [`Matrix`] of a learner, and the fitted
//! pair of both ([`FittedPipeline`]).
//!
//! Numbers are imputed (mean, median or a constant) and optionally standardized; categories
//! become one-hot columns (unknown values all zero) or ordinal codes (unknown values NaN); text
//! becomes TF-IDF or hashed term counts, each row L2-normalized.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

use crate::error::{MlError, Result};
use crate::frame::{ColumnData, Frame};
use crate::learner::{FittedModel, LearnerSpec, Task, fit};
use crate::matrix::Matrix;

/// How to turn the input columns into features; columns not named are left out.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PreprocessSpec {
    pub columns: Vec<ColumnSpec>,
}

/// One input column and its encoding, written flat: `{name = "price", encoding = "numeric",
/// scale = true}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ColumnSpec {
    pub name: String,
    #[serde(flatten)]
    pub encoding: Encoding,
}

/// The encoding of one column.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "encoding", rename_all = "snake_case")]
pub enum Encoding {
    /// A number: missing values imputed, then standardized (`(x - mean) / std`) if `scale`.
    Numeric {
        #[serde(default)]
        impute: Impute,
        #[serde(default)]
        scale: bool,
    },
    /// A category (text, or a number taken as a code): one 0/1 feature per value among the
    /// `max_categories` most frequent in training; other and missing values set none.
    OneHot {
        #[serde(default = "default_max_categories")]
        max_categories: usize,
    },
    /// A category as its index among the training values in sorted order; unknown and missing
    /// values are NaN.
    Ordinal,
    /// Text as TF-IDF weights of lowercase word tokens found in at least `min_df` training
    /// rows, the `max_features` most frequent (0: all); `idf = ln((1 + n) / (1 + df)) + 1` as
    /// scikit-learn's smoothed idf.
    Tfidf {
        #[serde(default = "one")]
        min_df: usize,
        #[serde(default = "default_max_features")]
        max_features: usize,
    },
    /// Text as signed token counts hashed into `n_features` buckets: no vocabulary to fit or
    /// store, at the price of collisions.
    Hashing {
        #[serde(default = "default_hash_features")]
        n_features: usize,
    },
}

fn default_max_categories() -> usize {
    50
}

fn one() -> usize {
    1
}

fn default_max_features() -> usize {
    10_000
}

fn default_hash_features() -> usize {
    1024
}

/// What replaces a missing number.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Impute {
    #[default]
    Mean,
    Median,
    Constant(f64),
}

/// A fitted column encoder.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Encoder {
    Numeric {
        fill: f64,
        scale: Option<Scaling>,
    },
    OneHot {
        categories: Vec<String>,
    },
    Ordinal {
        categories: Vec<String>,
    },
    Tfidf {
        vocabulary: Vec<String>,
        idf: Vec<f64>,
    },
    Hashing {
        n_features: usize,
    },
}

/// Standardization: `(x - mean) / std`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Scaling {
    pub mean: f64,
    pub std: f64,
}

/// One fitted input column.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FittedColumn {
    pub name: String,
    pub encoder: Encoder,
}

/// A fitted preprocessing: what [`Preprocessor::transform`] does to every frame, and the names of
/// the features it makes (`price`, `color=red`, `review:great`, `review:#17`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Preprocessor {
    pub columns: Vec<FittedColumn>,
    pub features: Vec<String>,
}

impl Preprocessor {
    /// Learns imputation values, scalings, categories and vocabularies from `frame`.
    pub fn fit(frame: &Frame, spec: &PreprocessSpec) -> Result<Preprocessor> {
        if spec.columns.is_empty() {
            return Err(MlError::invalid("the preprocessing names no columns"));
        }
        let mut columns = Vec::with_capacity(spec.columns.len());
        let mut features = Vec::new();
        for column in &spec.columns {
            let data = frame
                .column(&column.name)
                .ok_or_else(|| frame.missing(&column.name))?;
            let encoder = fit_column(&column.name, data, &column.encoding)?;
            features.extend(feature_names(&column.name, &encoder));
            columns.push(FittedColumn {
                name: column.name.clone(),
                encoder,
            });
        }
        Ok(Preprocessor { columns, features })
    }

    /// The feature matrix of `frame` (which needs every fitted column, others are ignored).
    pub fn transform(&self, frame: &Frame) -> Result<Matrix> {
        let rows = frame.rows();
        let mut data = Vec::with_capacity(rows * self.features.len());
        for column in &self.columns {
            let values = frame
                .column(&column.name)
                .ok_or_else(|| frame.missing(&column.name))?;
            transform_column(&column.name, &column.encoder, values, rows, &mut data)?;
        }
        Ok(Matrix {
            rows,
            names: self.features.clone(),
            data,
        })
    }

    /// Whether every column is numeric (imputation and scaling only), so that the preprocessing
    /// maps one input column to one feature, as ONNX export needs.
    pub fn is_numeric_only(&self) -> bool {
        self.columns
            .iter()
            .all(|c| matches!(c.encoder, Encoder::Numeric { .. }))
    }
}

fn text_error(name: &str, what: &str) -> MlError {
    MlError::invalid(format!("column `{name}` is {what}"))
}

fn fit_column(name: &str, data: &ColumnData, encoding: &Encoding) -> Result<Encoder> {
    match encoding {
        Encoding::Numeric { impute, scale } => {
            let ColumnData::Numeric(values) = data else {
                return Err(text_error(
                    name,
                    "text; encode it with one_hot, ordinal, tfidf or hashing",
                ));
            };
            let mut seen: Vec<f64> = values.iter().copied().filter(|v| !v.is_nan()).collect();
            let fill = match impute {
                Impute::Constant(value) => *value,
                _ if seen.is_empty() => 0.0,
                Impute::Mean => seen.iter().sum::<f64>() / seen.len() as f64,
                Impute::Median => {
                    seen.sort_by(f64::total_cmp);
                    let mid = seen.len() / 2;
                    if seen.len() % 2 == 1 {
                        seen[mid]
                    } else {
                        (seen[mid - 1] + seen[mid]) / 2.0
                    }
                }
            };
            // Scaled after imputation, as a scikit-learn pipeline of an imputer and a scaler.
            let scale = scale.then(|| {
                let filled: Vec<f64> = values
                    .iter()
                    .map(|&v| if v.is_nan() { fill } else { v })
                    .collect();
                let n = filled.len().max(1) as f64;
                let mean = filled.iter().sum::<f64>() / n;
                let var = filled.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n;
                let std = var.sqrt();
                Scaling {
                    mean,
                    std: if std > 0.0 { std } else { 1.0 },
                }
            });
            Ok(Encoder::Numeric { fill, scale })
        }
        Encoding::OneHot { max_categories } => {
            let mut counts: HashMap<String, usize> = HashMap::new();
            for value in categories(data).into_iter().flatten() {
                *counts.entry(value).or_default() += 1;
            }
            let mut ranked: Vec<(String, usize)> = counts.into_iter().collect();
            ranked.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
            ranked.truncate(*max_categories);
            let mut categories: Vec<String> = ranked.into_iter().map(|(c, _)| c).collect();
            categories.sort();
            Ok(Encoder::OneHot { categories })
        }
        Encoding::Ordinal => {
            let mut categories: Vec<String> = categories(data).into_iter().flatten().collect();
            categories.sort();
            categories.dedup();
            Ok(Encoder::Ordinal { categories })
        }
        Encoding::Tfidf {
            min_df,
            max_features,
        } => {
            let texts = text(name, data)?;
            let n = texts.len() as f64;
            // term -> (documents, occurrences)
            let mut stats: HashMap<String, (usize, usize)> = HashMap::new();
            for doc in texts {
                let mut counts: HashMap<String, usize> = HashMap::new();
                for token in tokenize(doc.as_deref().unwrap_or("")) {
                    *counts.entry(token).or_default() += 1;
                }
                for (token, count) in counts {
                    let entry = stats.entry(token).or_default();
                    entry.0 += 1;
                    entry.1 += count;
                }
            }
            let mut kept: Vec<(String, (usize, usize))> = stats
                .into_iter()
                .filter(|(_, (df, _))| df >= min_df)
                .collect();
            if *max_features > 0 && kept.len() > *max_features {
                kept.sort_by(|a, b| b.1.1.cmp(&a.1.1).then_with(|| a.0.cmp(&b.0)));
                kept.truncate(*max_features);
            }
            kept.sort_by(|a, b| a.0.cmp(&b.0));
            let idf = kept
                .iter()
                .map(|(_, (df, _))| ((1.0 + n) / (1.0 + *df as f64)).ln() + 1.0)
                .collect();
            let vocabulary = kept.into_iter().map(|(t, _)| t).collect();
            Ok(Encoder::Tfidf { vocabulary, idf })
        }
        Encoding::Hashing { n_features } => {
            text(name, data)?;
            if *n_features == 0 {
                return Err(MlError::invalid(format!(
                    "column `{name}`: hashing needs n_features of 1 or more"
                )));
            }
            Ok(Encoder::Hashing {
                n_features: *n_features,
            })
        }
    }
}

fn feature_names(name: &str, encoder: &Encoder) -> Vec<String> {
    match encoder {
        Encoder::Numeric { .. } | Encoder::Ordinal { .. } => vec![name.to_string()],
        Encoder::OneHot { categories } => {
            categories.iter().map(|c| format!("{name}={c}")).collect()
        }
        Encoder::Tfidf { vocabulary, .. } => {
            vocabulary.iter().map(|t| format!("{name}:{t}")).collect()
        }
        Encoder::Hashing { n_features } => {
            (0..*n_features).map(|i| format!("{name}:#{i}")).collect()
        }
    }
}

fn text<'a>(name: &str, data: &'a ColumnData) -> Result<&'a [Option<String>]> {
    match data {
        ColumnData::Text(values) => Ok(values),
        ColumnData::Numeric(_) => Err(text_error(
            name,
            "numeric; tfidf and hashing take text columns",
        )),
    }
}

/// A category's text: strings as they are, numbers as codes (`3`, not `3.0`); missing is `None`.
fn categories(data: &ColumnData) -> Vec<Option<String>> {
    match data {
        ColumnData::Text(values) => values.clone(),
        ColumnData::Numeric(values) => values
            .iter()
            .map(|&v| {
                if v.is_nan() {
                    None
                } else if v.fract() == 0.0 && v.abs() < 1e15 {
                    Some(format!("{}", v as i64))
                } else {
                    Some(format!("{v}"))
                }
            })
            .collect(),
    }
}

/// Lowercase word tokens of two or more characters: scikit-learn's default token pattern
/// (`\b\w\w+\b`) is exactly a split on characters that are not letters, digits or `_`, which a
/// loop over `char`s does without a regex (or a dependency) per row.
pub fn tokenize(text: &str) -> Vec<String> {
    let mut tokens = Vec::new();
    let mut current = String::new();
    for c in text.chars() {
        if c.is_alphanumeric() || c == '_' {
            current.extend(c.to_lowercase());
        } else {
            if current.chars().count() >= 2 {
                tokens.push(std::mem::take(&mut current));
            }
            current.clear();
        }
    }
    if current.chars().count() >= 2 {
        tokens.push(current);
    }
    tokens
}

/// FNV-1a, 64 bits: fixed here so hashed features never change with a dependency's version
/// (std's hasher makes no such promise).
fn fnv1a(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

/// Appends the columns of one encoder (column-major) to `out`.
fn transform_column(
    name: &str,
    encoder: &Encoder,
    values: &ColumnData,
    rows: usize,
    out: &mut Vec<f64>,
) -> Result<()> {
    match encoder {
        Encoder::Numeric { fill, scale } => {
            let ColumnData::Numeric(values) = values else {
                return Err(text_error(name, "text, but was numeric when fitted"));
            };
            out.extend(values.iter().map(|&v| {
                let v = if v.is_nan() { *fill } else { v };
                match scale {
                    Some(s) => (v - s.mean) / s.std,
                    None => v,
                }
            }));
        }
        Encoder::OneHot { categories: known } => {
            let values = categories(values);
            for category in known {
                out.extend(
                    values
                        .iter()
                        .map(|v| f64::from(v.as_deref() == Some(category.as_str()))),
                );
            }
        }
        Encoder::Ordinal { categories: known } => {
            let index: HashMap<&str, usize> = known
                .iter()
                .enumerate()
                .map(|(i, c)| (c.as_str(), i))
                .collect();
            out.extend(categories(values).iter().map(|v| {
                v.as_deref()
                    .and_then(|v| index.get(v))
                    .map_or(f64::NAN, |&i| i as f64)
            }));
        }
        Encoder::Tfidf { vocabulary, idf } => {
            let texts = text(name, values)?;
            let index: HashMap<&str, usize> = vocabulary
                .iter()
                .enumerate()
                .map(|(i, t)| (t.as_str(), i))
                .collect();
            let start = out.len();
            out.resize(start + rows * vocabulary.len(), 0.0);
            let block = &mut out[start..];
            for (i, doc) in texts.iter().enumerate() {
                let mut counts: BTreeMap<usize, f64> = BTreeMap::new();
                for token in tokenize(doc.as_deref().unwrap_or("")) {
                    if let Some(&j) = index.get(token.as_str()) {
                        *counts.entry(j).or_default() += 1.0;
                    }
                }
                write_normalized(
                    block,
                    rows,
                    i,
                    counts.into_iter().map(|(j, c)| (j, c * idf[j])),
                );
            }
        }
        Encoder::Hashing { n_features } => {
            let texts = text(name, values)?;
            let start = out.len();
            out.resize(start + rows * n_features, 0.0);
            let block = &mut out[start..];
            for (i, doc) in texts.iter().enumerate() {
                let mut counts: BTreeMap<usize, f64> = BTreeMap::new();
                for token in tokenize(doc.as_deref().unwrap_or("")) {
                    let hash = fnv1a(token.as_bytes());
                    // The sign halves the bias of collisions, as scikit-learn's alternate_sign.
                    let sign = if hash >> 63 == 1 { -1.0 } else { 1.0 };
                    *counts
                        .entry((hash % *n_features as u64) as usize)
                        .or_default() += sign;
                }
                write_normalized(block, rows, i, counts.into_iter());
            }
        }
    }
    Ok(())
}

/// Writes row `i` of a column-major block (`rows` per column) scaled to unit L2 norm.
fn write_normalized(
    block: &mut [f64],
    rows: usize,
    i: usize,
    cells: impl Iterator<Item = (usize, f64)>,
) {
    let cells: Vec<(usize, f64)> = cells.collect();
    let norm = cells.iter().map(|(_, v)| v * v).sum::<f64>().sqrt();
    if norm > 0.0 {
        for (j, v) in cells {
            block[j * rows + i] = v / norm;
        }
    }
}

/// A preprocessor and the model trained on its features: what scores raw frames.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FittedPipeline {
    pub preprocessor: Preprocessor,
    pub model: FittedModel,
}

impl FittedPipeline {
    /// See [`FittedModel::predict`].
    pub fn predict(&self, frame: &Frame) -> Result<Vec<f64>> {
        Ok(self.model.predict(&self.preprocessor.transform(frame)?))
    }

    /// See [`FittedModel::predict_proba`].
    pub fn predict_proba(&self, frame: &Frame) -> Result<Vec<Vec<f64>>> {
        Ok(self
            .model
            .predict_proba(&self.preprocessor.transform(frame)?))
    }
}

/// Fits `preprocess` on `frame`, then `spec` on the features; `valid` is preprocessed with the
/// same fitted preprocessor.
pub fn fit_pipeline(
    spec: &LearnerSpec,
    preprocess: &PreprocessSpec,
    task: Task,
    frame: &Frame,
    y: &[f64],
    valid: Option<(&Frame, &[f64])>,
) -> Result<FittedPipeline> {
    let preprocessor = Preprocessor::fit(frame, preprocess)?;
    let x = preprocessor.transform(frame)?;
    let valid_x = valid.map(|(f, _)| preprocessor.transform(f)).transpose()?;
    let valid = valid_x.as_ref().zip(valid.map(|(_, y)| y));
    let model = fit(spec, task, &x, y, valid)?;
    Ok(FittedPipeline {
        preprocessor,
        model,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::linear::TextLinearParams;

    fn frame() -> Frame {
        Frame::new(vec![
            (
                "price".into(),
                ColumnData::Numeric(vec![1.0, f64::NAN, 3.0, 10.0]),
            ),
            (
                "color".into(),
                ColumnData::Text(vec![
                    Some("red".into()),
                    Some("blue".into()),
                    None,
                    Some("red".into()),
                ]),
            ),
            (
                "store".into(),
                ColumnData::Numeric(vec![7.0, 7.0, 2.0, f64::NAN]),
            ),
        ])
    }

    fn spec(json: &str) -> PreprocessSpec {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn numeric_imputation_and_scaling() {
        let f = frame();
        let p = Preprocessor::fit(
            &f,
            &spec(r#"{"columns": [{"name": "price", "encoding": "numeric", "impute": "median"}]}"#),
        )
        .unwrap();
        assert_eq!(p.transform(&f).unwrap().data, vec![1.0, 3.0, 3.0, 10.0]);
        let p = Preprocessor::fit(
            &f,
            &spec(r#"{"columns": [{"name": "price", "encoding": "numeric", "impute": {"constant": -1}, "scale": true}]}"#),
        )
        .unwrap();
        let m = p.transform(&f).unwrap();
        // Filled: 1, -1, 3, 10: mean 3.25, population std.
        let std =
            ((2.25f64.powi(2) + 4.25f64.powi(2) + 0.25f64.powi(2) + 6.75f64.powi(2)) / 4.0).sqrt();
        assert!((m.get(1, 0) - (-1.0 - 3.25) / std).abs() < 1e-12);
        let mean: f64 = m.data.iter().sum::<f64>() / 4.0;
        assert!(mean.abs() < 1e-12);
        let p = Preprocessor::fit(
            &f,
            &spec(r#"{"columns": [{"name": "price", "encoding": "numeric"}]}"#),
        )
        .unwrap();
        assert_eq!(p.transform(&f).unwrap().get(1, 0), 14.0 / 3.0);
        assert!(p.is_numeric_only());
    }

    #[test]
    fn categories_one_hot_and_ordinal() {
        let f = frame();
        let p = Preprocessor::fit(
            &f,
            &spec(
                r#"{"columns": [{"name": "color", "encoding": "one_hot"},
                               {"name": "store", "encoding": "ordinal"},
                               {"name": "store", "encoding": "one_hot", "max_categories": 1}]}"#,
            ),
        )
        .unwrap();
        assert_eq!(p.features, ["color=blue", "color=red", "store", "store=7"]);
        assert!(!p.is_numeric_only());
        let m = p.transform(&f).unwrap();
        assert_eq!(m.column(0), &[0.0, 1.0, 0.0, 0.0]);
        assert_eq!(m.column(1), &[1.0, 0.0, 0.0, 1.0]);
        // Sorted codes: "2" -> 0, "7" -> 1; missing -> NaN.
        assert_eq!(m.column(2)[..3], [1.0, 1.0, 0.0]);
        assert!(m.column(2)[3].is_nan());
        assert_eq!(m.column(3), &[1.0, 1.0, 0.0, 0.0]);
        // Unknown values: one-hot all zero, ordinal NaN.
        let new = Frame::new(vec![
            ("color".into(), ColumnData::Text(vec![Some("green".into())])),
            ("store".into(), ColumnData::Numeric(vec![99.0])),
        ]);
        let m = p.transform(&new).unwrap();
        assert_eq!(&m.data[..2], &[0.0, 0.0]);
        assert!(m.data[2].is_nan());
    }

    #[test]
    fn tfidf_matches_scikit_learn() {
        // TfidfVectorizer(min_df=1) on the same three documents gives, for the first row,
        // vocabulary [cat, dog, the]: idf = ln(4/3)+1, ln(4/2)+1, ln(4/4)+1 (the in all 3).
        let docs = Frame::new(vec![(
            "review".into(),
            ColumnData::Text(vec![
                Some("The cat, the CAT!".into()),
                Some("the dog".into()),
                Some("A dog and the mat".into()),
            ]),
        )]);
        let p = Preprocessor::fit(
            &docs,
            &spec(r#"{"columns": [{"name": "review", "encoding": "tfidf", "min_df": 2}]}"#),
        )
        .unwrap();
        assert_eq!(p.features, ["review:dog", "review:the"]);
        let p = Preprocessor::fit(
            &docs,
            &spec(r#"{"columns": [{"name": "review", "encoding": "tfidf"}]}"#),
        )
        .unwrap();
        assert_eq!(p.features[..3], ["review:and", "review:cat", "review:dog"]);
        let m = p.transform(&docs).unwrap();
        let cat = 2.0 * ((4.0f64 / 2.0).ln() + 1.0);
        let the = 2.0 * 1.0;
        let norm = (cat * cat + the * the).sqrt();
        let at = |name: &str| p.features.iter().position(|f| f == name).unwrap();
        assert!((m.get(0, at("review:cat")) - cat / norm).abs() < 1e-12);
        assert!((m.get(0, at("review:the")) - the / norm).abs() < 1e-12);
        for i in 0..3 {
            let n: f64 = m.row(i).iter().map(|v| v * v).sum();
            assert!((n - 1.0).abs() < 1e-12);
        }
        // "a" is one letter: no token.
        assert!(!p.features.contains(&"review:a".to_string()));
    }

    #[test]
    fn hashing_is_stable_and_normalized() {
        let docs = Frame::new(vec![(
            "t".into(),
            ColumnData::Text(vec![Some("alpha beta beta".into()), None]),
        )]);
        let p = Preprocessor::fit(
            &docs,
            &spec(r#"{"columns": [{"name": "t", "encoding": "hashing", "n_features": 16}]}"#),
        )
        .unwrap();
        assert_eq!(p.features.len(), 16);
        assert_eq!(p.features[3], "t:#3");
        let m = p.transform(&docs).unwrap();
        let n: f64 = m.row(0).iter().map(|v| v * v).sum();
        assert!((n - 1.0).abs() < 1e-12);
        assert!(m.row(1).iter().all(|&v| v == 0.0));
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
    }

    #[test]
    fn errors_name_the_column() {
        let f = frame();
        let err = Preprocessor::fit(
            &f,
            &spec(r#"{"columns": [{"name": "colour", "encoding": "ordinal"}]}"#),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("`colour`") && err.contains("color"), "{err}");
        let err = Preprocessor::fit(
            &f,
            &spec(r#"{"columns": [{"name": "color", "encoding": "numeric"}]}"#),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("`color` is text"), "{err}");
        let err = Preprocessor::fit(
            &f,
            &spec(r#"{"columns": [{"name": "price", "encoding": "tfidf"}]}"#),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("`price` is numeric"), "{err}");
        let p = Preprocessor::fit(
            &f,
            &spec(r#"{"columns": [{"name": "price", "encoding": "numeric"}]}"#),
        )
        .unwrap();
        let err = p.transform(&Frame::default()).unwrap_err().to_string();
        assert!(err.contains("`price`"), "{err}");
    }

    #[test]
    fn preprocessor_round_trips_through_json() {
        let f = frame();
        let p = Preprocessor::fit(
            &f,
            &spec(r#"{"columns": [{"name": "price", "encoding": "numeric", "scale": true}, {"name": "color", "encoding": "one_hot"}]}"#),
        )
        .unwrap();
        let back: Preprocessor = serde_json::from_str(&serde_json::to_string(&p).unwrap()).unwrap();
        assert_eq!(back, p);
    }

    #[test]
    fn tokenizer_lowercases_and_drops_single_characters() {
        assert_eq!(
            tokenize("Héllo, WORLD! a_b x 42"),
            ["héllo", "world", "a_b", "42"]
        );
    }

    #[test]
    fn text_linear_classifies_reviews_through_a_pipeline() {
        let good = [
            "great product, love it",
            "excellent quality and great value",
            "love love love",
            "works great",
        ];
        let bad = [
            "terrible, broke after a day",
            "awful quality",
            "broke and terrible support",
            "awful, do not buy",
        ];
        let mut texts = Vec::new();
        let mut y = Vec::new();
        for round in 0..5 {
            for (g, b) in good.iter().zip(&bad) {
                texts.push(Some(format!("{g} {round}")));
                y.push(1.0);
                texts.push(Some(format!("{b} {round}")));
                y.push(0.0);
            }
        }
        let frame = Frame::new(vec![("review".into(), ColumnData::Text(texts))]);
        let params = TextLinearParams::default();
        let pipeline = fit_pipeline(
            &LearnerSpec::TextLinear(params.clone()),
            &params.preprocess_spec(&["review"]),
            Task::Binary,
            &frame,
            &y,
            None,
        )
        .unwrap();
        assert_eq!(pipeline.model.learner, "text_linear");
        let new = Frame::new(vec![(
            "review".into(),
            ColumnData::Text(vec![
                Some("great value, love it".into()),
                Some("terrible and awful".into()),
            ]),
        )]);
        let p = pipeline.predict(&new).unwrap();
        assert!(p[0] > 0.5 && p[1] < 0.5, "{p:?}");
        // Regression through ridge: a score that follows the words.
        let scores: Vec<f64> = y.iter().map(|v| v * 4.0 + 1.0).collect();
        let pipeline = fit_pipeline(
            &LearnerSpec::TextLinear(params.clone()),
            &params.preprocess_spec(&["review"]),
            Task::Regression,
            &frame,
            &scores,
            None,
        )
        .unwrap();
        let p = pipeline.predict(&new).unwrap();
        assert!(p[0] > 3.0 && p[1] < 3.0, "{p:?}");
    }
}
