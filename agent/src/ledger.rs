//! The on-disk ledger (DESIGN.md §3.2): one JSON file per fault in `STATE_DIR/ledger/`,
//! written and fsynced BEFORE the fault is applied and removed after it is reverted, so
//! an agent killed at any instant leaves a record the next start-up sweep can undo.
//! Writes are atomic (temp file, fsync, rename, fsync the directory). Files are 0600
//! and directories the agent creates 0700: a record names the processes it stopped.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize, Serializer};
use shakeout_api::{FaultSpec, NetworkFault};

use crate::fault::net::NetRecord;

/// Ledger I/O errors; they carry the file they concern.
#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    #[error("ledger {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("ledger {path}: {source}")]
    Encode {
        path: String,
        source: serde_json::Error,
    },
}

/// A process the agent paused, as the ledger records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PausedPid {
    pub pid: u32,
    /// `/proc/PID/stat` field 22 when it was paused.
    pub start_time: u64,
}

/// What the agent did (or is about to do) for a fault: enough to undo it after a crash.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum Done {
    /// Processes being (or already) stopped with SIGSTOP.
    Paused { pids: Vec<PausedPid> },
    /// A network fault whose mechanism had not answered yet, as agents wrote it before
    /// `Net::prepare` existed; still read, so their ledgers sweep. The sweep's
    /// tagged-rule clean-up covers whatever it may have installed.
    NetPending,
    /// A network fault as `Net::prepare` recorded it, written before `Net::install`
    /// touches anything (reverting it when nothing was installed yet is a no-op).
    Net { applied: NetRecord },
}

/// One ledger file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Record {
    pub id: String,
    pub owner: String,
    pub experiment: String,
    pub fault: String,
    /// The fault as asked for; on disk without a network `seed` (see [`spec_any_agent_reads`]).
    #[serde(serialize_with = "spec_any_agent_reads")]
    pub spec: FaultSpec,
    pub applied_unix_ms: u64,
    pub ends_unix_ms: u64,
    pub done: Done,
}

/// `spec` as every agent version reads it. Agents from before the network `seed` field
/// refuse a spec with a field they do not know, so they would set such a record aside
/// instead of reverting its fault; a revert does not need the seed, so it is left out.
fn spec_any_agent_reads<S: Serializer>(spec: &FaultSpec, s: S) -> Result<S::Ok, S::Error> {
    match spec {
        FaultSpec::Network(n) if n.seed.is_some() => FaultSpec::Network(NetworkFault {
            seed: None,
            ..n.clone()
        })
        .serialize(s),
        _ => spec.serialize(s),
    }
}

/// The ledger directory.
#[derive(Debug, Clone)]
pub struct Ledger {
    dir: PathBuf,
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> LedgerError + '_ {
    move |source| LedgerError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// Create `dir` and any missing parents with mode 0700; an existing one is left as it is.
pub fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

impl Ledger {
    /// Open (create) `state_dir/ledger`.
    pub fn open(state_dir: &Path) -> Result<Ledger, LedgerError> {
        let dir = state_dir.join("ledger");
        create_private_dir(&dir).map_err(io_err(&dir))?;
        Ok(Ledger { dir })
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn path(&self, id: &str) -> PathBuf {
        self.dir.join(format!("{id}.json"))
    }

    /// Write (or replace) a record durably.
    pub fn write(&self, record: &Record) -> Result<(), LedgerError> {
        let path = self.path(&record.id);
        let tmp = self.dir.join(format!(".{}.tmp", record.id));
        let bytes = serde_json::to_vec_pretty(record).map_err(|source| LedgerError::Encode {
            path: path.display().to_string(),
            source,
        })?;
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(io_err(&tmp))?;
        file.write_all(&bytes).map_err(io_err(&tmp))?;
        file.sync_all().map_err(io_err(&tmp))?;
        fs::rename(&tmp, &path).map_err(io_err(&path))?;
        self.sync_dir()
    }

    /// Remove a record; a missing one is fine (revert is idempotent).
    pub fn remove(&self, id: &str) -> Result<(), LedgerError> {
        let path = self.path(id);
        match fs::remove_file(&path) {
            Ok(()) => self.sync_dir(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_err(&path)(e)),
        }
    }

    /// The rename or unlink is only durable once the directory itself is synced.
    fn sync_dir(&self) -> Result<(), LedgerError> {
        File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(io_err(&self.dir))
    }

    /// Every record, plus a message per unreadable file. A corrupt file is renamed to
    /// `*.corrupt` (kept for a human, reported once) instead of stopping the agent.
    pub fn load(&self) -> (Vec<Record>, Vec<String>) {
        let mut records = Vec::new();
        let mut errors = Vec::new();
        let entries = match fs::read_dir(&self.dir) {
            Ok(e) => e,
            Err(e) => return (records, vec![format!("ledger {}: {e}", self.dir.display())]),
        };
        let mut paths: Vec<PathBuf> = entries.filter_map(|e| Some(e.ok()?.path())).collect();
        paths.sort();
        for path in paths {
            let name = path
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default();
            if name.starts_with('.') && name.ends_with(".tmp") {
                // A write that never reached its rename: the fault was not applied yet.
                let _ = fs::remove_file(&path);
                continue;
            }
            if !name.ends_with(".json") {
                continue;
            }
            let parsed = fs::read(&path)
                .map_err(|e| e.to_string())
                .and_then(|b| serde_json::from_slice::<Record>(&b).map_err(|e| e.to_string()));
            match parsed {
                Ok(r) => records.push(r),
                Err(e) => {
                    let aside = path.with_extension("corrupt");
                    let _ = fs::rename(&path, &aside);
                    errors.push(format!(
                        "ledger entry {} unreadable ({e}); moved to {}",
                        path.display(),
                        aside.display()
                    ));
                }
            }
        }
        (records, errors)
    }
}

#[cfg(test)]
mod tests {
    use shakeout_api::{ProcessAction, ProcessFault, ProcessTarget};

    use super::*;

    fn record(id: &str) -> Record {
        Record {
            id: id.into(),
            owner: "ci".into(),
            experiment: "e".into(),
            fault: "f".into(),
            spec: FaultSpec::Process(ProcessFault {
                target: ProcessTarget {
                    pid: Some(42),
                    ..Default::default()
                },
                action: ProcessAction::Pause,
                select: None,
                seed: None,
            }),
            applied_unix_ms: 1,
            ends_unix_ms: 2,
            done: Done::Paused {
                pids: vec![PausedPid {
                    pid: 42,
                    start_time: 7,
                }],
            },
        }
    }

    #[test]
    fn write_load_remove_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let ledger = Ledger::open(dir.path()).unwrap();
        ledger.write(&record("a")).unwrap();
        ledger.write(&record("b")).unwrap();
        let (records, errors) = ledger.load();
        assert!(errors.is_empty());
        assert_eq!(records, vec![record("a"), record("b")]);
        ledger.remove("a").unwrap();
        ledger.remove("a").unwrap();
        assert_eq!(ledger.load().0, vec![record("b")]);
    }

    #[test]
    fn records_are_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let ledger = Ledger::open(&dir.path().join("state")).unwrap();
        ledger.write(&record("a")).unwrap();
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&ledger.dir().join("a.json")), 0o600);
        assert_eq!(mode(ledger.dir()), 0o700);
        assert_eq!(mode(&dir.path().join("state")), 0o700);
    }

    fn fixtures() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/ledger")
    }

    fn fixture(name: &str) -> serde_json::Value {
        serde_json::from_slice(&fs::read(fixtures().join(name)).unwrap()).unwrap()
    }

    #[test]
    fn ledgers_of_this_and_older_agents_load() {
        let dir = tempfile::tempdir().unwrap();
        let ledger = Ledger::open(dir.path()).unwrap();
        let mut names = Vec::new();
        for entry in fs::read_dir(fixtures()).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "json") {
                fs::copy(&path, ledger.dir().join(path.file_name().unwrap())).unwrap();
                names.push(path);
            }
        }
        let (records, errors) = ledger.load();
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(records.len(), names.len());
        let count = |f: fn(&Done) -> bool| records.iter().filter(|r| f(&r.done)).count();
        assert_eq!(count(|d| matches!(d, Done::Paused { .. })), 1);
        assert_eq!(count(|d| matches!(d, Done::NetPending)), 1);
        assert_eq!(count(|d| matches!(d, Done::Net { .. })), names.len() - 2);
    }

    #[test]
    fn todays_records_are_written_back_as_the_same_json() {
        let dir = tempfile::tempdir().unwrap();
        let ledger = Ledger::open(dir.path()).unwrap();
        for name in [
            "paused.json",
            "nftables-loss.json",
            "nftables-blackhole.json",
            "nfqueue-iptables.json",
            "nfqueue-nft-queue.json",
            "netem.json",
        ] {
            let before = fixture(name);
            let record: Record = serde_json::from_value(before.clone()).unwrap();
            ledger.write(&record).unwrap();
            let written = fs::read(ledger.dir().join(format!("{}.json", record.id))).unwrap();
            let after: serde_json::Value = serde_json::from_slice(&written).unwrap();
            assert_eq!(after, before, "{name}");
        }
    }

    #[test]
    fn a_network_seed_stays_out_of_the_ledger_so_older_agents_read_it() {
        let dir = tempfile::tempdir().unwrap();
        let ledger = Ledger::open(dir.path()).unwrap();
        let mut record: Record = serde_json::from_value(fixture("nftables-loss.json")).unwrap();
        let FaultSpec::Network(net) = &mut record.spec else {
            panic!("{record:?}")
        };
        net.seed = Some(42);
        ledger.write(&record).unwrap();
        let written = fs::read(ledger.dir().join(format!("{}.json", record.id))).unwrap();
        let written: serde_json::Value = serde_json::from_slice(&written).unwrap();
        assert_eq!(written, fixture("nftables-loss.json"));
        let (loaded, _) = ledger.load();
        assert!(matches!(&loaded[0].spec, FaultSpec::Network(n) if n.seed.is_none()));
        // A process fault's seed is as old as process faults: it stays.
        ledger.write(&record_with_seed()).unwrap();
        let written = fs::read(ledger.dir().join("seeded.json")).unwrap();
        assert!(String::from_utf8(written).unwrap().contains("\"seed\": 9"));
    }

    fn record_with_seed() -> Record {
        let mut r = record("seeded");
        if let FaultSpec::Process(p) = &mut r.spec {
            p.seed = Some(9);
        }
        r
    }

    #[test]
    fn a_record_that_lacks_what_a_revert_needs_is_named_and_kept_aside() {
        let dir = tempfile::tempdir().unwrap();
        let ledger = Ledger::open(dir.path()).unwrap();
        let mut netem = fixture("netem.json");
        let detail = &mut netem["done"]["applied"]["detail"];
        detail.as_object_mut().unwrap().remove("devices");
        fs::write(
            ledger.dir().join("f-0b9d3c2e1f4a5867.json"),
            netem.to_string(),
        )
        .unwrap();
        let (records, errors) = ledger.load();
        assert!(records.is_empty());
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(
            errors[0].contains("f-0b9d3c2e1f4a5867.json")
                && errors[0].contains("missing field `devices`"),
            "{errors:?}"
        );
        assert!(ledger.dir().join("f-0b9d3c2e1f4a5867.corrupt").exists());
    }

    #[test]
    fn corrupt_entry_is_reported_once_and_kept_aside() {
        let dir = tempfile::tempdir().unwrap();
        let ledger = Ledger::open(dir.path()).unwrap();
        ledger.write(&record("good")).unwrap();
        std::fs::write(ledger.dir().join("bad.json"), b"{not json").unwrap();
        std::fs::write(ledger.dir().join(".half.tmp"), b"{").unwrap();
        let (records, errors) = ledger.load();
        assert_eq!(records.len(), 1);
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(errors[0].contains("bad.json"));
        assert!(ledger.dir().join("bad.corrupt").exists());
        assert!(!ledger.dir().join(".half.tmp").exists());
        assert!(ledger.load().1.is_empty(), "reported once");
    }
}
