//! The Redis backend of the write probe over RESP (the `redis` crate): `set` writes one
//! key per write, `list` RPUSHes to one list per run, `stream` XADDs to one stream per
//! run. A multiplexed connection per worker, replaced after any connection error.

use std::time::Instant;

use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, Client, ErrorKind, RedisError, Value};
use tokio::time::timeout_at;

use crate::experiment::spec::{RedisMode, RedisWriteSpec};
use crate::experiment::template::key;
use crate::probe::Outcome;

/// Entries per LRANGE/XRANGE read and keys per UNLINK: one bounded reply each.
pub const PAGE: u64 = 1000;

/// One Redis write probe's backend.
#[derive(Debug, Clone)]
pub struct RedisBackend {
    client: Client,
    pub mode: RedisMode,
    pub url: String,
}

/// Where a paged read of a list or stream goes on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cursor {
    /// LRANGE from this index.
    Index(u64),
    /// XRANGE from this id (`-` for the start, `(id` for after an id).
    After(String),
}

impl RedisBackend {
    pub fn from_spec(spec: &RedisWriteSpec) -> Result<Self, String> {
        let client = Client::open(spec.url.as_str())
            .map_err(|e| format!("redis.url `{}`: {e}", spec.url))?;
        Ok(RedisBackend {
            client,
            mode: spec.mode.unwrap_or_default(),
            url: spec.url.clone(),
        })
    }

    /// The worker's connection, opened if it has none.
    async fn conn(
        &self,
        slot: &mut Option<MultiplexedConnection>,
        deadline: Instant,
    ) -> Result<MultiplexedConnection, RedisError> {
        if let Some(c) = slot {
            return Ok(c.clone());
        }
        // Deadlines are ours (`timeout_at` around every call), not the crate's defaults.
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(None)
            .set_response_timeout(None);
        let open = self
            .client
            .get_multiplexed_async_connection_with_config(&config);
        match timeout_at(tokio::time::Instant::from_std(deadline), open).await {
            Ok(Ok(c)) => Ok(slot.insert(c).clone()),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(RedisError::from(std::io::Error::from(
                std::io::ErrorKind::TimedOut,
            ))),
        }
    }

    /// Run `cmd` before `deadline`; a connection error drops the connection.
    async fn query<T: redis::FromRedisValue>(
        &self,
        slot: &mut Option<MultiplexedConnection>,
        cmd: &redis::Cmd,
        deadline: Instant,
    ) -> Result<T, RedisError> {
        let mut conn = self.conn(slot, deadline).await?;
        let at = tokio::time::Instant::from_std(deadline);
        let result = match timeout_at(at, cmd.query_async::<T>(&mut conn)).await {
            Ok(r) => r,
            Err(_) => Err(RedisError::from(std::io::Error::from(
                std::io::ErrorKind::TimedOut,
            ))),
        };
        if let Err(e) = &result {
            if e.is_io_error() || e.is_connection_dropped() || e.is_unrecoverable_error() {
                *slot = None;
            }
        }
        result
    }

    /// One write; acknowledged when Redis replies without an error.
    pub async fn write(
        &self,
        slot: &mut Option<MultiplexedConnection>,
        run: &str,
        seq: u64,
        deadline: Instant,
    ) -> Outcome {
        let cmd = match self.mode {
            RedisMode::Set => redis::cmd("SET").arg(key(run, seq)).arg(seq).clone(),
            RedisMode::List => redis::cmd("RPUSH").arg(run).arg(seq).clone(),
            RedisMode::Stream => redis::cmd("XADD")
                .arg(run)
                .arg("*")
                .arg("seq")
                .arg(seq)
                .clone(),
        };
        match self.query::<Value>(slot, &cmd, deadline).await {
            Ok(_) => Outcome::Ok,
            Err(e) => outcome(&e),
        }
    }

    /// `set` mode: does key `seq` hold its write?
    pub async fn read_key(
        &self,
        slot: &mut Option<MultiplexedConnection>,
        run: &str,
        seq: u64,
        deadline: Instant,
    ) -> Result<bool, String> {
        let cmd = redis::cmd("GET").arg(key(run, seq)).clone();
        let value: Option<String> = self
            .query(slot, &cmd, deadline)
            .await
            .map_err(|e| e.to_string())?;
        Ok(value.is_some_and(|v| v == seq.to_string()))
    }

    /// `list`/`stream` mode: the next page of entries in stored order (`None` at the end).
    pub async fn read_page(
        &self,
        slot: &mut Option<MultiplexedConnection>,
        run: &str,
        cursor: &mut Cursor,
        deadline: Instant,
    ) -> Result<Option<Vec<String>>, String> {
        match cursor {
            Cursor::Index(from) => {
                let cmd = redis::cmd("LRANGE")
                    .arg(run)
                    .arg(*from)
                    .arg(*from + PAGE - 1)
                    .clone();
                let page: Vec<String> = self
                    .query(slot, &cmd, deadline)
                    .await
                    .map_err(|e| e.to_string())?;
                *from += page.len() as u64;
                Ok((!page.is_empty()).then_some(page))
            }
            Cursor::After(id) => {
                let cmd = redis::cmd("XRANGE")
                    .arg(run)
                    .arg(id.as_str())
                    .arg("+")
                    .arg("COUNT")
                    .arg(PAGE)
                    .clone();
                let entries: Vec<(String, Vec<String>)> = self
                    .query(slot, &cmd, deadline)
                    .await
                    .map_err(|e| e.to_string())?;
                let Some((last, _)) = entries.last() else {
                    return Ok(None);
                };
                *id = format!("({last}");
                // Fields come as [name, value, ...]: the value after `seq`.
                let seqs = entries
                    .into_iter()
                    .map(|(_, fields)| {
                        fields
                            .chunks(2)
                            .find(|f| f[0] == "seq")
                            .and_then(|f| f.get(1).cloned())
                            .unwrap_or_default()
                    })
                    .collect();
                Ok(Some(seqs))
            }
        }
    }

    /// Where a paged read starts in this mode.
    pub fn first_page(&self) -> Cursor {
        match self.mode {
            RedisMode::Stream => Cursor::After("-".into()),
            _ => Cursor::Index(0),
        }
    }

    /// Delete writes `from..to` (`set`), or the run's list or stream (one request).
    pub async fn delete(
        &self,
        slot: &mut Option<MultiplexedConnection>,
        run: &str,
        from: u64,
        to: u64,
        deadline: Instant,
    ) -> Result<(), String> {
        let mut cmd = redis::cmd("UNLINK");
        match self.mode {
            RedisMode::Set => {
                for seq in from..to {
                    cmd.arg(key(run, seq));
                }
            }
            RedisMode::List | RedisMode::Stream => {
                cmd.arg(run);
            }
        }
        self.query::<Value>(slot, &cmd, deadline)
            .await
            .map(drop)
            .map_err(|e| e.to_string())
    }

    /// Reachable and answering: PING before `deadline`.
    pub async fn ping(&self, deadline: Instant) -> Result<(), String> {
        let mut slot = None;
        self.query::<Value>(&mut slot, &redis::cmd("PING"), deadline)
            .await
            .map(drop)
            .map_err(|e| e.to_string())
    }
}

/// Map a Redis error to the probe outcome with the same meaning as for HTTP.
fn outcome(e: &RedisError) -> Outcome {
    if e.is_connection_refusal() {
        Outcome::Refused
    } else if e.is_timeout() {
        Outcome::Timeout
    } else if e.is_connection_dropped() || e.is_io_error() {
        Outcome::Reset
    } else if matches!(e.kind(), ErrorKind::Server(_) | ErrorKind::Extension) {
        // The server answered with an error (LOADING, READONLY, OOM): a refused write.
        Outcome::Status
    } else {
        Outcome::Other
    }
}
