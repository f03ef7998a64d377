//! Variables in experiment files: `${var.NAME}` (from `--var NAME=VALUE`, else the file's
//! `spec.vars`) and `${env.NAME}` (the environment). They are replaced after the YAML is
//! parsed, in the string values only: a value cannot change the document's structure (no
//! YAML injection), positions stay those of the file, and an undefined one is reported at
//! its own line and column. `${exe}` and `${service.NAME.pid}` are left as they are: the
//! runner replaces them when it starts a command.

use std::collections::BTreeMap;

use serde_yaml::Value;

use super::position::{Pos, Positions};
use super::spec::ExperimentFile;
use super::Diagnostic;

/// The values of `${var.NAME}` given on the command line, and where `${env.NAME}` reads.
#[derive(Debug, Clone, Default)]
pub struct Vars {
    given: BTreeMap<String, String>,
    /// `None`: the process's environment.
    env: Option<BTreeMap<String, String>>,
}

impl Vars {
    /// No `--var`, the process's environment.
    pub fn new() -> Vars {
        Vars::default()
    }

    /// `${var.NAME}` is `value` (a later one for the same name wins, as on a command line).
    pub fn with(mut self, name: impl Into<String>, value: impl Into<String>) -> Vars {
        self.given.insert(name.into(), value.into());
        self
    }

    /// Read `${env.NAME}` from `env` instead of the process's environment.
    pub fn with_env(mut self, env: impl IntoIterator<Item = (String, String)>) -> Vars {
        self.env = Some(env.into_iter().collect());
        self
    }

    fn env(&self, name: &str) -> Option<String> {
        match &self.env {
            Some(env) => env.get(name).cloned(),
            None => std::env::var(name).ok(),
        }
    }
}

impl FromIterator<(String, String)> for Vars {
    fn from_iter<I: IntoIterator<Item = (String, String)>>(pairs: I) -> Vars {
        pairs
            .into_iter()
            .fold(Vars::new(), |vars, (name, value)| vars.with(name, value))
    }
}

/// Whether `name` can be a variable's name: letters, digits, `_` and `-`.
fn is_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// `NAME=VALUE`, as `--var` takes it.
pub fn assignment(text: &str) -> Result<(String, String), String> {
    let (name, value) = text
        .split_once('=')
        .ok_or_else(|| format!("`{text}` is not NAME=VALUE"))?;
    if !is_name(name) {
        return Err(format!(
            "`{name}` is not a variable name: use letters, digits, `_` and `-`"
        ));
    }
    Ok((name.to_string(), value.to_string()))
}

/// The two kinds of placeholder replaced here.
const KINDS: [&str; 2] = ["${var.", "${env."];

/// `file` with every `${var.NAME}` and `${env.NAME}` in its string values replaced, or
/// every placeholder that could not be, at its position in `text`.
pub(super) fn substitute(
    file: ExperimentFile,
    vars: &Vars,
    text: &str,
    positions: &Positions,
    source: &str,
) -> Result<ExperimentFile, Vec<Diagnostic>> {
    if !KINDS.iter().any(|k| text.contains(k)) {
        return Ok(file);
    }
    let internal = |e: serde_yaml::Error| {
        // The file was read into these types a moment ago; writing it out and reading it
        // back cannot fail short of a bug, which this says rather than hides.
        vec![Diagnostic::at(
            source,
            Pos::START,
            format!("variables could not be replaced (a bug in shakeout): {e}"),
        )]
    };
    let mut tree = serde_yaml::to_value(&file).map_err(internal)?;
    let mut walk = Walk {
        vars,
        defaults: &file.spec.vars,
        text,
        positions,
        source,
        found: Vec::new(),
    };
    walk.value(&mut tree, "");
    if !walk.found.is_empty() {
        let mut found = walk.found;
        found.sort_by_key(|d| (d.line, d.column));
        found.dedup();
        return Err(found);
    }
    serde_yaml::from_value(tree).map_err(internal)
}

struct Walk<'a> {
    vars: &'a Vars,
    defaults: &'a BTreeMap<String, String>,
    text: &'a str,
    positions: &'a Positions,
    source: &'a str,
    found: Vec<Diagnostic>,
}

impl Walk<'_> {
    fn value(&mut self, v: &mut Value, path: &str) {
        match v {
            Value::String(s) => {
                if let Some(replaced) = self.expand(s, path) {
                    *s = replaced;
                }
            }
            Value::Sequence(items) => {
                for (i, item) in items.iter_mut().enumerate() {
                    self.value(item, &format!("{path}[{i}]"));
                }
            }
            Value::Mapping(fields) => {
                for (key, child) in fields.iter_mut() {
                    let Some(key) = key.as_str() else { continue };
                    let child_path = if path.is_empty() {
                        key.to_string()
                    } else {
                        format!("{path}.{key}")
                    };
                    // The defaults are values, not templates.
                    if child_path != "spec.vars" {
                        self.value(child, &child_path);
                    }
                }
            }
            _ => {}
        }
    }

    /// `s` with its placeholders replaced (`None`: it has none, or one is a problem,
    /// which is recorded).
    fn expand(&mut self, s: &str, path: &str) -> Option<String> {
        let mut out = String::new();
        let mut rest = s;
        let mut ok = true;
        while let Some(start) = KINDS.iter().filter_map(|k| rest.find(k)).min() {
            out.push_str(&rest[..start]);
            let placeholder = &rest[start..];
            let env = placeholder.starts_with("${env.");
            let Some(end) = placeholder.find('}') else {
                let message = format!(
                    "`{placeholder}` is not closed: write `{}NAME}}`",
                    &placeholder[..6]
                );
                self.problem(path, placeholder, message);
                return None;
            };
            let (whole, name) = (&placeholder[..=end], &placeholder[6..end]);
            let value = if !is_name(name) {
                let message = format!(
                    "`{whole}` names no variable: write `{}NAME}}`, NAME made of letters, \
                     digits, `_` and `-`",
                    &placeholder[..6]
                );
                self.problem(path, whole, message);
                None
            } else if env {
                let value = self.vars.env(name);
                if value.is_none() {
                    let message =
                        format!("`{whole}`: the environment variable `{name}` is not set");
                    self.problem(path, whole, message);
                }
                value
            } else {
                let value = self.vars.given.get(name).or(self.defaults.get(name));
                if value.is_none() {
                    let message = format!(
                        "`{whole}` is not defined: pass `--var {name}=VALUE`, or give it a \
                         default in `spec.vars`"
                    );
                    self.problem(path, whole, message);
                }
                value.cloned()
            };
            match value {
                Some(value) => out.push_str(&value),
                None => ok = false,
            }
            rest = &placeholder[end + 1..];
        }
        out.push_str(rest);
        (ok && out != s).then_some(out)
    }

    fn problem(&mut self, path: &str, placeholder: &str, message: String) {
        let pos = locate(self.text, self.positions.nearest(path), placeholder);
        self.found.push(Diagnostic::at(
            self.source,
            pos,
            format!("{path}: {message}"),
        ));
    }
}

/// Where `placeholder` is written in the value that starts at `value`: on the same line
/// (a plain or quoted scalar), else the value's start (a folded or aliased one).
fn locate(text: &str, value: Pos, placeholder: &str) -> Pos {
    let Some(line) = text.lines().nth(value.line.saturating_sub(1)) else {
        return value;
    };
    let from = line
        .char_indices()
        .nth(value.column.saturating_sub(1))
        .map_or(line.len(), |(i, _)| i);
    match line[from..].find(placeholder) {
        Some(at) => Pos {
            line: value.line,
            column: value.column + line[from..from + at].chars().count(),
        },
        None => value,
    }
}

#[cfg(test)]
mod tests;
