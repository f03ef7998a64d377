//! Good experiments are accepted: every file in `experiments/` passes `shakeout validate`
//! and the JSON Schema that `shakeout schema` prints, and so does a complete experiment
//! using every field, so editors never flag a file the loader accepts.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

const FULL: &str = "tests/good_input/full.yaml";

fn manifest_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn shakeout(args: &[&str]) -> anyhow::Result<Output> {
    Ok(Command::new(env!("CARGO_BIN_EXE_shakeout"))
        .args(args)
        .current_dir(manifest_dir())
        .output()?)
}

/// The YAML files in `experiments/` (none yet is fine: the directory fills up over time).
fn example_files() -> anyhow::Result<Vec<PathBuf>> {
    let dir = manifest_dir().join("experiments");
    let mut files = Vec::new();
    if dir.is_dir() {
        for entry in std::fs::read_dir(dir)? {
            let path = entry?.path();
            if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
                files.push(path);
            }
        }
    }
    files.sort();
    Ok(files)
}

/// `shakeout validate FILE` exits 0 and says `ok`.
fn assert_validates(file: &Path) -> anyhow::Result<()> {
    let shown = file.display().to_string();
    let out = shakeout(&["validate", &shown])?;
    anyhow::ensure!(
        out.status.code() == Some(0),
        "shakeout validate {shown}: exit {:?}\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    anyhow::ensure!(stdout.contains(&format!("{shown}: ok")), "{stdout}");
    Ok(())
}

/// The schema as `shakeout schema` prints it.
fn printed_schema() -> anyhow::Result<Value> {
    let out = shakeout(&["schema"])?;
    anyhow::ensure!(out.status.success(), "shakeout schema: {:?}", out.status);
    Ok(serde_json::from_slice(&out.stdout)?)
}

/// The YAML file as the JSON value an editor would check against the schema.
fn as_json(file: &Path) -> anyhow::Result<Value> {
    let yaml: serde_yaml::Value = serde_yaml::from_str(&std::fs::read_to_string(file)?)?;
    Ok(serde_json::to_value(yaml)?)
}

#[test]
fn every_example_experiment_validates() -> anyhow::Result<()> {
    let schema = printed_schema()?;
    let validator = jsonschema::draft7::new(&schema)?;
    for file in example_files()? {
        assert_validates(&file)?;
        let doc = as_json(&file)?;
        let errors: Vec<String> = validator.iter_errors(&doc).map(|e| e.to_string()).collect();
        assert!(errors.is_empty(), "{}: {errors:#?}", file.display());
    }
    Ok(())
}

#[test]
fn complete_experiment_validates() -> anyhow::Result<()> {
    assert_validates(Path::new(FULL))
}

#[test]
fn schema_is_a_draft_07_schema_editors_accept() -> anyhow::Result<()> {
    let schema = printed_schema()?;
    // yaml-language-server reads `$schema` to pick the draft and shows `title`.
    assert_eq!(schema["$schema"], "http://json-schema.org/draft-07/schema#");
    assert_eq!(schema["title"], "shakeout experiment");
    if let Err(e) = jsonschema::meta::validate(&schema) {
        panic!("not a valid draft-07 schema: {e}");
    }
    Ok(())
}

#[test]
fn schema_accepts_a_complete_experiment_and_refuses_mistakes() -> anyhow::Result<()> {
    let schema = printed_schema()?;
    let validator = jsonschema::draft7::new(&schema)?;
    let good = as_json(&manifest_dir().join(FULL))?;
    let errors: Vec<String> = validator
        .iter_errors(&good)
        .map(|e| e.to_string())
        .collect();
    assert!(errors.is_empty(), "{errors:#?}");

    type Break = fn(&mut Value);
    let mistakes: [(&str, Break); 5] = [
        ("unknown field", |v| v["spec"]["sed"] = 1.into()),
        ("duration without unit", |v| {
            v["spec"]["duration"] = "60".into()
        }),
        ("wrong apiVersion", |v| v["apiVersion"] = "v1".into()),
        ("no probes", |v| v["spec"]["probes"] = Value::Array(vec![])),
        ("name with a space", |v| {
            v["metadata"]["name"] = "a b".into()
        }),
    ];
    for (what, break_it) in mistakes {
        let mut bad = good.clone();
        break_it(&mut bad);
        assert!(!validator.is_valid(&bad), "schema accepted: {what}");
    }
    Ok(())
}
