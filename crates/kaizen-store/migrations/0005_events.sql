-- kaizen metadata schema, version 5: the event log. Services append an event when a run ends,
-- a model version is registered, an alias moves, a validation fails or drift is found. The log
-- is the outbox of notifications: each subscriber keeps the id of the last event delivered to
-- it in event_cursors, so a restart delivers what was missed and nothing twice.
CREATE TABLE events (
    id {auto_id},
    timestamp BIGINT NOT NULL,
    kind TEXT NOT NULL,
    subject TEXT NOT NULL,
    payload TEXT NOT NULL
);
CREATE INDEX events_by_kind ON events (kind, id);
CREATE TABLE event_cursors (
    subscriber TEXT NOT NULL PRIMARY KEY,
    last_event_id BIGINT NOT NULL,
    updated BIGINT NOT NULL
)
