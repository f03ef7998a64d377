//! Semantic rules: what serde cannot see (names unique, faults inside the run, probes
//! that exist, values above zero). Every rule reports and moves on, so a user fixes all
//! problems in one pass; each message names the path, what is wrong and what is valid.

mod address;
mod agents;
mod grpc;
mod kube;
mod monitor;
mod objectives;
mod probes;
mod services;
mod timeline;
mod tls;
mod write;

use std::collections::HashMap;

use shakeout_api::Dur;

use super::model::Probe;
use super::position::{Pos, Positions};
use super::spec::ExperimentFile;
use super::Diagnostic;

/// The only `apiVersion` this build reads.
pub const API_VERSION: &str = "shakeout/v1";
/// The only `kind` this build reads.
pub const KIND: &str = "Experiment";

/// What checking a file found: every problem, sorted by position, and the probes as
/// parsed on the way (`None` for a probe with a problem).
pub struct Checked {
    pub problems: Vec<Diagnostic>,
    pub probes: Vec<Option<Probe>>,
}

/// Check every rule.
pub fn check(exp: &ExperimentFile, positions: &Positions, file: &str) -> Checked {
    let mut c = Checker {
        positions,
        file,
        found: Vec::new(),
    };
    if exp.api_version != API_VERSION {
        c.report(
            "apiVersion",
            format!(
                "`{}` is not supported: use `{API_VERSION}`",
                exp.api_version
            ),
        );
    }
    if exp.kind != KIND {
        c.report(
            "kind",
            format!("`{}` is not supported: use `{KIND}`", exp.kind),
        );
    }
    check_name(&mut c, &exp.metadata.name);
    let spec = &exp.spec;
    c.positive("spec.duration", Some(spec.duration), "like 2m");
    if let Some(seed) = spec.seed.filter(|s| *s > super::MAX_SEED) {
        c.report(
            "spec.seed",
            format!(
                "{seed} is above the largest seed, {}: a JSON reader (jq, JavaScript) would \
                 change its last digits and replay another run; use a smaller one",
                super::MAX_SEED
            ),
        );
    }
    if let Some(bucket) = spec.recording.as_ref().and_then(|r| r.bucket) {
        if bucket < Dur::from_millis(1) || bucket > Dur::from_secs(10) {
            c.report(
                "spec.recording.bucket",
                format!("`{bucket}` is out of range: use 1ms to 10s (default 100ms)"),
            );
        }
    }
    let probes = probes::check(&mut c, spec);
    services::check(&mut c, spec);
    agents::check(&mut c, spec);
    kube::check(&mut c, spec);
    timeline::check(&mut c, spec);
    objectives::check(&mut c, spec);
    monitor::check(&mut c, spec);
    let mut found = c.found;
    found.sort_by_key(|d| (d.line, d.column));
    Checked {
        problems: found,
        probes,
    }
}

/// `metadata.name` ends up in file names and JUnit ids, hence the narrow alphabet.
fn check_name(c: &mut Checker<'_>, name: &str) {
    const VALID: &str = "use letters, digits, `-`, `_` and `.`, like checkout-survives-db-kill";
    if name.is_empty() {
        c.report("metadata.name", format!("must not be empty: {VALID}"));
    } else if let Some(bad) = name
        .chars()
        .find(|ch| !(ch.is_ascii_alphanumeric() || matches!(ch, '.' | '_' | '-')))
    {
        c.report(
            "metadata.name",
            format!("`{name}` contains `{bad}`: {VALID}"),
        );
    }
}

/// `` `a`, `b` `` or `(none)`, for "what exists" hints.
pub(crate) fn listing(names: &[&str]) -> String {
    if names.is_empty() {
        return "(none)".to_string();
    }
    let quoted: Vec<String> = names.iter().map(|n| format!("`{n}`")).collect();
    quoted.join(", ")
}

/// Collects diagnostics, placing each with the position map.
pub(crate) struct Checker<'a> {
    positions: &'a Positions,
    file: &'a str,
    found: Vec<Diagnostic>,
}

impl Checker<'_> {
    /// A problem with the value at `path` (or where it belongs, when it is missing).
    pub(crate) fn report(&mut self, path: &str, message: impl AsRef<str>) {
        let pos = self.positions.nearest(path);
        self.push(pos, path, message.as_ref());
    }

    /// A problem with the presence of the field at `path`: points at its key.
    pub(crate) fn report_key(&mut self, path: &str, message: impl AsRef<str>) {
        let pos = self.positions.nearest_key(path);
        self.push(pos, path, message.as_ref());
    }

    fn push(&mut self, pos: Pos, path: &str, message: &str) {
        self.found.push(Diagnostic {
            file: self.file.to_string(),
            line: pos.line,
            column: pos.column,
            message: format!("{path}: {message}"),
        });
    }

    /// A file named at `path` (relative to the experiment's directory), which must hold
    /// at least one PEM item (`what`, for the message); its resolved path either way.
    pub(crate) fn pem_file(&mut self, path: &str, name: &str, what: &str) -> std::path::PathBuf {
        let base = std::path::Path::new(self.file)
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(std::path::Path::new("."));
        let resolved = base.join(name);
        match std::fs::read(&resolved) {
            Err(e) => self.report(
                path,
                format!(
                    "cannot read `{name}` ({}): {}: give {what}",
                    resolved.display(),
                    if e.kind() == std::io::ErrorKind::NotFound {
                        "no such file".to_owned()
                    } else {
                        e.to_string()
                    }
                ),
            ),
            Ok(bytes) if !bytes.windows(11).any(|w| w == b"-----BEGIN ") => self.report(
                path,
                format!("`{name}` holds no PEM block (`-----BEGIN ...`): give {what}"),
            ),
            Ok(_) => {}
        }
        resolved
    }

    /// `line L, column C` of the value at `path`, for "first defined at" messages.
    pub(crate) fn where_is(&self, path: &str) -> String {
        let pos = self.positions.nearest(path);
        format!("line {}, column {}", pos.line, pos.column)
    }

    /// A duration that, when given, must be above zero.
    pub(crate) fn positive(&mut self, path: &str, value: Option<Dur>, example: &str) {
        if value == Some(Dur::ZERO) {
            self.report(path, format!("must be greater than 0s, {example}"));
        }
    }

    /// Names of one kind (`probe`, `fault`, `service`) must be non-empty and unique.
    /// `items` yields (path of the item, its name); returns the names in order.
    pub(crate) fn unique_names<'n>(
        &mut self,
        kind: &str,
        items: impl IntoIterator<Item = (String, &'n str)>,
    ) -> Vec<&'n str> {
        let mut first: HashMap<&str, String> = HashMap::new();
        let mut names = Vec::new();
        for (path, name) in items {
            let name_path = format!("{path}.name");
            if name.is_empty() {
                self.report(&name_path, format!("{kind} name must not be empty"));
                continue;
            }
            match first.get(name) {
                Some(earlier) => {
                    let at = self.where_is(&format!("{earlier}.name"));
                    self.report(
                        &name_path,
                        format!(
                            "{kind} name `{name}` is already used by {earlier} at {at}: \
                             {kind} names must be unique"
                        ),
                    );
                }
                None => {
                    first.insert(name, path);
                    names.push(name);
                }
            }
        }
        names
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A minimal valid experiment; tests replace or append lines to break one rule.
    pub(crate) const BASE: &str = "\
apiVersion: shakeout/v1
kind: Experiment
metadata:
  name: base
spec:
  duration: 60s
  probes:
    - name: web
      rate: 10/s
      http: { url: http://127.0.0.1:8080/health }
";

    /// Parse and check `text`; panics on serde errors (tests target semantic rules).
    pub(crate) fn problems(text: &str) -> Vec<Diagnostic> {
        let exp: ExperimentFile = match serde_yaml::from_str(text) {
            Ok(exp) => exp,
            Err(e) => panic!("test input does not parse: {e}\n{text}"),
        };
        let positions = Positions::scan(text).unwrap_or_else(|r| panic!("refused: {r:?}"));
        check(&exp, &positions, "t.yaml").problems
    }

    /// The single problem in `text`, as `LINE:COL: message`.
    pub(crate) fn one(text: &str) -> String {
        let found = problems(text);
        assert_eq!(found.len(), 1, "expected one problem, got {found:#?}");
        let d = &found[0];
        format!("{}:{}: {}", d.line, d.column, d.message)
    }

    #[test]
    fn base_is_valid() {
        assert_eq!(problems(BASE), vec![]);
    }

    #[test]
    fn api_version_and_kind() {
        let text = BASE.replace("shakeout/v1", "shakeout/v2");
        assert_eq!(
            one(&text),
            "1:13: apiVersion: `shakeout/v2` is not supported: use `shakeout/v1`"
        );
        let text = BASE.replace("kind: Experiment", "kind: Test");
        assert_eq!(
            one(&text),
            "2:7: kind: `Test` is not supported: use `Experiment`"
        );
    }

    #[test]
    fn metadata_name() {
        let text = BASE.replace("name: base", "name: \"\"");
        assert!(one(&text).starts_with("4:9: metadata.name: must not be empty"));
        let text = BASE.replace("name: base", "name: a b");
        assert!(one(&text).starts_with("4:9: metadata.name: `a b` contains ` `"));
    }

    #[test]
    fn run_duration_and_bucket() {
        let text = BASE.replace("duration: 60s", "duration: 0s");
        assert_eq!(
            one(&text),
            "6:13: spec.duration: must be greater than 0s, like 2m"
        );
        for bad in ["500us", "11s"] {
            let text = format!("{BASE}  recording: {{ bucket: {bad} }}\n");
            assert!(
                one(&text).starts_with(&format!(
                    "11:24: spec.recording.bucket: `{bad}` is out of range: use 1ms to 10s"
                )),
                "{bad}"
            );
        }
        let text = format!("{BASE}  recording: {{ bucket: 10s }}\n");
        assert_eq!(problems(&text), vec![]);
    }

    #[test]
    fn all_problems_are_reported_in_order() {
        let text = BASE
            .replace("kind: Experiment", "kind: Test")
            .replace("shakeout/v1", "v1")
            .replace("duration: 60s", "duration: 0s");
        let lines: Vec<usize> = problems(&text).iter().map(|d| d.line).collect();
        assert_eq!(lines, vec![1, 2, 6]);
    }
}
