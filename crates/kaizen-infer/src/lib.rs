//! Pretrained models on candle, in pure Rust: sentence embeddings with a BERT-family encoder in
//! Hugging Face layout, extractive summaries ranked by embedding centrality, abstractive ones
//! written by a GGUF instruct LLM or a T5 model (chunked map-reduce for long texts), questions
//! answered from passages retrieved by embeddings (by a sentence of them or a local LLM), the
//! text sources they read (files, web pages, Wikipedia), speech to text with Whisper
//! (`transcribe`, with `audio` and the CTranslate2 importer `ct2`), and the HTTP routes
//! `/v1/embed`, `/v1/summarize`, `/v1/ask` and the rest.
//!
//! Models come from local directories; nothing here downloads weights. Inference runs on the CPU;
//! the `cuda` feature builds candle's CUDA backend for [`Embedder::load_on`] a GPU device.

pub mod abstractive;
pub mod ask;
mod attention;
pub mod audio;
mod bert;
pub mod ct2;
mod dense;
pub mod embed;
pub mod error;
pub mod html;
pub mod http;
mod llama;
pub mod llm;
pub mod sentences;
pub mod seq2seq;
pub mod source;
pub mod summarize;
pub mod transcribe;
mod ui;
mod whisper;

pub use abstractive::{AbstractiveOptions, Writer};
pub use ask::{Answer, OpenAi, Passage, Provider, Retrieval};
pub use embed::{Embedder, Pooling, cosine};
pub use error::{ErrorKind, InferError};
pub use http::{InferConfig, InferState, router};
pub use llm::{GenerateOptions, Generation, Llm, Message};
pub use seq2seq::Seq2Seq;
pub use source::{DEFAULT_WIKI_API, Document, Source};
pub use summarize::{Method, Summary, summarize, summarize_abstractive};
pub use transcribe::{Progress, Segment, Transcriber, Transcript};
