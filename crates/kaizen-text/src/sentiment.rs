//! Lexicon sentiment: TextBlob's default `PatternAnalyzer`, which is pattern.en's `sentiment`.
//!
//! The lexicon, `en-sentiment.xml`, scores about 2,900 English words (mostly adjectives) per
//! sense with a polarity (-1 to 1), a subjectivity (0 to 1) and an intensity (how much the word
//! strengthens the next one, 0.5 to 2). Loading averages the senses of each part of speech, then
//! the parts of speech of each word, and adds the adverb of every adjective with the adjective's
//! scores ("terrible" gives "terribly"), as pattern.en does.
//!
//! Scoring walks the lower-cased tokens (see [`crate::tokenize`]) and keeps an assessment per
//! known word, joined with what came before it:
//!
//! - a known word that is an adverb in the lexicon ("very", "really") multiplies the next known
//!   word's polarity and subjectivity by its intensity, clamped to [-1, 1] ("very good");
//! - "no", "not", "never" before a known word (small words of one letter may come between)
//!   negate it: the polarity is multiplied by -0.5 ("not good" is slightly bad);
//! - "!" multiplies the polarity of the assessment before it by 1.25, clamped;
//! - emoticons are assessments of their own (":)" is +0.5, ":(" -0.75, subjectivity 1), and the
//!   sarcasm mark "(!)" is one with polarity 0 and subjectivity 1.
//!
//! The text's polarity and subjectivity are the plain means over the assessments (0 when there
//! are none). Unknown words are not assessed, so they do not dilute the mean.

use std::collections::HashMap;
use std::path::Path;

use serde::Serialize;

use crate::error::{TextError, malformed, read_file};
use crate::tokenize::{EMOTICONS, PUNCTUATION, words};

/// The lexicon's file name inside the data directory.
pub const SENTIMENT_FILE: &str = "en-sentiment.xml";

/// Polarity at or above which a text is labelled positive (and at or below whose negative it is
/// labelled negative): pattern.en's `positive(s, threshold=0.1)`.
pub const LABEL_THRESHOLD: f64 = 0.1;

/// Words that negate the next known word.
const NEGATIONS: &[&str] = &["no", "not", "n't", "never"];

/// The scores of one word, averaged over its senses.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Scores {
    polarity: f64,
    subjectivity: f64,
    intensity: f64,
}

/// A word as scoring sees it: its scores over all parts of speech, and whether it can modify the
/// next word (it has an adverb sense).
#[derive(Debug, Clone, Copy)]
struct Entry {
    scores: Scores,
    modifier: bool,
}

/// The senses of a word for one part of speech (None when the lexicon gives none).
type PosSenses = (Option<String>, Vec<Scores>);

/// pattern.en's sentiment lexicon, loaded.
#[derive(Debug, Clone)]
pub struct Lexicon {
    words: HashMap<String, Entry>,
    labels: HashMap<String, String>,
}

/// The sentiment of a text.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Sentiment {
    /// From -1 (negative) to 1 (positive); TextBlob's `sentiment.polarity`.
    pub polarity: f64,
    /// From 0 (objective) to 1 (subjective); TextBlob's `sentiment.subjectivity`.
    pub subjectivity: f64,
    /// The polarity read against [`LABEL_THRESHOLD`].
    pub label: Label,
    /// The scored pieces of the text, in order; TextBlob's `sentiment_assessments.assessments`.
    pub assessments: Vec<Assessment>,
}

/// Positive, negative or neutral.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Label {
    Positive,
    Negative,
    Neutral,
}

impl Label {
    /// The label of a polarity: positive from [`LABEL_THRESHOLD`] up, negative from its negative
    /// down, neutral between.
    pub fn from_polarity(polarity: f64) -> Label {
        if polarity >= LABEL_THRESHOLD {
            Label::Positive
        } else if polarity <= -LABEL_THRESHOLD {
            Label::Negative
        } else {
            Label::Neutral
        }
    }
}

/// One scored piece of a text: a known word with the modifiers, negation and exclamation marks
/// that changed it, or an emoticon.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Assessment {
    /// The tokens, lower-cased ("not", "very", "good", "!").
    pub words: Vec<String>,
    pub polarity: f64,
    pub subjectivity: f64,
    /// pattern's semantic label: "mood" for emoticons, "irony" for "(!)", or the lexicon's label
    /// of the word ("profanity").
    pub kind: Option<String>,
}

/// An assessment while it is being built.
struct Draft {
    words: Vec<String>,
    polarity: f64,
    subjectivity: f64,
    intensity: f64,
    negated: bool,
    kind: Option<String>,
}

fn clamp(x: f64) -> f64 {
    x.clamp(-1.0, 1.0)
}

/// pattern's `avg`: a plain mean, 0 for nothing.
fn mean(values: impl Iterator<Item = f64>) -> f64 {
    let (sum, n) = values.fold((0.0, 0usize), |(s, n), v| (s + v, n + 1));
    sum / n.max(1) as f64
}

impl Lexicon {
    /// Loads `en-sentiment.xml` from a directory (TextBlob's `textblob/en/`, or the copy that
    /// kaizen's setup puts in `models/textblob/`).
    pub fn load(dir: &Path) -> Result<Lexicon, TextError> {
        let path = dir.join(SENTIMENT_FILE);
        let xml = read_file(&path)?;
        Lexicon::from_xml(&xml, &path)
    }

    /// Builds the lexicon from the text of an `en-sentiment.xml`; `path` names it in errors.
    pub fn from_xml(xml: &str, path: &Path) -> Result<Lexicon, TextError> {
        let doc = roxmltree::Document::parse(xml)
            .map_err(|e| malformed(path, e.pos().row as usize, e.to_string()))?;
        // Senses per word, then per part of speech (None when the attribute is absent), in
        // order of first appearance: pattern averages in that order.
        let mut order: Vec<String> = Vec::new();
        let mut senses: HashMap<String, Vec<PosSenses>> = HashMap::new();
        let mut labels = HashMap::new();
        for node in doc
            .root_element()
            .children()
            .filter(|n| n.has_tag_name("word"))
        {
            let line = doc.text_pos_at(node.range().start).row as usize;
            let number = |name: &str, default: f64| -> Result<f64, TextError> {
                match node.attribute(name) {
                    None => Ok(default),
                    Some(v) => match v.trim().parse::<f64>() {
                        Ok(x) if x.is_finite() => Ok(x),
                        _ => Err(malformed(
                            path,
                            line,
                            format!("attribute {name}=\"{v}\" is not a finite number"),
                        )),
                    },
                }
            };
            let scores = Scores {
                polarity: number("polarity", 0.0)?,
                subjectivity: number("subjectivity", 0.0)?,
                intensity: number("intensity", 1.0)?,
            };
            if scores.intensity <= 0.0 {
                // Negation divides by the (averaged) intensity; pattern's are 0.5 to 2.
                return Err(malformed(path, line, "intensity must be positive"));
            }
            let Some(form) = node.attribute("form").filter(|f| !f.is_empty()) else {
                continue;
            };
            if let Some(label) = node.attribute("label").filter(|l| !l.is_empty()) {
                labels.insert(form.to_string(), label.to_string());
            }
            let pos = node.attribute("pos").map(str::to_string);
            let by_pos = senses.entry(form.to_string()).or_insert_with(|| {
                order.push(form.to_string());
                Vec::new()
            });
            match by_pos.iter_mut().find(|(p, _)| *p == pos) {
                Some((_, list)) => list.push(scores),
                None => by_pos.push((pos, vec![scores])),
            }
        }
        if order.is_empty() {
            return Err(malformed(path, 1, "no <word> elements"));
        }

        let average = |list: &[Scores]| Scores {
            polarity: mean(list.iter().map(|s| s.polarity)),
            subjectivity: mean(list.iter().map(|s| s.subjectivity)),
            intensity: mean(list.iter().map(|s| s.intensity)),
        };
        let mut words = HashMap::with_capacity(order.len() * 2);
        let mut adjectives = Vec::new();
        for form in &order {
            let Some(by_pos) = senses.get(form) else {
                continue;
            };
            let per_pos: Vec<(Option<&str>, Scores)> = by_pos
                .iter()
                .map(|(pos, list)| (pos.as_deref(), average(list)))
                .collect();
            let all: Vec<Scores> = per_pos.iter().map(|(_, s)| *s).collect();
            let modifier = per_pos.iter().any(|(pos, _)| *pos == Some("RB"));
            if let Some((_, jj)) = per_pos.iter().find(|(pos, _)| *pos == Some("JJ")) {
                adjectives.push((form.clone(), *jj));
            }
            words.insert(
                form.clone(),
                Entry {
                    scores: average(&all),
                    modifier,
                },
            );
        }
        // pattern.en maps "terrible" to the adverb "terribly" (+1% accuracy, it says): the
        // adverb gets the adjective's scores and becomes a modifier.
        for (form, scores) in adjectives {
            let mut stem = form;
            if stem.ends_with('y') {
                stem.pop();
                stem.push('i');
            }
            if stem.ends_with("le") {
                stem.truncate(stem.len() - 2);
            }
            words.insert(
                format!("{stem}ly"),
                Entry {
                    scores,
                    modifier: true,
                },
            );
        }
        Ok(Lexicon { words, labels })
    }

    /// The number of words the lexicon scores (adverbs derived from adjectives included).
    pub fn len(&self) -> usize {
        self.words.len()
    }

    /// True when the lexicon scores no word.
    pub fn is_empty(&self) -> bool {
        self.words.is_empty()
    }

    /// The sentiment of a text. Any string is accepted; text without known words is neutral
    /// with polarity and subjectivity 0.
    pub fn sentiment(&self, text: &str) -> Sentiment {
        let tokens: Vec<String> = words(text).iter().map(|w| w.to_lowercase()).collect();
        let assessments = self.assess(&tokens);
        let polarity = mean(assessments.iter().map(|a| a.polarity));
        let subjectivity = mean(assessments.iter().map(|a| a.subjectivity));
        Sentiment {
            polarity,
            subjectivity,
            label: Label::from_polarity(polarity),
            assessments,
        }
    }

    /// pattern's `Sentiment.assessments` over lower-cased tokens without part-of-speech tags.
    fn assess(&self, tokens: &[String]) -> Vec<Assessment> {
        let mut drafts: Vec<Draft> = Vec::new();
        let mut modifier: Option<&str> = None; // The preceding known adverb ("very").
        let mut negation: Option<&str> = None; // The preceding negation ("not").
        for w in tokens {
            let w = w.as_str();
            if let Some(entry) = self.words.get(w) {
                let Scores {
                    polarity,
                    subjectivity,
                    intensity,
                } = entry.scores;
                let kind = self.labels.get(w).cloned();
                match (modifier, drafts.last_mut()) {
                    // "really good": the modifier's assessment takes this word.
                    (Some(_), Some(last)) => {
                        last.words.push(w.to_string());
                        last.polarity = clamp(polarity * last.intensity);
                        last.subjectivity = clamp(subjectivity * last.intensity);
                        last.intensity = intensity;
                        last.kind = kind;
                    }
                    _ => drafts.push(Draft {
                        words: vec![w.to_string()],
                        polarity,
                        subjectivity,
                        intensity,
                        negated: false,
                        kind,
                    }),
                }
                if let (Some(n), Some(last)) = (negation, drafts.last_mut()) {
                    // "not really good".
                    last.words.insert(0, n.to_string());
                    last.intensity = 1.0 / last.intensity;
                    last.negated = true;
                }
                modifier = entry.modifier.then_some(w);
                negation = NEGATIONS.contains(&w).then_some(w);
            } else {
                if NEGATIONS.contains(&w) {
                    negation = Some(w);
                } else if negation.is_some() && w.trim_matches('\'').chars().count() > 1 {
                    // A negation carries across one-letter words only ("not a good").
                    negation = None;
                }
                match (negation, modifier) {
                    // "really not good": the negation joins the adverb's assessment.
                    (Some(n), Some(m)) if m.ends_with("ly") => {
                        if let Some(last) = drafts.last_mut() {
                            last.words.push(n.to_string());
                            last.negated = true;
                        }
                        negation = None;
                    }
                    // A modifier carries across short words ("really is a good").
                    _ if modifier.is_some() && w.chars().count() > 2 => modifier = None,
                    _ => {}
                }
                if w == "!"
                    && let Some(last) = drafts.last_mut()
                {
                    last.words.push("!".to_string());
                    last.polarity = clamp(last.polarity * 1.25);
                }
                if w == "(!)" {
                    drafts.push(Draft {
                        words: vec![w.to_string()],
                        polarity: 0.0,
                        subjectivity: 1.0,
                        intensity: 1.0,
                        negated: false,
                        kind: Some("irony".to_string()),
                    });
                }
                if let Some(polarity) = emoticon_polarity(w) {
                    drafts.push(Draft {
                        words: vec![w.to_string()],
                        polarity,
                        subjectivity: 1.0,
                        intensity: 1.0,
                        negated: false,
                        kind: Some("mood".to_string()),
                    });
                }
            }
        }
        drafts
            .into_iter()
            .map(|d| Assessment {
                words: d.words,
                // "not good" is slightly bad, "not bad" slightly good.
                polarity: if d.negated {
                    d.polarity * -0.5
                } else {
                    d.polarity
                },
                subjectivity: d.subjectivity,
                kind: d.kind,
            })
            .collect()
    }
}

/// The polarity of a lower-cased token that is one of pattern's emoticons. Like pattern, tokens
/// that are all letters ("xd") or a substring of its punctuation marks are never emoticons.
fn emoticon_polarity(w: &str) -> Option<f64> {
    let n = w.chars().count();
    let alphabetic = n > 0 && w.chars().all(char::is_alphabetic);
    if alphabetic || n > 5 || PUNCTUATION.contains(w) {
        return None;
    }
    EMOTICONS
        .iter()
        .find(|(_, _, faces)| {
            faces
                .iter()
                .any(|f| f.chars().flat_map(char::to_lowercase).eq(w.chars()))
        })
        .map(|(_, polarity, _)| *polarity)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A lexicon in pattern's format, small enough to compute the expectations by hand.
    const XML: &str = r#"<?xml version="1.0" encoding="utf-8"?>
<sentiment language="en">
<word form="good" pos="JJ" polarity="0.7" subjectivity="0.6" intensity="1.0" />
<word form="good" pos="JJ" polarity="0.5" subjectivity="0.4" intensity="1.0" />
<word form="good" pos="NN" polarity="0.2" subjectivity="0.0" intensity="1.0" />
<word form="bad" pos="JJ" polarity="-0.7" subjectivity="0.7" intensity="1.0" />
<word form="terrible" pos="JJ" polarity="-1.0" subjectivity="1.0" intensity="1.0" />
<word form="happy" pos="JJ" polarity="0.8" subjectivity="1.0" intensity="1.0" />
<word form="very" pos="RB" polarity="0.2" subjectivity="0.3" intensity="1.3" />
<word form="moron" pos="NN" polarity="-1.0" subjectivity="1.0" intensity="1.0" label="profanity" />
</sentiment>
"#;

    fn lexicon() -> Lexicon {
        Lexicon::from_xml(XML, Path::new("test.xml")).unwrap()
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-12
    }

    fn check(text: &str, polarity: f64, subjectivity: f64) {
        let s = lexicon().sentiment(text);
        assert!(
            close(s.polarity, polarity) && close(s.subjectivity, subjectivity),
            "{text:?}: got ({}, {}), expected ({polarity}, {subjectivity}); {:?}",
            s.polarity,
            s.subjectivity,
            s.assessments
        );
    }

    #[test]
    fn senses_then_parts_of_speech_are_averaged() {
        // JJ: (0.6, 0.5), NN: (0.2, 0.0); the word: (0.4, 0.25).
        check("good", 0.4, 0.25);
        check("The food was good.", 0.4, 0.25);
        check("Good", 0.4, 0.25);
    }

    #[test]
    fn unknown_words_do_not_count() {
        check("The table is made of wood.", 0.0, 0.0);
        check("good bad", (0.4 - 0.7) / 2.0, (0.25 + 0.7) / 2.0);
    }

    #[test]
    fn modifiers_multiply_the_next_word() {
        check("very good", 0.4 * 1.3, 0.25 * 1.3);
        check("very terrible", -1.0, 1.0); // Clamped.
        // A modifier carries across words of two letters or fewer, not longer ones.
        check("very is good", 0.4 * 1.3, 0.25 * 1.3);
        check("very much good", (0.2 + 0.4) / 2.0, (0.3 + 0.25) / 2.0);
    }

    #[test]
    fn negation_halves_and_flips() {
        check("not good", -0.5 * 0.4, 0.25);
        check("not a good", -0.5 * 0.4, 0.25); // One-letter words keep the negation.
        check("never the good", 0.4, 0.25); // Longer ones drop it.
        check("not bad", 0.35, 0.7);
        // pattern's tokens for "isn't" are `isn ' t`: no negation, as in TextBlob.
        check("isn't good", 0.4, 0.25);
        // "not very good": the negation inverts the modifier's intensity before it applies.
        check("not very good", -0.5 * 0.4 / 1.3, 0.25 / 1.3);
    }

    #[test]
    fn derived_adverbs_modify() {
        // "terribly" has "terrible"'s scores and intensity 1, and is a modifier.
        check("terribly", -1.0, 1.0);
        check("happily", 0.8, 1.0);
        check("terribly good", 0.4, 0.25);
    }

    #[test]
    fn exclamations_and_emoticons() {
        check("good!", 0.4 * 1.25, 0.25);
        check("good!!", (0.4f64 * 1.25 * 1.25).min(1.0), 0.25);
        check("good :)", (0.4 + 0.5) / 2.0, (0.25 + 1.0) / 2.0);
        check(":(", -0.75, 1.0);
        check("xD", 0.0, 0.0); // All letters: never an emoticon.
        check("(!)", 0.0, 1.0);
    }

    #[test]
    fn assessments_and_labels() {
        let s = lexicon().sentiment("Not very good, you moron :(");
        let words: Vec<Vec<&str>> = s
            .assessments
            .iter()
            .map(|a| a.words.iter().map(String::as_str).collect())
            .collect();
        assert_eq!(
            words,
            vec![vec!["not", "very", "good"], vec!["moron"], vec![":("]]
        );
        assert_eq!(s.assessments[1].kind.as_deref(), Some("profanity"));
        assert_eq!(s.assessments[2].kind.as_deref(), Some("mood"));
        assert_eq!(s.label, Label::Negative);
        assert_eq!(lexicon().sentiment("good").label, Label::Positive);
        assert_eq!(lexicon().sentiment("a table").label, Label::Neutral);
    }

    #[test]
    fn json_shape() {
        let json = serde_json::to_value(lexicon().sentiment("very good :)")).unwrap();
        assert_eq!(json["label"], "positive");
        assert!(json["polarity"].is_f64() && json["subjectivity"].is_f64());
        assert_eq!(json["assessments"][0]["words"][1], "good");
        assert_eq!(json["assessments"][1]["kind"], "mood");
    }

    #[test]
    fn any_text_is_fine() {
        let lex = lexicon();
        for text in [
            "",
            "   ",
            "!!!",
            "(!)",
            "🙂 👍🏽",
            "not",
            "very",
            "not!",
            ") ( : ; '",
        ] {
            let s = lex.sentiment(text);
            assert!(s.polarity.is_finite() && (-1.0..=1.0).contains(&s.polarity));
            assert!(s.subjectivity.is_finite());
        }
        let s = lex.sentiment(&"very good! not bad. ".repeat(10_000));
        assert!(s.polarity.is_finite());
    }

    #[test]
    fn bad_lexicons_are_errors() {
        let path = Path::new("x.xml");
        let err = Lexicon::from_xml("<sentiment><word form=", path).unwrap_err();
        assert!(matches!(err, TextError::Malformed { .. }), "{err}");
        let err = Lexicon::from_xml(
            "<sentiment>\n<word form=\"a\" polarity=\"high\"/></sentiment>",
            path,
        )
        .unwrap_err();
        assert!(
            err.to_string()
                .contains("line 2: attribute polarity=\"high\""),
            "{err}"
        );
        let err = Lexicon::from_xml(
            "<sentiment><word form=\"a\" intensity=\"0\"/></sentiment>",
            path,
        )
        .unwrap_err();
        assert!(
            err.to_string().contains("intensity must be positive"),
            "{err}"
        );
        let err = Lexicon::from_xml("<sentiment/>", path).unwrap_err();
        assert!(err.to_string().contains("no <word> elements"), "{err}");
        let dir = tempfile::tempdir().unwrap();
        let err = Lexicon::load(dir.path()).unwrap_err();
        assert!(matches!(err, TextError::Missing { .. }), "{err}");
        assert!(err.to_string().contains("en-sentiment.xml"), "{err}");
    }
}
