//! The one place that reads experiment YAML: text -> serde spec types -> validated
//! [`Experiment`]. Every error carries file, line and column and says what would be valid.

pub mod spec;

use std::fmt;
use std::path::{Path, PathBuf};

pub use spec::ExperimentFile;

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
    let text = std::fs::read_to_string(path).map_err(|e| LoadError {
        diagnostics: vec![Diagnostic {
            file: path.display().to_string(),
            line: 1,
            column: 1,
            message: format!("cannot read file: {e}"),
        }],
    })?;
    parse(&text, path)
}

/// Parse and validate experiment text; `source` names it in messages.
pub fn parse(text: &str, source: &Path) -> Result<Experiment, LoadError> {
    let file_name = source.display().to_string();
    let file: ExperimentFile = serde_yaml::from_str(text).map_err(|e| {
        let (line, column) = e
            .location()
            .map(|l| (l.line(), l.column()))
            .unwrap_or((1, 1));
        LoadError {
            diagnostics: vec![Diagnostic {
                file: file_name.clone(),
                line,
                column,
                message: e.to_string(),
            }],
        }
    })?;
    Ok(Experiment {
        file,
        source: source.to_path_buf(),
    })
}

/// JSON Schema of experiment files, generated from the spec types.
pub fn schema() -> serde_json::Value {
    serde_json::to_value(schemars::schema_for!(ExperimentFile)).unwrap_or_default()
}
