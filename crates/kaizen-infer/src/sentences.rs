//! Sentence splitting for extractive summaries: paragraphs on blank lines, sentences on `.`, `!`,
//! `?` followed by a space and a capital, a digit or an opening quote, except after abbreviations,
//! initials and inside decimals. Headings (a short paragraph without closing punctuation, or a
//! MediaWiki `== Section ==` line) are not sentences.

/// Abbreviations whose period does not end a sentence, compared without the period and
/// case-sensitively (so `No. 5` is one sentence, `He said no. Then` two).
const ABBREVIATIONS: &[&str] = &[
    "Mr", "Mrs", "Ms", "Mx", "Dr", "Prof", "Sr", "Jr", "St", "Mt", "Ft", "Gen", "Col", "Capt",
    "Lt", "Sgt", "Gov", "Sen", "Rep", "Rev", "Hon", "Pres", "Supt", "vs", "v", "etc", "eg", "ie",
    "cf", "al", "approx", "ca", "viz", "Inc", "Ltd", "Co", "Corp", "Bros", "No", "Nos", "Vol",
    "vol", "pp", "p", "Fig", "fig", "Eq", "eq", "Ch", "ch", "Sec", "sec", "Art", "Dept", "Univ",
    "Assn", "Ave", "Blvd", "Rd", "Jan", "Feb", "Mar", "Apr", "Jun", "Jul", "Aug", "Sep", "Sept",
    "Oct", "Nov", "Dec", "Mon", "Tue", "Tues", "Wed", "Thu", "Thurs", "Fri", "Sat", "Sun", "est",
    "min", "max", "dept", "govt", "Gen", "Adm", "Cmdr", "Messrs", "Mme", "Mlle",
];

/// Characters that may follow a sentence's closing punctuation before the space.
const CLOSERS: &[char] = &['"', '\'', '\u{201d}', '\u{2019}', ')', ']', '\u{bb}'];
/// Characters that may open the next sentence before its first letter.
const OPENERS: &[char] = &['"', '\'', '\u{201c}', '\u{2018}', '(', '[', '\u{ab}'];

/// Splits `text` into sentences, each with its whitespace collapsed to single spaces, in input
/// order.
pub fn split_sentences(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for paragraph in paragraphs(text) {
        if is_heading(&paragraph) {
            continue;
        }
        split_paragraph(&paragraph, &mut out);
    }
    out
}

/// The paragraphs of `text` (separated by blank lines or MediaWiki section headings), each as
/// one line with single spaces.
fn paragraphs(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    let flush = |current: &mut String, out: &mut Vec<String>| {
        if !current.is_empty() {
            out.push(std::mem::take(current));
        }
    };
    for line in text.lines() {
        let trimmed = line.trim();
        if trimmed.is_empty() || is_wiki_heading(trimmed) {
            flush(&mut current, &mut out);
            continue;
        }
        for word in trimmed.split_whitespace() {
            if !current.is_empty() {
                current.push(' ');
            }
            current.push_str(word);
        }
    }
    flush(&mut current, &mut out);
    out
}

fn is_wiki_heading(line: &str) -> bool {
    line.len() >= 4 && line.starts_with("==") && line.ends_with("==")
}

/// A paragraph that is a title or heading rather than prose: short and without closing
/// punctuation.
fn is_heading(paragraph: &str) -> bool {
    let last = paragraph
        .trim_end_matches(CLOSERS)
        .chars()
        .last()
        .unwrap_or(' ');
    !matches!(last, '.' | '!' | '?' | '\u{2026}' | ':' | ';')
        && paragraph.split_whitespace().count() <= 12
}

fn split_paragraph(paragraph: &str, out: &mut Vec<String>) {
    let chars: Vec<(usize, char)> = paragraph.char_indices().collect();
    let mut start = 0;
    let mut i = 0;
    while i < chars.len() {
        let (_, c) = chars[i];
        if !matches!(c, '.' | '!' | '?' | '\u{2026}') {
            i += 1;
            continue;
        }
        // Runs like "?!" or "..." end together.
        let mut j = i + 1;
        while j < chars.len() && matches!(chars[j].1, '.' | '!' | '?' | '\u{2026}') {
            j += 1;
        }
        while j < chars.len() && CLOSERS.contains(&chars[j].1) {
            j += 1;
        }
        let end_byte = chars.get(j).map_or(paragraph.len(), |(b, _)| *b);
        if j >= chars.len() {
            break;
        }
        if chars[j].1 != ' ' {
            i = j;
            continue;
        }
        let next = chars[j + 1..]
            .iter()
            .map(|(_, c)| *c)
            .find(|c| !OPENERS.contains(c));
        let starts_sentence = next.is_some_and(|n| n.is_uppercase() || n.is_ascii_digit());
        let single_period = c == '.' && (j == i + 1 || CLOSERS.contains(&chars[i + 1].1));
        if starts_sentence && !(single_period && is_abbreviation(&paragraph[start..chars[i].0])) {
            push_sentence(&paragraph[start..end_byte], out);
            start = chars[j].0 + 1;
        }
        i = j;
    }
    if start < paragraph.len() {
        push_sentence(&paragraph[start..], out);
    }
}

/// Whether the word before a period (the end of `before`) is an abbreviation or an initial.
fn is_abbreviation(before: &str) -> bool {
    let word = before
        .rsplit(' ')
        .next()
        .unwrap_or("")
        .trim_start_matches(OPENERS);
    if word.is_empty() {
        return false;
    }
    // Initials and dotted abbreviations: "J", "U.S", "e.g", "Ph.D".
    let mut chars = word.chars();
    if let (Some(first), None) = (chars.next(), chars.next())
        && first.is_alphabetic()
    {
        return first.is_uppercase() || word == "v" || word == "p";
    }
    if word.contains('.') && word.split('.').all(|part| part.chars().count() <= 2) {
        return true;
    }
    ABBREVIATIONS.contains(&word)
}

fn push_sentence(sentence: &str, out: &mut Vec<String>) {
    let sentence = sentence.trim();
    if !sentence.is_empty() {
        out.push(sentence.to_string());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(text: &str, expected: &[&str]) {
        assert_eq!(split_sentences(text), expected, "input: {text:?}");
    }

    #[test]
    fn splits_on_terminal_punctuation() {
        check(
            "The plant opened in May. It employs 300 people! Will it grow? Nobody knows.",
            &[
                "The plant opened in May.",
                "It employs 300 people!",
                "Will it grow?",
                "Nobody knows.",
            ],
        );
    }

    #[test]
    fn keeps_abbreviations_initials_and_decimals() {
        check(
            "Dr. Ana Ruiz met Mr. J. R. Tolkien at 3.5 p.m. on Jan. 4 in the U.S. capital. \
             Prices rose 2.75 percent, e.g. for rice. Sales reached No. 5 in 2024.",
            &[
                "Dr. Ana Ruiz met Mr. J. R. Tolkien at 3.5 p.m. on Jan. 4 in the U.S. capital.",
                "Prices rose 2.75 percent, e.g. for rice.",
                "Sales reached No. 5 in 2024.",
            ],
        );
    }

    #[test]
    fn quotes_and_brackets_end_with_the_sentence() {
        check(
            "\u{201c}We are ready.\u{201d} The mayor agreed. (It was late.) \"Fine,\" she said.",
            &[
                "\u{201c}We are ready.\u{201d}",
                "The mayor agreed.",
                "(It was late.)",
                "\"Fine,\" she said.",
            ],
        );
    }

    #[test]
    fn lowercase_after_a_period_does_not_split() {
        check(
            "The value was approx. three times higher than in 2019. Then it fell.",
            &[
                "The value was approx. three times higher than in 2019.",
                "Then it fell.",
            ],
        );
    }

    #[test]
    fn paragraphs_and_headings() {
        check(
            "Harbor Bridge Reopens\n\nThe bridge reopened on Monday\nafter two years.  Traffic \
             was light.\n\n== History ==\nIt was built in 1931.\n\nSee also",
            &[
                "The bridge reopened on Monday after two years.",
                "Traffic was light.",
                "It was built in 1931.",
            ],
        );
    }

    #[test]
    fn a_paragraph_without_final_period_is_kept_when_long() {
        check(
            "This paragraph has no final period but it is clearly a long sentence of prose",
            &["This paragraph has no final period but it is clearly a long sentence of prose"],
        );
    }

    #[test]
    fn ellipsis_and_empty_input() {
        check("Wait... Then go.", &["Wait...", "Then go."]);
        check("", &[]);
        check("   \n\n  ", &[]);
    }
}
