//! The schema as editors get it: titles, units in words, free strings, bounds, and the
//! committed copy in docs/ kept in step.

use super::words::UNITS;
use super::*;

const COMMITTED_SCHEMA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/experiment.schema.json");

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

#[test]
fn committed_schema_matches_generated() {
    let generated = schema_text();
    if std::env::var_os("SHAKEOUT_BLESS").is_some() {
        std::fs::write(COMMITTED_SCHEMA, &generated).unwrap();
    }
    let committed = std::fs::read_to_string(COMMITTED_SCHEMA).unwrap_or_default();
    assert!(
        committed == generated,
        "docs/experiment.schema.json is out of date with the spec types; regenerate with \
         `SHAKEOUT_BLESS=1 cargo test -p shakeout --lib committed_schema` and review the diff"
    );
}

#[test]
fn every_definition_has_a_title_in_words() {
    // Editors show a definition's title where they would show its name: an untitled one
    // shows the Rust type (`HttpProbeSpec`) in completion lists and type errors.
    let s = schema();
    let definitions = s["definitions"].as_object().unwrap();
    for (name, definition) in definitions {
        let title = definition["title"].as_str();
        assert!(
            title.is_some_and(|t| !t.contains("Spec")),
            "definition {name} has no title: add one in schema/words.rs"
        );
    }
}

#[test]
fn units_say_what_they_expect_in_words() {
    let s = schema();
    for unit in &UNITS {
        let d = &s["definitions"][unit.name];
        let message = format!("Expected {}.", unit.expected);
        assert_eq!(d["patternErrorMessage"], message, "{}", unit.name);
        assert_eq!(d["errorMessage"], message, "{}", unit.name);
        assert!(d["pattern"].is_string(), "{}", unit.name);
        for example in unit.examples {
            assert_eq!((unit.parse)(example), Ok(()), "{}: {example}", unit.name);
        }
    }
}

/// Whether the schema's pattern for `unit` matches `text`.
fn pattern_matches(unit: &str, text: &str) -> bool {
    let s = schema();
    let pattern = s["definitions"][unit]["pattern"].as_str().unwrap();
    regex::Regex::new(pattern).unwrap().is_match(text)
}

#[test]
fn unit_patterns_agree_with_the_parsers() {
    // (unit, text, whether the loader reads it): the pattern an editor checks must say
    // the same, except for values out of range, which only the loader checks.
    let cases: &[(&str, &str, bool)] = &[
        ("Duration", "250ms", true),
        ("Duration", "1.5s", true),
        ("Duration", "1h30m", true),
        ("Duration", ".5s", true),
        ("Duration", "5.s", true),
        ("Duration", " 2m ", true),
        ("Duration", "500us", true),
        ("Duration", "500µs", true),
        ("Duration", "10", false),
        ("Duration", "10 sec", false),
        ("Duration", "1h 30m", false),
        ("Duration", "1.2.3s", false),
        ("Duration", "-5s", false),
        ("Duration", "5d", false),
        ("Duration", "", false),
        ("Percent", "95%", true),
        ("Percent", "99.9%", true),
        ("Percent", "99.9 %", true),
        ("Percent", ".5%", true),
        ("Percent", "1e1%", true),
        ("Percent", "95", false),
        ("Percent", "%", false),
        ("Percent", "ninety%", false),
        ("Rate", "200/s", true),
        ("Rate", "10k/s", true),
        ("Rate", "600/m", true),
        ("Rate", "1.5/h", true),
        ("Rate", "200 / s", true),
        ("Rate", "200", false),
        ("Rate", "200/d", false),
        ("Rate", "10 k/s", false),
        ("Rate", "fast", false),
        ("StatusRanges", "200", true),
        ("StatusRanges", "200-299", true),
        ("StatusRanges", "200-299,404", true),
        ("StatusRanges", "200 - 299, 404", true),
        ("StatusRanges", "2xx", false),
        ("StatusRanges", "200-", false),
        ("StatusRanges", "200,", false),
    ];
    for &(name, text, valid) in cases {
        let unit = unit(name).unwrap();
        assert_eq!(
            (unit.parse)(text).is_ok(),
            valid,
            "parser, {name}: {text:?}"
        );
        assert_eq!(
            pattern_matches(name, text),
            valid,
            "pattern, {name}: {text:?}"
        );
    }
    // Out of range: the syntax is right, so editors accept them; the loader does not.
    for (name, text) in [
        ("Percent", "101%"),
        ("Rate", "0/s"),
        ("StatusRanges", "299-200"),
    ] {
        assert!((unit(name).unwrap().parse)(text).is_err(), "{text}");
        assert!(pattern_matches(name, text), "{text}");
    }
}

#[test]
fn free_strings_take_numbers_and_booleans_as_yaml_reads_them() {
    let s = schema();
    let exec = &s["definitions"]["ExecFaultSpec"]["properties"];
    assert_eq!(exec["command"]["items"]["type"], json!(SCALAR_STRING));
    let labels = &s["definitions"]["Metadata"]["properties"]["labels"];
    assert_eq!(labels["additionalProperties"]["type"], json!(SCALAR_STRING));
    // Optional ones stay optional.
    let kube = &s["definitions"]["KubernetesSpec"]["properties"];
    assert_eq!(
        kube["context"]["type"],
        json!(["string", "number", "boolean", "null"])
    );
    // Units and names of variants stay strings.
    assert_eq!(s["definitions"]["Duration"]["type"], "string");
    assert_eq!(s["definitions"]["Direction"]["type"], "string");
    assert_eq!(s["properties"]["kind"]["const"], KIND);
}

#[test]
fn whole_numbers_have_their_bounds() {
    let s = schema();
    let probe = &s["definitions"]["ProbeSpec"]["properties"]["maxInFlight"];
    assert_eq!(probe["maximum"], u32::MAX);
    let seed = &s["definitions"]["Spec"]["properties"]["seed"];
    // 2^53 - 1: beyond it a JSON reader of the report would change the seed's digits.
    assert_eq!(seed["maximum"], crate::experiment::MAX_SEED);
}
