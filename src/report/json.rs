//! The machine-readable report: the model serialized as pretty JSON, and the JSON Schema
//! that documents it (committed as `docs/report.schema.json`, checked by a test).

use std::io;
use std::path::Path;

use schemars::generate::SchemaSettings;
use serde_json::{json, Value};

use super::atomic::write_atomic;
use super::{Report, SCHEMA_VERSION};

/// Writes the report as pretty JSON, atomically (never a half-written file).
pub fn write_json(r: &Report, p: &Path) -> io::Result<()> {
    let mut bytes = serde_json::to_vec_pretty(r).map_err(|e| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("serialize report for {}: {e}", p.display()),
        )
    })?;
    bytes.push(b'\n');
    write_atomic(p, &bytes)
}

/// JSON Schema (2020-12) of the report as shakeout writes it.
pub fn report_schema() -> Value {
    // Serialize contract: the schema promises what we emit, so fields that are always
    // written are `required` and a consumer may rely on them.
    let schema = SchemaSettings::draft2020_12()
        .for_serialize()
        .into_generator()
        .into_root_schema_for::<Report>();
    let mut value = schema.to_value();
    if let Some(root) = value.as_object_mut() {
        root.insert("title".to_string(), json!(SCHEMA_VERSION));
        root.insert(
            "description".to_string(),
            json!(
                "Report of one shakeout run. Every `*Ms` field that names a moment is \
                 milliseconds from `run.startedAt`; durations and percentiles are plain \
                 milliseconds. See docs/report.md."
            ),
        );
    }
    // Pin the version so a consumer validating with this schema rejects another format.
    if let Some(version) = value.pointer_mut("/properties/schemaVersion") {
        if let Some(obj) = version.as_object_mut() {
            obj.insert("const".to_string(), json!(SCHEMA_VERSION));
        }
    }
    value
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::{RunStatus, VerdictStatus};

    const COMMITTED_SCHEMA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/report.schema.json");

    fn schema_text() -> String {
        serde_json::to_string_pretty(&report_schema()).unwrap() + "\n"
    }

    fn validate(instance: &Value) -> Vec<String> {
        let validator = jsonschema::validator_for(&report_schema()).unwrap();
        validator
            .iter_errors(instance)
            .map(|e| format!("{} at {}", e, e.instance_path))
            .collect()
    }

    #[test]
    fn written_report_validates_against_schema() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("report.json");
        for report in [
            Report::test(),
            Report::test().with_status(RunStatus::Interrupted, Some("SIGINT")),
            Report::test().with_service(true),
        ] {
            write_json(&report, &path).unwrap();
            let value: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap())
                .expect("report file is valid JSON");
            let errors = validate(&value);
            assert!(errors.is_empty(), "schema violations: {errors:#?}");
        }
    }

    #[test]
    fn schema_rejects_reports_a_consumer_could_not_read() {
        let good = serde_json::to_value(Report::test()).unwrap();
        let mut wrong_version = good.clone();
        wrong_version["schemaVersion"] = json!("shakeout.report/v2");
        assert!(!validate(&wrong_version).is_empty());
        let mut missing_seed = good.clone();
        missing_seed["run"].as_object_mut().unwrap().remove("seed");
        assert!(!validate(&missing_seed).is_empty());
        let mut bad_status = good;
        bad_status["verdicts"][0]["status"] = json!("passed");
        assert!(!validate(&bad_status).is_empty());
    }

    #[test]
    fn schema_is_identified_and_uses_report_field_names() {
        let schema = report_schema();
        assert_eq!(schema["title"], SCHEMA_VERSION);
        assert_eq!(
            schema["$schema"],
            "https://json-schema.org/draft/2020-12/schema"
        );
        let required = schema["properties"]["run"]["$ref"].as_str().unwrap();
        assert!(required.ends_with("RunInfo"), "{required}");
        assert!(schema["$defs"]["RunInfo"]["properties"]["startedAt"].is_object());
    }

    #[test]
    fn committed_schema_matches_generated() {
        let generated = schema_text();
        if std::env::var_os("SHAKEOUT_BLESS").is_some() {
            std::fs::write(COMMITTED_SCHEMA, &generated).unwrap();
        }
        let committed = std::fs::read_to_string(COMMITTED_SCHEMA).unwrap_or_default();
        assert!(
            committed == generated,
            "docs/report.schema.json is out of date with the Report model; \
             regenerate with `SHAKEOUT_BLESS=1 cargo test committed_schema` and review the diff"
        );
    }

    #[test]
    fn json_round_trips() {
        let report = Report::test().with_verdict(crate::report::fixture::verdict(
            "availability/db/faults",
            VerdictStatus::Fail,
            Some("0%"),
            ">= 50%",
            None,
        ));
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.json");
        write_json(&report, &path).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let back: Report = serde_json::from_str(&text).unwrap();
        // The model has no PartialEq (public contract, left as is): compare as JSON values.
        // Numbers within one ulp: serde_json without its `float_roundtrip` feature may
        // parse the last bit differently; lost or renamed fields are what this guards.
        assert_same(
            &serde_json::to_value(&back).unwrap(),
            &serde_json::to_value(&report).unwrap(),
            "$",
        );
        assert!(text.contains("\n  \"schemaVersion\": \"shakeout.report/v1\""));
    }

    fn assert_same(a: &Value, b: &Value, at: &str) {
        match (a, b) {
            (Value::Number(x), Value::Number(y)) => {
                let (x, y) = (x.as_f64().unwrap(), y.as_f64().unwrap());
                assert!(
                    (x - y).abs() <= f64::EPSILON * x.abs().max(y.abs()),
                    "{at}: {x} != {y}"
                );
            }
            (Value::Object(x), Value::Object(y)) => {
                assert_eq!(
                    x.keys().collect::<Vec<_>>(),
                    y.keys().collect::<Vec<_>>(),
                    "{at}"
                );
                for (k, v) in x {
                    assert_same(v, &y[k], &format!("{at}.{k}"));
                }
            }
            (Value::Array(x), Value::Array(y)) => {
                assert_eq!(x.len(), y.len(), "{at}");
                for (i, (v, w)) in x.iter().zip(y).enumerate() {
                    assert_same(v, w, &format!("{at}[{i}]"));
                }
            }
            _ => assert_eq!(a, b, "{at}"),
        }
    }
}
