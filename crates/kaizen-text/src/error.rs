//! The one error type of the crate, and the reading of data files that produces most of it.

use std::path::{Path, PathBuf};

/// What can go wrong. `Missing` and `EmptyText` are the caller's to fix (install the data,
/// pass some text); `Malformed` means the data files are not what pattern writes.
#[derive(Debug, thiserror::Error)]
pub enum TextError {
    /// A data file is not where the caller said the data is.
    #[error("data file `{}` not found", path.display())]
    Missing { path: PathBuf },

    /// A data file exists but could not be read (permissions, not UTF-8, ...).
    #[error("cannot read data file `{}`: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// A data file was read but a line or element of it makes no sense.
    #[error("malformed data file `{}`, line {line}: {reason}", path.display())]
    Malformed {
        path: PathBuf,
        line: usize,
        reason: String,
    },

    /// A regular expression of the chunker did not compile (a bug, never the input's fault).
    #[error("internal pattern failed to compile: {0}")]
    Pattern(#[from] regex::Error),

    /// The text to analyse is empty or only whitespace.
    #[error("the text is empty")]
    EmptyText,
}

impl TextError {
    /// True when the error is the caller's to fix rather than a broken installation or a bug.
    pub fn is_user_error(&self) -> bool {
        matches!(self, TextError::Missing { .. } | TextError::EmptyText)
    }
}

/// Refuses empty or whitespace-only text, for callers (the CLI, HTTP routes) that treat it as a
/// mistake; the analyses themselves accept any string and return empty results for it.
pub fn check_text(text: &str) -> Result<&str, TextError> {
    if text.trim().is_empty() {
        Err(TextError::EmptyText)
    } else {
        Ok(text)
    }
}

/// Reads a whole data file, telling a missing file apart from an unreadable one.
pub(crate) fn read_file(path: &Path) -> Result<String, TextError> {
    std::fs::read_to_string(path).map_err(|source| {
        if source.kind() == std::io::ErrorKind::NotFound {
            TextError::Missing {
                path: path.to_path_buf(),
            }
        } else {
            TextError::Read {
                path: path.to_path_buf(),
                source,
            }
        }
    })
}

/// The lines of one of pattern's text files as its `_read` yields them: trimmed, without blank
/// lines and `;;;` comments, each with its 1-based line number for error messages.
pub(crate) fn data_lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.lines().enumerate().filter_map(|(i, line)| {
        let line = line.trim_matches(crate::tokenize::is_py_space);
        (!line.is_empty() && !line.starts_with(";;;")).then_some((i + 1, line))
    })
}

/// Shorthand for a `Malformed` error.
pub(crate) fn malformed(path: &Path, line: usize, reason: impl Into<String>) -> TextError {
    TextError::Malformed {
        path: path.to_path_buf(),
        line,
        reason: reason.into(),
    }
}
