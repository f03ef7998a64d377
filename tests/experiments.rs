//! Good experiments are accepted and bad ones refused, by the loader and by editors alike:
//! every file in `experiments/` and `tests/good_input/` passes `shakeout validate` and the
//! JSON Schema that `shakeout schema` prints (checked with an independent validator, the
//! `jsonschema` crate), and every file in `tests/bad_input/` that the loader refuses for
//! its shape the schema refuses too; the ones only a semantic rule can refuse are listed.

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

/// Bad files the loader refuses for what the file means, not its shape: names used twice,
/// the timeline, references between sections, values a pattern cannot judge. The schema
/// accepts them (asserted, so this list stays honest).
const SEMANTIC_ONLY: &[&str] = &[
    "abort_missing_probe",
    "alert_without_alertmanager",
    "backoff_cap_below_delay",
    "bad_peer_cidr",
    "bucket_out_of_range",
    "client_cert_without_key",
    "duplicate_fault_name",
    "duplicate_probe_name",
    "duplicate_service_name",
    "fault_before_steady_state_window",
    "fault_ends_after_duration",
    "fault_starts_after_duration",
    "fault_without_action",
    "https_ready_check",
    "kill_stop_signal",
    "kill_with_duration",
    "latency_without_percentile",
    "network_pods_with_agent",
    "network_without_duration",
    "objective_missing_probe",
    "pod_bad_selector",
    "pod_delete_with_duration",
    "pod_fixed_without_count",
    "pod_grace_not_whole_seconds",
    "pod_protected_namespace",
    "pod_recovery_without_deletion",
    "restart_limits_without_restarts",
    "probe_http_and_tcp",
    "grpc_and_http",
    "grpc_address_without_port",
    "grpc_tls_ca_missing_file",
    "probe_without_target",
    "promql_every_zero",
    "promql_without_prometheus",
    "revert_without_duration",
    "rpo_on_probe_without_writes",
    "service_ready_http_and_tcp",
    "tcp_address_without_port",
    "tls_ca_missing_file",
    "tls_on_http_url",
    "two_actions",
    "undefined_variable",
    "unknown_agent",
    "write_bad_redis_url",
    "write_http_and_redis",
    "write_without_sequence_placeholder",
    "zero_duration",
];

/// Bad files that are not one YAML document within the limits: refused before there is a
/// document to check against a schema.
const NOT_A_DOCUMENT: &[&str] = &[
    "alias_fanout",
    "nesting_too_deep",
    "syntax_error",
    "tab_indentation",
    "too_many_aliases",
    "two_documents",
];

#[test]
fn the_loader_and_the_schema_agree_on_every_corpus_file() -> anyhow::Result<()> {
    let schema = printed_schema()?;
    let validator = jsonschema::draft7::new(&schema)?;
    let mut good = example_files()?;
    good.push(manifest_dir().join(FULL));
    for file in &good {
        assert_validates(file)?;
        let errors: Vec<String> = validator
            .iter_errors(&as_json(file)?)
            .map(|e| format!("{}: {e}", e.instance_path))
            .collect();
        assert!(errors.is_empty(), "{}: {errors:#?}", file.display());
    }

    let dir = manifest_dir().join("tests/bad_input");
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir)? {
        let file = entry?.path();
        let Some(case) = file.file_stem().map(|s| s.to_string_lossy().into_owned()) else {
            continue;
        };
        if file.extension().is_none_or(|e| e != "yaml") || NOT_A_DOCUMENT.contains(&case.as_str()) {
            continue;
        }
        let shown = file.display().to_string();
        let out = shakeout(&["validate", &shown])?;
        assert_eq!(out.status.code(), Some(3), "validate accepted {case}");
        let accepted = validator.is_valid(&as_json(&file)?);
        if SEMANTIC_ONLY.contains(&case.as_str()) {
            assert!(
                accepted,
                "{case} is listed as semantic only, but the schema refuses it"
            );
        } else {
            assert!(
                !accepted,
                "the schema accepts {case}, which the loader refuses for its shape: make \
                 the schema refuse it too, or list it in SEMANTIC_ONLY if only a rule over \
                 the whole file can"
            );
        }
        checked += 1;
    }
    assert!(checked >= 40, "only {checked} corpus files checked");
    Ok(())
}

#[test]
fn a_number_or_a_boolean_where_a_string_goes_is_a_string() -> anyhow::Result<()> {
    // `command: [sleep, 5]`: YAML reads `5` as a number, the loader as the text `5`, and
    // the schema an editor uses agrees.
    let text = std::fs::read_to_string(manifest_dir().join(FULL))?
        .replace("command: [sleep, \"3600\"]", "command: [sleep, 3600, true]");
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("numbers.yaml");
    std::fs::write(&file, &text)?;
    assert_validates(&file)?;
    let validator = jsonschema::draft7::new(&printed_schema()?)?;
    let errors: Vec<String> = validator
        .iter_errors(&as_json(&file)?)
        .map(|e| e.to_string())
        .collect();
    assert!(errors.is_empty(), "{errors:#?}");
    Ok(())
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

/// An experiment with a `${env.NAME}` in a probe's URL, a `${var.NAME}` in a pod fault's
/// selector (defaulting to `shop` in `spec.vars`), and the line and column of the first.
const WITH_VARS: &str = "\
apiVersion: shakeout/v1
kind: Experiment
metadata: { name: vars }
spec:
  duration: 1m
  vars: { APP: shop }
  probes:
    - name: web
      rate: 10/s
      http: { url: \"http://127.0.0.1:${env.SHAKEOUT_TEST_PORT}/health\" }
  faults:
    - name: lose-one
      at: 10s
      pod: { delete: { namespace: default, selector: \"app=${var.APP}\" } }
";
const PORT_AT: &str = "10:38";

/// `shakeout ARGS` on [`WITH_VARS`], with `SHAKEOUT_TEST_PORT` set to `port` (or unset),
/// and no cluster to reach (a dry run prints its plan before it looks for one).
fn with_vars(args: &[&str], port: Option<&str>) -> anyhow::Result<(Output, String)> {
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("vars.yaml");
    std::fs::write(&file, WITH_VARS)?;
    let shown = file.display().to_string();
    let mut command = Command::new(env!("CARGO_BIN_EXE_shakeout"));
    command
        .args(args.iter().map(|a| a.replace("FILE", &shown)))
        .env("KUBECONFIG", dir.path().join("no-kubeconfig"))
        .env_remove("SHAKEOUT_TEST_PORT");
    if let Some(port) = port {
        command.env("SHAKEOUT_TEST_PORT", port);
    }
    Ok((command.output()?, shown))
}

#[test]
fn variables_fill_urls_and_selectors() -> anyhow::Result<()> {
    let (out, _) = with_vars(&["run", "--dry-run", "FILE"], Some("18123"))?;
    let plan = String::from_utf8_lossy(&out.stdout);
    assert!(plan.contains("GET http://127.0.0.1:18123/health"), "{plan}");
    assert!(plan.contains("(selector app=shop,"), "{plan}");
    // `--var` overrides the file's default.
    let (out, _) = with_vars(
        &["run", "--dry-run", "FILE", "--var", "APP=checkout"],
        Some("18123"),
    )?;
    let plan = String::from_utf8_lossy(&out.stdout);
    assert!(plan.contains("(selector app=checkout,"), "{plan}");
    let (out, shown) = with_vars(&["validate", "--var", "APP=checkout", "FILE"], Some("1"))?;
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains(&format!("{shown}: ok")));
    Ok(())
}

#[test]
fn an_undefined_variable_is_refused_at_its_position() -> anyhow::Result<()> {
    for command in ["validate", "run", "preflight"] {
        let (out, shown) = with_vars(&[command, "FILE", "--var", "APP=checkout"], None)?;
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(3), "{command}: {stderr}");
        let want = format!(
            "{shown}:{PORT_AT}: spec.probes[0].http.url: `${{env.SHAKEOUT_TEST_PORT}}`: the \
             environment variable `SHAKEOUT_TEST_PORT` is not set"
        );
        assert!(stderr.lines().any(|l| l == want), "{command}: {stderr}");
    }
    Ok(())
}
