//! Part-of-speech tags (Penn Treebank) from pattern.en's Brill lexicon.
//!
//! [`Tagger::load`] tags as TextBlob's `PatternTagger` does: every token found in
//! `en-lexicon.txt` (94,000 words from Brill's tagger, the Brown corpus, the Penn Treebank and
//! tweets) takes its tag (the first token of a sentence is also looked up lower-cased); an unknown
//! token is `NNP` when it is title-cased, `CD` when it is made of digits and `-,.:/%$`, and
//! otherwise tagged by pattern's English suffix rules (`-ing` VBG, `-ly` RB, `-s` NNS, `-able`,
//! `-ful`, `-ous`... or a hyphen JJ, `-ed` VBN, `-ate`/`-ify`/`-ise`/`-ize` VBP, else NN).
//!
//! [`Tagger::load_brill`] adds the rest of pattern's Brill tagger, which TextBlob ships but does
//! not call: Brill's lexical rules for unknown words (`en-morphology.txt`), his contextual rules
//! (`en-context.txt`, applied as pattern applies them: every rule in file order at each token,
//! left to right) and pattern's named entities (`en-entities.txt`, tags such as `NNP-LOC`).

use std::collections::{HashMap, HashSet};
use std::path::Path;

use regex::Regex;

use crate::chunk::{Chunked, Chunker};
use crate::error::{TextError, data_lines, malformed, read_file};
use crate::tokenize::sentences;

/// The lexicon's file name inside the data directory.
pub const LEXICON_FILE: &str = "en-lexicon.txt";
/// Brill's lexical rules for unknown words.
pub const MORPHOLOGY_FILE: &str = "en-morphology.txt";
/// Brill's contextual rules.
pub const CONTEXT_FILE: &str = "en-context.txt";
/// pattern's named entities.
pub const ENTITIES_FILE: &str = "en-entities.txt";

/// A word with its part-of-speech tag.
pub type Tagged = (String, String);

/// The tagger: the lexicon, optionally Brill's rules, and the chunker.
#[derive(Debug, Clone)]
pub struct Tagger {
    lexicon: HashMap<String, String>,
    brill: Option<Brill>,
    chunker: Chunker,
}

#[derive(Debug, Clone)]
struct Brill {
    morphology: Vec<MorphRule>,
    context: Vec<ContextRule>,
    entities: Entities,
}

impl Tagger {
    /// Loads `en-lexicon.txt` from a directory: TextBlob's `PatternTagger`.
    pub fn load(dir: &Path) -> Result<Tagger, TextError> {
        let path = dir.join(LEXICON_FILE);
        Tagger::from_lexicon(&read_file(&path)?, &path)
    }

    /// Loads the lexicon and Brill's rules and entities from a directory: pattern.en's full tagger.
    pub fn load_brill(dir: &Path) -> Result<Tagger, TextError> {
        let mut tagger = Tagger::load(dir)?;
        let read = |name: &str| {
            let path = dir.join(name);
            read_file(&path).map(|text| (text, path))
        };
        let (morphology, morphology_path) = read(MORPHOLOGY_FILE)?;
        let (context, context_path) = read(CONTEXT_FILE)?;
        let (entities, _) = read(ENTITIES_FILE)?;
        tagger.brill = Some(Brill {
            morphology: parse_morphology(&morphology, &morphology_path)?,
            context: parse_context(&context, &context_path)?,
            entities: Entities::parse(&entities)?,
        });
        Ok(tagger)
    }

    /// Builds a lexicon-only tagger from the text of an `en-lexicon.txt` (`word TAG` per line);
    /// `path` names it in errors.
    pub fn from_lexicon(text: &str, path: &Path) -> Result<Tagger, TextError> {
        let mut lexicon = HashMap::new();
        for (line, content) in data_lines(text) {
            // pattern splits on single spaces and keeps the first two fields.
            let mut fields = content.split(' ');
            match (fields.next(), fields.next()) {
                (Some(word), Some(tag)) => {
                    lexicon.insert(word.to_string(), tag.to_string());
                }
                _ => {
                    return Err(malformed(
                        path,
                        line,
                        format!("expected `word TAG`, got `{content}`"),
                    ));
                }
            }
        }
        if lexicon.is_empty() {
            return Err(malformed(path, 1, "no words"));
        }
        Ok(Tagger {
            lexicon,
            brill: None,
            chunker: Chunker::new()?,
        })
    }

    /// True when Brill's rules and the named entities are applied.
    pub fn is_brill(&self) -> bool {
        self.brill.is_some()
    }

    /// The tagged tokens of a text, sentence after sentence.
    pub fn tag(&self, text: &str) -> Vec<Tagged> {
        self.tag_sentences(text).into_iter().flatten().collect()
    }

    /// The tagged tokens of each sentence of a text.
    pub fn tag_sentences(&self, text: &str) -> Vec<Vec<Tagged>> {
        sentences(text)
            .into_iter()
            .map(|tokens| self.tag_tokens(tokens))
            .collect()
    }

    /// The tagged and chunked tokens of each sentence of a text.
    pub fn chunk_sentences(&self, text: &str) -> Vec<Vec<Chunked>> {
        self.tag_sentences(text)
            .into_iter()
            .map(|tagged| self.chunker.chunk(tagged))
            .collect()
    }

    /// pattern's `find_tags` over the tokens of one sentence.
    fn tag_tokens(&self, tokens: Vec<String>) -> Vec<Tagged> {
        let mut tags: Vec<Option<String>> = tokens
            .iter()
            .enumerate()
            .map(|(i, token)| match self.lexicon.get(token) {
                Some(tag) => Some(tag.clone()),
                None if i == 0 => self
                    .lexicon
                    .get(&token.to_lowercase())
                    .filter(|t| !t.is_empty())
                    .cloned(),
                None => None,
            })
            .collect();
        for i in 0..tokens.len() {
            if tags[i].is_some() {
                continue;
            }
            let token = tokens[i].as_str();
            let tag = if is_title(token) {
                "NNP".to_string()
            } else if is_number(token) {
                "CD".to_string()
            } else if let Some(brill) = &self.brill {
                let previous = i.checked_sub(1).map(|p| tokens[p].as_str());
                let next = tokens.get(i + 1).map(String::as_str);
                brill.morphology_tag(token, previous, next, &self.lexicon)
            } else {
                suffix_tag(token).to_string()
            };
            tags[i] = Some(tag);
        }
        let mut tagged: Vec<Tagged> = tokens
            .into_iter()
            .zip(tags)
            .map(|(w, t)| (w, t.unwrap_or_default()))
            .collect();
        if let Some(brill) = &self.brill {
            brill.apply_context(&mut tagged);
            brill.entities.apply(&mut tagged);
        }
        tagged
    }
}

/// Python's `str.istitle`: cased characters only after uncased ones when upper case, only after
/// cased ones when lower case, and at least one cased character.
fn is_title(s: &str) -> bool {
    let (mut cased, mut previous_cased) = (false, false);
    for c in s.chars() {
        if c.is_uppercase() || is_titlecase(c) {
            if previous_cased {
                return false;
            }
            previous_cased = true;
            cased = true;
        } else if c.is_lowercase() {
            if !previous_cased {
                return false;
            }
            previous_cased = true;
            cased = true;
        } else {
            previous_cased = false;
        }
    }
    cased
}

/// Unicode's titlecase letters (category Lt, "ǅ"), which Python's `istitle` counts as capitals
/// and Rust's `is_uppercase` does not.
fn is_titlecase(c: char) -> bool {
    matches!(
        c,
        '\u{1c5}' | '\u{1c8}' | '\u{1cb}' | '\u{1f2}' | '\u{1fbc}' | '\u{1fcc}' | '\u{1ffc}'
    ) || ('\u{1f88}'..='\u{1f8f}').contains(&c)
        || ('\u{1f98}'..='\u{1f9f}').contains(&c)
        || ('\u{1fa8}'..='\u{1faf}').contains(&c)
}

/// pattern's `CD` pattern: `^[0-9\-\,\.\:\/\%\$]+$`.
fn is_number(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_digit() || "-,.:/%$".contains(c))
}

/// pattern's default English suffix rules for unknown words; later rules win.
fn suffix_tag(token: &str) -> &'static str {
    let mut tag = "NN";
    if token.ends_with("ing") {
        tag = "VBG";
    }
    if token.ends_with("ly") {
        tag = "RB";
    }
    if token.ends_with('s')
        && !(token.ends_with("is") || token.ends_with("ous") || token.ends_with("ss"))
    {
        tag = "NNS";
    }
    const ADJECTIVE: &[&str] = &[
        "able", "al", "ful", "ible", "ient", "ish", "ive", "less", "tic", "ous",
    ];
    if ADJECTIVE.iter().any(|s| token.ends_with(s)) || token.contains('-') {
        tag = "JJ";
    }
    if token.ends_with("ed") {
        tag = "VBN";
    }
    if ["ate", "ify", "ise", "ize"]
        .iter()
        .any(|s| token.ends_with(s))
    {
        tag = "VBP";
    }
    tag
}

// ---------------------------------------------------------------------------------------------
// Brill's lexical rules: `NN s fhassuf 1 NNS x` (a word tagged NN ending in -s becomes NNS),
// `ly hassuf 2 RB x` (a word ending in -ly becomes RB).

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum MorphCommand {
    Char,
    HasPrefix,
    HasSuffix,
    AddPrefix,
    AddSuffix,
    DeletePrefix,
    DeleteSuffix,
    GoodLeft,
    GoodRight,
}

impl MorphCommand {
    fn parse(name: &str) -> Option<MorphCommand> {
        Some(match name {
            "char" => MorphCommand::Char,
            "haspref" => MorphCommand::HasPrefix,
            "hassuf" => MorphCommand::HasSuffix,
            "addpref" => MorphCommand::AddPrefix,
            "addsuf" => MorphCommand::AddSuffix,
            "deletepref" => MorphCommand::DeletePrefix,
            "deletesuf" => MorphCommand::DeleteSuffix,
            "goodleft" => MorphCommand::GoodLeft,
            "goodright" => MorphCommand::GoodRight,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone)]
struct MorphRule {
    /// For the `f...` commands: the tag the word must have for the rule to apply.
    only_if: Option<String>,
    affix: String,
    command: MorphCommand,
    tag: String,
}

fn parse_morphology(text: &str, path: &Path) -> Result<Vec<MorphRule>, TextError> {
    let mut rules = Vec::new();
    for (line, content) in data_lines(text) {
        let r: Vec<&str> = content.split_whitespace().collect();
        let bad = || malformed(path, line, format!("not a lexical rule: `{content}`"));
        if r.len() < 4 {
            return Err(bad());
        }
        let tag = r[r.len() - 2].to_string();
        // pattern reads the command from the second field, or from the third when that is one
        // (the `f` forms, whose first field is the required tag).
        let third = r[2].to_lowercase();
        let rule = if let Some(command) = third.strip_prefix('f').and_then(MorphCommand::parse) {
            MorphRule {
                only_if: Some(r[0].to_string()),
                affix: r[1].to_string(),
                command,
                tag,
            }
        } else if let Some(command) = MorphCommand::parse(&r[1].to_lowercase()) {
            MorphRule {
                only_if: None,
                affix: r[0].to_string(),
                command,
                tag,
            }
        } else {
            return Err(bad());
        };
        rules.push(rule);
    }
    Ok(rules)
}

impl Brill {
    /// pattern's `Morphology.apply` for an unknown word, starting from NN.
    fn morphology_tag(
        &self,
        w: &str,
        previous: Option<&str>,
        next: Option<&str>,
        lexicon: &HashMap<String, String>,
    ) -> String {
        let mut tag = "NN".to_string();
        for r in &self.morphology {
            if r.only_if.as_ref().is_some_and(|t| *t != tag) {
                continue;
            }
            let x = r.affix.as_str();
            let known = |s: &str| lexicon.contains_key(s);
            let fires = match r.command {
                MorphCommand::Char => w.contains(x),
                MorphCommand::HasPrefix => w.starts_with(x),
                MorphCommand::HasSuffix => w.ends_with(x),
                MorphCommand::AddPrefix => known(&format!("{x}{w}")),
                MorphCommand::AddSuffix => known(&format!("{w}{x}")),
                MorphCommand::DeletePrefix => w.strip_prefix(x).is_some_and(known),
                MorphCommand::DeleteSuffix => w.strip_suffix(x).is_some_and(known),
                // pattern's names and tests are crossed: goodleft looks at the next word.
                MorphCommand::GoodLeft => next == Some(x),
                MorphCommand::GoodRight => previous == Some(x),
            };
            if fires {
                tag = r.tag.clone();
            }
        }
        tag
    }

    /// pattern's `Context.apply`: for each token left to right, every rule in file order; a rule
    /// matches on the tag the token had when its turn came, and sees the tags changed so far.
    fn apply_context(&self, tagged: &mut [Tagged]) {
        const PAD: usize = 3;
        const START: &str = "STAART";
        let mut words: Vec<&str> = Vec::with_capacity(tagged.len() + 2 * PAD);
        let mut tags: Vec<String> = Vec::with_capacity(tagged.len() + 2 * PAD);
        for _ in 0..PAD {
            words.push(START);
            tags.push(START.to_string());
        }
        for (w, t) in tagged.iter() {
            words.push(w);
            tags.push(t.clone());
        }
        for _ in 0..PAD {
            words.push(START);
            tags.push(START.to_string());
        }
        for i in PAD..PAD + tagged.len() {
            let original = tags[i].clone();
            if original == START {
                continue;
            }
            for r in &self.context {
                if r.from != original && r.from != "*" {
                    continue;
                }
                let (x, y) = (r.x.as_str(), r.y.as_str());
                let (w, t) = (&words, &tags);
                use ContextCommand as C;
                let fires = match r.command {
                    C::PrevTag => x == t[i - 1],
                    C::NextTag => x == t[i + 1],
                    C::Prev2Tag => x == t[i - 2],
                    C::Next2Tag => x == t[i + 2],
                    C::Prev1Or2Tag => x == t[i - 1] || x == t[i - 2],
                    C::Next1Or2Tag => x == t[i + 1] || x == t[i + 2],
                    C::Prev1Or2Or3Tag => x == t[i - 1] || x == t[i - 2] || x == t[i - 3],
                    C::Next1Or2Or3Tag => x == t[i + 1] || x == t[i + 2] || x == t[i + 3],
                    C::SurroundTag => x == t[i - 1] && y == t[i + 1],
                    C::CurWd => x == w[i],
                    C::PrevWd => x == w[i - 1],
                    C::NextWd => x == w[i + 1],
                    C::Prev1Or2Wd => x == w[i - 1] || x == w[i - 2],
                    C::Next1Or2Wd => x == w[i + 1] || x == w[i + 2],
                    C::PrevWdTag => x == w[i - 1] && y == t[i - 1],
                    C::NextWdTag => x == w[i + 1] && y == t[i + 1],
                    C::WdPrevTag => x == t[i - 1] && y == w[i],
                    C::WdNextTag => x == w[i] && y == t[i + 1],
                    C::WdAnd2Aft => x == w[i] && y == w[i + 2],
                    C::WdAnd2TagBfr => x == t[i - 2] && y == w[i],
                    C::WdAnd2TagAft => x == w[i] && y == t[i + 2],
                    C::LBigram => x == w[i - 1] && y == w[i],
                    C::RBigram => x == w[i] && y == w[i + 1],
                    C::PrevBigram => x == t[i - 2] && y == t[i - 1],
                    C::NextBigram => x == t[i + 1] && y == t[i + 2],
                };
                if fires {
                    tags[i] = r.to.clone();
                }
            }
        }
        for (k, (_, t)) in tagged.iter_mut().enumerate() {
            *t = std::mem::take(&mut tags[k + PAD]);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Brill's contextual rules: `VBD VB PREVTAG TO` (a word tagged VBD becomes VB after a word
// tagged TO).

#[derive(Debug, Clone, Copy)]
enum ContextCommand {
    PrevTag,
    NextTag,
    Prev2Tag,
    Next2Tag,
    Prev1Or2Tag,
    Next1Or2Tag,
    Prev1Or2Or3Tag,
    Next1Or2Or3Tag,
    SurroundTag,
    CurWd,
    PrevWd,
    NextWd,
    Prev1Or2Wd,
    Next1Or2Wd,
    PrevWdTag,
    NextWdTag,
    WdPrevTag,
    WdNextTag,
    WdAnd2Aft,
    WdAnd2TagBfr,
    WdAnd2TagAft,
    LBigram,
    RBigram,
    PrevBigram,
    NextBigram,
}

#[derive(Debug, Clone)]
struct ContextRule {
    from: String,
    to: String,
    command: ContextCommand,
    x: String,
    y: String,
}

fn parse_context(text: &str, path: &Path) -> Result<Vec<ContextRule>, TextError> {
    use ContextCommand as C;
    // pattern declares these two but never tests them: such rules never fire.
    const IGNORED: &[&str] = &["next1or2or3wd", "prev1or2or3wd"];
    let mut rules = Vec::new();
    for (line, content) in data_lines(text) {
        let r: Vec<&str> = content.split_whitespace().collect();
        if r.len() < 4 {
            return Err(malformed(
                path,
                line,
                format!("not a contextual rule: `{content}`"),
            ));
        }
        let name = r[2].to_lowercase();
        let command = match name.as_str() {
            "prevtag" => C::PrevTag,
            "nexttag" => C::NextTag,
            "prev2tag" => C::Prev2Tag,
            "next2tag" => C::Next2Tag,
            "prev1or2tag" => C::Prev1Or2Tag,
            "next1or2tag" => C::Next1Or2Tag,
            "prev1or2or3tag" => C::Prev1Or2Or3Tag,
            "next1or2or3tag" => C::Next1Or2Or3Tag,
            "surroundtag" => C::SurroundTag,
            "curwd" => C::CurWd,
            "prevwd" => C::PrevWd,
            "nextwd" => C::NextWd,
            "prev1or2wd" => C::Prev1Or2Wd,
            "next1or2wd" => C::Next1Or2Wd,
            "prevwdtag" => C::PrevWdTag,
            "nextwdtag" => C::NextWdTag,
            "wdprevtag" => C::WdPrevTag,
            "wdnexttag" => C::WdNextTag,
            "wdand2aft" => C::WdAnd2Aft,
            "wdand2tagbfr" => C::WdAnd2TagBfr,
            "wdand2tagaft" => C::WdAnd2TagAft,
            "lbigram" => C::LBigram,
            "rbigram" => C::RBigram,
            "prevbigram" => C::PrevBigram,
            "nextbigram" => C::NextBigram,
            _ if IGNORED.contains(&name.as_str()) => continue,
            _ => {
                return Err(malformed(
                    path,
                    line,
                    format!("unknown contextual rule command `{}`", r[2]),
                ));
            }
        };
        rules.push(ContextRule {
            from: r[0].to_string(),
            to: r[1].to_string(),
            command,
            x: r[3].to_string(),
            y: r.get(4).unwrap_or(&"").to_string(),
        });
    }
    Ok(rules)
}

// ---------------------------------------------------------------------------------------------
// Named entities: `New York City LOC` tags the three words NNP-LOC when they follow each other.

#[derive(Debug, Clone)]
struct Entities {
    /// By lower-cased first word: the entity's lower-cased words and its label suffix.
    by_first: HashMap<String, Vec<(Vec<String>, String)>>,
    url: Regex,
    www: Regex,
    email: Regex,
}

impl Entities {
    fn parse(text: &str) -> Result<Entities, TextError> {
        let labels: HashSet<&str> = ["pers", "loc", "org"].into_iter().collect();
        let mut by_first: HashMap<String, Vec<(Vec<String>, String)>> = HashMap::new();
        for (_, content) in data_lines(text) {
            let mut words: Vec<String> =
                content.split_whitespace().map(str::to_lowercase).collect();
            let suffix = match words.last() {
                Some(last) if labels.contains(last.as_str()) => {
                    let label = format!("-{}", last.to_uppercase());
                    words.pop();
                    label
                }
                _ => String::new(),
            };
            // A line that is only a label names no entity.
            if let Some(first) = words.first() {
                by_first
                    .entry(first.clone())
                    .or_default()
                    .push((words, suffix));
            }
        }
        Ok(Entities {
            by_first,
            url: Regex::new(r"^http://")?,
            // pattern's class `[com|org|...]` is a character class; kept as written.
            www: Regex::new(r"^www\..*?\.[com|org|net|edu|de|uk]$")?,
            email: Regex::new(r"^[\w\-\.\+]+@(\w[\w\-]+\.)+[\w\-]+$")?,
        })
    }

    /// pattern's `Entities.apply`: URLs and e-mail addresses, then the longest-listed-first
    /// entity that the following words spell.
    fn apply(&self, tagged: &mut [Tagged]) {
        let mut i = 0;
        while i < tagged.len() {
            let w = tagged[i].0.to_lowercase();
            if self.url.is_match(&w) || self.www.is_match(&w) || self.email.is_match(&w) {
                tagged[i].1 = "NNP".to_string();
            }
            if let Some(entities) = self.by_first.get(&w) {
                for (words, suffix) in entities {
                    let spelled = words.iter().enumerate().all(|(j, e)| {
                        tagged
                            .get(i + j)
                            .is_some_and(|(t, _)| t.to_lowercase() == *e)
                    });
                    if spelled {
                        for (_, tag) in &mut tagged[i..i + words.len()] {
                            let base = if tag == "NNPS" { "NNPS" } else { "NNP" };
                            *tag = format!("{base}{suffix}");
                        }
                        i += words.len() - 1;
                        break;
                    }
                }
            }
            i += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LEXICON: &str = ";;; A comment.\nthe DT\nThe DT\ncat NN\nsat VBD\non IN\nmat NN\n. .\nvery RB\nnice JJ\nwork NN\nto TO\nbook NN\nwe PRP\nWe PRP\nneed VBP\nNew NNP\nYork NNP\n";

    fn tagger() -> Tagger {
        Tagger::from_lexicon(LEXICON, Path::new("lexicon.txt")).unwrap()
    }

    fn tags(tagger: &Tagger, text: &str) -> String {
        tagger
            .tag(text)
            .iter()
            .map(|(w, t)| format!("{w}/{t}"))
            .collect::<Vec<_>>()
            .join(" ")
    }

    #[test]
    fn lexicon_then_title_then_numbers_then_suffixes() {
        let t = tagger();
        assert_eq!(
            tags(&t, "The cat sat on the mat."),
            "The/DT cat/NN sat/VBD on/IN the/DT mat/NN ./."
        );
        assert_eq!(
            tags(
                &t,
                "Cat sat quickly running 3.5% beautiful realize cats glass"
            ),
            // "Cat" is found lower-cased as the first word; later unknown words go by shape.
            "Cat/NN sat/VBD quickly/RB running/VBG 3.5%/CD beautiful/JJ realize/VBP cats/NNS glass/NN"
        );
        assert_eq!(tags(&t, "the Dog walked"), "the/DT Dog/NNP walked/VBN");
        assert!(t.tag("").is_empty());
    }

    #[test]
    fn title_case_is_pythons() {
        assert!(is_title("Hello"));
        assert!(is_title("Hello-World"));
        assert!(is_title("X"));
        assert!(!is_title("iPhone"));
        assert!(!is_title("McDonald"));
        assert!(!is_title("123"));
        assert!(!is_title("HELLO"));
        assert!(is_title("ǅemal"));
        assert!(!is_title("Xǅ"));
    }

    fn write(dir: &Path, name: &str, text: &str) {
        std::fs::write(dir.join(name), text).unwrap();
    }

    fn brill_dir(context: &str) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), LEXICON_FILE, LEXICON);
        write(
            dir.path(),
            MORPHOLOGY_FILE,
            ";;; Rules.\nNN s fhassuf 1 NNS x\nly hassuf 2 RB x\nNN ing fhassuf 3 VBG x\n",
        );
        write(dir.path(), CONTEXT_FILE, context);
        write(dir.path(), ENTITIES_FILE, "New York LOC\nAcme Corp ORG\n");
        dir
    }

    #[test]
    fn brill_rules_and_entities() {
        let dir = brill_dir("NN VB PREVTAG TO\nVBP VB PREVWD never\n");
        let t = Tagger::load_brill(dir.path()).unwrap();
        assert!(t.is_brill());
        assert_eq!(
            tags(&t, "We need to book flights to New York"),
            "We/PRP need/VBP to/TO book/VB flights/NNS to/TO New/NNP-LOC York/NNP-LOC"
        );
        // Lexical rules: -ing after the NN check, -ly on its own; words go by their tags.
        assert_eq!(
            tags(&t, "we walking slowly"),
            "we/PRP walking/VBG slowly/RB"
        );
        assert_eq!(
            tags(&t, "mail me at ann@example.org"),
            "mail/NN me/NN at/NN ann@example.org/NNP"
        );
        // Without the rules the same words are tagged by the lexicon and suffixes only.
        let plain = Tagger::load(dir.path()).unwrap();
        assert_eq!(tags(&plain, "to book"), "to/TO book/NN");
    }

    #[test]
    fn context_rules_see_the_tag_a_word_had_at_its_turn() {
        // The second rule matches NN (the tag before the first rule fired), as in pattern.
        let dir = brill_dir("NN VB PREVTAG TO\nNN JJ PREVTAG TO\n");
        let t = Tagger::load_brill(dir.path()).unwrap();
        assert_eq!(tags(&t, "to book"), "to/TO book/JJ");
    }

    #[test]
    fn bad_files_are_errors() {
        let err = Tagger::from_lexicon("the DT\nlonely\n", Path::new("lex.txt")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "malformed data file `lex.txt`, line 2: expected `word TAG`, got `lonely`"
        );
        let dir = brill_dir("NN VB PREVTAG\n");
        let err = Tagger::load_brill(dir.path()).unwrap_err();
        assert!(
            err.to_string().contains("line 1: not a contextual rule"),
            "{err}"
        );
        let dir = brill_dir("NN VB SIDEWAYS x\n");
        let err = Tagger::load_brill(dir.path()).unwrap_err();
        assert!(
            err.to_string()
                .contains("unknown contextual rule command `SIDEWAYS`"),
            "{err}"
        );
        let empty = tempfile::tempdir().unwrap();
        let err = Tagger::load(empty.path()).unwrap_err();
        assert!(matches!(err, TextError::Missing { .. }));
        assert!(err.is_user_error());
        write(empty.path(), LEXICON_FILE, LEXICON);
        let err = Tagger::load_brill(empty.path()).unwrap_err();
        assert!(err.to_string().contains(MORPHOLOGY_FILE), "{err}");
    }

    #[test]
    fn odd_input_does_not_panic() {
        let dir = brill_dir("NN VB PREVTAG TO\nNN VB NEXT1OR2OR3TAG STAART\n* NN CURWD x\n");
        let brill = Tagger::load_brill(dir.path()).unwrap();
        let plain = tagger();
        for text in [
            "",
            " ",
            "...",
            "x",
            "🙂 ✨ 👍🏽",
            "New",
            "New York",
            "(!)",
            "ÀÉÎ. ǅemal",
            "\u{1c}\u{1f}",
        ] {
            let _ = brill.tag(text);
            let _ = plain.tag(text);
        }
        assert_eq!(brill.tag(&"the cat sat. ".repeat(5_000)).len(), 20_000);
    }
}
