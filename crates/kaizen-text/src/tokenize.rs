//! Sentences and words: a port of pattern.en's `find_tokens`, the tokenizer that TextBlob's
//! `PatternAnalyzer` and `PatternTagger` run.
//!
//! A general-purpose segmenter (UAX #29, as `unicode-segmentation` implements it) splits text
//! differently (it keeps "don't" whole, has no sentence rule for "Mr." or "e.g."), and scores change
//! with the tokens, so parity with TextBlob needs pattern's own rules, quirks included:
//!
//! - every apostrophe becomes a token of its own (the quotes are padded with spaces after the
//!   contractions are split), so "don't" is `do n ' t` and "n't" never reaches the negation
//!   list: TextBlob scores "I don't like it" as if the "not" were absent, and so does this;
//! - punctuation is split from the start and end of words, periods only when the word is not an
//!   abbreviation (a list, single letters, `U.S.`-style initials, `Mr.`-style capitals);
//! - a sentence ends at `.`, `!`, `?` or `...` (with following quotes, brackets and repeated
//!   marks) and at a blank line (pattern marks those with the token `END-OF-SENTENCE`, which
//!   therefore ends a sentence where a text spells it too);
//! - `( ! )` becomes the sarcasm mark `(!)`, and emoticons split by the punctuation rules are
//!   joined again (`: - )` becomes `:-)`).
//!
//! Where pattern's outcome depends on Python's hash order (`:o)` read as `:o` or as `:o)`), the
//! longest emoticon wins here.

/// pattern's `PUNCTUATION`: marks split from the start and end of words.
pub(crate) const PUNCTUATION: &str = ".,;:!?()[]{}`''\"@#$^&*+-|=~_";

/// pattern's `ABBREVIATIONS`: words whose final period is kept.
const ABBREVIATIONS: &[&str] = &[
    "a.", "adj.", "adv.", "al.", "a.m.", "c.", "cf.", "comp.", "conf.", "def.", "ed.", "e.g.",
    "esp.", "etc.", "ex.", "f.", "fig.", "gen.", "id.", "i.e.", "int.", "l.", "m.", "Med.", "Mil.",
    "Mr.", "n.", "n.q.", "orig.", "pl.", "pred.", "pres.", "p.m.", "ref.", "v.", "vs.", "w/",
];

/// pattern's contraction replacements, applied in this order before anything else.
const CONTRACTIONS: &[(&str, &str)] = &[
    ("'d", " 'd"),
    ("'m", " 'm"),
    ("'s", " 's"),
    ("'ll", " 'll"),
    ("'re", " 're"),
    ("'ve", " 've"),
    ("n't", " n't"),
];

/// The token pattern puts where a blank line was; it ends a sentence and is then dropped.
const EOS: &str = "END-OF-SENTENCE";

/// pattern's emoticons by facial expression with their polarity, in its order.
pub(crate) const EMOTICONS: &[(&str, f64, &[&str])] = &[
    ("love", 1.0, &["<3", "♥"]),
    (
        "grin",
        1.0,
        &[
            ">:D", ":-D", ":D", "=-D", "=D", "X-D", "x-D", "XD", "xD", "8-D",
        ],
    ),
    (
        "taunt",
        0.75,
        &[
            ">:P", ":-P", ":P", ":-p", ":p", ":-b", ":b", ":c)", ":o)", ":^)",
        ],
    ),
    (
        "smile",
        0.5,
        &[
            ">:)", ":-)", ":)", "=)", "=]", ":]", ":}", ":>", ":3", "8)", "8-)",
        ],
    ),
    (
        "wink",
        0.25,
        &[">;]", ";-)", ";)", ";-]", ";]", ";D", ";^)", "*-)", "*)"],
    ),
    (
        "gasp",
        0.05,
        &[">:o", ":-O", ":O", ":o", ":-o", "o_O", "o.O", "°O°", "°o°"],
    ),
    (
        "worry",
        -0.25,
        &[
            ">:/", ":-/", ":/", ":\\", ">:\\", ":-.", ":-s", ":s", ":S", ":-S", ">.>",
        ],
    ),
    (
        "frown",
        -0.75,
        &[
            ">:[", ":-(", ":(", "=(", ":-[", ":[", ":{", ":-<", ":c", ":-c", "=/",
        ],
    ),
    ("cry", -1.0, &[":'(", ":'''(", ";'("]),
];

/// True for one of pattern's emoticons, in any case (`xd` is `xD`).
pub(crate) fn is_emoticon(word: &str) -> bool {
    EMOTICONS
        .iter()
        .flat_map(|(_, _, faces)| faces.iter())
        .any(|f| f.eq_ignore_ascii_case(word))
}

/// Python's `str.isspace`: Rust's `char::is_whitespace` plus the ASCII information separators.
pub(crate) fn is_py_space(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

/// Splits text into sentences of tokens, exactly as pattern's `find_tokens` does (see the module
/// documentation). Empty or whitespace-only text has no sentences.
pub fn sentences(text: &str) -> Vec<Vec<String>> {
    let tokens = raw_tokens(text);
    let sentences = group_sentences(tokens);
    let emoticons = emoticons_longest_first();
    sentences
        .into_iter()
        .filter(|s| !s.is_empty())
        .map(|s| {
            let joined = join_emoticons(&join_sarcasm(&s.join(" ")), &emoticons);
            joined.split(' ').map(str::to_string).collect()
        })
        .collect()
}

/// All tokens of the text, sentence after sentence.
pub fn words(text: &str) -> Vec<String> {
    sentences(text).into_iter().flatten().collect()
}

/// Contractions and quotes padded with spaces, paragraph breaks marked, then whitespace-split
/// and punctuation split off.
fn raw_tokens(text: &str) -> Vec<String> {
    let mut s = text.to_string();
    for (from, to) in CONTRACTIONS {
        s = s.replace(from, to);
    }
    for quote in ["“", "”", "‘", "’", "'", "\""] {
        s = s.replace(quote, &format!(" {quote} "));
    }
    let s = s.replace("\r\n", "\n");
    let s = mark_paragraphs(&s);
    let mut tokens = Vec::new();
    for word in s.split(is_py_space).filter(|w| !w.is_empty()) {
        split_punctuation(word, &mut tokens);
    }
    tokens
}

/// Replaces every run of two or more newlines with the end-of-sentence token.
fn mark_paragraphs(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut newlines = 0;
    let flush = |out: &mut String, newlines: usize| match newlines {
        0 => {}
        1 => out.push('\n'),
        _ => {
            out.push(' ');
            out.push_str(EOS);
            out.push(' ');
        }
    };
    for c in s.chars() {
        if c == '\n' {
            newlines += 1;
            continue;
        }
        flush(&mut out, newlines);
        newlines = 0;
        out.push(c);
    }
    flush(&mut out, newlines);
    out
}

fn is_punctuation(c: char) -> bool {
    c != '.' && PUNCTUATION.contains(c)
}

fn is_contraction(t: &str) -> bool {
    CONTRACTIONS.iter().any(|(c, _)| *c == t)
}

/// pattern's abbreviation test for a word ending in a period.
fn is_abbreviation(t: &str) -> bool {
    if ABBREVIATIONS.contains(&t) {
        return true;
    }
    let chars: Vec<char> = t.chars().collect();
    // `^[A-Za-z]\.$` and `^([A-Za-z]\.)+$`: single letters and initials.
    let initials = chars.len().is_multiple_of(2)
        && chars
            .chunks(2)
            .all(|pair| pair[0].is_ascii_alphabetic() && pair[1] == '.');
    // `^[A-Z][b|c|d|...]+.$`: a capital, consonants (the `|` is in pattern's class too), any end.
    let capital_consonants = chars.len() >= 3
        && chars[0].is_ascii_uppercase()
        && chars[1..chars.len() - 1]
            .iter()
            .all(|c| "bcdfghjklmnpqrstvwxz|".contains(*c));
    initials || capital_consonants
}

/// Splits leading and trailing punctuation (and a final period, ellipsis) from one word.
fn split_punctuation(word: &str, tokens: &mut Vec<String>) {
    let mut t = word;
    while let Some(c) = t.chars().next() {
        if !is_punctuation(c) || is_contraction(t) {
            break;
        }
        tokens.push(c.to_string());
        t = &t[c.len_utf8()..];
    }
    let mut tail: Vec<&str> = Vec::new();
    while let Some(last) = t.chars().next_back() {
        if !(is_punctuation(last) || last == '.') || is_contraction(t) {
            break;
        }
        if is_punctuation(last) {
            let cut = t.len() - last.len_utf8();
            tail.push(&t[cut..]);
            t = &t[..cut];
        }
        if t.ends_with("...") {
            tail.push("...");
            t = t[..t.len() - 3].trim_end_matches('.');
        }
        if t.ends_with('.') {
            if is_abbreviation(t) {
                break;
            }
            tail.push(".");
            t = &t[..t.len() - 1];
        }
    }
    if !t.is_empty() {
        tokens.push(t.to_string());
    }
    tokens.extend(tail.into_iter().rev().map(str::to_string));
}

/// pattern's sentence loop, including its handling of quotes: a quote after a sentence end
/// starts the next sentence (pattern counts quotes in a sentence that is still empty).
fn group_sentences(tokens: Vec<String>) -> Vec<Vec<String>> {
    const ENDS: &[&str] = &["...", ".", "!", "?", EOS];
    const TRAILING: &[&str] = &["'", "\"", "”", "’", "...", ".", "!", "?", ")", EOS];
    let mut sentences: Vec<Vec<String>> = vec![Vec::new()];
    let (mut i, mut j) = (0, 0);
    while j < tokens.len() {
        if ENDS.contains(&tokens[j].as_str()) {
            while j < tokens.len() && TRAILING.contains(&tokens[j].as_str()) {
                let t = tokens[j].as_str();
                if t == "'" || t == "\"" {
                    let open = sentences
                        .last()
                        .map_or(0, |s| s.iter().filter(|w| *w == t).count());
                    if open.is_multiple_of(2) {
                        break;
                    }
                }
                j += 1;
            }
            if let Some(last) = sentences.last_mut() {
                last.extend(tokens[i..j].iter().filter(|t| *t != EOS).cloned());
            }
            sentences.push(Vec::new());
            i = j;
        }
        j += 1;
    }
    if let Some(last) = sentences.last_mut() {
        last.extend(tokens[i.min(tokens.len())..].iter().cloned());
    }
    sentences
}

/// `\( ?\! ?\)` becomes `(!)`.
fn join_sarcasm(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(pos) = rest.find('(') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos + 1..];
        let after = after.strip_prefix(' ').unwrap_or(after);
        let matched = after.strip_prefix('!').map(|a| {
            let a = a.strip_prefix(' ').unwrap_or(a);
            a.strip_prefix(')')
        });
        match matched {
            Some(Some(remaining)) => {
                out.push_str("(!)");
                rest = remaining;
            }
            _ => {
                out.push('(');
                rest = &rest[pos + 1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// All emoticons as character lists, longest first (pattern's regex alternation order is
/// Python's set order; longest first makes `:o)` win over `:o`).
fn emoticons_longest_first() -> Vec<Vec<char>> {
    let mut all: Vec<Vec<char>> = EMOTICONS
        .iter()
        .flat_map(|(_, _, faces)| faces.iter().map(|f| f.chars().collect()))
        .collect();
    all.sort_by_key(|f: &Vec<char>| std::cmp::Reverse(f.len()));
    all
}

/// pattern's `RE_EMOTICONS` substitution: an emoticon whose characters may be separated by
/// single spaces, followed by whitespace or the end, is written without the spaces.
fn join_emoticons(s: &str, emoticons: &[Vec<char>]) -> String {
    let chars: Vec<char> = s.chars().collect();
    let mut starts: Vec<char> = emoticons
        .iter()
        .filter_map(|f| f.first().copied())
        .collect();
    starts.sort_unstable();
    starts.dedup();
    let mut out = String::with_capacity(s.len());
    let mut i = 0;
    'scan: while i < chars.len() {
        // Most characters cannot start an emoticon; skip the search for them.
        let candidates = if starts.binary_search(&chars[i]).is_ok() {
            emoticons
        } else {
            &[]
        };
        for face in candidates {
            if let Some(end) = match_spaced(&chars, i, face) {
                out.extend(face.iter());
                // The whitespace after the emoticon is part of pattern's match; keep it.
                if let Some(&c) = chars.get(end) {
                    out.push(c);
                    i = end + 1;
                } else {
                    i = end;
                }
                continue 'scan;
            }
        }
        out.push(chars[i]);
        i += 1;
    }
    out
}

/// Where a spaced match of `face` starting at `start` ends, when whitespace or the end follows.
fn match_spaced(chars: &[char], start: usize, face: &[char]) -> Option<usize> {
    let mut i = start;
    for (k, &c) in face.iter().enumerate() {
        if k > 0 && chars.get(i) == Some(&' ') && chars.get(i + 1) == Some(&c) {
            i += 1;
        }
        if chars.get(i) != Some(&c) {
            return None;
        }
        i += 1;
    }
    match chars.get(i) {
        None => Some(i),
        Some(&c) if is_py_space(c) => Some(i),
        Some(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(text: &str, expected: &[&str]) {
        let got: Vec<String> = sentences(text).iter().map(|s| s.join(" ")).collect();
        assert_eq!(got, expected, "tokens of {text:?}");
    }

    // The expectations are pattern's own output (TextBlob 0.20.1, `textblob._text.find_tokens`).
    #[test]
    fn splits_like_pattern() {
        check("I don't like it.", &["I do n ' t like it ."]);
        check(
            "Mr. Smith went to Washington. He was e.g. happy!!! Really?! (!) :-) :( xD",
            &[
                "Mr. Smith went to Washington .",
                "He was e.g. happy ! ! !",
                "Really ? !",
                "(!)",
                ":-) :( xD",
            ],
        );
        check("U.S. is big...  yes", &["U.S. is big ...", "yes"]);
        check(
            "He said \"great\" and left.",
            &["He said \" great \" and left ."],
        );
        check(
            "The new iPhone 12, costs $799.99 today; 3.5% more.",
            &["The new iPhone 12 , costs $ 799.99 today ; 3.5% more ."],
        );
        check("!!!", &["! ! !"]);
    }

    #[test]
    fn blank_lines_end_sentences() {
        check(
            "A heading\n\nThe text follows",
            &["A heading", "The text follows"],
        );
        check("one\ntwo\r\n\r\nthree", &["one two", "three"]);
    }

    #[test]
    fn nothing_in_nothing_out() {
        assert!(sentences("").is_empty());
        assert!(sentences(" \n\n\t ").is_empty());
        assert!(words("").is_empty());
    }

    #[test]
    fn emoticons_are_rejoined() {
        check("so sad :'(", &["so sad :'("]);
        check("nice :o)", &["nice :o)"]);
        check("love <3 ♥", &["love <3 ♥"]);
    }

    #[test]
    fn never_panics_on_odd_input() {
        for text in [
            "...",
            "'",
            "\"\"\"",
            "(((",
            ") ) )",
            "( !",
            "(!",
            "🙂🙂 !! 👍🏽",
            "é.",
            "İ.",
            "\0\0",
            "a\n\n\n\n",
            "END-OF-SENTENCE",
            ". . . ' ' ' ! ? ...",
        ] {
            let _ = sentences(text);
        }
        let long = "Very good! ".repeat(20_000);
        assert_eq!(words(&long).len(), 60_000);
    }
}
