//! Label and field selectors with the API server's grammar, so a selector the real server
//! rejects is rejected here too (400) and one it accepts selects the same pods.

use std::collections::BTreeMap;

/// One requirement of a label selector (`k8s.io/apimachinery/pkg/labels`).
#[derive(Debug, Clone, PartialEq)]
pub enum Requirement {
    Exists(String),
    NotExists(String),
    Equals(String, String),
    NotEquals(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    GreaterThan(String, i64),
    LessThan(String, i64),
}

/// A parsed `labelSelector`; empty selects everything.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LabelSelector(pub Vec<Requirement>);

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Ident(String),
    Not,
    Eq,
    DoubleEq,
    NotEq,
    In,
    NotIn,
    Open,
    Close,
    Comma,
    Gt,
    Lt,
    End,
}

impl Token {
    fn literal(&self) -> String {
        match self {
            Token::Ident(s) => s.clone(),
            Token::Not => "!".into(),
            Token::Eq => "=".into(),
            Token::DoubleEq => "==".into(),
            Token::NotEq => "!=".into(),
            Token::In => "in".into(),
            Token::NotIn => "notin".into(),
            Token::Open => "(".into(),
            Token::Close => ")".into(),
            Token::Comma => ",".into(),
            Token::Gt => ">".into(),
            Token::Lt => "<".into(),
            Token::End => String::new(),
        }
    }
}

fn is_special(c: char) -> bool {
    matches!(c, '=' | '!' | '(' | ')' | ',' | '>' | '<')
}

fn lex(s: &str) -> Vec<Token> {
    let chars: Vec<char> = s.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        let next = chars.get(i + 1).copied();
        let (tok, len) = match (c, next) {
            ('=', Some('=')) => (Token::DoubleEq, 2),
            ('!', Some('=')) => (Token::NotEq, 2),
            ('=', _) => (Token::Eq, 1),
            ('!', _) => (Token::Not, 1),
            ('(', _) => (Token::Open, 1),
            (')', _) => (Token::Close, 1),
            (',', _) => (Token::Comma, 1),
            ('>', _) => (Token::Gt, 1),
            ('<', _) => (Token::Lt, 1),
            _ => {
                let start = i;
                while i < chars.len() && !chars[i].is_whitespace() && !is_special(chars[i]) {
                    i += 1;
                }
                let word: String = chars[start..i].iter().collect();
                out.push(match word.as_str() {
                    "in" => Token::In,
                    "notin" => Token::NotIn,
                    _ => Token::Ident(word),
                });
                continue;
            }
        };
        out.push(tok);
        i += len;
    }
    out.push(Token::End);
    out
}

struct Parser {
    tokens: Vec<Token>,
    pos: usize,
}

impl Parser {
    fn peek(&self) -> &Token {
        &self.tokens[self.pos.min(self.tokens.len() - 1)]
    }

    fn next(&mut self) -> Token {
        let t = self.peek().clone();
        self.pos += 1;
        t
    }

    fn requirement(&mut self) -> Result<Requirement, String> {
        let negated = *self.peek() == Token::Not;
        if negated {
            self.next();
        }
        let key = match self.next() {
            Token::Ident(k) => k,
            t => return Err(format!("found '{}', expected: identifier", t.literal())),
        };
        validate_key(&key)?;
        if matches!(self.peek(), Token::End | Token::Comma) {
            return Ok(if negated {
                Requirement::NotExists(key)
            } else {
                Requirement::Exists(key)
            });
        }
        if negated {
            let t = self.peek().literal();
            return Err(format!("found '{t}', expected: ',' or 'end of string'"));
        }
        let op = self.next();
        match op {
            Token::Eq | Token::DoubleEq | Token::NotEq => {
                let value = match self.peek() {
                    Token::End | Token::Comma => String::new(),
                    Token::Ident(v) => {
                        let v = v.clone();
                        self.next();
                        v
                    }
                    t => return Err(format!("found '{}', expected: identifier", t.literal())),
                };
                validate_value(&value)?;
                Ok(if op == Token::NotEq {
                    Requirement::NotEquals(key, value)
                } else {
                    Requirement::Equals(key, value)
                })
            }
            Token::In | Token::NotIn => {
                if self.next() != Token::Open {
                    return Err("found '', expected: '('".into());
                }
                let values = self.value_list()?;
                if values.is_empty() {
                    return Err(format!(
                        "unable to parse requirement: values: Invalid value: []string{{}}: for 'in', 'notin' operators, values set can't be empty (key {key:?})"
                    ));
                }
                for v in &values {
                    validate_value(v)?;
                }
                Ok(if op == Token::In {
                    Requirement::In(key, values)
                } else {
                    Requirement::NotIn(key, values)
                })
            }
            Token::Gt | Token::Lt => {
                let raw = match self.next() {
                    Token::Ident(v) => v,
                    t => return Err(format!("found '{}', expected: identifier", t.literal())),
                };
                let n: i64 = raw.parse().map_err(|_| {
                    format!("unable to parse requirement: values[0]: Invalid value: {raw:?}: for 'Gt', 'Lt' operators, the value must be an integer")
                })?;
                Ok(if op == Token::Gt {
                    Requirement::GreaterThan(key, n)
                } else {
                    Requirement::LessThan(key, n)
                })
            }
            t => Err(format!(
                "found '{}', expected: '=', '!=', '==', 'in', notin'",
                t.literal()
            )),
        }
    }

    /// After `(`: identifiers separated by commas up to `)`; `(a,)` carries an empty value.
    fn value_list(&mut self) -> Result<Vec<String>, String> {
        let mut values = Vec::new();
        let mut expect_value = true;
        loop {
            match self.next() {
                Token::Close => {
                    if expect_value && !values.is_empty() {
                        values.push(String::new());
                    }
                    return Ok(values);
                }
                Token::Comma => {
                    if expect_value {
                        values.push(String::new());
                    }
                    expect_value = true;
                }
                Token::Ident(v) if expect_value => {
                    values.push(v);
                    expect_value = false;
                }
                t => {
                    return Err(format!("found '{}', expected: ',' or ')'", t.literal()));
                }
            }
        }
    }
}

fn valid_name_part(s: &str, max: usize) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= max
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
}

fn validate_key(key: &str) -> Result<(), String> {
    let (prefix, name) = match key.split_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, key),
    };
    let prefix_ok = prefix.is_none_or(|p| {
        !p.is_empty()
            && p.len() <= 253
            && p.split('.').all(|l| {
                !l.is_empty()
                    && l.len() <= 63
                    && l.bytes()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-')
            })
    });
    if prefix_ok && valid_name_part(name, 63) {
        Ok(())
    } else {
        Err(format!(
            "unable to parse requirement: key: Invalid value: {key:?}: name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"
        ))
    }
}

fn validate_value(value: &str) -> Result<(), String> {
    if value.is_empty() || valid_name_part(value, 63) {
        Ok(())
    } else {
        Err(format!(
            "unable to parse requirement: values[0][value]: Invalid value: {value:?}: a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"
        ))
    }
}

impl LabelSelector {
    /// Parses a `labelSelector` query value; the error is the message the server returns.
    pub fn parse(s: &str) -> Result<LabelSelector, String> {
        let mut p = Parser {
            tokens: lex(s),
            pos: 0,
        };
        let mut reqs = Vec::new();
        if *p.peek() == Token::End {
            return Ok(LabelSelector(reqs));
        }
        loop {
            reqs.push(p.requirement()?);
            match p.next() {
                Token::End => return Ok(LabelSelector(reqs)),
                Token::Comma => {
                    if matches!(p.peek(), Token::End | Token::Comma) {
                        return Err(format!(
                            "found '{}', expected: identifier after ','",
                            p.peek().literal()
                        ));
                    }
                }
                t => {
                    return Err(format!(
                        "found '{}', expected: ',' or 'end of string'",
                        t.literal()
                    ))
                }
            }
        }
    }

    /// True when every requirement holds for `labels`.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.0.iter().all(|r| match r {
            Requirement::Exists(k) => labels.contains_key(k),
            Requirement::NotExists(k) => !labels.contains_key(k),
            Requirement::Equals(k, v) => labels.get(k) == Some(v),
            Requirement::NotEquals(k, v) => labels.get(k) != Some(v),
            Requirement::In(k, vs) => labels.get(k).is_some_and(|l| vs.contains(l)),
            Requirement::NotIn(k, vs) => labels.get(k).is_none_or(|l| !vs.contains(l)),
            Requirement::GreaterThan(k, n) => labels
                .get(k)
                .and_then(|l| l.parse::<i64>().ok())
                .is_some_and(|l| l > *n),
            Requirement::LessThan(k, n) => labels
                .get(k)
                .and_then(|l| l.parse::<i64>().ok())
                .is_some_and(|l| l < *n),
        })
    }
}

/// One term of a field selector.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldTerm {
    pub field: String,
    pub value: String,
    pub equal: bool,
}

/// A parsed `fieldSelector` (`k8s.io/apimachinery/pkg/fields`); empty selects everything.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FieldSelector(pub Vec<FieldTerm>);

/// Splits on `sep` where it is not escaped by a backslash.
fn split_unescaped(s: &str, sep: char) -> Vec<String> {
    let mut parts = Vec::new();
    let mut current = String::new();
    let mut escaped = false;
    for c in s.chars() {
        if escaped {
            current.push('\\');
            current.push(c);
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if c == sep {
            parts.push(std::mem::take(&mut current));
        } else {
            current.push(c);
        }
    }
    parts.push(current);
    parts
}

fn unescape(s: &str) -> String {
    let mut out = String::new();
    let mut escaped = false;
    for c in s.chars() {
        if escaped {
            out.push(c);
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else {
            out.push(c);
        }
    }
    out
}

impl FieldSelector {
    /// Parses a `fieldSelector` and checks every field against `supported` (as the
    /// resource's registry does); the error is the message the server returns.
    pub fn parse(s: &str, supported: &[&str]) -> Result<FieldSelector, String> {
        let mut terms = Vec::new();
        if s.trim().is_empty() {
            return Ok(FieldSelector(terms));
        }
        for raw in split_unescaped(s, ',') {
            let term = raw.trim();
            let mut found = None;
            let mut escaped = false;
            'scan: for (i, c) in term.char_indices() {
                if escaped {
                    escaped = false;
                    continue;
                }
                if c == '\\' {
                    escaped = true;
                    continue;
                }
                for (op, equal) in [("!=", false), ("==", true), ("=", true)] {
                    if term[i..].starts_with(op) {
                        found = Some((i, op.len(), equal));
                        break 'scan;
                    }
                }
            }
            let Some((at, len, equal)) = found else {
                return Err(format!(
                    "invalid selector: '{s}'; can't understand '{term}'"
                ));
            };
            let field = term[..at].trim().to_string();
            if !supported.contains(&field.as_str()) {
                return Err(format!("field label not supported: {field}"));
            }
            terms.push(FieldTerm {
                field,
                value: unescape(term[at + len..].trim()),
                equal,
            });
        }
        Ok(FieldSelector(terms))
    }

    /// True when every term holds; `value_of` gives the object's value for a field.
    pub fn matches(&self, value_of: impl Fn(&str) -> String) -> bool {
        self.0
            .iter()
            .all(|t| (value_of(&t.field) == t.value) == t.equal)
    }
}
