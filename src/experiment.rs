//! The one place that reads experiment YAML: text -> serde spec types -> validated
//! [`Experiment`]. Every error carries file, line and column and says what would be valid,
//! and nothing downstream runs unless the whole file is valid.

mod check;
pub mod position;
mod schema;
pub mod spec;

use std::fmt;
use std::path::{Path, PathBuf};

pub use check::{API_VERSION, KIND};
pub use schema::schema;
pub use spec::ExperimentFile;

use position::{Pos, Positions};

/// A validated experiment, ready to run.
#[derive(Debug, Clone)]
pub struct Experiment {
    pub file: ExperimentFile,
    /// Where it was read from (for messages and relative paths).
    pub source: PathBuf,
}

/// One problem in an experiment file, at a position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub file: String,
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
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
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
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

/// Read and validate an experiment file.
pub fn load(path: &Path) -> Result<Experiment, LoadError> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        Diagnostic::at(
            &path.display().to_string(),
            Pos::START,
            format!("cannot read file: {e}"),
        )
    })?;
    parse(&text, path)
}

/// Parse and validate experiment text; `source` names it in messages.
///
/// Syntax and type errors stop at the first one (the rest of the document cannot be
/// trusted after it); semantic problems are all reported, sorted by position.
pub fn parse(text: &str, source: &Path) -> Result<Experiment, LoadError> {
    let file_name = source.display().to_string();
    let positions = Positions::scan(text);
    if let [_, second, ..] = positions.documents() {
        return Err(Diagnostic::at(
            &file_name,
            *second,
            "a second YAML document starts here: an experiment file holds exactly one; \
             move each experiment to its own file",
        )
        .into());
    }
    // The whole text first, untyped: typed deserialization stops at the first field it
    // dislikes, which would hide a syntax error further down behind a lesser message.
    let value: serde_yaml::Value = serde_yaml::from_str(text).map_err(|e| {
        yaml_error(
            &file_name,
            &e,
            "invalid YAML: ",
            positions.error().map(|(pos, _)| *pos),
        )
    })?;
    if value.is_null() {
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
    let file: ExperimentFile =
        serde_yaml::from_str(text).map_err(|e| yaml_error(&file_name, &e, "", None))?;
    let diagnostics = check::check(&file, &positions, &file_name);
    if !diagnostics.is_empty() {
        return Err(LoadError { diagnostics });
    }
    Ok(Experiment {
        file,
        source: source.to_path_buf(),
    })
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
