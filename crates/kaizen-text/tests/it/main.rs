//! kaizen-text on the real data files, when they are installed (`scripts/setup.sh` copies them
//! to `models/textblob`; `KAIZEN_TEXT_DATA` points elsewhere). Without them these tests say so
//! and pass: the unit tests need no downloaded files. The expectations are TextBlob 0.20.1's.

use std::path::PathBuf;

use kaizen_text::{Label, Lexicon, Tagger, noun_phrases};

fn data_dir() -> Option<PathBuf> {
    let dir = std::env::var_os("KAIZEN_TEXT_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../models/textblob"));
    if dir.join("en-sentiment.xml").is_file() {
        Some(dir)
    } else {
        eprintln!("skipped: no TextBlob data at {}", dir.display());
        None
    }
}

#[test]
fn sentiment_as_textblob_scores_it() {
    let Some(dir) = data_dir() else { return };
    let lexicon = Lexicon::load(&dir).unwrap();
    // TextBlob 0.20.1 scores 2,860 words, derived adverbs included.
    assert_eq!(lexicon.len(), 2_860);
    // (text, TextBlob's polarity, subjectivity)
    let cases = [
        ("The movie was not good.", -0.35, 0.6),
        ("What a wonderful, beautiful day!", 1.0, 1.0),
        ("The concert was very good.", 0.91, 0.78),
        ("The train leaves from platform 9.", 0.0, 0.0),
        ("Lost my keys again :( sad day", -0.625, 1.0),
    ];
    for (text, polarity, subjectivity) in cases {
        let s = lexicon.sentiment(text);
        assert!((s.polarity - polarity).abs() < 1e-12, "{text}: {s:?}");
        assert!(
            (s.subjectivity - subjectivity).abs() < 1e-12,
            "{text}: {s:?}"
        );
    }
    assert_eq!(
        lexicon.sentiment("The movie was not good.").label,
        Label::Negative
    );
}

#[test]
fn tags_and_phrases_as_textblob_gives_them() {
    let Some(dir) = data_dir() else { return };
    let tagger = Tagger::load(&dir).unwrap();
    let tags: Vec<String> = tagger
        .tag("The quick brown fox jumps over the lazy dog.")
        .into_iter()
        .map(|(w, t)| format!("{w}/{t}"))
        .collect();
    assert_eq!(
        tags.join(" "),
        "The/DT quick/JJ brown/JJ fox/NN jumps/NNS over/IN the/DT lazy/JJ dog/NN ./."
    );
    assert_eq!(
        noun_phrases(
            &tagger,
            "She runs the data platform team at Google in London."
        ),
        vec!["data platform team", "google", "london"]
    );
    let brill = Tagger::load_brill(&dir).unwrap();
    let tagged = brill.tag("We need to book a flight to New York City next week.");
    assert!(
        tagged.contains(&("book".to_string(), "VB".to_string())),
        "{tagged:?}"
    );
    assert!(
        tagged.contains(&("York".to_string(), "NNP-LOC".to_string())),
        "{tagged:?}"
    );
}
