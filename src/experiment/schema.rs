//! The JSON Schema that `shakeout schema` prints, for editors (yaml-language-server) and
//! CI linters, committed as `docs/experiment.schema.json`. Generated from the spec types so
//! it cannot drift from what `load` reads, then shaped for people: every definition has a
//! title (editors show it where they would show the Rust type's name), units say what they
//! expect in words, and free strings take what YAML reads as a number or a boolean, as the
//! loader does. The loader checks the shape of a file with this same schema
//! (`super::structure`). Draft-07 because it is the draft every YAML/JSON editor
//! integration understands.

mod words;

use std::sync::OnceLock;

use schemars::generate::SchemaSettings;
use serde_json::{json, Map, Value};

use super::check::{API_VERSION, KIND};
use super::spec::ExperimentFile;

pub(super) use words::{unit, Unit};

/// Where a definition lives in the schema: `#/definitions/NAME`.
pub(super) const DEFINITIONS: &str = "#/definitions/";

/// JSON Schema (draft-07) of experiment files.
pub fn schema() -> Value {
    let mut schema = SchemaSettings::draft07()
        .into_generator()
        .into_root_schema_for::<ExperimentFile>()
        .to_value();
    if let Value::Object(root) = &mut schema {
        root.insert("title".into(), json!("shakeout experiment"));
        root.insert(
            "description".into(),
            json!("A shakeout chaos/availability experiment (`shakeout run FILE`)."),
        );
    }
    if let Some(Value::Object(definitions)) = schema.get_mut("definitions") {
        for (name, definition) in definitions.iter_mut() {
            describe(name, definition);
        }
    }
    scalars_as_strings(&mut schema);
    whole_number_bounds(&mut schema);
    // Rules the loader enforces that a schema can express too, so editors flag them
    // while typing. The loader's semantic rules report them (`super::check`), with their
    // own messages; `super::structure` leaves these keywords to them.
    for (pointer, extra) in narrowings() {
        if let (Some(Value::Object(target)), Value::Object(extra)) =
            (schema.pointer_mut(pointer), extra)
        {
            target.extend(extra);
        }
    }
    schema
}

/// The schema as `shakeout schema` prints it and `docs/experiment.schema.json` holds it.
pub fn schema_text() -> String {
    // A `Value` always serializes; the fallback only keeps the signature simple.
    serde_json::to_string_pretty(&schema()).unwrap_or_default() + "\n"
}

/// The schema, built once per process: every load checks the shape of its file with it.
pub(super) fn cached() -> &'static Value {
    static SCHEMA: OnceLock<Value> = OnceLock::new();
    SCHEMA.get_or_init(schema)
}

/// The keywords added by [`schema`] that mirror semantic rules, by JSON pointer.
pub(super) fn narrowings() -> [(&'static str, Value); 4] {
    [
        ("/properties/apiVersion", json!({ "const": API_VERSION })),
        ("/properties/kind", json!({ "const": KIND })),
        (
            "/definitions/Metadata/properties/name",
            json!({ "pattern": "^[A-Za-z0-9._-]+$" }),
        ),
        (
            "/definitions/Spec/properties/probes",
            json!({ "minItems": 1 }),
        ),
    ]
}

/// Give definition `name` its title and, for a unit, its words for editors.
fn describe(name: &str, definition: &mut Value) {
    let Value::Object(fields) = definition else {
        return;
    };
    if let Some(title) = words::title(name) {
        fields.insert("title".into(), json!(title));
    }
    if let Some(unit) = unit(name) {
        let expected = format!("Expected {}.", unit.expected);
        fields.insert("description".into(), json!(unit.description));
        fields.insert("examples".into(), json!(unit.examples));
        // yaml-language-server and VS Code show these instead of "String does not match
        // the pattern of ..." (`patternErrorMessage`) and "Incorrect type" (`errorMessage`).
        fields.insert("patternErrorMessage".into(), json!(expected));
        fields.insert("errorMessage".into(), json!(expected));
    }
}

/// The YAML types a free string field takes: serde_yaml reads a plain `5`, `1.5` or `true`
/// into a `String` as written, so `command: [sleep, 5]` is valid; the schema says the same
/// of the JSON an editor makes of it. Units, enums and constants stay strings only: the
/// loader refuses `duration: 60` (no unit).
const SCALAR_STRING: [&str; 3] = ["string", "number", "boolean"];

fn scalars_as_strings(value: &mut Value) {
    match value {
        Value::Object(fields) => {
            // Only units have a pattern yet (the narrowings come later).
            let fixed = ["enum", "const", "pattern"]
                .iter()
                .any(|k| fields.contains_key(*k));
            if !fixed {
                widen_string_type(fields);
            }
            for (key, child) in fields.iter_mut() {
                // Property names are names, not schemas.
                if key == "properties" || key == "definitions" {
                    if let Value::Object(children) = child {
                        children.values_mut().for_each(scalars_as_strings);
                    }
                } else {
                    scalars_as_strings(child);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(scalars_as_strings),
        _ => {}
    }
}

fn widen_string_type(fields: &mut Map<String, Value>) {
    let widened = match fields.get("type") {
        Some(Value::String(t)) if t == "string" => json!(SCALAR_STRING),
        Some(Value::Array(types)) if types.iter().any(|t| t == "string") => {
            let mut all: Vec<Value> = SCALAR_STRING.iter().map(|t| json!(t)).collect();
            all.extend(types.iter().filter(|t| *t != "string").cloned());
            Value::Array(all)
        }
        _ => return,
    };
    fields.insert("type".into(), widened);
}

/// schemars says `format: uint32` with `minimum: 0` but no maximum, which editors do not
/// check; the loader refuses 4294967296 all the same, so the schema says so too.
fn whole_number_bounds(value: &mut Value) {
    match value {
        Value::Object(fields) => {
            let max = match fields.get("format").and_then(Value::as_str) {
                Some("uint8") => Some(u64::from(u8::MAX)),
                Some("uint16") => Some(u64::from(u16::MAX)),
                Some("uint32") => Some(u64::from(u32::MAX)),
                Some("uint64") => Some(u64::MAX),
                _ => None,
            };
            if let Some(max) = max {
                fields.entry("maximum").or_insert(json!(max));
            }
            fields.values_mut().for_each(whole_number_bounds);
        }
        Value::Array(items) => items.iter_mut().for_each(whole_number_bounds),
        _ => {}
    }
}

#[cfg(test)]
mod tests;
