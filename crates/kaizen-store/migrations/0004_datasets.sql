-- kaizen metadata schema, version 4: the dataset catalog. Every tabular pipeline output is a
-- version of the dataset named after it. A version points at its content (`cas/<content_hash>`)
-- and keeps its schema, row count and column statistics as JSON. A name's versions count from 1.
-- (MLflow's own `datasets` table holds the datasets of run inputs, hence the prefix.)
CREATE TABLE catalog_datasets (
    name TEXT NOT NULL,
    version BIGINT NOT NULL,
    content_hash TEXT NOT NULL,
    format TEXT NOT NULL,
    schema_json TEXT NOT NULL,
    num_rows BIGINT NOT NULL,
    stats_json TEXT NOT NULL,
    run_id TEXT NOT NULL,
    pipeline TEXT NOT NULL,
    step TEXT NOT NULL,
    created BIGINT NOT NULL,
    PRIMARY KEY (name, version)
){without_rowid};
CREATE INDEX catalog_datasets_by_hash ON catalog_datasets (content_hash)
