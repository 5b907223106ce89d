//! SQL over named in-memory tables with DataFusion.

use std::collections::HashSet;
use std::sync::Arc;

use datafusion::datasource::MemTable;
use datafusion::prelude::{SessionConfig, SessionContext};

use crate::{DataError, Result, Table};

/// Runs `query` over `tables`, each registered under its name (unquoted names are lowercased,
/// as SQL identifiers are), and returns the result in memory.
///
/// Runs on its own small thread and current-thread runtime, so it may be called from sync code
/// and from inside a tokio runtime alike; async callers may use [`sql_async`].
pub fn sql(tables: &[(&str, &Table)], query: &str) -> Result<Table> {
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(|e| DataError::Internal(format!("starting the SQL runtime: {e}")))?;
                runtime.block_on(sql_async(tables, query))
            })
            .join()
            .unwrap_or_else(|_| Err(DataError::Internal("the SQL worker panicked".into())))
    })
}

/// [`sql`] for async callers.
pub async fn sql_async(tables: &[(&str, &Table)], query: &str) -> Result<Table> {
    let config = SessionConfig::new()
        .with_target_partitions(2)
        .with_information_schema(false);
    let ctx = SessionContext::new_with_config(config);
    let mut seen = HashSet::new();
    for (name, table) in tables {
        if !seen.insert(name.to_ascii_lowercase()) {
            return Err(DataError::DuplicateTable {
                name: (*name).to_owned(),
            });
        }
        let mem = MemTable::try_new(table.schema().clone(), vec![table.batches().to_vec()])
            .map_err(|source| DataError::Sql { source })?;
        ctx.register_table(*name, Arc::new(mem))
            .map_err(|source| DataError::Sql { source })?;
    }
    let frame = ctx
        .sql(query)
        .await
        .map_err(|source| DataError::Sql { source })?;
    let logical = Arc::new(frame.schema().as_arrow().clone());
    let batches = frame
        .collect()
        .await
        .map_err(|source| DataError::Sql { source })?;
    let schema = batches.first().map(|b| b.schema()).unwrap_or(logical);
    Table::new(schema, batches)
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::AsArray;
    use datafusion::arrow::datatypes::Int64Type;

    #[test]
    fn queries_and_joins_named_tables() {
        let t = crate::table::tests::sample();
        let out = sql(
            &[("t", &t)],
            "SELECT id, score * 2 AS double FROM t WHERE score IS NOT NULL ORDER BY id",
        )
        .unwrap();
        assert_eq!(out.num_rows(), 3);
        assert_eq!(out.column_names(), ["id", "double"]);
        let joined = sql(
            &[("a", &t), ("b", &t)],
            "SELECT count(*) AS n FROM a JOIN b ON a.id = b.id",
        )
        .unwrap();
        assert_eq!(
            joined
                .column("n")
                .unwrap()
                .as_primitive::<Int64Type>()
                .value(0),
            4
        );
    }

    #[test]
    fn bad_sql_and_unknown_tables_are_errors() {
        let t = crate::table::tests::sample();
        assert!(matches!(
            sql(&[("t", &t)], "SELEC nope"),
            Err(DataError::Sql { .. })
        ));
        let err = sql(&[("t", &t)], "SELECT * FROM missing").unwrap_err();
        assert!(err.to_string().contains("missing"), "{err}");
        assert!(matches!(
            sql(&[("t", &t), ("T", &t)], "SELECT 1"),
            Err(DataError::DuplicateTable { .. })
        ));
    }

    #[tokio::test(flavor = "current_thread")]
    async fn sync_sql_works_inside_a_runtime() {
        let t = crate::table::tests::sample();
        assert_eq!(sql(&[("t", &t)], "SELECT * FROM t").unwrap().num_rows(), 4);
        assert_eq!(
            sql_async(&[("t", &t)], "SELECT * FROM t")
                .await
                .unwrap()
                .num_rows(),
            4
        );
    }
}
