//! Phrase chunks and noun phrases.
//!
//! Chunks are pattern.en's (`find_chunks`): regular expressions over the sentence's tags written
//! as `DT/JJ/NN/...`, tried in the order NP, PP, VP, ADJP, ADVP, each token taking the first
//! chunk that claims it; a noun phrase is
//! `(NN*|PR*)* (DT|CD|CC)* (RB*|JJ*)* (NN*|PR*)+`, so it may start with nouns, determiners,
//! numbers, adverbs and adjectives and ends with nouns or pronouns.
//!
//! [`noun_phrases`] then reads each NP chunk much as TextBlob's `ConllExtractor` reads its
//! chunks: determiners, conjunctions and pronouns (tags ending in DT, CC, PRP, PRP$) and tokens
//! without a letter or digit (punctuation) and emoticons are dropped, tags are normalized (plural
//! to singular, `NNP-LOC` to `NNP`), and what remains is kept when its tags reduce to a proper
//! noun or a compound by TextBlob's grammar (NNP NNP → NNP, NN NN → NNI, NNI NN → NNI,
//! JJ JJ → JJ, JJ NN → NNI). Where `ConllExtractor` joins the words around a dropped one
//! ("cats and dogs" would be "cats dogs"), the chunk is split there instead, so that a phrase is
//! always a run of consecutive words of the text. So "the quick brown fox" gives
//! "quick brown fox", "London" gives "london", and a lone common noun ("the fox") is not a
//! phrase, as in TextBlob. Phrases are lower-cased, words joined by one space.
//! TextBlob's default extractor (`FastNPExtractor`) needs NLTK's Brown corpus, which is not
//! shipped, so its phrases are not reproduced exactly.

use regex::Regex;
use serde::Serialize;

use crate::error::TextError;
use crate::tagger::{Tagged, Tagger};
use crate::tokenize::is_emoticon;

/// A tagged word with its chunk: `B-NP` (begins a noun phrase), `I-NP` (inside one), `B-VP`,
/// ..., or `O` (outside any chunk).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Chunked {
    pub word: String,
    pub tag: String,
    pub chunk: String,
}

/// pattern's English chunk rules, compiled.
#[derive(Debug, Clone)]
pub(crate) struct Chunker {
    rules: Vec<(&'static str, Regex)>,
}

impl Chunker {
    pub(crate) fn new() -> Result<Chunker, TextError> {
        // pattern writes RB as `(?<!W)RB` so that it does not match inside WRB; the regex crate
        // has no look-behind, so WRB is spelled WXB in the tag string instead (same length, so
        // token offsets do not move).
        let nn = r"NN|NNS|NNP|NNPS|NNPS?-[A-Z]{3,4}|PR|PRP|PRP\$";
        let vb = "VB|VBD|VBG|VBN|VBP|VBZ";
        let jj = "JJ|JJR|JJS";
        let rb = "RB|RBR|RBS";
        let rules = [
            (
                "NP",
                format!("(({nn})/)*((DT|CD|CC|CJ)/)*(({rb}|{jj})/)*(({nn})/)+"),
            ),
            ("PP", "((IN|PP|TO)/)+".to_string()),
            ("VP", format!("(((MD|{rb})/)*(({vb})/)+)+")),
            ("VP", "((MD)/)".to_string()),
            ("ADJP", format!("((CC|CJ|{rb}|{jj})/)*(({jj})/)+")),
            ("ADVP", format!("(({rb}|WXB)/)+")),
        ];
        let rules = rules
            .into_iter()
            .map(|(kind, re)| Ok((kind, Regex::new(&re)?)))
            .collect::<Result<_, regex::Error>>()?;
        Ok(Chunker { rules })
    }

    /// pattern's `find_chunks` over one tagged sentence.
    pub(crate) fn chunk(&self, tagged: Vec<Tagged>) -> Vec<Chunked> {
        let mut chunks: Vec<Option<String>> = vec![None; tagged.len()];
        let tags: String = tagged
            .iter()
            .map(|(_, t)| format!("{t}/"))
            .collect::<String>()
            .replace("WRB", "WXB");
        for (kind, rule) in &self.rules {
            for m in rule.find_iter(&tags) {
                // Tokens before the match = separators before it (a match may start inside a
                // tag, as "DT" inside "WDT": pattern's regex does the same).
                let mut j = tags[..m.start()].matches('/').count();
                let n = m.as_str().matches('/').count();
                let first = j;
                let span = chunks
                    .iter_mut()
                    .zip(&tagged)
                    .enumerate()
                    .skip(first)
                    .take(n);
                for (k, (slot, (_, tag))) in span {
                    if slot.is_some() {
                        continue;
                    }
                    if k == j && matches!(tag.as_str(), "CC" | "CJ" | "KON" | "Conj(neven)") {
                        // A conjunction does not start a chunk.
                        j += 1;
                    } else if k == j {
                        *slot = Some(format!("B-{kind}"));
                    } else {
                        *slot = Some(format!("I-{kind}"));
                    }
                }
            }
        }
        let mut chunked: Vec<Chunked> = tagged
            .into_iter()
            .zip(chunks)
            .map(|((word, tag), chunk)| Chunked {
                word,
                tag,
                chunk: chunk.unwrap_or_else(|| "O".to_string()),
            })
            .collect();
        // "Very nice work" is a noun phrase, "Perhaps you" an adverb and a noun phrase.
        for i in 0..chunked.len() {
            if chunked[i].tag.starts_with("RB")
                && chunked[i].chunk == "B-NP"
                && chunked
                    .get(i + 1)
                    .is_some_and(|next| !next.tag.starts_with("JJ"))
            {
                chunked[i].chunk = "B-ADVP".to_string();
                chunked[i + 1].chunk = "B-NP".to_string();
            }
        }
        chunked
    }
}

/// The noun phrases of a text, lower-cased, in order of appearance (repeats included), as
/// described in the module documentation.
pub fn noun_phrases(tagger: &Tagger, text: &str) -> Vec<String> {
    let mut found = Vec::new();
    for sentence in tagger.chunk_sentences(text) {
        let mut current: Vec<&Chunked> = Vec::new();
        for c in &sentence {
            match c.chunk.as_str() {
                "B-NP" => {
                    found.extend(chunk_phrases(&current));
                    current = vec![c];
                }
                "I-NP" => current.push(c),
                _ => {
                    found.extend(chunk_phrases(&current));
                    current.clear();
                }
            }
        }
        found.extend(chunk_phrases(&current));
    }
    found
}

/// The phrases of one NP chunk: its runs of significant words (not a determiner, conjunction or
/// pronoun, not an emoticon, and with a letter or digit), each kept when its tags reduce to a noun.
fn chunk_phrases(chunk: &[&Chunked]) -> Vec<String> {
    const INSIGNIFICANT: &[&str] = &["DT", "CC", "PRP$", "PRP"];
    let significant = |c: &Chunked| {
        !INSIGNIFICANT.iter().any(|s| c.tag.ends_with(s))
            && c.word.chars().any(char::is_alphanumeric)
            && !is_emoticon(&c.word)
    };
    chunk
        .split(|c| !significant(c))
        .filter_map(phrase)
        .collect()
}

/// One run of significant words read as TextBlob's `ConllExtractor` reads a chunk.
fn phrase(run: &[&Chunked]) -> Option<String> {
    let tags: Vec<String> = run.iter().map(|c| normalize_tag(&c.tag)).collect();
    if tags.is_empty() || !reduces_to_noun(tags) {
        return None;
    }
    let text = run
        .iter()
        .map(|c| c.word.as_str())
        .collect::<Vec<_>>()
        .join(" ")
        .trim()
        .to_lowercase();
    (text.chars().count() > 1).then_some(text)
}

/// TextBlob's `_normalize_tags`, after dropping pattern's entity labels (`NNP-LOC` is `NNP`).
fn normalize_tag(tag: &str) -> String {
    let tag = match tag.split_once('-') {
        Some((base @ ("NNP" | "NNPS"), _)) => base,
        _ => tag,
    };
    if tag == "NP-TL" || tag == "NP" {
        "NNP".to_string()
    } else if let Some(base) = tag.strip_suffix("-TL") {
        base.to_string()
    } else if let Some(base) = tag.strip_suffix('S') {
        base.to_string()
    } else {
        tag.to_string()
    }
}

/// TextBlob's `_is_match`: merges neighbours by its grammar, leftmost first, until nothing
/// merges; true when a proper noun or a compound noun remains.
fn reduces_to_noun(mut tags: Vec<String>) -> bool {
    fn merge(a: &str, b: &str) -> Option<&'static str> {
        match (a, b) {
            ("NNP", "NNP") => Some("NNP"),
            ("NN", "NN") | ("NNI", "NN") | ("JJ", "NN") => Some("NNI"),
            ("JJ", "JJ") => Some("JJ"),
            _ => None,
        }
    }
    'merging: loop {
        for i in 0..tags.len().saturating_sub(1) {
            if let Some(merged) = merge(&tags[i], &tags[i + 1]) {
                tags.splice(i..i + 2, [merged.to_string()]);
                continue 'merging;
            }
        }
        break;
    }
    tags.iter().any(|t| t == "NNP" || t == "NNI")
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    const LEXICON: &str = "the DT\nThe DT\na DT\nquick JJ\nbrown JJ\nfox NN\njumps VBZ\nover IN\nlazy JJ\ndog NN\n. .\n, ,\nvery RB\nnice JJ\nwork NN\nwhere WRB\nshe PRP\nShe PRP\nruns VBZ\ndata NNS\nplatform NN\nteam NN\nat IN\nin IN\nand CC\ncats NNS\nperhaps RB\nPerhaps RB\nyou PRP\nare VBP\nright JJ\nall PDT\nwhich WDT\n! .\n? .\n... :\n";

    fn tagger() -> Tagger {
        Tagger::from_lexicon(LEXICON, Path::new("lexicon.txt")).unwrap()
    }

    fn chunks(text: &str) -> String {
        tagger()
            .chunk_sentences(text)
            .iter()
            .flatten()
            .map(|c| format!("{}/{}", c.word, c.chunk))
            .collect::<Vec<_>>()
            .join(" ")
    }

    #[test]
    fn chunks_like_pattern() {
        // Expectations from pattern's find_chunks (TextBlob 0.20.1) on the same tags.
        assert_eq!(
            chunks("The quick brown fox jumps over the lazy dog."),
            "The/B-NP quick/I-NP brown/I-NP fox/I-NP jumps/B-VP over/B-PP the/B-NP lazy/I-NP dog/I-NP ./O"
        );
        assert_eq!(
            chunks("Perhaps you are right"),
            "Perhaps/B-ADVP you/B-NP are/B-VP right/B-ADJP"
        );
        assert_eq!(chunks("very nice work"), "very/B-NP nice/I-NP work/I-NP");
        // "DT" inside "WDT" starts a noun phrase, as pattern's regex does.
        assert_eq!(chunks("which dog"), "which/B-NP dog/I-NP");
        // WRB is not an RB: "where" is an adverb phrase of its own.
        assert_eq!(
            chunks("where nice work"),
            "where/B-ADVP nice/B-NP work/I-NP"
        );
        // A conjunction does not start a chunk.
        assert_eq!(chunks("and cats"), "and/O cats/B-NP");
    }

    #[test]
    fn noun_phrases_drop_determiners_and_lone_nouns() {
        let t = tagger();
        assert_eq!(
            noun_phrases(&t, "The quick brown fox jumps over the lazy dog."),
            vec!["quick brown fox", "lazy dog"]
        );
        assert_eq!(
            noun_phrases(&t, "She runs the data platform team at Acme in London."),
            vec!["data platform team", "acme", "london"]
        );
        assert_eq!(
            noun_phrases(&t, "The dog and the cats."),
            Vec::<String>::new()
        );
        assert_eq!(noun_phrases(&t, "very nice work"), vec!["very nice work"]);
        assert!(noun_phrases(&t, "").is_empty());
        assert!(noun_phrases(&t, "!!! ... ???").is_empty());
        // Emoticons are unknown words tagged NN; they are not phrases.
        assert!(noun_phrases(&t, "lazy :) :o) dog").is_empty());
        // A conjunction splits a chunk: each phrase is a run of words of the text.
        assert_eq!(
            noun_phrases(&t, "London and Paris"),
            vec!["london", "paris"]
        );
    }

    #[test]
    fn phrases_repeat_and_keep_their_order() {
        let t = tagger();
        assert_eq!(
            noun_phrases(&t, "London. The lazy dog. London"),
            vec!["london", "lazy dog", "london"]
        );
    }

    #[test]
    fn grammar_and_tags() {
        let r = |tags: &[&str]| reduces_to_noun(tags.iter().map(|t| t.to_string()).collect());
        assert!(r(&["JJ", "JJ", "NN"]));
        assert!(r(&["NNP"]));
        assert!(r(&["NN", "NN", "NN"]));
        assert!(!r(&["NN"]));
        assert!(!r(&["JJ"]));
        assert!(!r(&["CD", "NN"]));
        assert_eq!(normalize_tag("NNS"), "NN");
        assert_eq!(normalize_tag("NNPS"), "NNP");
        assert_eq!(normalize_tag("NNP-LOC"), "NNP");
        assert_eq!(normalize_tag("JJS"), "JJ");
    }

    #[test]
    fn odd_input_does_not_panic() {
        let t = tagger();
        for text in [
            "",
            "the",
            "and",
            "and and and",
            "WRB",
            "🙂",
            "very",
            "very very",
            "a / b // c",
        ] {
            let _ = noun_phrases(&t, text);
        }
        let long = "The quick brown fox jumps over the lazy dog. ".repeat(5_000);
        assert_eq!(noun_phrases(&t, &long).len(), 10_000);
    }
}
