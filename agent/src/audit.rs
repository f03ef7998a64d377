//! The audit log (DESIGN.md §3.5): one JSON line per apply, renew, revert, expiry,
//! end, refusal and sweep, with who asked and what came of it. Append-only; a line is
//! written with one `write` call so concurrent requests never interleave inside a line.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::SystemTime;

use serde::Serialize;

use crate::error::AgentError;

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Action {
    Apply,
    Renew,
    Revert,
    /// The lease deadline passed without a renewal.
    Expire,
    /// The fault's duration ended.
    End,
    /// Refused before anything was done (auth, policy, bad request).
    Refuse,
    Sweep,
}

/// One audit line.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Entry {
    /// RFC 3339, UTC.
    pub time: String,
    /// Token name, `-` when unauthenticated.
    pub token: String,
    pub experiment: String,
    pub fault: String,
    pub fault_id: String,
    /// Human description of the target (`pid 42`, `name sleep`, `netns host`).
    pub target: String,
    pub action: Action,
    /// `ok` or `error`.
    pub result: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

impl Entry {
    /// A line with `-` in every who/what field; fill in what is known.
    pub fn new(action: Action, token: &str) -> Entry {
        Entry {
            time: humantime::format_rfc3339_millis(SystemTime::now()).to_string(),
            token: token.to_string(),
            experiment: "-".into(),
            fault: "-".into(),
            fault_id: "-".into(),
            target: "-".into(),
            action,
            result: "ok",
            code: None,
            message: None,
        }
    }

    /// Mark the outcome from a result.
    pub fn outcome<T>(mut self, result: &Result<T, AgentError>) -> Entry {
        if let Err(e) = result {
            self.result = "error";
            self.code = Some(e.code());
            self.message = Some(e.message());
        }
        self
    }

    /// A note on a successful line (what a sweep cleaned, a revert that found nothing).
    pub fn note(mut self, message: impl Into<String>) -> Entry {
        self.message = Some(message.into());
        self
    }
}

/// The audit file.
#[derive(Debug)]
pub struct Audit {
    path: PathBuf,
    file: Mutex<File>,
}

impl Audit {
    /// Open for appending (created if missing).
    pub fn open(path: &Path) -> std::io::Result<Audit> {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        Ok(Audit {
            path: path.to_path_buf(),
            file: Mutex::new(file),
        })
    }

    /// Its path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Append a line. Failing to audit is logged, not fatal: refusing to revert a fault
    /// because the audit disk is full would be the worse outcome.
    pub fn record(&self, entry: Entry) {
        let mut line = match serde_json::to_vec(&entry) {
            Ok(l) => l,
            Err(error) => {
                tracing::error!(%error, "audit entry not encodable");
                return;
            }
        };
        line.push(b'\n');
        let mut file = match self.file.lock() {
            Ok(f) => f,
            Err(poisoned) => poisoned.into_inner(),
        };
        if let Err(error) = file.write_all(&line) {
            tracing::error!(%error, path = %self.path.display(), "audit write failed");
        }
    }
}
