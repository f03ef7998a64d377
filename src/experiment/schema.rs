//! The JSON Schema that `shakeout schema` prints, for editors (yaml-language-server) and
//! CI linters. Generated from the spec types so it cannot drift from what `load` reads;
//! draft-07 because it is the draft every YAML/JSON editor integration understands.

use schemars::generate::SchemaSettings;
use serde_json::{json, Value};

use super::check::{API_VERSION, KIND};
use super::spec::ExperimentFile;

/// JSON Schema (draft-07) of experiment files.
pub fn schema() -> Value {
    let mut schema = SchemaSettings::draft07()
        .into_generator()
        .into_root_schema_for::<ExperimentFile>();
    schema.insert("title".into(), json!("shakeout experiment"));
    schema.insert(
        "description".into(),
        json!("A shakeout chaos/availability experiment (`shakeout run FILE`)."),
    );
    // Rules the loader enforces that a schema can express too, so editors flag them
    // while typing. The loader stays the authority; these only mirror it.
    let narrow = [
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
    ];
    for (pointer, extra) in narrow {
        if let (Some(Value::Object(target)), Value::Object(extra)) =
            (schema.pointer_mut(pointer), extra)
        {
            target.extend(extra);
        }
    }
    schema.to_value()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn is_a_titled_draft_07_schema() {
        let s = schema();
        assert_eq!(s["$schema"], "http://json-schema.org/draft-07/schema#");
        assert_eq!(s["title"], "shakeout experiment");
        assert_eq!(s["properties"]["apiVersion"]["const"], API_VERSION);
        assert_eq!(s["additionalProperties"], false);
        assert!(s["definitions"]["Spec"].is_object(), "{s:#}");
        assert_eq!(
            s["definitions"]["Metadata"]["properties"]["name"]["pattern"],
            "^[A-Za-z0-9._-]+$"
        );
        assert_eq!(
            s["definitions"]["Spec"]["properties"]["probes"]["minItems"],
            1
        );
    }
}
