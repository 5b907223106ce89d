-- kaizen metadata schema, version 3: pipelines. `step_cache` maps a step's cache key (the hash of
-- its definition, code, params and inputs) to the content hashes of the outputs it produced;
-- `components` keeps the hash of each part of the key so a miss can say which part changed.
-- `lineage_edges` records what was made from what (artifacts, runs, datasets, models).
CREATE TABLE step_cache (
    cache_key TEXT PRIMARY KEY,
    pipeline TEXT NOT NULL,
    step TEXT NOT NULL,
    components TEXT NOT NULL,
    outputs TEXT NOT NULL,
    run_id TEXT NOT NULL,
    created BIGINT NOT NULL
);
CREATE INDEX step_cache_by_step ON step_cache (pipeline, step, created);
CREATE TABLE lineage_edges (
    edge_id {auto_id},
    src_kind TEXT NOT NULL,
    src_id TEXT NOT NULL,
    dst_kind TEXT NOT NULL,
    dst_id TEXT NOT NULL,
    relation TEXT NOT NULL,
    created BIGINT NOT NULL
);
CREATE INDEX lineage_by_src ON lineage_edges (src_kind, src_id);
CREATE INDEX lineage_by_dst ON lineage_edges (dst_kind, dst_id)
