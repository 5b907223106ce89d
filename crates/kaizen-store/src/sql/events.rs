//! The event log and its subscribers' delivery cursors.

use async_trait::async_trait;
use kaizen_core::{Error, Result};
use sqlx::Row;
use sqlx::any::AnyRow;

use super::{SqlStore, db_err};
use crate::{Event, EventStore, NewEvent};

fn event_row(row: &AnyRow) -> Result<Event> {
    let payload: String = row.get("payload");
    Ok(Event {
        id: row.get("id"),
        timestamp: row.get("timestamp"),
        kind: row.get("kind"),
        subject: row.get("subject"),
        payload: serde_json::from_str(&payload)
            .map_err(|e| Error::internal("corrupt events row", e))?,
    })
}

#[async_trait]
impl EventStore for SqlStore {
    async fn append_event(&self, event: &NewEvent) -> Result<i64> {
        let payload = serde_json::to_string(&event.payload)
            .map_err(|e| Error::internal("cannot encode an event", e))?;
        let row = sqlx::query(
            "INSERT INTO events (timestamp, kind, subject, payload) VALUES ($1, $2, $3, $4) \
             RETURNING id",
        )
        .bind(kaizen_core::now_millis())
        .bind(&event.kind)
        .bind(&event.subject)
        .bind(payload)
        .fetch_one(&self.write)
        .await
        .map_err(db_err)?;
        Ok(row.get("id"))
    }

    async fn events_after(&self, after: i64, limit: i64) -> Result<Vec<Event>> {
        let rows = sqlx::query(
            "SELECT id, timestamp, kind, subject, payload FROM events WHERE id > $1 \
             ORDER BY id LIMIT $2",
        )
        .bind(after)
        .bind(limit)
        .fetch_all(&self.read)
        .await
        .map_err(db_err)?;
        rows.iter().map(event_row).collect()
    }

    async fn last_events(&self, limit: i64) -> Result<Vec<Event>> {
        let rows = sqlx::query(
            "SELECT id, timestamp, kind, subject, payload FROM events ORDER BY id DESC LIMIT $1",
        )
        .bind(limit)
        .fetch_all(&self.read)
        .await
        .map_err(db_err)?;
        let mut events = rows.iter().map(event_row).collect::<Result<Vec<_>>>()?;
        events.reverse();
        Ok(events)
    }

    async fn event_cursor(&self, subscriber: &str) -> Result<i64> {
        let row = sqlx::query("SELECT last_event_id FROM event_cursors WHERE subscriber = $1")
            .bind(subscriber)
            .fetch_optional(&self.read)
            .await
            .map_err(db_err)?;
        Ok(row.map_or(0, |r| r.get("last_event_id")))
    }

    async fn set_event_cursor(&self, subscriber: &str, last_event_id: i64) -> Result<()> {
        sqlx::query(
            "INSERT INTO event_cursors (subscriber, last_event_id, updated) VALUES ($1, $2, $3) \
             ON CONFLICT (subscriber) DO UPDATE SET last_event_id = excluded.last_event_id, \
             updated = excluded.updated",
        )
        .bind(subscriber)
        .bind(last_event_id)
        .bind(kaizen_core::now_millis())
        .execute(&self.write)
        .await
        .map_err(db_err)?;
        Ok(())
    }
}
