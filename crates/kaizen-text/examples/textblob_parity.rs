//! Prints kaizen-text's analyses of texts as JSON lines, for `textblob_parity.py` to compare
//! with TextBlob: `cargo run -p kaizen-text --example textblob_parity -- DATA_DIR < texts.jsonl`,
//! one JSON string per input line.

use std::io::{BufRead, Write};
use std::path::PathBuf;

use kaizen_text::{Lexicon, Tagger, noun_phrases};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = PathBuf::from(
        std::env::args()
            .nth(1)
            .ok_or("usage: textblob_parity DATA_DIR < texts.jsonl")?,
    );
    let lexicon = Lexicon::load(&dir)?;
    let tagger = Tagger::load(&dir)?;
    let brill = Tagger::load_brill(&dir)?;
    let mut out = std::io::stdout().lock();
    for line in std::io::stdin().lock().lines() {
        let text: String = serde_json::from_str(&line?)?;
        let json = serde_json::json!({
            "sentiment": lexicon.sentiment(&text),
            "tags": tagger.tag(&text),
            "tags_brill": brill.tag(&text),
            "chunks_brill": brill.chunk_sentences(&text).concat().into_iter().map(|c| c.chunk).collect::<Vec<_>>(),
            "phrases": noun_phrases(&tagger, &text),
        });
        writeln!(out, "{json}")?;
    }
    Ok(())
}
