//! Live progress behind one small trait: the runner says what happens, a display (the
//! terminal's is in `cmd`) shows it, or nothing does ([`Quiet`]).

use std::time::Duration;

/// A snapshot of the run for the progress display.
#[derive(Debug, Clone, Default)]
pub struct LiveStatus {
    pub phase: String,
    pub elapsed: Duration,
    pub total: Duration,
    /// (probe name, availability so far, p99 so far in microseconds)
    pub probes: Vec<(String, Option<f64>, u64)>,
    pub active_faults: Vec<String>,
}

impl LiveStatus {
    /// One line: phase, each probe's availability and p99 so far, the active faults.
    pub fn line(&self) -> String {
        let probes: Vec<String> = self
            .probes
            .iter()
            .map(|(name, avail, p99)| {
                let a = avail
                    .map(|a| format!("{:.2}%", a * 100.0))
                    .unwrap_or_else(|| "-".into());
                format!(
                    "{name} {a} p99 {}",
                    crate::text::duration(Duration::from_micros(*p99))
                )
            })
            .collect();
        let faults = if self.active_faults.is_empty() {
            String::new()
        } else {
            format!(" | faults: {}", self.active_faults.join(", "))
        };
        format!("{} | {}{}", self.phase, probes.join(" | "), faults)
    }
}

/// Where progress goes.
pub trait Progress: Send + Sync {
    /// The run's live state changed (called a few times a second).
    fn update(&self, status: &LiveStatus);
    /// Something happened worth a line of its own (fault applied, service restarted).
    fn event(&self, at_secs: f64, message: &str);
    /// The run is over; clear the bar.
    fn finish(&self);
}

/// `--quiet`.
pub struct Quiet;

impl Progress for Quiet {
    fn update(&self, _: &LiveStatus) {}
    fn event(&self, _: f64, _: &str) {}
    fn finish(&self) {}
}
