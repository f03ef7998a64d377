//! The one place that reads experiment YAML: text -> shape (checked against the JSON
//! Schema) -> serde spec types -> variables replaced -> validated [`Experiment`]. Every
//! error carries file, line and column and says what would be valid, and nothing
//! downstream runs unless the whole file is valid.

mod check;
pub mod limits;
pub mod model;
mod pos;
pub mod position;
mod schema;
pub mod selector;
mod source;
pub mod spec;
mod structure;
pub mod template;
pub mod vars;

use std::fmt;
use std::path::{Path, PathBuf};

pub use check::{API_VERSION, KIND};
pub use schema::{schema, schema_text};
pub use spec::ExperimentFile;
pub use vars::Vars;

use limits::Refusal;
use position::{Pos, Positions};

/// A validated experiment, ready to run.
#[derive(Debug, Clone)]
pub struct Experiment {
    pub file: ExperimentFile,
    /// Where it was read from (for messages and relative paths).
    pub source: PathBuf,
    /// The probes, each target parsed (in the file's order).
    pub probes: Vec<model::Probe>,
    /// The fault timeline, each fault's action as an enum (in the file's order).
    pub faults: Vec<model::Fault>,
}

/// The largest seed: 2^53 - 1. A JSON number above it loses digits in JavaScript and
/// `jq` (IEEE doubles), and a replay from the JSON report would then use another seed.
pub const MAX_SEED: u64 = (1 << 53) - 1;

/// A fresh seed for a run that names none (within [`MAX_SEED`]).
pub fn random_seed() -> u64 {
    rand::random::<u64>() & MAX_SEED
}

impl Experiment {
    /// Skip the faults `pick` picks: they stay on the timeline and in every report, as
    /// skipped with `reason`, and need no agent. Returns their names.
    pub fn skip_faults(
        &mut self,
        pick: impl Fn(&model::Fault) -> bool,
        reason: &str,
    ) -> Vec<String> {
        let mut skipped = Vec::new();
        for f in self.faults.iter_mut().filter(|f| pick(f)) {
            f.skip = Some(reason.to_owned());
            skipped.push(f.name.clone());
        }
        skipped
    }

    /// The directory relative paths in the file (services, token files, CAs, kubeconfig)
    /// are resolved against: the file's own, or `.` for a bare name.
    pub fn dir(&self) -> PathBuf {
        self.source
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."))
            .to_path_buf()
    }
}

/// One problem in an experiment file, at a position (or with the file as a whole).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub file: String,
    /// 1-based line; 0 when the problem has no position (the file could not be read).
    pub line: usize,
    /// 1-based column; 0 with line 0.
    pub column: usize,
    pub message: String,
}

impl Diagnostic {
    fn at(file: &str, pos: Pos, message: impl Into<String>) -> Diagnostic {
        Diagnostic {
            file: file.to_string(),
            line: pos.line,
            column: pos.column,
            message: message.into(),
        }
    }

    /// A problem with the file as a whole: `FILE: message`, no made-up `1:1`.
    fn whole_file(file: &str, message: impl Into<String>) -> Diagnostic {
        Diagnostic {
            file: file.to_string(),
            line: 0,
            column: 0,
            message: message.into(),
        }
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            return write!(f, "{}: {}", self.file, self.message);
        }
        write!(
            f,
            "{}:{}:{}: {}",
            self.file, self.line, self.column, self.message
        )
    }
}

/// Why an experiment could not be loaded: every problem found, each with its position.
#[derive(Debug, Clone)]
pub struct LoadError {
    pub diagnostics: Vec<Diagnostic>,
}

impl From<Diagnostic> for LoadError {
    fn from(d: Diagnostic) -> Self {
        LoadError {
            diagnostics: vec![d],
        }
    }
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.diagnostics.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{d}")?;
        }
        Ok(())
    }
}

impl std::error::Error for LoadError {}

/// What `-` in place of a file is called in messages: the experiment read from stdin.
pub const STDIN_NAME: &str = "<stdin>";

/// Read and validate an experiment file, replacing its variables from `vars`. Files over
/// [`limits::MAX_FILE_BYTES`] are refused without being read whole. `-` reads standard
/// input (named [`STDIN_NAME`]; its relative paths are resolved against `.`).
pub fn load(path: &Path, vars: &Vars) -> Result<Experiment, LoadError> {
    let (read, source) = if path == Path::new("-") {
        (Path::new("/dev/stdin"), Path::new(STDIN_NAME))
    } else {
        (path, path)
    };
    let file_name = source.display().to_string();
    let text = source::read_bounded(read).map_err(|u| match u.at {
        Some(pos) => Diagnostic::at(&file_name, pos, u.message),
        None => Diagnostic::whole_file(&file_name, u.message),
    })?;
    parse(&text, source, vars)
}

/// Parse and validate experiment text; `source` names it in messages, `vars` gives the
/// values of its variables.
///
/// A syntax error stops at the first one (the rest of the document cannot be trusted
/// after it). Otherwise every problem with the file's shape (unknown fields, types, units,
/// missing fields) is reported or, when it has none, every undefined variable, or every
/// semantic problem; each list sorted by position.
pub fn parse(text: &str, source: &Path, vars: &Vars) -> Result<Experiment, LoadError> {
    let file_name = source.display().to_string();
    let positions =
        Positions::scan(text).map_err(|r: Refusal| Diagnostic::at(&file_name, r.pos, r.message))?;
    if let [_, second, ..] = positions.documents() {
        return Err(Diagnostic::at(
            &file_name,
            *second,
            "a second YAML document starts here: an experiment file holds exactly one; \
             move each experiment to its own file",
        )
        .into());
    }
    let doc = untyped(text, &positions, &file_name)?;
    if doc.is_null() {
        return Err(Diagnostic::at(
            &file_name,
            positions.documents().first().copied().unwrap_or(Pos::START),
            format!(
                "the file is empty: an experiment is one YAML document with \
                 `apiVersion: {API_VERSION}`, `kind: {KIND}`, `metadata` and `spec` \
                 (`shakeout schema` prints the reference)"
            ),
        )
        .into());
    }
    let shape = structure::check(&doc, &positions, &file_name);
    if !shape.is_empty() {
        return Err(LoadError { diagnostics: shape });
    }
    drop(doc);
    // The shape check refuses what serde would; serde reads the scalars as written
    // (`command: [echo, 1e3]` is the text `1e3`), and would still stop at anything the
    // check missed.
    let file: ExperimentFile =
        serde_yaml::from_str(text).map_err(|e| yaml_error(&file_name, &e, "", None))?;
    let file = vars::substitute(file, vars, text, &positions, &file_name)
        .map_err(|diagnostics| LoadError { diagnostics })?;
    let checked = check::check(&file, &positions, &file_name);
    if !checked.problems.is_empty() {
        return Err(LoadError {
            diagnostics: checked.problems,
        });
    }
    let mut probes = Vec::new();
    for (i, p) in checked.probes.into_iter().enumerate() {
        // The rules above refuse a probe they could not parse; this keeps that promise typed.
        probes.push(p.ok_or_else(|| {
            Diagnostic::at(
                &file_name,
                positions.nearest(&format!("spec.probes[{i}]")),
                "this probe's target could not be read",
            )
        })?);
    }
    let mut faults = Vec::new();
    for (i, f) in file.spec.faults.iter().enumerate() {
        // The rules above refuse a fault without an action; this keeps that promise typed.
        let fault = model::Fault::from_spec(f).ok_or_else(|| {
            Diagnostic::at(
                &file_name,
                positions.nearest(&format!("spec.faults[{i}]")),
                format!("fault `{}` has no action", f.name),
            )
        })?;
        faults.push(fault);
    }
    Ok(Experiment {
        file,
        source: source.to_path_buf(),
        probes,
        faults,
    })
}

/// The whole text first, untyped: typed deserialization stops at the first field it
/// dislikes, which would hide a syntax error further down behind a lesser message.
/// Returns the document (null when it is empty).
fn untyped(text: &str, positions: &Positions, file: &str) -> Result<serde_yaml::Value, LoadError> {
    // After a syntax error the walk checked no limit, so serde_yaml reads no further than
    // needed to find the same error (see `checked_text`).
    let checked = checked_text(text, positions.stopped_at());
    let result = serde_yaml::from_str::<serde_yaml::Value>(checked);
    if checked.len() < text.len() {
        // serde_yaml accepting the part before the cut, or stumbling on the cut itself
        // ("unexpected end of stream" in a quoted scalar that runs on), says nothing
        // about the file: the walk's error stands.
        let at_cut = match &result {
            Ok(_) => true,
            Err(e) => e.location().is_some_and(|l| l.index() >= checked.len()),
        };
        if let (true, Some((pos, info))) = (at_cut, positions.error()) {
            return Err(tab_error(text, file, pos.line)
                .unwrap_or_else(|| Diagnostic::at(file, *pos, format!("invalid YAML: {info}")))
                .into());
        }
    }
    match result {
        Ok(value) => Ok(value),
        Err(e) => {
            let line = e
                .location()
                .map(|l| l.line())
                .or(positions.error().map(|(pos, _)| pos.line))
                .unwrap_or(1);
            match tab_error(text, file, line) {
                Some(tab) => Err(tab.into()),
                None => Err(yaml_error(
                    file,
                    &e,
                    "invalid YAML: ",
                    positions.error().map(|(pos, _)| *pos),
                )),
            }
        }
    }
}

/// A syntax error on `line` caused by a tab in the indentation there (or on the next
/// line), said as such, at the tab.
fn tab_error(text: &str, file: &str, line: usize) -> Option<Diagnostic> {
    source::tab_in_indentation(text, line).map(|at| Diagnostic::at(file, at, source::TAB_MESSAGE))
}

/// How far past a syntax error serde_yaml may read: enough to see the same error (the
/// error's line, for the token it is about), too little to cost anything (a 4 KiB tail
/// is scanned in microseconds whatever it holds).
const SYNTAX_ERROR_TAIL: usize = 4096;

/// The part of `text` serde_yaml may read: all of it, unless the walk stopped at a
/// syntax error at char index `stopped_at`. Then the end of the error's line (at most
/// [`SYNTAX_ERROR_TAIL`] bytes on): where the two parsers agree, serde_yaml reports the
/// same error; where they do not, it reports one at or before the cut, and in both cases
/// it never reads the unchecked rest of the file, which could hold anything.
fn checked_text(text: &str, stopped_at: Option<usize>) -> &str {
    let Some(chars) = stopped_at else {
        return text;
    };
    let start = text
        .char_indices()
        .nth(chars)
        .map_or(text.len(), |(i, _)| i);
    let mut end = (start + SYNTAX_ERROR_TAIL).min(text.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    match text[start..end].find('\n') {
        Some(newline) => &text[..start + newline + 1],
        None => &text[..end],
    }
}

/// A serde_yaml error as a diagnostic. Its message ends with "at line X column Y"; the
/// position goes up front instead, like every other diagnostic.
fn yaml_error(file: &str, e: &serde_yaml::Error, prefix: &str, fallback: Option<Pos>) -> LoadError {
    let mut message = e.to_string();
    let pos = match e.location() {
        Some(loc) => {
            let suffix = format!(" at line {} column {}", loc.line(), loc.column());
            message = message.replacen(&suffix, "", 1);
            Pos {
                line: loc.line().max(1),
                column: loc.column().max(1),
            }
        }
        None => fallback.unwrap_or(Pos::START),
    };
    Diagnostic::at(file, pos, format!("{prefix}{message}")).into()
}

#[cfg(test)]
mod tests;
