//! The shape check: every problem at once, at its position, in words; and the schema holds
//! no keyword it does not read.

use std::collections::BTreeSet;
use std::path::Path;

use super::*;
use crate::experiment::check::tests::BASE;
use crate::experiment::{parse, Vars};

/// Every diagnostic for `text`, as `LINE:COL: message`.
fn problems(text: &str) -> Vec<String> {
    match parse(text, Path::new("t.yaml"), &Vars::new()) {
        Ok(_) => Vec::new(),
        Err(e) => e
            .diagnostics
            .iter()
            .map(|d| format!("{}:{}: {}", d.line, d.column, d.message))
            .collect(),
    }
}

#[test]
fn the_base_experiment_has_the_shape() {
    assert_eq!(problems(BASE), Vec::<String>::new());
}

#[test]
fn reports_every_shape_problem_in_order() {
    let text = BASE
        .replace("duration: 60s", "duration: 60s\n  seed: -1\n  sede: 1")
        .replace("rate: 10/s", "rate: 10/s\n      maxInFlight: many")
        .replace("{ url:", "{ method: 5, url:");
    assert_eq!(
        problems(&text),
        [
            "7:9: spec.seed: `-1` is out of range: expected a whole number from 0 to 9007199254740991",
            "8:3: spec: unknown field `sede`: did you mean `seed`? (expected one of `abort`, \
             `agents`, `alertmanager`, `alerts`, `duration`, `faults`, `kubernetes`, \
             `objectives`, `probes`, `prometheus`, `recording`, `seed`, `services`, \
             `steadyState`, `vars`)",
            "12:20: spec.probes[0].maxInFlight: invalid type: string \"many\", expected a \
             whole number from 0 to 4294967295",
        ]
    );
}

#[test]
fn missing_fields_and_wrong_types_say_what_was_expected() {
    let text = BASE.replace("      rate: 10/s\n", "");
    assert_eq!(
        problems(&text),
        ["8:7: spec.probes[0]: missing field `rate`"]
    );
    let text = BASE.replace("http: { url: http://127.0.0.1:8080/health }", "http: yes");
    assert_eq!(
        problems(&text),
        ["10:13: spec.probes[0].http: invalid type: string \"yes\", expected a mapping (HTTP probe)"]
    );
    let text = BASE.replace("  probes:", "  services: { name: x }\n  probes:");
    assert_eq!(
        problems(&text),
        ["7:13: spec.services: invalid type: a mapping, expected a list"]
    );
    let text =
        format!("{BASE}  faults:\n    - {{ name: f, at: 1s, network: {{ direction: out }} }}\n");
    assert_eq!(
        problems(&text),
        [
            "12:48: spec.faults[0].network.direction: unknown value `out`, expected one of \
          `egress`, `ingress`, `both`"
        ]
    );
}

#[test]
fn units_are_read_by_their_parsers() {
    let text = BASE.replace("duration: 60s", "duration: 60");
    assert_eq!(
        problems(&text),
        [
            "6:13: spec.duration: invalid duration `60`: expected a duration with a unit, like \
          250ms, 1.5s, 2m or 1h30m (units: ns, us, ms, s, m, h)"
        ]
    );
    // Syntax an editor accepts, a range only the parser knows.
    let text = BASE.replace("rate: 10/s", "rate: 0/s");
    assert_eq!(
        problems(&text),
        ["9:13: spec.probes[0].rate: invalid rate `0/s`: must be above 0 and at most 10M/s"]
    );
    let text = BASE.replace("rate: 10/s", "rate: \"${var.RATE}\"");
    let found = problems(&text);
    assert!(
        found[0].ends_with("are replaced in string fields only: write the value itself here)"),
        "{found:?}"
    );
}

#[test]
fn free_strings_take_what_yaml_reads_as_numbers_and_booleans() {
    let text = format!(
        "{BASE}  services:\n    - {{ name: 5, command: [sleep, 5, 1.5, true, 0x1F], env: {{ A: 1 }} }}\n"
    );
    let exp = match parse(&text, Path::new("t.yaml"), &Vars::new()) {
        Ok(exp) => exp,
        Err(e) => panic!("{e}"),
    };
    let service = &exp.file.spec.services[0];
    assert_eq!(service.name, "5");
    // As written, not as YAML's number would print.
    assert_eq!(service.command, ["sleep", "5", "1.5", "true", "0x1F"]);
    assert_eq!(service.env["A"], "1");
}

#[test]
fn optional_fields_may_be_empty_and_tags_are_refused() {
    let text = format!("{BASE}  abort:\n  recording: ~\n");
    assert_eq!(problems(&text), Vec::<String>::new());
    let text = BASE.replace("name: web", "name: !custom web");
    assert_eq!(
        problems(&text),
        // At the value after the tag: where the parser places the scalar.
        [
            "8:21: spec.probes[0].name: the YAML tag `!custom` has no meaning in an experiment \
          file: remove it"
        ]
    );
    // No value: at its key (an empty one has no position of its own).
    let text = BASE.replace("duration: 60s", "duration: ~");
    assert_eq!(
        problems(&text),
        [
            "6:3: spec.duration: invalid type: no value, expected a duration with a unit, like \
          250ms, 1.5s, 2m or 1h30m (units: ns, us, ms, s, m, h)"
        ]
    );
}

#[test]
fn a_field_put_one_level_too_high_says_where_it_goes() {
    let text = BASE.replace("rate: 10/s", "rate: 10/s\n      connectTimeout: 1s");
    assert_eq!(
        problems(&text),
        [
            "10:7: spec.probes[0]: unknown field `connectTimeout`, expected one of `grpc`, `http`, \
          `maxInFlight`, `name`, `rate`, `tcp`, `write`; `connectTimeout` goes in `http`"
        ]
    );
}

#[test]
fn suggestions_are_near_names_only() {
    let names = ["timeout", "maxInFlight", "rate", "at", "to"];
    assert_eq!(suggest("timeuot", names), Some("timeout"));
    assert_eq!(suggest("timout", names), Some("timeout"));
    assert_eq!(suggest("maxInflight", names), Some("maxInFlight"));
    assert_eq!(suggest("MAXINFLIGHT", names), Some("maxInFlight"));
    assert_eq!(suggest("rat", names), Some("rate"));
    assert_eq!(suggest("ta", names), None);
    assert_eq!(suggest("retries", names), None);
    assert_eq!(suggest("", names), None);
}

#[test]
fn a_file_full_of_mistakes_lists_the_first_hundred() {
    let items: String = (0..150)
        .map(|i| format!("    - {{ name: f{i}, at: soon }}\n"))
        .collect();
    let text = format!("{BASE}  faults:\n{items}");
    let found = problems(&text);
    assert_eq!(found.len(), MAX_PROBLEMS + 1);
    assert!(
        found[0].starts_with("12:23: spec.faults[0].at: invalid duration `soon`"),
        "{}",
        found[0]
    );
    assert_eq!(
        found[MAX_PROBLEMS],
        "112:25: 50 more problems from here on are not listed: fix the \
         ones above first"
    );
}

/// Keywords the shape check reads, and annotations it may ignore.
const UNDERSTOOD: &[&str] = &[
    "$ref",
    "allOf",
    "anyOf",
    "oneOf",
    "type",
    "enum",
    "const",
    "properties",
    "additionalProperties",
    "required",
    "items",
    "minimum",
    "maximum",
    "format",
    "pattern",
    "minItems",
    // Annotations.
    "$schema",
    "definitions",
    "title",
    "description",
    "default",
    "examples",
    "errorMessage",
    "patternErrorMessage",
];

fn keywords(schema: &Schema, at: String, found: &mut BTreeSet<(String, String)>) {
    match schema {
        Schema::Object(fields) => {
            for (key, value) in fields {
                found.insert((key.clone(), at.clone()));
                match key.as_str() {
                    "properties" | "definitions" => {
                        for (name, child) in value.as_object().into_iter().flatten() {
                            keywords(child, format!("{at}/{key}/{name}"), found);
                        }
                    }
                    "examples" | "enum" | "default" | "const" => {}
                    _ => keywords(value, format!("{at}/{key}"), found),
                }
            }
        }
        Schema::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                keywords(item, format!("{at}/{i}"), found);
            }
        }
        _ => {}
    }
}

#[test]
fn the_schema_holds_only_keywords_the_check_reads() {
    // A spec type that makes schemars emit another keyword (`not`, `if`, `dependencies`...)
    // would go unchecked by the loader: teach `Shape` the keyword first.
    let mut found = BTreeSet::new();
    keywords(schema::cached(), String::new(), &mut found);
    let unknown: Vec<_> = found
        .iter()
        .filter(|(k, _)| !UNDERSTOOD.contains(&k.as_str()))
        .collect();
    assert!(unknown.is_empty(), "{unknown:#?}");
    // The keywords the check leaves to the semantic rules appear only where those rules
    // are: the narrowings, units (read by their parsers) and enums (`oneOf` constants).
    let narrowed: Vec<&str> = schema::narrowings().iter().map(|(p, _)| *p).collect();
    for (keyword, at) in &found {
        let deferred = matches!(keyword.as_str(), "const" | "pattern" | "minItems");
        let in_unit = UNITS_AT.iter().any(|u| at.starts_with(u));
        let in_enum = keyword == "const" && at.contains("/oneOf/");
        if deferred && !(narrowed.contains(&at.as_str()) || in_unit || in_enum) {
            panic!("`{keyword}` at {at} is checked by no one");
        }
    }
}

/// Where the unit definitions are.
const UNITS_AT: [&str; 5] = [
    "/definitions/Validity",
    "/definitions/Duration",
    "/definitions/Percent",
    "/definitions/Rate",
    "/definitions/StatusRanges",
];
