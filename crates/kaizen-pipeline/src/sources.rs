//! External sources of `ingest` steps and their cache fingerprints: HTTP(S) URLs (ETag or
//! Last-Modified, else the content hash) and PostgreSQL queries (the hash of the result).

use std::path::Path;

use kaizen_core::{Error, Result};
use tokio::io::AsyncWriteExt;

use crate::cache::sha256_hex;

fn client() -> Result<reqwest::Client> {
    reqwest::Client::builder()
        .connect_timeout(std::time::Duration::from_secs(10))
        .build()
        .map_err(|e| Error::internal("cannot build an HTTP client", e))
}

/// What identifies the current content behind a URL without downloading it, when the server
/// says: its ETag, else its Last-Modified and length; else the hash of the body.
pub async fn http_fingerprint(url: &str) -> Result<String> {
    let client = client()?;
    let head = client
        .head(url)
        .send()
        .await
        .map_err(|e| Error::invalid(format!("cannot reach {url}: {e}")))?;
    if head.status().is_success() {
        let h = head.headers();
        let text = |k: reqwest::header::HeaderName| {
            h.get(k).and_then(|v| v.to_str().ok()).map(str::to_owned)
        };
        if let Some(etag) = text(reqwest::header::ETAG) {
            return Ok(format!("etag {etag}"));
        }
        if let Some(modified) = text(reqwest::header::LAST_MODIFIED) {
            let len = text(reqwest::header::CONTENT_LENGTH).unwrap_or_default();
            return Ok(format!("last-modified {modified} length {len}"));
        }
    }
    // No validator (or HEAD refused): the content itself.
    let body = get(&client, url)
        .await?
        .bytes()
        .await
        .map_err(|e| Error::invalid(format!("cannot read {url}: {e}")))?;
    Ok(format!("sha256 {}", sha256_hex(&body)))
}

async fn get(client: &reqwest::Client, url: &str) -> Result<reqwest::Response> {
    let r = client
        .get(url)
        .send()
        .await
        .map_err(|e| Error::invalid(format!("cannot reach {url}: {e}")))?;
    if !r.status().is_success() {
        return Err(Error::invalid(format!("{url} answered {}", r.status())));
    }
    Ok(r)
}

/// Downloads `url` into `to`.
pub async fn download(url: &str, to: &Path) -> Result<()> {
    let client = client()?;
    let mut response = get(&client, url).await?;
    let mut file = tokio::fs::File::create(to)
        .await
        .map_err(|e| Error::internal(format!("cannot create {}", to.display()), e))?;
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| Error::invalid(format!("cannot read {url}: {e}")))?
    {
        file.write_all(&chunk)
            .await
            .map_err(|e| Error::internal(format!("cannot write {}", to.display()), e))?;
    }
    file.flush()
        .await
        .map_err(|e| Error::internal(format!("cannot write {}", to.display()), e))
}

/// A connection URI as written, or read from the environment when written `$NAME`, so that
/// pipeline files need not hold passwords.
pub fn postgres_uri(written: &str) -> Result<String> {
    match written.strip_prefix('$') {
        Some(var) => std::env::var(var).map_err(|_| {
            Error::invalid(format!(
                "with.postgres names the environment variable {var}, which is not set"
            ))
        }),
        None => Ok(written.to_string()),
    }
}

/// A URI without its password, for cache component names and messages.
pub fn redact(uri: &str) -> String {
    match url::Url::parse(uri) {
        Ok(mut u) => {
            if u.password().is_some() {
                let _ = u.set_password(Some("***"));
            }
            u.to_string()
        }
        Err(_) => "postgresql".into(),
    }
}

/// Runs `query` and answers its rows as JSON lines (PostgreSQL's `row_to_json`, so every column
/// type arrives in a form the JSON reader infers; `with.types` casts further).
pub async fn postgres_rows(uri: &str, query: &str) -> Result<String> {
    use sqlx::Connection;
    let shown = redact(uri);
    let mut conn = sqlx::postgres::PgConnection::connect(uri)
        .await
        .map_err(|e| Error::invalid(format!("cannot connect to {shown}: {e}")))?;
    let query = query.trim().trim_end_matches(';');
    let wrapped = format!("SELECT row_to_json(q)::text FROM ({query}) AS q");
    let rows: Vec<String> = sqlx::query_scalar(&wrapped)
        .fetch_all(&mut conn)
        .await
        .map_err(|e| Error::invalid(format!("query on {shown} failed: {e}")))?;
    let _ = conn.close().await;
    let mut text = rows.join("\n");
    if !text.is_empty() {
        text.push('\n');
    }
    Ok(text)
}
