//! [`Table`]: a schema and its record batches.

use std::io::Write;
use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, UInt32Array};
use datafusion::arrow::compute::{concat_batches, take_record_batch};
use datafusion::arrow::datatypes::{Field, Schema, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::parquet::basic::Compression;
use datafusion::parquet::file::properties::{EnabledStatistics, WriterProperties, WriterVersion};
use sha2::{Digest, Sha256};

use crate::{DataError, Result};

/// An in-memory table: one schema and the record batches that hold its rows.
#[derive(Debug, Clone)]
pub struct Table {
    schema: SchemaRef,
    batches: Vec<RecordBatch>,
}

impl Table {
    /// A table of `batches`, each of which must have the fields of `schema`.
    pub fn new(schema: SchemaRef, batches: Vec<RecordBatch>) -> Result<Self> {
        for (i, batch) in batches.iter().enumerate() {
            if batch.schema().fields() != schema.fields() {
                return Err(DataError::SchemaMismatch {
                    detail: format!(
                        "batch {i} has fields {:?}, the table {:?}",
                        batch.schema().fields(),
                        schema.fields()
                    ),
                });
            }
        }
        Ok(Table { schema, batches })
    }

    /// A table of one batch.
    pub fn from_batch(batch: RecordBatch) -> Self {
        Table {
            schema: batch.schema(),
            batches: vec![batch],
        }
    }

    /// A table with no rows.
    pub fn empty(schema: SchemaRef) -> Self {
        Table {
            schema,
            batches: Vec::new(),
        }
    }

    pub fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    pub fn batches(&self) -> &[RecordBatch] {
        &self.batches
    }

    pub fn into_batches(self) -> Vec<RecordBatch> {
        self.batches
    }

    pub fn num_rows(&self) -> usize {
        self.batches.iter().map(RecordBatch::num_rows).sum()
    }

    pub fn num_columns(&self) -> usize {
        self.schema.fields().len()
    }

    pub fn column_names(&self) -> Vec<String> {
        self.schema
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect()
    }

    /// All rows in one batch.
    pub fn concat(&self) -> Result<RecordBatch> {
        concat_batches(&self.schema, &self.batches)
            .map_err(DataError::arrow("concatenating batches"))
    }

    /// One column, all rows, by name.
    pub fn column(&self, name: &str) -> Result<ArrayRef> {
        let index = self.column_index(name)?;
        Ok(self.concat()?.column(index).clone())
    }

    pub(crate) fn column_index(&self, name: &str) -> Result<usize> {
        self.schema
            .index_of(name)
            .map_err(|_| DataError::ColumnNotFound {
                column: name.to_owned(),
                available: self.column_names().join(", "),
            })
    }

    /// The rows at `indices` (of the whole table), in that order.
    pub fn take(&self, indices: &[u32]) -> Result<Table> {
        let batch = self.concat()?;
        let indices = UInt32Array::from(indices.to_vec());
        let taken = take_record_batch(&batch, &indices).map_err(DataError::arrow("taking rows"))?;
        Ok(Table {
            schema: self.schema.clone(),
            batches: vec![taken],
        })
    }

    /// Hex SHA-256 of the table's canonical Parquet encoding.
    ///
    /// The encoding: all batches concatenated into one (so batch boundaries do not matter), schema
    /// and field metadata dropped (names, types and nullability kept), one row group, Parquet 2.0
    /// writer, no compression, no dictionary, no statistics, and a fixed `created_by`. Parquet is
    /// used rather than Arrow IPC because it does not encode the bytes under null slots, which two
    /// equal tables may hold differently. The hash is stable for the same data and the same
    /// parquet crate version's encoder.
    pub fn content_hash(&self) -> Result<String> {
        let fields: Vec<Field> = self
            .schema
            .fields()
            .iter()
            .map(|f| Field::new(f.name(), f.data_type().clone(), f.is_nullable()))
            .collect();
        let schema = Arc::new(Schema::new(fields));
        let batch = self.concat()?;
        let batch = RecordBatch::try_new(schema.clone(), batch.columns().to_vec())
            .map_err(DataError::arrow("building the canonical batch"))?;
        let props = WriterProperties::builder()
            .set_writer_version(WriterVersion::PARQUET_2_0)
            .set_compression(Compression::UNCOMPRESSED)
            .set_dictionary_enabled(false)
            .set_statistics_enabled(EnabledStatistics::None)
            .set_max_row_group_row_count(Some(batch.num_rows().max(1)))
            .set_created_by("kaizen-data content hash v1".to_owned())
            .build();
        let mut hasher = HashWriter(Sha256::new());
        let mut writer = ArrowWriter::try_new(&mut hasher, schema, Some(props))
            .map_err(|e| DataError::Internal(format!("content hash: {e}")))?;
        writer
            .write(&batch)
            .map_err(|e| DataError::Internal(format!("content hash: {e}")))?;
        writer
            .close()
            .map_err(|e| DataError::Internal(format!("content hash: {e}")))?;
        Ok(hex::encode(hasher.0.finalize()))
    }
}

struct HashWriter(Sha256);

impl Write for HashWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use datafusion::arrow::array::{Float64Array, Int64Array, StringArray};
    use datafusion::arrow::datatypes::DataType;

    pub(crate) fn sample() -> Table {
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("name", DataType::Utf8, true),
            Field::new("score", DataType::Float64, true),
        ]));
        let batch = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(Int64Array::from(vec![1, 2, 3, 4])),
                Arc::new(StringArray::from(vec![
                    Some("a"),
                    None,
                    Some("c"),
                    Some("d"),
                ])),
                Arc::new(Float64Array::from(vec![
                    Some(1.5),
                    Some(2.5),
                    None,
                    Some(4.0),
                ])),
            ],
        )
        .unwrap();
        Table::from_batch(batch)
    }

    #[test]
    fn counts_rows_and_columns() {
        let t = sample();
        assert_eq!(t.num_rows(), 4);
        assert_eq!(t.num_columns(), 3);
        assert_eq!(t.column_names(), ["id", "name", "score"]);
        assert!(matches!(
            t.column("nope"),
            Err(DataError::ColumnNotFound { .. })
        ));
    }

    #[test]
    fn content_hash_is_stable_and_ignores_batch_boundaries() {
        let t = sample();
        let h1 = t.content_hash().unwrap();
        assert_eq!(h1, t.content_hash().unwrap());
        assert_eq!(h1.len(), 64);
        let b = t.concat().unwrap();
        let split = Table::new(t.schema().clone(), vec![b.slice(0, 1), b.slice(1, 3)]).unwrap();
        assert_eq!(split.num_rows(), 4);
        assert_eq!(h1, split.content_hash().unwrap());
        let fewer = t.take(&[0, 1, 2]).unwrap();
        assert_ne!(h1, fewer.content_hash().unwrap());
    }

    #[test]
    fn new_rejects_mismatched_batches() {
        let t = sample();
        let other = Arc::new(Schema::new(vec![Field::new("x", DataType::Int64, false)]));
        assert!(matches!(
            Table::new(other, t.batches().to_vec()),
            Err(DataError::SchemaMismatch { .. })
        ));
    }
}
