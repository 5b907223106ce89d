//! Readable text from an HTML page, in the spirit of readability: the prose of `<article>` or
//! `<main>` when the page has one, without scripts, styles, navigation, headers, footers, forms,
//! figures or link lists, with entities decoded and one paragraph per block element.
//!
//! A lenient scanner rather than a full HTML5 parser: pages are read, never rendered, and an
//! unclosed tag costs at worst a paragraph break.

/// Elements whose content is never prose.
const SKIPPED: &[&str] = &[
    "script", "style", "noscript", "template", "svg", "math", "head", "nav", "header", "footer",
    "aside", "form", "button", "select", "textarea", "iframe", "object", "figure", "sup", "menu",
    "dialog", "canvas", "video", "audio", "map",
];
/// Elements whose content is raw text up to their end tag.
const RAW_TEXT: &[&str] = &["script", "style", "textarea", "title"];
/// Elements that break a paragraph.
const BLOCKS: &[&str] = &[
    "p",
    "div",
    "br",
    "hr",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "li",
    "ul",
    "ol",
    "dl",
    "dt",
    "dd",
    "tr",
    "td",
    "th",
    "table",
    "section",
    "article",
    "main",
    "blockquote",
    "pre",
    "address",
    "caption",
    "figcaption",
    "details",
    "summary",
];
/// Elements without an end tag.
const VOID: &[&str] = &[
    "area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "param", "source",
    "track", "wbr",
];
const HEADINGS: &[&str] = &["h1", "h2", "h3", "h4", "h5", "h6"];

/// The readable text of a page.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Extracted {
    /// The `<title>`, if any.
    pub title: Option<String>,
    /// Paragraphs separated by blank lines; headings stand alone without closing punctuation.
    pub text: String,
}

#[derive(Default)]
struct Block {
    text: String,
    link_chars: usize,
    in_article: bool,
    heading: bool,
}

#[derive(Default)]
struct Scanner {
    blocks: Vec<Block>,
    current: Block,
    skip: Vec<String>,
    article_depth: usize,
    link_depth: usize,
    heading_depth: usize,
    title: Option<String>,
}

impl Scanner {
    fn text(&mut self, raw: &str) {
        if !self.skip.is_empty() {
            return;
        }
        let decoded = decode_entities(raw);
        for word in decoded.split_whitespace() {
            if !self.current.text.is_empty() {
                self.current.text.push(' ');
            }
            self.current.text.push_str(word);
            if self.link_depth > 0 {
                self.current.link_chars += word.chars().count() + 1;
            }
        }
        if self.article_depth > 0 && !self.current.text.is_empty() {
            self.current.in_article = true;
        }
        if self.heading_depth > 0 && !self.current.text.is_empty() {
            self.current.heading = true;
        }
    }

    fn flush(&mut self) {
        let block = std::mem::take(&mut self.current);
        if !block.text.is_empty() {
            self.blocks.push(block);
        }
    }

    fn start(&mut self, name: &str) {
        if !self.skip.is_empty() || SKIPPED.contains(&name) {
            if SKIPPED.contains(&name) && !VOID.contains(&name) {
                self.skip.push(name.to_string());
            }
            return;
        }
        if BLOCKS.contains(&name) {
            self.flush();
        }
        match name {
            "article" | "main" => self.article_depth += 1,
            "a" => self.link_depth += 1,
            n if HEADINGS.contains(&n) => self.heading_depth += 1,
            _ => {}
        }
    }

    fn end(&mut self, name: &str) {
        if let Some(open) = self.skip.last() {
            if open == name {
                self.skip.pop();
            }
            return;
        }
        if BLOCKS.contains(&name) {
            self.flush();
        }
        match name {
            "article" | "main" => self.article_depth = self.article_depth.saturating_sub(1),
            "a" => self.link_depth = self.link_depth.saturating_sub(1),
            n if HEADINGS.contains(&n) => self.heading_depth = self.heading_depth.saturating_sub(1),
            _ => {}
        }
    }

    fn finish(mut self) -> Extracted {
        self.flush();
        let article_chars: usize = self
            .blocks
            .iter()
            .filter(|b| b.in_article)
            .map(|b| b.text.len())
            .sum();
        let only_article = article_chars >= 200;
        let mut text = String::new();
        for block in &self.blocks {
            if only_article && !block.in_article {
                continue;
            }
            // Menus and link lists: mostly link text.
            let chars = block.text.chars().count();
            if !block.heading && block.link_chars * 2 > chars {
                continue;
            }
            if !text.is_empty() {
                text.push_str("\n\n");
            }
            text.push_str(&block.text);
        }
        Extracted {
            title: self.title,
            text,
        }
    }
}

/// Extracts the readable text of `html`.
pub fn extract_text(html: &str) -> Extracted {
    let mut scanner = Scanner::default();
    let bytes = html.as_bytes();
    let mut pos = 0;
    while pos < html.len() {
        let Some(lt) = html[pos..].find('<').map(|i| pos + i) else {
            scanner.text(&html[pos..]);
            break;
        };
        scanner.text(&html[pos..lt]);
        let rest = &html[lt..];
        if rest.starts_with("<!--") {
            pos = rest.find("-->").map_or(html.len(), |i| lt + i + 3);
            continue;
        }
        if rest.starts_with("<!") || rest.starts_with("<?") {
            pos = rest.find('>').map_or(html.len(), |i| lt + i + 1);
            continue;
        }
        let closing = rest.starts_with("</");
        let name_start = lt + if closing { 2 } else { 1 };
        let name_len = bytes[name_start..]
            .iter()
            .take_while(|b| b.is_ascii_alphanumeric() || **b == b'-')
            .count();
        if name_len == 0 {
            // A lone '<' is text.
            scanner.text("<");
            pos = lt + 1;
            continue;
        }
        let name = html[name_start..name_start + name_len].to_ascii_lowercase();
        let tag_end = tag_end(html, name_start + name_len);
        if closing {
            scanner.end(&name);
            pos = tag_end;
            continue;
        }
        let self_closing = html[..tag_end].ends_with("/>");
        scanner.start(&name);
        pos = tag_end;
        if RAW_TEXT.contains(&name.as_str()) {
            let close = find_ci(&html[pos..], &format!("</{name}"));
            let end = close.map_or(html.len(), |i| pos + i);
            if name == "title" && scanner.title.is_none() {
                let title = decode_entities(&html[pos..end]);
                let title = title.split_whitespace().collect::<Vec<_>>().join(" ");
                scanner.title = Some(title).filter(|t| !t.is_empty());
            }
            scanner.end(&name);
            pos = close.map_or(html.len(), |_| tag_end_after(html, end));
            continue;
        }
        if self_closing || VOID.contains(&name.as_str()) {
            if let Some(open) = scanner.skip.last()
                && *open == name
            {
                scanner.skip.pop();
            } else if name == "br" || name == "hr" {
                scanner.flush();
            }
        }
    }
    scanner.finish()
}

/// The byte after the `>` that closes a tag whose attributes start at `from`, honoring quoted
/// attribute values.
fn tag_end(html: &str, from: usize) -> usize {
    let mut quote = None;
    for (i, c) in html[from..].char_indices() {
        match (quote, c) {
            (None, '"' | '\'') => quote = Some(c),
            (Some(q), c) if c == q => quote = None,
            (None, '>') => return from + i + 1,
            _ => {}
        }
    }
    html.len()
}

fn tag_end_after(html: &str, from: usize) -> usize {
    html[from..].find('>').map_or(html.len(), |i| from + i + 1)
}

fn find_ci(haystack: &str, needle: &str) -> Option<usize> {
    let needle = needle.as_bytes();
    haystack
        .as_bytes()
        .windows(needle.len())
        .position(|w| w.eq_ignore_ascii_case(needle))
}

/// Decodes character references: numeric ones and the named ones prose uses.
pub fn decode_entities(s: &str) -> String {
    if !s.contains('&') {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        rest = &rest[amp..];
        let end = rest[1..]
            .char_indices()
            .take(32)
            .find(|(_, c)| !(c.is_ascii_alphanumeric() || *c == '#'))
            .map(|(i, c)| (i + 1, c));
        let decoded = end.and_then(|(semi, c)| (c == ';').then(|| (semi, entity(&rest[1..semi]))));
        match decoded {
            Some((semi, Some(ch))) => {
                out.push(ch);
                rest = &rest[semi + 1..];
            }
            _ => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

fn entity(name: &str) -> Option<char> {
    if let Some(num) = name.strip_prefix('#') {
        let code = match num.strip_prefix(['x', 'X']) {
            Some(hex) => u32::from_str_radix(hex, 16).ok()?,
            None => num.parse().ok()?,
        };
        return char::from_u32(code);
    }
    Some(match name {
        "amp" => '&',
        "lt" => '<',
        "gt" => '>',
        "quot" => '"',
        "apos" => '\'',
        "nbsp" => ' ',
        "ndash" => '\u{2013}',
        "mdash" => '\u{2014}',
        "hellip" => '\u{2026}',
        "lsquo" => '\u{2018}',
        "rsquo" => '\u{2019}',
        "ldquo" => '\u{201c}',
        "rdquo" => '\u{201d}',
        "laquo" => '\u{ab}',
        "raquo" => '\u{bb}',
        "copy" => '\u{a9}',
        "reg" => '\u{ae}',
        "deg" => '\u{b0}',
        "euro" => '\u{20ac}',
        "pound" => '\u{a3}',
        "eacute" => '\u{e9}',
        "egrave" => '\u{e8}',
        "aacute" => '\u{e1}',
        "oacute" => '\u{f3}',
        "uuml" => '\u{fc}',
        "ouml" => '\u{f6}',
        "auml" => '\u{e4}',
        "ntilde" => '\u{f1}',
        "ccedil" => '\u{e7}',
        "szlig" => '\u{df}',
        "times" => '\u{d7}',
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_prose_and_drops_chrome() {
        let html = r#"<!DOCTYPE html><html><head><title>Harbor &amp; Bridge</title>
            <style>p { color: red }</style><script>var x = "<p>no</p>";</script></head>
            <body><nav><a href="/">Home</a> <a href="/news">News</a></nav>
            <header><h1>Site name</h1></header>
            <p>The bridge reopened on Monday.<br>Traffic was light&nbsp;&mdash; as expected.</p>
            <!-- <p>commented out</p> -->
            <ul><li><a href="/a">Related one</a></li><li><a href="/b">Related two</a></li></ul>
            <p>Engineers replaced 40<sup>[1]</sup> cables &#8212; all of them.</p>
            <footer>Copyright</footer></body></html>"#;
        let page = extract_text(html);
        assert_eq!(page.title.as_deref(), Some("Harbor & Bridge"));
        assert_eq!(
            page.text,
            "The bridge reopened on Monday.\n\nTraffic was light \u{2014} as expected.\n\n\
             Engineers replaced 40 cables \u{2014} all of them."
        );
    }

    #[test]
    fn prefers_the_article_when_there_is_one() {
        let prose = "The council approved the budget after a long debate about schools. ".repeat(4);
        let html = format!(
            "<div class='promo'><p>Subscribe now for a discount on everything we sell.</p></div>\
             <article><h2>Budget passes</h2><p>{prose}</p></article><div><p>Cookie notice.</p></div>"
        );
        let page = extract_text(&html);
        assert_eq!(page.text, format!("Budget passes\n\n{}", prose.trim()));
    }

    #[test]
    fn tolerates_broken_markup() {
        let page = extract_text(
            "<p>One < two and <b>bold <i>unclosed</p><p>Next <unknown attr=\"a>b\">para",
        );
        assert_eq!(page.text, "One < two and bold unclosed\n\nNext para");
        assert_eq!(extract_text("").text, "");
        assert_eq!(extract_text("<script>never closed").text, "");
    }

    #[test]
    fn entities() {
        assert_eq!(
            decode_entities("a &amp; b &#x41;&#66; &bogus; & c"),
            "a & b AB &bogus; & c"
        );
        assert_eq!(decode_entities("&#xFFFFFFFF;"), "&#xFFFFFFFF;");
    }
}
