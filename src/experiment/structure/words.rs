//! How the shape check words its messages: what was found, what was expected (from the
//! schema, in words), lists of names, and the nearest name to a misspelt one.

use serde_json::Value as Schema;
use serde_yaml::Value;

use super::variants;

/// What the file holds, for "invalid type: FOUND, expected ...".
pub fn found(v: &Value) -> String {
    match v {
        Value::Null => "no value".to_string(),
        Value::Bool(b) => format!("boolean `{b}`"),
        Value::Number(n) if n.is_i64() || n.is_u64() => format!("integer `{n}`"),
        Value::Number(n) => format!("number `{n}`"),
        Value::String(s) => format!("string {s:?}"),
        Value::Sequence(_) => "a list".to_string(),
        Value::Mapping(_) => "a mapping".to_string(),
        Value::Tagged(t) => found(&t.value),
    }
}

/// What `schema` allows, in words.
pub fn expected(schema: &Schema) -> String {
    if let Some(names) = variants(schema) {
        return format!("one of {}", listing(&names));
    }
    let types: Vec<&str> = match schema.get("type") {
        Some(Schema::String(t)) => vec![t.as_str()],
        Some(Schema::Array(ts)) => ts.iter().filter_map(Schema::as_str).collect(),
        _ => Vec::new(),
    };
    let has = |t: &str| types.contains(&t);
    if has("object") {
        return match schema.get("title").and_then(Schema::as_str) {
            Some(title) => format!("a mapping ({title})"),
            None => "a mapping".to_string(),
        };
    }
    if has("array") {
        return "a list".to_string();
    }
    if has("string") {
        return "a string".to_string();
    }
    if has("integer") {
        let min = schema.get("minimum").and_then(Schema::as_u64);
        return match (min, schema.get("maximum").and_then(Schema::as_u64)) {
            (Some(_), Some(u64::MAX)) => "a whole number (0 or more)".to_string(),
            (Some(min), Some(max)) => format!("a whole number from {min} to {max}"),
            _ => "a whole number".to_string(),
        };
    }
    if has("number") {
        return "a number".to_string();
    }
    if has("boolean") {
        return "true or false".to_string();
    }
    "a value".to_string()
}

/// `` `a`, `b`, `c` `` (or `(none)`).
pub fn listing(names: &[&str]) -> String {
    if names.is_empty() {
        return "(none)".to_string();
    }
    let quoted: Vec<String> = names.iter().map(|n| format!("`{n}`")).collect();
    quoted.join(", ")
}

/// `` `a` ``, `` `a` or `b` ``, `` `a`, `b` or `c` ``.
pub fn or_list(names: &[&str]) -> String {
    match names {
        [] => String::new(),
        [only] => format!("`{only}`"),
        [rest @ .., last] => format!("{} or `{last}`", listing(rest)),
    }
}

/// The name in `names` that `typed` most likely meant: the same but for case
/// (`maxInflight`), or at most two edits away (`timeuot`: a swap is one edit), and
/// closer than half its length, so a short word is not "corrected" into another.
pub fn suggest<'n>(typed: &str, names: impl IntoIterator<Item = &'n str>) -> Option<&'n str> {
    let names: Vec<&str> = names.into_iter().collect();
    if let Some(same) = names.iter().find(|n| n.eq_ignore_ascii_case(typed)) {
        return Some(same);
    }
    let length = typed.chars().count();
    names
        .into_iter()
        .map(|n| (strsim::osa_distance(typed, n), n))
        .filter(|&(d, _)| d <= 2 && d * 2 < length)
        .min_by_key(|&(d, _)| d)
        .map(|(_, n)| n)
}
