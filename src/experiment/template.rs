//! Request templates of the write probe. `{run}`, `{seq}` and `{key}` are the only
//! placeholders; any other brace is literal, so JSON bodies need no escaping.

use std::fmt::Write as _;

/// One piece of a template.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Text(String),
    Run,
    Seq,
    Key,
}

/// A parsed template, expanded once per write or read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    parts: Vec<Part>,
}

/// The key of write `seq` in run `run`: what `{key}` expands to.
pub fn key(run: &str, seq: u64) -> String {
    format!("{run}-{seq}")
}

impl Template {
    /// Split `text` at the placeholders.
    pub fn parse(text: &str) -> Template {
        let mut parts = Vec::new();
        let mut rest = text;
        let mut literal = String::new();
        while !rest.is_empty() {
            let found = [
                ("{run}", Part::Run),
                ("{seq}", Part::Seq),
                ("{key}", Part::Key),
            ]
            .into_iter()
            .find(|(p, _)| rest.starts_with(p));
            match found {
                Some((p, part)) => {
                    if !literal.is_empty() {
                        parts.push(Part::Text(std::mem::take(&mut literal)));
                    }
                    parts.push(part);
                    rest = &rest[p.len()..];
                }
                None => {
                    // `rest` is non-empty, so there is a first char.
                    let ch = rest.chars().next().unwrap_or_default();
                    literal.push(ch);
                    rest = &rest[ch.len_utf8()..];
                }
            }
        }
        if !literal.is_empty() {
            parts.push(Part::Text(literal));
        }
        Template { parts }
    }

    /// True when the expansion differs per write (`{seq}` or `{key}` appears).
    pub fn per_write(&self) -> bool {
        self.parts
            .iter()
            .any(|p| matches!(p, Part::Seq | Part::Key))
    }

    /// The text for write `seq` of run `run`.
    pub fn expand(&self, run: &str, seq: u64) -> String {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Text(t) => out.push_str(t),
                Part::Run => out.push_str(run),
                Part::Seq => {
                    let _ = write!(out, "{seq}");
                }
                Part::Key => {
                    let _ = write!(out, "{run}-{seq}");
                }
            }
        }
        out
    }
}

/// The sequence number an entry of a listing names: a bare number, or a key of this
/// run (`{run}-{seq}`). Anything else (another run's key, a header line) is `None`.
pub fn seq_of(entry: &str, run: &str) -> Option<u64> {
    let entry = entry.trim();
    let digits = match entry.strip_prefix(run) {
        Some(rest) => rest.strip_prefix('-')?,
        None => entry,
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_expand_and_other_braces_stay() {
        let t = Template::parse(r#"{"k":"{key}","v":{seq},"r":"{run}","x":"{other}"}"#);
        assert_eq!(
            t.expand("so-1", 42),
            r#"{"k":"so-1-42","v":42,"r":"so-1","x":"{other}"}"#
        );
        assert!(t.per_write());
        let list = Template::parse("http://h/log?prefix={run}");
        assert!(!list.per_write());
        assert_eq!(list.expand("so-ab", 7), "http://h/log?prefix=so-ab");
        assert_eq!(Template::parse("").expand("r", 1), "");
        assert_eq!(Template::parse("{seq").expand("r", 1), "{seq");
        assert_eq!(Template::parse("µ{seq}µ").expand("r", 3), "µ3µ");
        assert_eq!(key("so-x", 9), "so-x-9");
    }

    #[test]
    fn listing_entries_name_this_runs_sequence_numbers() {
        assert_eq!(seq_of("17", "so-a"), Some(17));
        assert_eq!(seq_of(" so-a-17 \r", "so-a"), Some(17));
        assert_eq!(seq_of("so-b-17", "so-a"), None);
        assert_eq!(seq_of("so-a-", "so-a"), None);
        assert_eq!(seq_of("x", "so-a"), None);
        assert_eq!(seq_of("", "so-a"), None);
        assert_eq!(seq_of("-3", "so-a"), None);
    }
}
