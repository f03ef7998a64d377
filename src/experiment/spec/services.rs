//! `spec.services`: local processes supervised for the run (the service under test).

use std::collections::BTreeMap;
use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use shakeout_api::Dur;

/// A local process supervised for the run (the service under test, usually).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ServiceSpec {
    pub name: String,
    /// Program and arguments (no shell). `${exe}` is the running shakeout binary.
    pub command: Vec<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    /// Working directory (default: the experiment file's directory).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cwd: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready: Option<ReadySpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restart: Option<RestartSpec>,
    /// Time between SIGTERM and SIGKILL when stopping (default 5s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_grace: Option<Dur>,
    /// Append everything the service prints (stdout and stderr, as written, no prefix) to
    /// this file, relative to the experiment file; created with mode 0644. The report keeps
    /// the last lines either way.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log: Option<String>,
}

/// When a service counts as started: exactly one of `http`, `tcp` or `command`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ReadySpec {
    /// A URL that must answer 2xx.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http: Option<String>,
    /// A `host:port` that must accept a connection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tcp: Option<String>,
    /// A command (no shell) that must exit 0, like `[pg_isready, -h, 127.0.0.1]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<Vec<String>>,
    /// Deadline for readiness (default 10s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub within: Option<Dur>,
}

/// What to do when a service exits during the run. Restarts back off: the n-th restart in
/// a row waits `delay` x 2^(n-1), at most `maxDelay`. A start that stays up for
/// `resetAfter` ends the streak. When a service that ran less than `resetAfter` exits after
/// `maxRestarts` restarts in a row, it is crash-looping: it is not restarted again and the
/// run's steady state fails.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RestartSpec {
    pub policy: RestartPolicy,
    /// Wait this long before the first restart of a streak (default 100ms; 0s: no wait
    /// and no backoff).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay: Option<Dur>,
    /// Longest wait between restarts (default 8 x `delay`, at most 30s, never below `delay`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_delay: Option<Dur>,
    /// Restarts in a row before a service that keeps exiting is declared crash-looping
    /// (default 5).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub max_restarts: Option<u32>,
    /// A start that stays up this long ends the streak and resets the backoff (default 10s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reset_after: Option<Dur>,
}

impl RestartSpec {
    /// `delay` when not given: systemd's `RestartSec` and Docker's first backoff step.
    pub const DEFAULT_DELAY: Duration = Duration::from_millis(100);
    /// `maxRestarts` when not given: systemd's `StartLimitBurst`.
    pub const DEFAULT_MAX_RESTARTS: u32 = 5;
    /// `resetAfter` when not given: Docker resets its backoff after 10 s up.
    pub const DEFAULT_RESET_AFTER: Duration = Duration::from_secs(10);
    /// The default `maxDelay` is at most this (Kubernetes caps at 5 min, for pods that
    /// run for days; an experiment runs for minutes).
    pub const MAX_DEFAULT_MAX_DELAY: Duration = Duration::from_secs(30);

    /// Wait before the first restart of a streak.
    pub fn delay(&self) -> Duration {
        self.delay.map_or(Self::DEFAULT_DELAY, |d| d.0)
    }

    /// Longest wait between two restarts.
    pub fn max_delay(&self) -> Duration {
        let delay = self.delay();
        self.max_delay
            .map(|d| d.0)
            .unwrap_or_else(|| (delay * 8).min(Self::MAX_DEFAULT_MAX_DELAY))
            .max(delay)
    }

    /// Restarts in a row before a service that keeps exiting is crash-looping.
    pub fn max_restarts(&self) -> u32 {
        self.max_restarts.unwrap_or(Self::DEFAULT_MAX_RESTARTS)
    }

    /// How long a start must stay up to end the streak.
    pub fn reset_after(&self) -> Duration {
        self.reset_after.map_or(Self::DEFAULT_RESET_AFTER, |d| d.0)
    }

    /// The wait before the `n`-th restart of a streak (1-based): `delay` doubled each
    /// time, at most `maxDelay`.
    pub fn backoff(&self, n: u32) -> Duration {
        let factor = 1u32.checked_shl(n.saturating_sub(1)).unwrap_or(u32::MAX);
        self.delay().saturating_mul(factor).min(self.max_delay())
    }
}

/// Restart policy of a supervised service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum RestartPolicy {
    Never,
    OnExit,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn restart(delay: Option<u64>, max_delay: Option<u64>) -> RestartSpec {
        RestartSpec {
            policy: RestartPolicy::OnExit,
            delay: delay.map(|ms| Dur(Duration::from_millis(ms))),
            max_delay: max_delay.map(|ms| Dur(Duration::from_millis(ms))),
            max_restarts: None,
            reset_after: None,
        }
    }

    fn waits(r: &RestartSpec, n: u32) -> Vec<u128> {
        (1..=n).map(|i| r.backoff(i).as_millis()).collect()
    }

    #[test]
    fn backoff_doubles_from_delay_up_to_max_delay() {
        assert_eq!(
            waits(&restart(None, None), 6),
            [100, 200, 400, 800, 800, 800]
        );
        assert_eq!(
            waits(&restart(Some(2000), None), 5),
            [2000, 4000, 8000, 16000, 16000]
        );
        assert_eq!(
            waits(&restart(Some(5000), None), 4),
            [5000, 10000, 20000, 30000]
        );
        assert_eq!(
            waits(&restart(Some(200), Some(500)), 4),
            [200, 400, 500, 500]
        );
        // No wait means no backoff; a cap below the delay is the delay.
        assert_eq!(waits(&restart(Some(0), None), 3), [0, 0, 0]);
        assert_eq!(waits(&restart(Some(60_000), None), 2), [60_000, 60_000]);
        assert_eq!(
            restart(Some(1), None).backoff(200),
            Duration::from_millis(8)
        );
    }
}
