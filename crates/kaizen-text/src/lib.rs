//! Classic English text analysis in pure Rust, in the manner of TextBlob: lexicon sentiment,
//! part-of-speech tags and noun phrases, from pattern.en's data files as the `textblob` wheel on
//! PyPI ships them (`textblob/en/`, MIT; kaizen's setup copies them to `models/textblob/`).
//!
//! - [`Lexicon`]: TextBlob's default sentiment (`TextBlob(s).sentiment`, the `PatternAnalyzer`),
//!   the same polarity and subjectivity to the last bits for the same text
//!   ([`sentiment`](mod@sentiment) says how they are computed).
//! - [`Tagger`]: Penn Treebank tags from pattern's Brill lexicon, as TextBlob's `PatternTagger`
//!   tags, or with Brill's lexical and contextual rules and pattern's named entities as well.
//! - [`noun_phrases`]: pattern's chunker read as TextBlob's noun-phrase extractors read chunks
//!   ([`chunk`] says how; not TextBlob's default extractor, which needs NLTK corpora).
//! - [`tokenize`]: pattern's tokenizer, which all of them share.
//!
//! `examples/textblob_parity.py` runs TextBlob and this crate (through the `textblob_parity`
//! example) on the same texts and compares sentiment, assessments, tags and chunks.
//!
//! The caller says where the data directory is; a missing or malformed file is a [`TextError`]
//! naming it. Every analysis accepts any string: empty text has no assessments, tags or phrases
//! ([`check_text`] refuses it for callers that treat it as a mistake).

pub mod chunk;
mod error;
pub mod sentiment;
pub mod tagger;
pub mod tokenize;

pub use chunk::{Chunked, noun_phrases};
pub use error::{TextError, check_text};
pub use sentiment::{Assessment, Label, Lexicon, Sentiment};
pub use tagger::{Tagged, Tagger};

/// The data files, by name, that a complete data directory holds.
pub const DATA_FILES: &[&str] = &[
    sentiment::SENTIMENT_FILE,
    tagger::LEXICON_FILE,
    tagger::MORPHOLOGY_FILE,
    tagger::CONTEXT_FILE,
    tagger::ENTITIES_FILE,
];
