//! The shape of an experiment file, checked against the schema `shakeout schema` prints:
//! every unknown field (with "did you mean"), wrong type, missing field and bad unit in the
//! file, each at its position and saying what would be valid, where serde stops at the
//! first. It is the same schema editors check while typing, so a file the loader refuses
//! for its shape, an editor flags too (`tests/experiments.rs` runs both on every corpus
//! file). It reads only the keywords schemars emits for the spec types (a test refuses any
//! other), reads units with their real parsers rather than their patterns, and leaves the
//! keywords that mirror semantic rules (`schema::narrowings`) to `super::check`, which says
//! them better.

mod words;

use serde_json::Value as Schema;
use serde_yaml::Value;

use super::position::{Pos, Positions};
use super::schema::{self, Unit, DEFINITIONS};
use super::Diagnostic;

use words::{expected, found, listing, suggest};

/// Most problems listed for one file; past it, one line says how many more there are.
/// A file with more is not a draft with typos, and 50,000 lines would bury the first.
pub const MAX_PROBLEMS: usize = 100;

/// Every problem with the shape of `doc`, sorted by position; empty when it has the shape
/// of an experiment (its values may still break semantic rules).
pub fn check(doc: &Value, positions: &Positions, file: &str) -> Vec<Diagnostic> {
    let root = schema::cached();
    let mut shape = Shape {
        root,
        positions,
        file,
        found: Vec::new(),
    };
    shape.value(root, doc, "");
    let mut found = shape.found;
    found.sort_by_key(|d| (d.line, d.column));
    if found.len() > MAX_PROBLEMS {
        let more = found.len() - MAX_PROBLEMS;
        let first_unshown = found.swap_remove(MAX_PROBLEMS);
        found.truncate(MAX_PROBLEMS);
        found.push(Diagnostic {
            message: format!(
                "{more} more problems from here on are not listed: fix the ones above first"
            ),
            ..first_unshown
        });
    }
    found
}

/// The walk: the schema node and the document node side by side.
struct Shape<'a> {
    root: &'a Schema,
    positions: &'a Positions,
    file: &'a str,
    found: Vec<Diagnostic>,
}

/// `path` + `.key` (no dot at the root), as `Positions` spells paths.
fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

/// A mapping key as a name: scalars as written (`8080: x` is the name `8080`), else none.
fn key_text(key: &Value) -> Option<String> {
    match key {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// The JSON type an editor sees for `v` (an integer is a number too).
fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Sequence(_) => "array",
        Value::Mapping(_) => "object",
        Value::Tagged(t) => json_type(&t.value),
    }
}

fn type_allows(types: &Schema, v: &Value) -> bool {
    let actual = json_type(v);
    let allows = |t: &Schema| t == actual || (t == "number" && actual == "integer");
    match types {
        Schema::Array(types) => types.iter().any(allows),
        t => allows(t),
    }
}

/// The values an enum allows: `enum`, or schemars' `oneOf` of documented constants.
fn variants(schema: &Schema) -> Option<Vec<&str>> {
    if let Some(values) = schema.get("enum").and_then(Schema::as_array) {
        return Some(values.iter().filter_map(Schema::as_str).collect());
    }
    let branches = schema.get("oneOf").and_then(Schema::as_array)?;
    branches
        .iter()
        .map(|b| b.get("const").and_then(Schema::as_str))
        .collect()
}

impl<'a> Shape<'a> {
    fn report(&mut self, pos: Pos, path: &str, message: String) {
        let message = if path.is_empty() {
            message
        } else {
            format!("{path}: {message}")
        };
        self.found.push(Diagnostic::at(self.file, pos, message));
    }

    /// A problem with the value at `path`.
    fn at_value(&mut self, path: &str, message: String) {
        let pos = self.positions.nearest(path);
        self.report(pos, path, message);
    }

    /// A problem with `v`, the value at `path`: at the value, or at its key when there is
    /// no value to point at (the parser places an empty one at the next token).
    fn at(&mut self, v: &Value, path: &str, message: String) {
        let pos = match v {
            Value::Null => self.positions.nearest_key(path),
            _ => self.positions.nearest(path),
        };
        self.report(pos, path, message);
    }

    /// The definition `schema` names, or `schema` itself.
    fn definition(&self, schema: &'a Schema) -> &'a Schema {
        let reference = schema.get("$ref").and_then(Schema::as_str);
        match reference.and_then(|r| r.strip_prefix(DEFINITIONS)) {
            Some(name) => self.root["definitions"].get(name).unwrap_or(schema),
            None => schema,
        }
    }

    /// The object schema behind `schema`, through `$ref`, `allOf` and optional (`anyOf`
    /// with null): where to look for the fields a value there may have.
    fn object(&self, schema: &'a Schema) -> &'a Schema {
        let mut schema = self.definition(schema);
        // Bounded: schemars nests a reference in at most one wrapper.
        for _ in 0..4 {
            let inner = ["allOf", "anyOf"]
                .iter()
                .filter_map(|k| schema.get(*k).and_then(Schema::as_array))
                .flatten()
                .find(|s| s.get("type").is_none_or(|t| t != "null"));
            match inner {
                Some(inner) => schema = self.definition(inner),
                None => break,
            }
        }
        schema
    }

    fn value(&mut self, schema: &'a Schema, v: &Value, path: &str) {
        if let Value::Tagged(tagged) = v {
            self.at_value(
                path,
                format!(
                    "the YAML tag `{}` has no meaning in an experiment file: remove it",
                    tagged.tag
                ),
            );
            return;
        }
        if let Some(reference) = schema.get("$ref").and_then(Schema::as_str) {
            let name = reference.strip_prefix(DEFINITIONS).unwrap_or(reference);
            if let Some(unit) = schema::unit(name) {
                return self.unit(unit, v, path);
            }
            let definition = self.definition(schema);
            if !std::ptr::eq(definition, schema) {
                self.value(definition, v, path);
            }
            return;
        }
        if let Some(all) = schema.get("allOf").and_then(Schema::as_array) {
            for branch in all {
                self.value(branch, v, path);
            }
        }
        if let Some(any) = schema.get("anyOf").and_then(Schema::as_array) {
            return self.any_of(any, v, path);
        }
        if let Some(names) = variants(schema) {
            return self.variant(schema, &names, v, path);
        }
        if let Some(one) = schema.get("oneOf").and_then(Schema::as_array) {
            return self.any_of(one, v, path);
        }
        if let Some(types) = schema.get("type") {
            if !type_allows(types, v) {
                let message = format!("invalid type: {}, expected {}", found(v), expected(schema));
                return self.at(v, path, message);
            }
        }
        match v {
            Value::Mapping(fields) => self.mapping(schema, fields, path),
            Value::Sequence(items) => {
                if let Some(each) = schema.get("items") {
                    for (i, item) in items.iter().enumerate() {
                        self.value(each, item, &format!("{path}[{i}]"));
                    }
                }
            }
            Value::Number(n) => self.bounds(schema, n, path),
            _ => {}
        }
    }

    /// Optional values (`anyOf: [X, null]`): null, or X with X's own messages. Any other
    /// alternatives (none yet) pass when one of them does.
    fn any_of(&mut self, branches: &'a [Schema], v: &Value, path: &str) {
        let is_null = |s: &Schema| s.get("type").is_some_and(|t| t == "null");
        if v.is_null() && branches.iter().any(is_null) {
            return;
        }
        let others: Vec<&'a Schema> = branches.iter().filter(|s| !is_null(s)).collect();
        if let [only] = others.as_slice() {
            return self.value(only, v, path);
        }
        let mut first_errors = None;
        for branch in others {
            let mut trial = Shape {
                found: Vec::new(),
                ..*self
            };
            trial.value(branch, v, path);
            if trial.found.is_empty() {
                return;
            }
            first_errors.get_or_insert(trial.found);
        }
        self.found.extend(first_errors.unwrap_or_default());
    }

    /// One of a fixed set of names (`direction: egress`).
    fn variant(&mut self, schema: &Schema, names: &[&str], v: &Value, path: &str) {
        let message = match v {
            Value::String(s) if names.contains(&s.as_str()) => return,
            Value::String(s) => match suggest(s, names.iter().copied()) {
                Some(near) => format!(
                    "unknown value `{s}`: did you mean `{near}`? (expected one of {})",
                    listing(names)
                ),
                None => format!("unknown value `{s}`, expected one of {}", listing(names)),
            },
            other => format!(
                "invalid type: {}, expected {}",
                found(other),
                expected(schema)
            ),
        };
        self.at(v, path, message);
    }

    /// A unit, read by its own parser: the loader's message, the loader's verdict.
    fn unit(&mut self, unit: &Unit, v: &Value, path: &str) {
        let text = match v {
            Value::String(s) => s.clone(),
            // serde reads `timeout: 5` as the text `5` and refuses it for its missing
            // unit; so does this.
            Value::Number(n) => n.to_string(),
            other => {
                let message = format!("invalid type: {}, expected {}", found(other), unit.expected);
                return self.at(other, path, message);
            }
        };
        if let Err(mut message) = (unit.parse)(&text) {
            if text.contains("${") {
                message.push_str(
                    " (`${var.NAME}` and `${env.NAME}` are replaced in string fields only: \
                     write the value itself here)",
                );
            }
            self.at_value(path, message);
        }
    }

    fn bounds(&mut self, schema: &Schema, n: &serde_yaml::Number, path: &str) {
        let value = match (n.as_u64(), n.as_i64()) {
            (Some(u), _) => i128::from(u),
            (None, Some(i)) => i128::from(i),
            _ => return,
        };
        let limit = |k: &str| schema.get(k).and_then(Schema::as_u64).map(i128::from);
        let below = limit("minimum").is_some_and(|min| value < min);
        let above = limit("maximum").is_some_and(|max| value > max);
        if below || above {
            let message = format!("`{n}` is out of range: expected {}", expected(schema));
            self.at_value(path, message);
        }
    }

    fn mapping(&mut self, schema: &'a Schema, fields: &serde_yaml::Mapping, path: &str) {
        let properties = schema.get("properties").and_then(Schema::as_object);
        let additional = schema.get("additionalProperties");
        let mut present = Vec::new();
        for (key, child) in fields {
            let Some(name) = key_text(key) else {
                let pos = self.positions.nearest(path);
                self.report(
                    pos,
                    path,
                    "a key here is not a name (a list, a mapping or nothing): keys are plain \
                     names, like `name:`"
                        .to_string(),
                );
                continue;
            };
            let child_path = join(path, &name);
            match (properties.and_then(|p| p.get(&name)), additional) {
                (Some(field), _) => self.value(field, child, &child_path),
                (None, Some(Schema::Bool(false))) => {
                    self.unknown_field(schema, &name, &child_path, path)
                }
                (None, Some(each @ Schema::Object(_))) => self.value(each, child, &child_path),
                (None, _) => {}
            }
            present.push(name);
        }
        let required = schema.get("required").and_then(Schema::as_array);
        for name in required.into_iter().flatten().filter_map(Schema::as_str) {
            if !present.iter().any(|p| p == name) {
                self.at_value(path, format!("missing field `{name}`"));
            }
        }
    }

    fn unknown_field(&mut self, schema: &'a Schema, name: &str, field_path: &str, path: &str) {
        let fields: Vec<&str> = schema
            .get("properties")
            .and_then(Schema::as_object)
            .map(|p| p.keys().map(String::as_str).collect())
            .unwrap_or_default();
        let mut message = format!("unknown field `{name}`");
        if let Some(near) = suggest(name, fields.iter().copied()) {
            message.push_str(&format!(": did you mean `{near}`? (expected one of "));
            message.push_str(&listing(&fields));
            message.push(')');
        } else {
            message.push_str(", expected one of ");
            message.push_str(&listing(&fields));
            // A field put one level too high (`timeout` on a probe): say where it goes.
            let homes: Vec<&str> = fields
                .iter()
                .copied()
                .filter(|f| {
                    let field = &schema["properties"][*f];
                    self.object(field)
                        .get("properties")
                        .is_some_and(|p| p.get(name).is_some())
                })
                .collect();
            if !homes.is_empty() {
                message.push_str(&format!("; `{name}` goes in {}", words::or_list(&homes)));
            }
        }
        let pos = self.positions.nearest_key(field_path);
        self.report(pos, path, message);
    }
}

#[cfg(test)]
mod tests;
