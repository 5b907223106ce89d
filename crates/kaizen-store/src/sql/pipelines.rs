//! Pipeline state: the step cache (cache key → output hashes) and the lineage graph.

use std::collections::BTreeMap;

use async_trait::async_trait;
use kaizen_core::{Error, Result};
use sqlx::Row;
use sqlx::any::AnyRow;

use super::{Arg, Sql, SqlStore, db_err, is_unique_violation};
use crate::{DatasetVersion, LineageEdge, NewDatasetVersion, PipelineStore, StepCacheEntry};

const DATASET_COLUMNS: &str = "name, version, content_hash, format, schema_json, num_rows, \
                               stats_json, run_id, pipeline, step, created";

fn dataset_row(row: &AnyRow) -> Result<DatasetVersion> {
    let bad = |e: serde_json::Error| Error::internal("corrupt datasets row", e);
    let schema: String = row.get("schema_json");
    let stats: String = row.get("stats_json");
    Ok(DatasetVersion {
        version: row.get("version"),
        created: row.get("created"),
        data: NewDatasetVersion {
            name: row.get("name"),
            content_hash: row.get("content_hash"),
            format: row.get("format"),
            schema: serde_json::from_str(&schema).map_err(bad)?,
            rows: row.get("num_rows"),
            stats: serde_json::from_str(&stats).map_err(bad)?,
            run_id: row.get("run_id"),
            pipeline: row.get("pipeline"),
            step: row.get("step"),
        },
    })
}

const CACHE_COLUMNS: &str = "cache_key, pipeline, step, components, outputs, run_id, created";

fn cache_entry(row: &AnyRow) -> Result<StepCacheEntry> {
    let components: String = row.get("components");
    let outputs: String = row.get("outputs");
    let bad = |e: serde_json::Error| Error::internal("corrupt step_cache row", e);
    Ok(StepCacheEntry {
        cache_key: row.get("cache_key"),
        pipeline: row.get("pipeline"),
        step: row.get("step"),
        components: serde_json::from_str::<Vec<(String, String)>>(&components).map_err(bad)?,
        outputs: serde_json::from_str::<BTreeMap<String, String>>(&outputs).map_err(bad)?,
        run_id: row.get("run_id"),
        created: row.get("created"),
    })
}

fn to_json<T: serde::Serialize>(v: &T) -> Result<String> {
    serde_json::to_string(v).map_err(|e| Error::internal("cannot encode JSON", e))
}

#[async_trait]
impl PipelineStore for SqlStore {
    async fn put_step_cache(&self, entry: &StepCacheEntry) -> Result<()> {
        let mut q = Sql::new("");
        let key = q.arg(Arg::Str(entry.cache_key.clone()));
        let pipeline = q.arg(Arg::Str(entry.pipeline.clone()));
        let step = q.arg(Arg::Str(entry.step.clone()));
        let components = q.arg(Arg::Str(to_json(&entry.components)?));
        let outputs = q.arg(Arg::Str(to_json(&entry.outputs)?));
        let run_id = q.arg(Arg::Str(entry.run_id.clone()));
        let created = q.arg(Arg::I64(entry.created));
        q.push(&format!(
            "INSERT INTO step_cache ({CACHE_COLUMNS}) VALUES ({key}, {pipeline}, {step}, \
             {components}, {outputs}, {run_id}, {created}) ON CONFLICT (cache_key) DO UPDATE SET \
             pipeline = excluded.pipeline, step = excluded.step, components = excluded.components, \
             outputs = excluded.outputs, run_id = excluded.run_id, created = excluded.created"
        ));
        q.query(self.dialect)
            .execute(&self.write)
            .await
            .map_err(db_err)?;
        Ok(())
    }

    async fn get_step_cache(&self, cache_key: &str) -> Result<Option<StepCacheEntry>> {
        let mut q = Sql::new("");
        let key = q.arg(Arg::Str(cache_key.to_string()));
        q.push(&format!(
            "SELECT {CACHE_COLUMNS} FROM step_cache WHERE cache_key = {key}"
        ));
        let row = q
            .query(self.dialect)
            .fetch_optional(&self.read)
            .await
            .map_err(db_err)?;
        row.as_ref().map(cache_entry).transpose()
    }

    async fn latest_step_cache(
        &self,
        pipeline: &str,
        step: &str,
    ) -> Result<Option<StepCacheEntry>> {
        let mut q = Sql::new("");
        let p = q.arg(Arg::Str(pipeline.to_string()));
        let s = q.arg(Arg::Str(step.to_string()));
        q.push(&format!(
            "SELECT {CACHE_COLUMNS} FROM step_cache WHERE pipeline = {p} AND step = {s} \
             ORDER BY created DESC, cache_key LIMIT 1"
        ));
        let row = q
            .query(self.dialect)
            .fetch_optional(&self.read)
            .await
            .map_err(db_err)?;
        row.as_ref().map(cache_entry).transpose()
    }

    async fn add_lineage_edges(&self, edges: &[LineageEdge]) -> Result<()> {
        if edges.is_empty() {
            return Ok(());
        }
        let mut tx = self.begin_write().await.map_err(db_err)?;
        for e in edges {
            let mut q = Sql::new("");
            let values = [
                q.arg(Arg::Str(e.src_kind.clone())),
                q.arg(Arg::Str(e.src_id.clone())),
                q.arg(Arg::Str(e.dst_kind.clone())),
                q.arg(Arg::Str(e.dst_id.clone())),
                q.arg(Arg::Str(e.relation.clone())),
                q.arg(Arg::I64(e.created)),
            ]
            .join(", ");
            q.push(&format!(
                "INSERT INTO lineage_edges (src_kind, src_id, dst_kind, dst_id, relation, created) \
                 VALUES ({values})"
            ));
            q.query(self.dialect)
                .execute(&mut *tx)
                .await
                .map_err(db_err)?;
        }
        tx.commit().await.map_err(db_err)?;
        Ok(())
    }

    async fn lineage_edges(&self, kind: &str, id: &str) -> Result<Vec<LineageEdge>> {
        let mut q = Sql::new("");
        let k = q.arg(Arg::Str(kind.to_string()));
        let i = q.arg(Arg::Str(id.to_string()));
        q.push(&format!(
            "SELECT src_kind, src_id, dst_kind, dst_id, relation, created FROM lineage_edges \
             WHERE (src_kind = {k} AND src_id = {i}) OR (dst_kind = {k} AND dst_id = {i}) \
             ORDER BY edge_id"
        ));
        let rows = q
            .query(self.dialect)
            .fetch_all(&self.read)
            .await
            .map_err(db_err)?;
        Ok(rows
            .iter()
            .map(|r| LineageEdge {
                src_kind: r.get("src_kind"),
                src_id: r.get("src_id"),
                dst_kind: r.get("dst_kind"),
                dst_id: r.get("dst_id"),
                relation: r.get("relation"),
                created: r.get("created"),
            })
            .collect())
    }

    async fn add_dataset_version(&self, new: &NewDatasetVersion) -> Result<DatasetVersion> {
        // Two writers may race for the same next version on PostgreSQL; the loser tries again.
        for _ in 0..5 {
            let mut tx = self.begin_write().await.map_err(db_err)?;
            let mut q = Sql::new("");
            let n = q.arg(Arg::Str(new.name.clone()));
            q.push(&format!(
                "SELECT {DATASET_COLUMNS} FROM catalog_datasets WHERE name = {n} ORDER BY version DESC LIMIT 1"
            ));
            let latest = q
                .query(self.dialect)
                .fetch_optional(&mut *tx)
                .await
                .map_err(db_err)?
                .as_ref()
                .map(dataset_row)
                .transpose()?;
            if let Some(same) = latest
                .as_ref()
                .filter(|l| l.data.content_hash == new.content_hash)
            {
                return Ok(same.clone());
            }
            let version = latest.map_or(1, |l| l.version + 1);
            let created = kaizen_core::now_millis();
            let mut q = Sql::new("");
            let values = [
                q.arg(Arg::Str(new.name.clone())),
                q.arg(Arg::I64(version)),
                q.arg(Arg::Str(new.content_hash.clone())),
                q.arg(Arg::Str(new.format.clone())),
                q.arg(Arg::Str(to_json(&new.schema)?)),
                q.arg(Arg::I64(new.rows)),
                q.arg(Arg::Str(to_json(&new.stats)?)),
                q.arg(Arg::Str(new.run_id.clone())),
                q.arg(Arg::Str(new.pipeline.clone())),
                q.arg(Arg::Str(new.step.clone())),
                q.arg(Arg::I64(created)),
            ]
            .join(", ");
            q.push(&format!(
                "INSERT INTO catalog_datasets ({DATASET_COLUMNS}) VALUES ({values})"
            ));
            match q.query(self.dialect).execute(&mut *tx).await {
                Ok(_) => {}
                Err(e) if is_unique_violation(&e) => continue,
                Err(e) => return Err(db_err(e)),
            }
            tx.commit().await.map_err(db_err)?;
            return Ok(DatasetVersion {
                version,
                created,
                data: new.clone(),
            });
        }
        Err(Error::new(
            kaizen_core::ErrorKind::Internal,
            format!("dataset '{}': too many concurrent new versions", new.name),
        ))
    }

    async fn get_dataset_version(
        &self,
        name: &str,
        version: Option<i64>,
    ) -> Result<DatasetVersion> {
        let mut q = Sql::new("");
        let n = q.arg(Arg::Str(name.to_string()));
        match version {
            Some(v) => {
                let v = q.arg(Arg::I64(v));
                q.push(&format!(
                    "SELECT {DATASET_COLUMNS} FROM catalog_datasets WHERE name = {n} AND version = {v}"
                ));
            }
            None => {
                q.push(&format!(
                    "SELECT {DATASET_COLUMNS} FROM catalog_datasets WHERE name = {n} ORDER BY version DESC LIMIT 1"
                ));
            }
        }
        let row = q
            .query(self.dialect)
            .fetch_optional(&self.read)
            .await
            .map_err(db_err)?;
        match row {
            Some(r) => dataset_row(&r),
            None => Err(Error::not_found(match version {
                Some(v) => format!("dataset '{name}' has no version {v}"),
                None => format!("no dataset named '{name}'"),
            })),
        }
    }

    async fn list_datasets(&self) -> Result<Vec<DatasetVersion>> {
        let rows = sqlx::query(&format!(
            "SELECT {DATASET_COLUMNS} FROM catalog_datasets d WHERE version = \
             (SELECT MAX(version) FROM catalog_datasets l WHERE l.name = d.name) ORDER BY name"
        ))
        .fetch_all(&self.read)
        .await
        .map_err(db_err)?;
        rows.iter().map(dataset_row).collect()
    }

    async fn dataset_versions(&self, name: &str) -> Result<Vec<DatasetVersion>> {
        let mut q = Sql::new("");
        let n = q.arg(Arg::Str(name.to_string()));
        q.push(&format!(
            "SELECT {DATASET_COLUMNS} FROM catalog_datasets WHERE name = {n} ORDER BY version"
        ));
        let rows = q
            .query(self.dialect)
            .fetch_all(&self.read)
            .await
            .map_err(db_err)?;
        rows.iter().map(dataset_row).collect()
    }
}
