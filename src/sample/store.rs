//! The sample service's key-value store with a known durability: `sync` acknowledges a
//! write only after it is on disk (fsync, group-committed), `flush:DUR` acknowledges from
//! memory and writes + fsyncs on ticks every DUR — so a SIGKILL loses the writes
//! acknowledged since the last tick (at most DUR). The log is JSON lines, replayed at start; keys keep their insertion order so a
//! `list` read shows duplicates and reordering.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;

/// When an acknowledged write reaches the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// Before the acknowledgement.
    Sync,
    /// Within this interval after it (acknowledged from memory).
    Flush(Duration),
}

impl FromStr for Durability {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if s == "sync" {
            return Ok(Durability::Sync);
        }
        let every = s
            .strip_prefix("flush:")
            .ok_or_else(|| format!("`{s}`: use `sync` or `flush:DURATION`, like flush:100ms"))?;
        let d: shakeout_api::Dur = every.parse().map_err(|e: shakeout_api::UnitError| e.0)?;
        if d.0.is_zero() {
            return Err("the flush interval must be above 0".into());
        }
        Ok(Durability::Flush(d.0))
    }
}

#[derive(Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "lowercase")]
enum Record {
    Put { k: String, v: String },
    Del { k: String },
}

/// A line for the writer thread, with whom to tell when it is on disk (sync mode).
struct Pending {
    line: String,
    done: Option<oneshot::Sender<()>>,
}

#[derive(Default)]
struct Memory {
    values: HashMap<String, String>,
    /// Keys in the order their puts happened (a key put twice appears twice).
    order: Vec<String>,
}

/// The store: memory for reads, a writer thread for the log.
pub struct Store {
    memory: Mutex<Memory>,
    log: Option<(mpsc::Sender<Pending>, Durability)>,
}

impl Store {
    /// An in-memory store (no data dir): nothing survives a restart.
    pub fn in_memory() -> Arc<Store> {
        Arc::new(Store {
            memory: Mutex::default(),
            log: None,
        })
    }

    /// Open (and replay) `dir/kv.log`, then start the writer thread.
    pub fn open(dir: &Path, durability: Durability) -> Result<Arc<Store>, String> {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let path = dir.join("kv.log");
        let mut memory = Memory::default();
        if let Ok(file) = File::open(&path) {
            for line in BufReader::new(file).lines() {
                let Ok(line) = line else { break };
                // A torn last line (crash mid-write) is where the log ends.
                match serde_json::from_str::<Record>(&line) {
                    Ok(Record::Put { k, v }) => {
                        memory.order.push(k.clone());
                        memory.values.insert(k, v);
                    }
                    Ok(Record::Del { k }) => {
                        memory.values.remove(&k);
                        memory.order.retain(|x| x != &k);
                    }
                    Err(_) => break,
                }
            }
        }
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        // Flush ticks run from a fixed origin, recorded before the service answers anything.
        let origin = std::time::Instant::now();
        if let Durability::Flush(_) = durability {
            let unix_ms = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_millis())
                .unwrap_or(0);
            // One line per start, appended: after a crash and restart the first
            // instance's ticks are still known (that is when its writes were lost).
            let origin_file = dir.join("flush.origin");
            OpenOptions::new()
                .create(true)
                .append(true)
                .open(&origin_file)
                .and_then(|mut f| f.write_all(format!("{unix_ms}\n").as_bytes()))
                .map_err(|e| format!("{}: {e}", origin_file.display()))?;
        }
        let (tx, rx) = mpsc::channel();
        std::thread::Builder::new()
            .name("kv-writer".into())
            .spawn(move || writer(file, path, rx, durability, origin))
            .map_err(|e| e.to_string())?;
        Ok(Arc::new(Store {
            memory: Mutex::new(memory),
            log: Some((tx, durability)),
        }))
    }

    fn memory(&self) -> std::sync::MutexGuard<'_, Memory> {
        self.memory.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Log a record; in sync mode, return once it is on disk.
    async fn append(&self, record: &Record) -> Result<(), String> {
        let Some((tx, durability)) = &self.log else {
            return Ok(());
        };
        let line = serde_json::to_string(record).map_err(|e| e.to_string())?;
        match durability {
            Durability::Sync => {
                let (done, wait) = oneshot::channel();
                tx.send(Pending {
                    line,
                    done: Some(done),
                })
                .map_err(|_| "log writer stopped")?;
                wait.await.map_err(|_| "log write failed".to_string())
            }
            Durability::Flush(_) => tx
                .send(Pending { line, done: None })
                .map_err(|_| "log writer stopped".into()),
        }
    }

    pub async fn put(&self, key: &str, value: &str) -> Result<(), String> {
        self.append(&Record::Put {
            k: key.into(),
            v: value.into(),
        })
        .await?;
        let mut m = self.memory();
        m.order.push(key.to_owned());
        m.values.insert(key.to_owned(), value.to_owned());
        Ok(())
    }

    pub fn get(&self, key: &str) -> Option<String> {
        self.memory().values.get(key).cloned()
    }

    /// Remove a key; false when it was not there.
    pub async fn delete(&self, key: &str) -> Result<bool, String> {
        if !self.memory().values.contains_key(key) {
            return Ok(false);
        }
        self.append(&Record::Del { k: key.into() }).await?;
        let mut m = self.memory();
        m.values.remove(key);
        m.order.retain(|x| x != key);
        Ok(true)
    }

    /// Keys starting with `prefix`, in the order they were put.
    pub fn list(&self, prefix: &str) -> Vec<String> {
        self.memory()
            .order
            .iter()
            .filter(|k| k.starts_with(prefix))
            .cloned()
            .collect()
    }
}

/// The writer thread. Sync mode writes and fsyncs every batch it finds waiting (group
/// commit) before acknowledging it. Flush mode writes whatever is waiting on ticks every
/// interval from a fixed origin, recorded in `flush.origin` (unix ms) beside the log, so
/// what a crash loses is known exactly: the writes acknowledged since the last tick.
fn writer(
    mut file: File,
    path: PathBuf,
    rx: mpsc::Receiver<Pending>,
    durability: Durability,
    origin: std::time::Instant,
) {
    let every = match durability {
        Durability::Sync => None,
        Durability::Flush(every) => Some((origin, every)),
    };
    let mut tick: u32 = 0;
    loop {
        let batch: Vec<Pending> = match every {
            None => match rx.recv() {
                Ok(first) => std::iter::once(first).chain(rx.try_iter()).collect(),
                Err(_) => return,
            },
            Some((origin, every)) => {
                tick += 1;
                let due = origin + every * tick;
                if let Some(wait) = due.checked_duration_since(std::time::Instant::now()) {
                    std::thread::sleep(wait);
                }
                rx.try_iter().collect()
            }
        };
        if batch.is_empty() {
            continue;
        }
        let mut text = String::new();
        for p in &batch {
            text.push_str(&p.line);
            text.push('\n');
        }
        let written = file
            .write_all(text.as_bytes())
            .and_then(|()| file.sync_data());
        if let Err(e) = &written {
            tracing::error!(path = %path.display(), error = %e, "sample-service: write failed");
        }
        for p in batch {
            if let (Some(done), true) = (p.done, written.is_ok()) {
                let _ = done.send(());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn sync_writes_survive_a_reopen_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), Durability::Sync).unwrap();
        store.put("run-1", "1").await.unwrap();
        store.put("run-2", "2").await.unwrap();
        store.put("run-1", "1").await.unwrap();
        assert!(store.delete("run-2").await.unwrap());
        let again = Store::open(dir.path(), Durability::Sync).unwrap();
        assert_eq!(again.list("run-"), vec!["run-1", "run-1"]);
        assert_eq!(again.get("run-1").as_deref(), Some("1"));
        assert_eq!(again.get("run-2"), None);
    }

    #[test]
    fn durability_parses() {
        assert_eq!("sync".parse::<Durability>().unwrap(), Durability::Sync);
        assert_eq!(
            "flush:100ms".parse::<Durability>().unwrap(),
            Durability::Flush(Duration::from_millis(100))
        );
        assert!("flush:0s".parse::<Durability>().is_err());
        assert!("fast"
            .parse::<Durability>()
            .unwrap_err()
            .contains("flush:100ms"));
    }
}
