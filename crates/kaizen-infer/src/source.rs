//! Where a text to summarize comes from: given inline, a file, a web page (its readable text),
//! or a Wikipedia article through the MediaWiki API (`action=query&prop=extracts`).

use std::path::PathBuf;
use std::time::Duration;

use serde_json::Value;

use crate::error::{InferError, Result};
use crate::html::extract_text;

/// The MediaWiki API that `--wiki` reads by default.
pub const DEFAULT_WIKI_API: &str = "https://en.wikipedia.org/w/api.php";
/// The longest a page may take to answer.
const FETCH_TIMEOUT: Duration = Duration::from_secs(30);
/// The largest page read.
const MAX_PAGE_BYTES: usize = 20 * 1024 * 1024;

/// A text to work on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    Text(String),
    File(PathBuf),
    Url(String),
    /// A Wikipedia title and the MediaWiki API to ask.
    Wiki {
        title: String,
        api: String,
    },
}

/// A loaded text and a title when its source had one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Document {
    pub title: Option<String>,
    pub text: String,
}

impl Source {
    /// Reads the text, fetching it when it is remote.
    pub async fn load(&self) -> Result<Document> {
        let doc = match self {
            Source::Text(text) => Document {
                title: None,
                text: text.clone(),
            },
            Source::File(path) => {
                let bytes = tokio::fs::read(path)
                    .await
                    .map_err(|source| InferError::Read {
                        path: path.clone(),
                        source,
                    })?;
                let text = String::from_utf8(bytes).map_err(|_| {
                    InferError::invalid(format!("`{}` is not UTF-8 text", path.display()))
                })?;
                if looks_like_html(&text) {
                    let page = extract_text(&text);
                    Document {
                        title: page.title,
                        text: page.text,
                    }
                } else {
                    Document { title: None, text }
                }
            }
            Source::Url(url) => fetch_page(url).await?,
            Source::Wiki { title, api } => fetch_wiki(api, title).await?,
        };
        if doc.text.trim().is_empty() {
            return Err(InferError::invalid(match self {
                Source::Text(_) => "the text is empty".to_string(),
                other => format!("{}: no text found (empty)", other.describe()),
            }));
        }
        Ok(doc)
    }

    fn describe(&self) -> String {
        match self {
            Source::Text(_) => "the text".to_string(),
            Source::File(path) => format!("`{}`", path.display()),
            Source::Url(url) => url.clone(),
            Source::Wiki { title, .. } => format!("Wikipedia page `{title}`"),
        }
    }
}

fn looks_like_html(text: &str) -> bool {
    let head = text.trim_start();
    let head = &head[..head.len().min(512)].to_ascii_lowercase();
    head.starts_with("<!doctype html") || head.starts_with("<html") || head.contains("<body")
}

fn client() -> Result<reqwest::Client> {
    reqwest::Client::builder()
        .timeout(FETCH_TIMEOUT)
        .user_agent(concat!("kaizen/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| InferError::Fetch {
            url: String::new(),
            reason: e.to_string(),
        })
}

fn fetch_error(url: &str, e: &reqwest::Error) -> InferError {
    InferError::Fetch {
        url: url.to_string(),
        reason: describe_http_error(e, FETCH_TIMEOUT),
    }
}

/// What went wrong with a request, without the URL (the caller's message names it).
pub(crate) fn describe_http_error(e: &reqwest::Error, timeout: Duration) -> String {
    if e.is_timeout() {
        format!("no answer within {} s", timeout.as_secs())
    } else if e.is_connect() {
        "cannot connect (is the address right and the server up?)".to_string()
    } else {
        // reqwest's message repeats the URL; the cause chain says what happened.
        let mut reason = e.to_string();
        let mut source = std::error::Error::source(e);
        while let Some(s) = source {
            reason = s.to_string();
            source = s.source();
        }
        reason
    }
}

async fn get(url: &str) -> Result<(String, String)> {
    let parsed = url::Url::parse(url)
        .map_err(|e| InferError::invalid(format!("`{url}` is not a URL: {e}")))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(InferError::invalid(format!(
            "`{url}`: only http and https URLs can be fetched"
        )));
    }
    let response = client()?
        .get(parsed)
        .send()
        .await
        .map_err(|e| fetch_error(url, &e))?;
    let status = response.status();
    if !status.is_success() {
        let reason = format!("the server answered {status}");
        return Err(if status == reqwest::StatusCode::NOT_FOUND {
            InferError::NotFound(format!("{url}: {reason}"))
        } else {
            InferError::Fetch {
                url: url.to_string(),
                reason,
            }
        });
    }
    let content_type = response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    if let Some(len) = response.content_length()
        && len as usize > MAX_PAGE_BYTES
    {
        return Err(InferError::invalid(format!(
            "{url}: the page is {len} bytes, more than the {MAX_PAGE_BYTES} read"
        )));
    }
    let bytes = response.bytes().await.map_err(|e| fetch_error(url, &e))?;
    if bytes.len() > MAX_PAGE_BYTES {
        return Err(InferError::invalid(format!(
            "{url}: the page is larger than the {MAX_PAGE_BYTES} bytes read"
        )));
    }
    Ok((content_type, String::from_utf8_lossy(&bytes).into_owned()))
}

async fn fetch_page(url: &str) -> Result<Document> {
    let (content_type, body) = get(url).await?;
    let is_text = content_type.is_empty()
        || content_type.starts_with("text/")
        || content_type.contains("html")
        || content_type.contains("xml");
    if !is_text {
        return Err(InferError::invalid(format!(
            "{url}: cannot read a `{content_type}` page; only HTML and plain text"
        )));
    }
    if content_type.starts_with("text/plain")
        || !looks_like_html(&body) && !content_type.contains("html")
    {
        return Ok(Document {
            title: None,
            text: body,
        });
    }
    let page = extract_text(&body);
    Ok(Document {
        title: page.title,
        text: page.text,
    })
}

/// The MediaWiki request for the plain-text extract of `title`.
pub fn wiki_url(api: &str, title: &str) -> Result<url::Url> {
    let mut url = url::Url::parse(api)
        .map_err(|e| InferError::invalid(format!("`{api}` is not a MediaWiki API URL: {e}")))?;
    url.query_pairs_mut()
        .append_pair("action", "query")
        .append_pair("prop", "extracts")
        .append_pair("explaintext", "1")
        .append_pair("redirects", "1")
        .append_pair("format", "json")
        .append_pair("titles", title);
    Ok(url)
}

async fn fetch_wiki(api: &str, title: &str) -> Result<Document> {
    if title.trim().is_empty() {
        return Err(InferError::invalid("the Wikipedia title is empty"));
    }
    let url = wiki_url(api, title)?;
    let (_, body) = get(url.as_str()).await?;
    parse_wiki_response(&body, title).map_err(|e| match e {
        InferError::InvalidInput(reason) => InferError::Fetch {
            url: api.to_string(),
            reason,
        },
        other => other,
    })
}

/// Reads a MediaWiki `prop=extracts` answer (format version 1 or 2).
pub fn parse_wiki_response(body: &str, title: &str) -> Result<Document> {
    let json: Value = serde_json::from_str(body)
        .map_err(|e| InferError::invalid(format!("not a MediaWiki API answer: {e}")))?;
    if let Some(error) = json.get("error") {
        let info = error.get("info").and_then(Value::as_str).unwrap_or("error");
        return Err(InferError::invalid(format!(
            "the MediaWiki API answered: {info}"
        )));
    }
    let pages = json
        .pointer("/query/pages")
        .ok_or_else(|| InferError::invalid("a MediaWiki API answer without query.pages"))?;
    let page = match pages {
        Value::Object(map) => map.values().next(),
        Value::Array(list) => list.first(),
        _ => None,
    }
    .ok_or_else(|| InferError::NotFound(format!("Wikipedia has no page `{title}`")))?;
    let flag = |name: &str| {
        page.get(name)
            .is_some_and(|v| !matches!(v, Value::Bool(false)))
    };
    if flag("missing") || flag("invalid") {
        return Err(InferError::NotFound(format!(
            "Wikipedia has no page `{title}`"
        )));
    }
    let text = page
        .get("extract")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    if text.trim().is_empty() {
        return Err(InferError::NotFound(format!(
            "Wikipedia page `{title}` has no text"
        )));
    }
    Ok(Document {
        title: page
            .get("title")
            .and_then(Value::as_str)
            .map(str::to_string),
        text,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wiki_url_has_the_query() {
        let url = wiki_url(DEFAULT_WIKI_API, "Rust (programming language)").unwrap();
        assert_eq!(
            url.as_str(),
            "https://en.wikipedia.org/w/api.php?action=query&prop=extracts&explaintext=1\
             &redirects=1&format=json&titles=Rust+%28programming+language%29"
        );
    }

    #[test]
    fn wiki_answers() {
        let found = r#"{"batchcomplete":"","query":{"pages":{"42":{"pageid":42,"ns":0,
            "title":"Tide mill","extract":"A tide mill is a mill.\n\n== History ==\nOld."}}}}"#;
        let doc = parse_wiki_response(found, "tide mill").unwrap();
        assert_eq!(doc.title.as_deref(), Some("Tide mill"));
        assert!(doc.text.starts_with("A tide mill"));

        let missing = r#"{"query":{"pages":{"-1":{"ns":0,"title":"Nope","missing":""}}}}"#;
        let err = parse_wiki_response(missing, "Nope").unwrap_err();
        assert_eq!(err.kind(), crate::ErrorKind::NotFound);
        assert_eq!(err.to_string(), "Wikipedia has no page `Nope`");

        let v2 = r#"{"query":{"pages":[{"title":"Nope","missing":true}]}}"#;
        assert!(matches!(
            parse_wiki_response(v2, "Nope"),
            Err(InferError::NotFound(_))
        ));

        let invalid = r#"{"query":{"pages":{"-1":{"title":"a|b","invalid":""}}}}"#;
        assert!(matches!(
            parse_wiki_response(invalid, "a|b"),
            Err(InferError::NotFound(_))
        ));

        assert!(parse_wiki_response("<html>", "x").is_err());
    }

    #[tokio::test]
    async fn a_url_that_does_not_answer_is_unavailable() {
        // A port nobody listens on: bind, note it, drop the listener.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let err = Source::Url(format!("http://127.0.0.1:{port}/"))
            .load()
            .await
            .unwrap_err();
        assert_eq!(err.kind(), crate::ErrorKind::Unavailable, "{err}");
        let err = Source::Url("ftp://example.invalid/x".into())
            .load()
            .await
            .unwrap_err();
        assert_eq!(err.kind(), crate::ErrorKind::Invalid);
    }
}
