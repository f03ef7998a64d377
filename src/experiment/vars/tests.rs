//! Variables: where values come from, where they are replaced, and where an undefined one
//! is reported.

use std::path::Path;

use super::*;
use crate::experiment::check::tests::BASE;
use crate::experiment::{parse, Experiment, LoadError};

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn load(text: &str, vars: &Vars) -> Result<Experiment, LoadError> {
    parse(text, Path::new("t.yaml"), vars)
}

fn problems(text: &str, vars: &Vars) -> Vec<String> {
    match load(text, vars) {
        Ok(_) => panic!("loaded:\n{text}"),
        Err(e) => e.diagnostics.iter().map(ToString::to_string).collect(),
    }
}

/// BASE with its probe's URL replaced by `url`.
fn with_url(url: &str) -> String {
    BASE.replace(
        "url: http://127.0.0.1:8080/health",
        &format!("url: \"{url}\""),
    )
}

fn url(exp: &Experiment) -> String {
    match &exp.file.spec.probes[0].http {
        Some(http) => http.url.clone(),
        None => String::new(),
    }
}

#[test]
fn environment_and_given_values_replace_their_placeholders() {
    let text = with_url("http://${var.HOST}:${env.PORT}/health");
    let vars = Vars::new()
        .with("HOST", "127.0.0.2")
        .with_env(env(&[("PORT", "18081")]));
    let exp = load(&text, &vars).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(url(&exp), "http://127.0.0.2:18081/health");
    // The probe was parsed from the replaced URL.
    assert_eq!(exp.probes.len(), 1);
}

#[test]
fn given_values_override_the_files_defaults() {
    let text = with_url("http://${var.HOST}:8080/") + "  vars: { HOST: 127.0.0.1 }\n";
    let exp = load(&text, &Vars::new()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(url(&exp), "http://127.0.0.1:8080/");
    let exp = load(&text, &Vars::new().with("HOST", "127.0.0.9")).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(url(&exp), "http://127.0.0.9:8080/");
    // The defaults themselves are left as written.
    assert_eq!(exp.file.spec.vars["HOST"], "127.0.0.1");
}

#[test]
fn every_undefined_one_is_reported_where_it_is_written() {
    let text = with_url("http://${var.HOST}:${env.SHAKEOUT_NO_SUCH_PORT}/");
    assert_eq!(
        problems(&text, &Vars::new().with_env(env(&[]))),
        [
            "t.yaml:10:28: spec.probes[0].http.url: `${var.HOST}` is not defined: pass \
             `--var HOST=VALUE`, or give it a default in `spec.vars`",
            "t.yaml:10:40: spec.probes[0].http.url: `${env.SHAKEOUT_NO_SUCH_PORT}`: the \
             environment variable `SHAKEOUT_NO_SUCH_PORT` is not set",
        ]
    );
    let text = with_url("http://${var.}/");
    assert!(problems(&text, &Vars::new())[0].contains("`${var.}` names no variable"));
    let text = with_url("http://${var.HOST/");
    assert!(problems(&text, &Vars::new())[0].contains("`${var.HOST/` is not closed"));
}

#[test]
fn run_time_placeholders_are_left_to_the_runner() {
    let text = format!(
        "{BASE}  services:\n    - {{ name: s, command: [\"${{exe}}\", \"${{var.MODE}}\"] }}\n  \
         faults:\n    - {{ name: k, at: 1s, exec: {{ command: [kill, \"${{service.s.pid}}\"] }} }}\n"
    );
    let exp =
        load(&text, &Vars::new().with("MODE", "sample-service")).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        exp.file.spec.services[0].command,
        ["${exe}", "sample-service"]
    );
    let exec = exp.file.spec.faults[0]
        .exec
        .as_ref()
        .map(|e| e.command.clone());
    assert_eq!(
        exec,
        Some(vec!["kill".to_string(), "${service.s.pid}".to_string()])
    );
}

#[test]
fn a_value_cannot_change_the_documents_structure() {
    // Replaced after parsing: YAML in a value stays text.
    let text = BASE.replace("name: base", "name: base\n  description: \"${var.D}\"");
    let injected = "x\nspec:\n  faults: [{ name: x, at: 1s, exec: { command: [rm] } }]";
    let exp = load(&text, &Vars::new().with("D", injected)).unwrap_or_else(|e| panic!("{e}"));
    assert!(exp.faults.is_empty());
    assert_eq!(exp.file.metadata.description.as_deref(), Some(injected));
}

#[test]
fn files_without_placeholders_are_not_rewritten() {
    let exp = load(BASE, &Vars::new().with("UNUSED", "x")).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(url(&exp), "http://127.0.0.1:8080/health");
}

#[test]
fn assignments() {
    assert_eq!(
        assignment("APP=checkout=v2"),
        Ok(("APP".to_string(), "checkout=v2".to_string()))
    );
    assert_eq!(assignment("A="), Ok(("A".to_string(), String::new())));
    assert!(assignment("APP").unwrap_err().contains("is not NAME=VALUE"));
    assert!(assignment("a b=1")
        .unwrap_err()
        .contains("is not a variable name"));
    let vars: Vars = [
        ("A".to_string(), "1".to_string()),
        ("A".to_string(), "2".to_string()),
    ]
    .into_iter()
    .collect();
    assert_eq!(vars.given["A"], "2");
}
