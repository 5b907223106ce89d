//! Pretrained models on candle, in pure Rust: sentence embeddings with a BERT-family encoder in
//! Hugging Face layout, extractive summaries ranked by embedding centrality, questions answered
//! from passages retrieved by embeddings, the text sources they read (files, web pages,
//! Wikipedia), speech to text with Whisper (`transcribe`, with `audio` and the CTranslate2
//! importer `ct2`), and the HTTP routes `/v1/embed`, `/v1/summarize`, `/v1/ask` and the rest.
//!
//! Models come from local directories; nothing here downloads weights. Inference runs on the CPU;
//! the `cuda` feature builds candle's CUDA backend for [`Embedder::load_on`] a GPU device.

pub mod ask;
pub mod audio;
mod bert;
pub mod ct2;
pub mod embed;
pub mod error;
pub mod html;
pub mod http;
pub mod sentences;
pub mod source;
pub mod summarize;
pub mod transcribe;
mod ui;

pub use ask::{Answer, OpenAi, Passage, Provider, Retrieval};
pub use embed::{Embedder, Pooling, cosine};
pub use error::{ErrorKind, InferError};
pub use http::{InferConfig, InferState, router};
pub use source::{DEFAULT_WIKI_API, Document, Source};
pub use summarize::{Method, Summary, summarize};
pub use transcribe::{Progress, Segment, Transcriber, Transcript};
