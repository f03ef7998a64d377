//! Loader tests: the parse pipeline (documents, syntax, types, units) end to end, and a
//! complete experiment that must load and survive a round trip unchanged.

use std::path::Path;

use super::*;

const FULL: &str = include_str!("../../tests/good_input/full.yaml");

fn err(text: &str) -> Vec<String> {
    match parse(text, Path::new("x.yaml"), &Vars::new()) {
        Ok(_) => panic!("expected an error for:\n{text}"),
        Err(e) => e.diagnostics.iter().map(ToString::to_string).collect(),
    }
}

/// The only diagnostic for `text`, as printed.
fn only(text: &str) -> String {
    let found = err(text);
    assert_eq!(found.len(), 1, "{found:#?}");
    found[0].clone()
}

#[test]
fn full_experiment_loads_and_round_trips() {
    let exp = match parse(FULL, Path::new("full.yaml"), &Vars::new()) {
        Ok(exp) => exp,
        Err(e) => panic!("{e}"),
    };
    let spec = &exp.file.spec;
    assert_eq!(exp.file.metadata.name, "checkout-survives-cache-restart");
    assert_eq!(spec.probes.len(), 2);
    assert_eq!(spec.services.len(), 2);
    assert_eq!(
        spec.faults[0].duration,
        Some(shakeout_api::Dur::from_secs(30))
    );
    assert_eq!(
        spec.objectives
            .latency
            .as_ref()
            .map(|l| l.bounds().bounds().len()),
        Some(5)
    );
    assert_eq!(exp.source, Path::new("full.yaml"));

    let yaml = serde_yaml::to_string(&exp.file).unwrap_or_default();
    let again = match parse(&yaml, Path::new("again.yaml"), &Vars::new()) {
        Ok(exp) => exp,
        Err(e) => panic!("{e}\n{yaml}"),
    };
    assert_eq!(serde_yaml::to_string(&again.file).unwrap_or_default(), yaml);
    // Nothing was dropped on the way: the written text mentions every optional field.
    for field in [
        "bodyContains",
        "connectTimeout",
        "stableFor",
        "stopGrace",
        "p999",
        "seed",
    ] {
        assert!(yaml.contains(field), "{field} missing from\n{yaml}");
    }
}

#[test]
fn syntax_errors_are_placed_and_the_trailing_position_is_dropped() {
    let text = "apiVersion: shakeout/v1\nkind: Experiment\nmetadata:\n  name: x\n spec: {}\n";
    assert_eq!(
        only(text),
        "x.yaml:5:2: invalid YAML: did not find expected key, while parsing a block mapping"
    );
    // A syntax error later in the file wins over a type error before it.
    let text = "apiVersion: 1\nkind: [\n";
    assert!(
        only(text).starts_with("x.yaml:3:1: invalid YAML:"),
        "{}",
        only(text)
    );
}

#[test]
fn unknown_fields_list_the_valid_ones() {
    let text = FULL.replace("  seed: 42", "  sed: 42");
    let msg = only(&text);
    assert!(
        msg.starts_with(
            "x.yaml:13:3: spec: unknown field `sed`: did you mean `seed`? (expected one of \
             `abort`, `agents`, `alertmanager`, `alerts`, `duration`, `faults`, `kubernetes`, \
             `objectives`, `probes`, `prometheus`, `recording`, `seed`, `services`, \
             `steadyState`, `vars`)"
        ),
        "{msg}"
    );
    assert!(!msg.contains(" at line "), "{msg}");
}

#[test]
fn types_units_and_missing_fields() {
    for (from, to, want) in [
        (
            "duration: 2m",
            "duration: 120",
            "x.yaml:12:13: spec.duration: invalid duration `120`: expected a duration with a unit",
        ),
        (
            "min: 95%",
            "min: 95",
            "x.yaml:86:42: spec.objectives.availability.min: invalid percentage `95`",
        ),
        (
            "rate: 200/s",
            "rate: fast",
            "x.yaml:30:13: spec.probes[0].rate: invalid rate `fast`",
        ),
        (
            "maxInFlight: 64",
            "maxInFlight: many",
            "x.yaml:31:20: spec.probes[0].maxInFlight: invalid type: string \"many\", expected a whole number from 0 to 4294967295",
        ),
        (
            "  duration: 2m\n",
            "",
            "x.yaml:12:3: spec: missing field `duration`",
        ),
    ] {
        let msg = only(&FULL.replacen(from, to, 1));
        assert!(msg.starts_with(want), "{from} -> {to}:\n{msg}");
    }
}

#[test]
fn one_document_per_file() {
    let text = format!("{FULL}---\n{FULL}");
    let msg = only(&text);
    assert!(
        msg.starts_with("x.yaml:91:1: a second YAML document starts here"),
        "{msg}"
    );
    for empty in ["", "# nothing yet\n", "---\n", "~\n"] {
        let msg = only(empty);
        assert!(
            msg.starts_with("x.yaml:1:1: the file is empty"),
            "{empty:?}: {msg}"
        );
    }
}

#[test]
fn semantic_problems_are_all_reported() {
    let text = FULL
        .replace("kind: Experiment", "kind: Job")
        .replace("probe: checkout, stableFor", "probe: nope, stableFor");
    let found = err(&text);
    assert_eq!(found.len(), 2, "{found:#?}");
    assert!(found[0].starts_with("x.yaml:4:7: kind:"));
    assert!(
        found[1].starts_with("x.yaml:88:29: spec.objectives.rto.probe: no probe named `nope`"),
        "{}",
        found[1]
    );
    let e = match parse(&text, Path::new("x.yaml"), &Vars::new()) {
        Err(e) => e.to_string(),
        Ok(_) => String::new(),
    };
    assert_eq!(e.lines().count(), 2);
}

#[test]
fn unreadable_file() {
    match load(Path::new("/nonexistent/shakeout.yaml"), &Vars::new()) {
        Ok(_) => panic!("loaded a missing file"),
        Err(e) => assert_eq!(e.to_string(), "/nonexistent/shakeout.yaml: no such file"),
    }
}

#[test]
fn syntax_errors_read_as_if_serde_yaml_read_the_whole_file() {
    // After a syntax error serde_yaml reads only to the end of the error's line; the
    // message and position must be the ones it gives for the whole file, whatever follows.
    let tail: String = (0..3000)
        .map(|i| format!("k{i}: [{i}, {{a: b}}]\n"))
        .collect();
    for broken in [
        "a: [1, 2\n",
        "a: {b: 1\n",
        "a: ]\n",
        "a: }\n",
        "a:\n  - 1\n  b: 2\n",
        "a: 1\n b: 2\n",
        "a: b: c\n",
        "a: *nowhere\n",
        "a: &x\n  - &x 1\n  - *y\n",
        "a: @b\n",
        "a: `b\n",
        "a: !<bad tag\n",
        "- 1\n- 2\nb: 3\n",
        "a: \"\\q\"\n",
        "a: |\n  x\n y\n",
        "? [1\n: 2\n",
        "a: [1, 2]]\n",
        "a: \"x\" y\n",
        "[1, 2\n",
    ] {
        let text = format!("{broken}{tail}");
        let whole = match serde_yaml::from_str::<serde_yaml::Value>(&text) {
            Ok(_) => continue, // not an error for serde_yaml: nothing to compare
            Err(e) => yaml_error("x.yaml", &e, "invalid YAML: ", None).to_string(),
        };
        assert_eq!(only(&text), whole, "{broken:?}");
    }
    // Except where serde_yaml would read the rest of the file as the scalar's text: then
    // the walk's message, at the quote, not "unexpected end of stream" at the cut.
    let text = format!("a: 1\nb: \"open\n{tail}");
    assert_eq!(
        only(&text),
        "x.yaml:2:4: invalid YAML: invalid indentation in quoted scalar"
    );
}

#[test]
fn files_over_one_mib_are_refused_before_being_read() -> std::io::Result<()> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("big.yaml");
    let shown = path.display();
    // Exactly 1 MiB is read (and is only comments here).
    let line = format!("# {}\n", "x".repeat(1021));
    std::fs::write(&path, line.repeat(1024))?;
    let msg = match load(&path, &Vars::new()) {
        Ok(_) => panic!("loaded a comment"),
        Err(e) => e.to_string(),
    };
    assert!(
        msg.starts_with(&format!("{shown}:1:1: the file is empty")),
        "{msg}"
    );
    // One byte more is refused from its size alone.
    std::fs::write(&path, format!("{}\n", line.repeat(1024)))?;
    let msg = match load(&path, &Vars::new()) {
        Ok(_) => panic!("loaded a file over 1 MiB"),
        Err(e) => e.to_string(),
    };
    assert_eq!(
        msg,
        format!(
            "{shown}:1:1: the file is 1048577 bytes; experiment files are limited to 1 MiB \
             (1048576 bytes): an experiment is a few KiB of YAML, so this is probably not \
             the file you meant"
        )
    );
    // A device reports no size: reading stops one byte past the limit.
    let msg = match load(Path::new("/dev/zero"), &Vars::new()) {
        Ok(_) => panic!("loaded /dev/zero"),
        Err(e) => e.to_string(),
    };
    assert!(
        msg.starts_with("/dev/zero:1:1: the file is more than 1048576 bytes; experiment files are limited to 1 MiB"),
        "{msg}"
    );
    Ok(())
}

#[test]
fn limits_are_reported_at_the_token_that_goes_past_them() {
    let text = FULL.replacen("  seed: 42", "  seed: &s [1, *s]", 1);
    assert_eq!(
        only(&text),
        "x.yaml:13:16: this YAML alias refers to a value that contains it, which would \
         repeat forever: an alias may only refer to a value that is complete before it"
    );
}

#[test]
fn random_seeds_fit_in_a_json_number() {
    // The top bits are masked off; a thousand draws would all but surely set one of them.
    for _ in 0..1000 {
        assert!(super::random_seed() <= super::MAX_SEED);
    }
    assert_eq!(super::MAX_SEED, 9_007_199_254_740_991);
}
