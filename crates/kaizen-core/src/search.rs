//! MLflow's search grammar: filter strings (`metrics.acc > 0.9 AND tags.team = 'x'`) and `order_by`
//! clauses, parsed into a small AST that the store turns into SQL.
//!
//! The grammar is MLflow's: comparisons joined by `AND` (never `OR`), an identifier
//! `<type>.<key>` whose key may be quoted with backticks or double quotes, and values that are quoted
//! strings, numbers, or parenthesised lists for `IN`.

use crate::{Error, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntityType {
    Metric,
    Param,
    Tag,
    Attribute,
    Dataset,
}

impl EntityType {
    fn parse(s: &str) -> Option<Self> {
        match s.to_ascii_lowercase().as_str() {
            "metric" | "metrics" => Some(Self::Metric),
            "param" | "params" | "parameter" | "parameters" => Some(Self::Param),
            "tag" | "tags" => Some(Self::Tag),
            "attribute" | "attributes" | "attr" | "run" => Some(Self::Attribute),
            "dataset" | "datasets" => Some(Self::Dataset),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    Like,
    ILike,
    In,
    NotIn,
    IsNull,
    IsNotNull,
}

impl Op {
    pub fn as_sql(self) -> &'static str {
        match self {
            Op::Eq => "=",
            Op::Ne => "!=",
            Op::Lt => "<",
            Op::Le => "<=",
            Op::Gt => ">",
            Op::Ge => ">=",
            Op::Like => "LIKE",
            Op::ILike => "ILIKE",
            Op::In => "IN",
            Op::NotIn => "NOT IN",
            Op::IsNull => "IS NULL",
            Op::IsNotNull => "IS NOT NULL",
        }
    }

    pub fn is_numeric(self) -> bool {
        matches!(self, Op::Eq | Op::Ne | Op::Lt | Op::Le | Op::Gt | Op::Ge)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Str(String),
    Num(f64),
    List(Vec<String>),
    None,
}

/// One comparison of a filter. `entity` is `None` for a bare identifier (`name = 'x'`), which the
/// registry and experiment searches use.
#[derive(Debug, Clone, PartialEq)]
pub struct Comparison {
    pub entity: Option<EntityType>,
    pub key: String,
    pub op: Op,
    pub value: Value,
}

impl Comparison {
    pub fn str_value(&self) -> Result<&str> {
        match &self.value {
            Value::Str(s) => Ok(s),
            other => Err(Error::invalid(format!(
                "Expected a quoted string value for '{}' but got {other:?}",
                self.key
            ))),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Ident(String),
    Quoted(String),
    Backtick(String),
    Num(f64),
    Op(String),
    LParen,
    RParen,
    Comma,
    Dot,
}

fn tokenize(input: &str) -> Result<Vec<Token>> {
    let chars: Vec<char> = input.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match c {
            c if c.is_whitespace() => i += 1,
            '(' => {
                tokens.push(Token::LParen);
                i += 1;
            }
            ')' => {
                tokens.push(Token::RParen);
                i += 1;
            }
            ',' => {
                tokens.push(Token::Comma);
                i += 1;
            }
            '.' if !chars.get(i + 1).is_some_and(|d| d.is_ascii_digit()) => {
                tokens.push(Token::Dot);
                i += 1;
            }
            '\'' | '"' | '`' => {
                let quote = c;
                let mut s = String::new();
                i += 1;
                loop {
                    match chars.get(i) {
                        None => {
                            return Err(Error::invalid(format!(
                                "Invalid filter '{input}': unterminated {quote} quote"
                            )));
                        }
                        Some(&ch) if ch == quote => {
                            // A doubled quote stands for the quote itself, as in SQL.
                            if chars.get(i + 1) == Some(&quote) {
                                s.push(quote);
                                i += 2;
                            } else {
                                i += 1;
                                break;
                            }
                        }
                        Some('\\') if chars.get(i + 1) == Some(&quote) => {
                            s.push(quote);
                            i += 2;
                        }
                        Some(&ch) => {
                            s.push(ch);
                            i += 1;
                        }
                    }
                }
                tokens.push(match quote {
                    '`' => Token::Backtick(s),
                    _ => Token::Quoted(s),
                });
            }
            '=' | '!' | '<' | '>' => {
                let mut op = c.to_string();
                if chars.get(i + 1) == Some(&'=') || (c == '<' && chars.get(i + 1) == Some(&'>')) {
                    op.push(chars[i + 1]);
                    i += 1;
                }
                i += 1;
                if op == "!" {
                    return Err(Error::invalid(format!(
                        "Invalid filter '{input}': stray '!'"
                    )));
                }
                if op == "==" {
                    op = "=".into();
                }
                tokens.push(Token::Op(op));
            }
            c if c.is_ascii_digit()
                || ((c == '-' || c == '+' || c == '.')
                    && chars
                        .get(i + 1)
                        .is_some_and(|d| d.is_ascii_digit() || *d == '.')) =>
            {
                let start = i;
                i += 1;
                while i < chars.len()
                    && (chars[i].is_ascii_alphanumeric()
                        || chars[i] == '.'
                        || ((chars[i] == '-' || chars[i] == '+')
                            && matches!(chars[i - 1], 'e' | 'E')))
                {
                    i += 1;
                }
                let text: String = chars[start..i].iter().collect();
                let n: f64 = text.parse().map_err(|_| {
                    Error::invalid(format!(
                        "Invalid filter '{input}': '{text}' is not a number"
                    ))
                })?;
                tokens.push(Token::Num(n));
            }
            c if c.is_alphanumeric() || c == '_' => {
                let start = i;
                while i < chars.len()
                    && (chars[i].is_alphanumeric() || matches!(chars[i], '_' | '-' | ':' | '/'))
                {
                    i += 1;
                }
                tokens.push(Token::Ident(chars[start..i].iter().collect()));
            }
            other => {
                return Err(Error::invalid(format!(
                    "Invalid filter '{input}': unexpected character '{other}'"
                )));
            }
        }
    }
    Ok(tokens)
}

struct Parser<'a> {
    input: &'a str,
    tokens: Vec<Token>,
    pos: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.pos)
    }

    fn next(&mut self) -> Option<Token> {
        let t = self.tokens.get(self.pos).cloned();
        self.pos += 1;
        t
    }

    fn err(&self, what: &str) -> Error {
        Error::invalid(format!("Invalid filter '{}': {what}", self.input))
    }

    fn peek_keyword(&self, kw: &str) -> bool {
        matches!(self.peek(), Some(Token::Ident(s)) if s.eq_ignore_ascii_case(kw))
    }

    /// `<type>.<key>` where the key is a run of words and dots or a quoted name; or a bare word.
    fn identifier(&mut self) -> Result<(Option<EntityType>, String)> {
        let first = match self.next() {
            Some(Token::Ident(s)) => s,
            Some(Token::Backtick(s)) | Some(Token::Quoted(s)) => return Ok((None, s)),
            _ => return Err(self.err("expected an identifier such as metrics.accuracy")),
        };
        if self.peek() != Some(&Token::Dot) {
            return Ok((None, first));
        }
        self.pos += 1;
        let entity = EntityType::parse(&first).ok_or_else(|| {
            self.err(&format!(
                "invalid entity type '{first}'. Valid values are ['metric', 'parameter', 'tag', 'attribute', 'dataset']"
            ))
        })?;
        let key = match self.next() {
            Some(Token::Backtick(s)) | Some(Token::Quoted(s)) => s,
            Some(Token::Ident(s)) => {
                let mut key = s;
                while self.peek() == Some(&Token::Dot) {
                    self.pos += 1;
                    match self.next() {
                        Some(Token::Ident(part)) => {
                            key.push('.');
                            key.push_str(&part);
                        }
                        Some(Token::Num(n)) => {
                            key.push('.');
                            key.push_str(&n.to_string());
                        }
                        _ => return Err(self.err("a key cannot end with '.'")),
                    }
                }
                key
            }
            Some(Token::Num(n)) => n.to_string(),
            _ => return Err(self.err(&format!("missing key after '{first}.'"))),
        };
        Ok((Some(entity), key))
    }

    fn operator(&mut self) -> Result<Op> {
        let op = match self.next() {
            Some(Token::Op(op)) => match op.as_str() {
                "=" => Op::Eq,
                "!=" | "<>" => Op::Ne,
                "<" => Op::Lt,
                "<=" => Op::Le,
                ">" => Op::Gt,
                ">=" => Op::Ge,
                _ => return Err(self.err(&format!("invalid comparator '{op}'"))),
            },
            Some(Token::Ident(word)) => match word.to_ascii_uppercase().as_str() {
                "LIKE" => Op::Like,
                "ILIKE" => Op::ILike,
                "IN" => Op::In,
                "NOT" if self.peek_keyword("IN") => {
                    self.pos += 1;
                    Op::NotIn
                }
                "IS" => {
                    if self.peek_keyword("NOT") {
                        self.pos += 1;
                        if !self.peek_keyword("NULL") {
                            return Err(self.err("expected NULL after IS NOT"));
                        }
                        self.pos += 1;
                        Op::IsNotNull
                    } else if self.peek_keyword("NULL") {
                        self.pos += 1;
                        Op::IsNull
                    } else {
                        return Err(self.err("expected NULL after IS"));
                    }
                }
                _ => return Err(self.err(&format!("invalid comparator '{word}'"))),
            },
            _ => return Err(self.err("expected a comparator")),
        };
        Ok(op)
    }

    fn value(&mut self, op: Op) -> Result<Value> {
        match op {
            Op::IsNull | Op::IsNotNull => return Ok(Value::None),
            Op::In | Op::NotIn => {
                if self.next() != Some(Token::LParen) {
                    return Err(self.err("expected '(' after IN"));
                }
                let mut items = Vec::new();
                loop {
                    match self.next() {
                        Some(Token::Quoted(s)) => items.push(s),
                        Some(Token::Num(n)) => items.push(n.to_string()),
                        Some(Token::RParen) if items.is_empty() => {
                            return Err(self.err("IN needs at least one value"));
                        }
                        _ => return Err(self.err("IN expects a list of quoted strings")),
                    }
                    match self.next() {
                        Some(Token::Comma) => continue,
                        Some(Token::RParen) => break,
                        _ => return Err(self.err("expected ',' or ')' in the IN list")),
                    }
                }
                return Ok(Value::List(items));
            }
            _ => {}
        }
        match self.next() {
            Some(Token::Quoted(s)) => Ok(Value::Str(s)),
            Some(Token::Num(n)) => Ok(Value::Num(n)),
            Some(Token::Ident(word)) => match word.to_ascii_lowercase().as_str() {
                "nan" => Ok(Value::Num(f64::NAN)),
                "inf" | "infinity" => Ok(Value::Num(f64::INFINITY)),
                _ => Err(self.err(&format!(
                    "expected a value but got '{word}'; quote strings with single quotes"
                ))),
            },
            _ => Err(self.err("expected a value")),
        }
    }
}

/// Parses a filter string into its comparisons. An empty or blank filter has none.
pub fn parse_filter(input: &str) -> Result<Vec<Comparison>> {
    let tokens = tokenize(input)?;
    let mut p = Parser {
        input,
        tokens,
        pos: 0,
    };
    let mut out = Vec::new();
    if p.peek().is_none() {
        return Ok(out);
    }
    loop {
        let (entity, key) = p.identifier()?;
        let op = p.operator()?;
        let value = p.value(op)?;
        out.push(Comparison {
            entity,
            key,
            op,
            value,
        });
        match p.next() {
            None => break,
            Some(Token::Ident(w)) if w.eq_ignore_ascii_case("AND") => continue,
            Some(Token::Ident(w)) if w.eq_ignore_ascii_case("OR") => {
                return Err(p.err("'OR' is not supported; combine conditions with AND"));
            }
            Some(t) => return Err(p.err(&format!("unexpected {t:?} after a comparison"))),
        }
    }
    Ok(out)
}

/// Run attributes a filter or `order_by` may name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunAttribute {
    RunId,
    RunName,
    Status,
    UserId,
    ArtifactUri,
    StartTime,
    EndTime,
    LifecycleStage,
}

impl RunAttribute {
    pub fn parse(key: &str) -> Result<Self> {
        Ok(match key {
            "run_id" | "run_uuid" => Self::RunId,
            "run_name" | "runName" => Self::RunName,
            "status" => Self::Status,
            "user_id" => Self::UserId,
            "artifact_uri" => Self::ArtifactUri,
            "start_time" | "created" | "Created" => Self::StartTime,
            "end_time" => Self::EndTime,
            "lifecycle_stage" => Self::LifecycleStage,
            other => {
                return Err(Error::invalid(format!(
                    "Invalid attribute key '{other}' specified. Valid keys are \
                     ['run_id', 'run_name', 'status', 'user_id', 'artifact_uri', 'start_time', 'end_time', 'created']"
                )));
            }
        })
    }

    pub fn is_numeric(self) -> bool {
        matches!(self, Self::StartTime | Self::EndTime)
    }
}

/// Checks that every comparison of a run filter is one MLflow accepts: numeric comparisons on metrics
/// and time attributes, string comparisons on params, tags and the other attributes.
pub fn validate_run_filter(comparisons: &[Comparison]) -> Result<()> {
    for c in comparisons {
        let entity = c.entity.ok_or_else(|| {
            Error::invalid(format!(
                "Invalid identifier '{}': prefix it with its type, e.g. metrics.{0}, params.{0}, tags.{0} or attributes.{0}",
                c.key
            ))
        })?;
        let string_ops = |c: &Comparison| -> Result<()> {
            match (&c.op, &c.value) {
                (Op::Eq | Op::Ne | Op::Like | Op::ILike, Value::Str(_)) => Ok(()),
                (Op::In | Op::NotIn, Value::List(_)) => Ok(()),
                (Op::IsNull | Op::IsNotNull, _) => Ok(()),
                (Op::Eq | Op::Ne | Op::Like | Op::ILike, _) => Err(Error::invalid(format!(
                    "Expected a quoted string value for '{}' but got a number",
                    c.key
                ))),
                (op, _) => Err(Error::invalid(format!(
                    "Invalid comparator '{}' for '{}': use =, !=, LIKE, ILIKE, IN or NOT IN",
                    op.as_sql(),
                    c.key
                ))),
            }
        };
        match entity {
            EntityType::Metric => match (&c.op, &c.value) {
                (op, Value::Num(_)) if op.is_numeric() => {}
                (op, _) if op.is_numeric() => {
                    return Err(Error::invalid(format!(
                        "Expected numeric value type for metric '{}'",
                        c.key
                    )));
                }
                (op, _) => {
                    return Err(Error::invalid(format!(
                        "Invalid comparator '{}' not one of '['=', '!=', '>', '>=', '<', '<=']' for metric '{}'",
                        op.as_sql(),
                        c.key
                    )));
                }
            },
            EntityType::Param | EntityType::Tag => string_ops(c)?,
            EntityType::Attribute => {
                let attr = RunAttribute::parse(&c.key)?;
                if attr.is_numeric() {
                    match (&c.op, &c.value) {
                        (op, Value::Num(_)) if op.is_numeric() => {}
                        _ => {
                            return Err(Error::invalid(format!(
                                "Expected a numeric comparison for attribute '{}' (e.g. attributes.{} > 1700000000000)",
                                c.key, c.key
                            )));
                        }
                    }
                } else {
                    string_ops(c)?;
                }
            }
            EntityType::Dataset => {
                if !matches!(c.key.as_str(), "name" | "digest" | "context") {
                    return Err(Error::invalid(format!(
                        "Invalid dataset key '{}'. Valid keys are ['name', 'digest', 'context']",
                        c.key
                    )));
                }
                string_ops(c)?;
            }
        }
    }
    Ok(())
}

/// One `order_by` clause: `metrics.acc DESC`, `attributes.start_time`, `params.lr ASC`.
#[derive(Debug, Clone, PartialEq)]
pub struct OrderBy {
    pub entity: Option<EntityType>,
    pub key: String,
    pub ascending: bool,
}

pub fn parse_order_by(input: &str) -> Result<OrderBy> {
    let tokens = tokenize(input)?;
    let mut p = Parser {
        input,
        tokens,
        pos: 0,
    };
    let (entity, key) = p.identifier()?;
    let ascending = match p.next() {
        None => true,
        Some(Token::Ident(w)) if w.eq_ignore_ascii_case("ASC") => true,
        Some(Token::Ident(w)) if w.eq_ignore_ascii_case("DESC") => false,
        Some(_) => {
            return Err(Error::invalid(format!(
                "Invalid order_by clause '{input}'. Expected '<type>.<key> [ASC|DESC]'"
            )));
        }
    };
    if p.next().is_some() {
        return Err(Error::invalid(format!(
            "Invalid order_by clause '{input}'. Expected '<type>.<key> [ASC|DESC]'"
        )));
    }
    Ok(OrderBy {
        entity,
        key,
        ascending,
    })
}

/// Encodes an offset as an opaque page token (base64 of `{"offset": n}`, as MLflow's).
pub fn encode_page_token(offset: i64) -> String {
    base64_encode(format!("{{\"offset\": {offset}}}").as_bytes())
}

pub fn decode_page_token(token: &str) -> Result<i64> {
    if token.is_empty() {
        return Ok(0);
    }
    let bad = || Error::invalid(format!("Invalid page token '{token}'"));
    let bytes = base64_decode(token).ok_or_else(bad)?;
    let value: serde_json::Value = serde_json::from_slice(&bytes).map_err(|_| bad())?;
    let offset = value
        .get("offset")
        .and_then(|v| v.as_i64())
        .ok_or_else(bad)?;
    if offset < 0 {
        return Err(bad());
    }
    Ok(offset)
}

fn base64_encode(data: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(data)
}

fn base64_decode(s: &str) -> Option<Vec<u8>> {
    use base64::Engine;
    let s = s.trim_end_matches('=');
    base64::engine::general_purpose::STANDARD_NO_PAD
        .decode(s)
        .or_else(|_| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(s))
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(filter: &str) -> Comparison {
        let mut v = parse_filter(filter).unwrap();
        assert_eq!(v.len(), 1, "{filter}");
        v.remove(0)
    }

    #[test]
    fn comparisons() {
        let c = one("metrics.acc > 0.9");
        assert_eq!(
            (c.entity, c.key.as_str(), c.op),
            (Some(EntityType::Metric), "acc", Op::Gt)
        );
        assert_eq!(c.value, Value::Num(0.9));

        let c = one("tags.mlflow.runName = 'a b'");
        assert_eq!(c.key, "mlflow.runName");
        assert_eq!(c.value, Value::Str("a b".into()));

        let c = one("tags.`my key` != \"x\"");
        assert_eq!((c.key.as_str(), c.op), ("my key", Op::Ne));

        let c = one("params.\"lr rate\" ILIKE '%1e-3%'");
        assert_eq!((c.key.as_str(), c.op), ("lr rate", Op::ILike));

        let c = one("attributes.run_id IN ('a', 'b')");
        assert_eq!(c.value, Value::List(vec!["a".into(), "b".into()]));

        let c = one("attributes.status NOT IN ('FAILED')");
        assert_eq!(c.op, Op::NotIn);

        let c = one("metrics.loss <= -1.5e-3");
        assert_eq!(c.value, Value::Num(-1.5e-3));

        let c = one("tags.x IS NOT NULL");
        assert_eq!(c.op, Op::IsNotNull);

        let c = one("metrics.`a.b` >= 1");
        assert_eq!(c.key, "a.b");

        let c = one("params.train/lr:2 = '1'");
        assert_eq!(c.key, "train/lr:2");

        let c = one("name LIKE 'abc%'");
        assert_eq!((c.entity, c.key.as_str()), (None, "name"));
    }

    #[test]
    fn conjunctions() {
        let v = parse_filter("metrics.a > 1 and params.b = 'x' AND tags.c LIKE '%y'").unwrap();
        assert_eq!(v.len(), 3);
        assert!(parse_filter("").unwrap().is_empty());
        assert!(parse_filter("   ").unwrap().is_empty());
    }

    #[test]
    fn errors() {
        for bad in [
            "metrics.a > 1 OR metrics.b < 2",
            "foo.a = 'x'",
            "metrics.a >",
            "metrics.a = 'x",
            "metrics.a ~ 1",
            "params.a = 'x' extra",
            "attributes.run_id IN ()",
        ] {
            assert!(parse_filter(bad).is_err(), "{bad} should fail");
        }
        let v = parse_filter("metrics.a = 'x'").unwrap();
        assert!(validate_run_filter(&v).is_err());
        let v = parse_filter("params.a > 1").unwrap();
        assert!(validate_run_filter(&v).is_err());
        let v = parse_filter("attributes.nope = 'x'").unwrap();
        assert!(validate_run_filter(&v).is_err());
        let v = parse_filter("a = 'x'").unwrap();
        assert!(validate_run_filter(&v).is_err());
        let v = parse_filter("attributes.start_time > 5 and tags.t IN ('a')").unwrap();
        assert!(validate_run_filter(&v).is_ok());
    }

    #[test]
    fn order_by() {
        let o = parse_order_by("metrics.acc DESC").unwrap();
        assert_eq!(
            (o.entity, o.key.as_str(), o.ascending),
            (Some(EntityType::Metric), "acc", false)
        );
        let o = parse_order_by("attributes.start_time").unwrap();
        assert!(o.ascending);
        let o = parse_order_by("params.`a b` asc").unwrap();
        assert_eq!(o.key, "a b");
        assert!(parse_order_by("metrics.acc SIDEWAYS").is_err());
    }

    #[test]
    fn page_tokens() {
        for n in [0, 1, 999, 123_456] {
            assert_eq!(decode_page_token(&encode_page_token(n)).unwrap(), n);
        }
        assert!(decode_page_token("!!!").is_err());
        assert!(decode_page_token(&base64_encode(b"{}")).is_err());
    }
}
