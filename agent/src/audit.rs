//! The audit log (DESIGN.md §3.5): one JSON line per apply, renew, revert, expiry,
//! end, refusal and sweep, with who asked, from where, and what came of it. Append-only;
//! a line is written with one `write` call so concurrent requests never interleave
//! inside a line. The file is private (0600) and rotates by size (`audit.jsonl.1` …),
//! so neither a long life nor a flood of refusals fills the node's disk.

use std::borrow::Cow;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
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
    /// The caller's address (`ip:port`; a summary line names only the ip), for lines
    /// about HTTP requests.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub peer: Option<String>,
    /// On a summary line: how many requests it stands for (a plain line stands for one).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub count: Option<u64>,
    /// On a summary line: when the first of those requests came (RFC 3339, UTC).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub since: Option<String>,
}

/// RFC 3339 with milliseconds, UTC: the audit log's time format.
pub fn timestamp(at: SystemTime) -> String {
    humantime::format_rfc3339_millis(at).to_string()
}

impl Entry {
    /// A line with `-` in every who/what field; fill in what is known.
    pub fn new(action: Action, token: &str) -> Entry {
        Entry {
            time: timestamp(SystemTime::now()),
            token: token.to_string(),
            experiment: "-".into(),
            fault: "-".into(),
            fault_id: "-".into(),
            target: "-".into(),
            action,
            result: "ok",
            code: None,
            message: None,
            peer: None,
            count: None,
            since: None,
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

    /// The caller's address, when the line is about an HTTP request.
    pub fn peer(mut self, peer: Option<std::net::SocketAddr>) -> Entry {
        self.peer = peer.map(|p| p.to_string());
        self
    }
}

/// `text` cut to at most `max` bytes on a char boundary; a cut text ends with
/// `…[N bytes]`, N being the original length, so a reader knows it was cut and by how
/// much. What a caller sends (a path, a method) goes through this before it is logged.
pub fn clip(text: &str, max: usize) -> Cow<'_, str> {
    if text.len() <= max {
        return Cow::Borrowed(text);
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    Cow::Owned(format!("{}…[{} bytes]", &text[..end], text.len()))
}

/// When the audit log rotates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rotation {
    /// The live file is renamed `FILE.1` before a line would take it past this size.
    pub max_size: u64,
    /// Rotated files kept (`FILE.1` newest … `FILE.N` oldest); older ones are deleted.
    pub keep: usize,
}

impl Default for Rotation {
    fn default() -> Self {
        Rotation {
            max_size: 64 * 1024 * 1024,
            keep: 5,
        }
    }
}

/// The open file and how much is in it.
#[derive(Debug)]
struct Live {
    file: File,
    size: u64,
}

/// The audit file.
#[derive(Debug)]
pub struct Audit {
    path: PathBuf,
    rotation: Rotation,
    live: Mutex<Live>,
}

/// Open `path` for appending, created 0600. A file left group- or world-readable by an
/// older agent is narrowed to 0600: the log names tokens and callers.
fn open_private(path: &Path) -> std::io::Result<File> {
    let file = OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)?;
    let mode = file.metadata()?.permissions().mode();
    if mode & 0o077 != 0 {
        file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    }
    Ok(file)
}

impl Audit {
    /// Open for appending (created 0600 if missing, its directory 0700).
    pub fn open(path: &Path, rotation: Rotation) -> std::io::Result<Audit> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            crate::ledger::create_private_dir(parent)?;
        }
        let file = open_private(path)?;
        let size = file.metadata()?.len();
        Ok(Audit {
            path: path.to_path_buf(),
            rotation,
            live: Mutex::new(Live { file, size }),
        })
    }

    /// Its path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The encoded line for `entry` (newline included), to know its size before writing.
    pub fn encode(entry: &Entry) -> Option<Vec<u8>> {
        match serde_json::to_vec(entry) {
            Ok(mut line) => {
                line.push(b'\n');
                Some(line)
            }
            Err(error) => {
                tracing::error!(%error, "audit entry not encodable");
                None
            }
        }
    }

    /// Append a line. Failing to audit is logged, not fatal: refusing to revert a fault
    /// because the audit disk is full would be the worse outcome.
    pub fn record(&self, entry: Entry) {
        if let Some(line) = Audit::encode(&entry) {
            self.append(&line);
        }
    }

    /// Append an encoded line (from `encode`), rotating first if it would not fit.
    pub fn append(&self, line: &[u8]) {
        let mut live = match self.live.lock() {
            Ok(l) => l,
            Err(poisoned) => poisoned.into_inner(),
        };
        if live.size > 0 && live.size + line.len() as u64 > self.rotation.max_size {
            match self.rotate() {
                Ok(file) => *live = Live { file, size: 0 },
                // Keep writing to the old file: a log past its size beats a lost line.
                Err(error) => {
                    tracing::error!(%error, path = %self.path.display(), "audit rotation failed")
                }
            }
        }
        match live.file.write_all(line) {
            Ok(()) => live.size += line.len() as u64,
            Err(error) => {
                tracing::error!(%error, path = %self.path.display(), "audit write failed")
            }
        }
    }

    /// `FILE.(k-1)` → `FILE.k` down to `FILE` → `FILE.1` (the oldest beyond `keep`
    /// deleted), then a fresh `FILE`. Renames only: a reader holding the old file open
    /// reads it to its end, whole lines.
    fn rotate(&self) -> std::io::Result<File> {
        let numbered = |n: usize| {
            let mut name = self.path.as_os_str().to_owned();
            name.push(format!(".{n}"));
            PathBuf::from(name)
        };
        let keep = self.rotation.keep;
        match std::fs::remove_file(numbered(keep.max(1))) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
        for n in (1..keep).rev() {
            match std::fs::rename(numbered(n), numbered(n + 1)) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
        }
        if keep == 0 {
            std::fs::remove_file(&self.path)?;
        } else {
            std::fs::rename(&self.path, numbered(1))?;
        }
        open_private(&self.path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clip_cuts_on_a_char_boundary_and_says_so() {
        assert_eq!(clip("/v1/faults", 128), "/v1/faults");
        let long = format!("/{}", "a".repeat(300));
        let cut = clip(&long, 128);
        assert!(cut.starts_with(&long[..128]), "{cut}");
        assert!(cut.ends_with("…[301 bytes]"), "{cut}");
        // 'é' is two bytes: a cut inside it backs off to the boundary before.
        let accents = "é".repeat(100);
        let cut = clip(&accents, 5);
        assert_eq!(cut, "éé…[200 bytes]");
    }

    #[test]
    fn rotates_by_size_keeps_n_files_all_private() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        let audit = Audit::open(
            &path,
            Rotation {
                max_size: 1000,
                keep: 2,
            },
        )
        .unwrap();
        for i in 0..100 {
            audit.record(Entry::new(Action::Refuse, &format!("t{i}")));
        }
        let mut names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(names, ["audit.jsonl", "audit.jsonl.1", "audit.jsonl.2"]);
        for name in &names {
            let p = dir.path().join(name);
            let meta = std::fs::metadata(&p).unwrap();
            assert!(meta.len() <= 1000, "{name}: {} bytes", meta.len());
            assert_eq!(meta.permissions().mode() & 0o777, 0o600, "{name}");
            for line in std::fs::read_to_string(&p).unwrap().lines() {
                serde_json::from_str::<serde_json::Value>(line).unwrap();
            }
        }
        let last = std::fs::read_to_string(&path).unwrap();
        assert!(last.lines().last().unwrap().contains("\"t99\""), "{last}");
    }
}
