//! The store test suite. Every test runs on SQLite and, when `KAIZEN_TEST_POSTGRES_URI` points at a
//! PostgreSQL server (the test set-up starts a throwaway one), on PostgreSQL too, with the same code.
//! `KAIZEN_REQUIRE_POSTGRES=1` turns a missing server into a failure instead of a skip.

mod events;
mod pipelines;
mod registry;
mod tracking;

use std::sync::Arc;

use kaizen_store::MetadataStore;
use kaizen_store::sql::SqlStore;

/// A store on a fresh database, and what keeps it alive.
pub struct Backend {
    pub name: &'static str,
    pub store: Arc<dyn MetadataStore>,
    _dir: Option<tempfile::TempDir>,
}

/// Fresh stores on every configured backend.
pub async fn backends() -> Vec<Backend> {
    let dir = tempfile::tempdir().unwrap();
    let uri = format!("sqlite://{}/kaizen.db", dir.path().display());
    let mut out = vec![Backend {
        name: "sqlite",
        store: Arc::new(SqlStore::open(&uri).await.unwrap()),
        _dir: Some(dir),
    }];
    match std::env::var("KAIZEN_TEST_POSTGRES_URI") {
        Ok(admin) if !admin.is_empty() => {
            let db = format!("t_{}", kaizen_core::ids::new_run_id());
            create_database(&admin, &db).await;
            let base = admin.rsplit_once('/').map(|(b, _)| b.to_string()).unwrap();
            out.push(Backend {
                name: "postgresql",
                store: Arc::new(SqlStore::open(&format!("{base}/{db}")).await.unwrap()),
                _dir: None,
            });
        }
        _ => {
            assert!(
                std::env::var("KAIZEN_REQUIRE_POSTGRES").is_err(),
                "KAIZEN_REQUIRE_POSTGRES is set but KAIZEN_TEST_POSTGRES_URI is not"
            );
            eprintln!("note: KAIZEN_TEST_POSTGRES_URI is not set; running on SQLite only");
        }
    }
    out
}

async fn create_database(admin_uri: &str, name: &str) {
    use sqlx::Executor;
    sqlx::any::install_default_drivers();
    let mut conn = <sqlx::AnyConnection as sqlx::Connection>::connect(admin_uri)
        .await
        .unwrap();
    conn.execute(format!("CREATE DATABASE {name}").as_str())
        .await
        .unwrap();
}
