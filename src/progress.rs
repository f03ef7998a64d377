//! Live progress behind one small trait: the runner says what happens, a display (the
//! terminal's is in `cmd`) shows it, or nothing does ([`Quiet`]).

use std::time::Duration;

/// A snapshot of the run for the progress display.
#[derive(Debug, Clone, Default)]
pub struct LiveStatus {
    pub phase: String,
    pub elapsed: Duration,
    /// The earliest the run can end from where it is (planned faults, recovery's stable
    /// stretch, the final window), at most `total`.
    pub expected_end: Duration,
    /// The hard limit, `spec.duration`.
    pub total: Duration,
    /// Each probe over the current phase so far.
    pub probes: Vec<LiveProbe>,
    pub active_faults: Vec<String>,
}

/// One probe over the current phase so far.
#[derive(Debug, Clone, Default)]
pub struct LiveProbe {
    pub name: String,
    /// Ok / completed sends, none before the first completes.
    pub availability: Option<f64>,
    /// p99 of the ok responses in microseconds, none before the first.
    pub p99_us: Option<u64>,
}

impl LiveStatus {
    /// One line: phase, each probe's availability and p99 in this phase, the active faults.
    pub fn line(&self) -> String {
        let probes: Vec<String> = self
            .probes
            .iter()
            .map(|p| match (p.availability, p.p99_us) {
                (None, _) => format!("{} no responses yet", p.name),
                (Some(a), None) => format!("{} {:.2}%", p.name, a * 100.0),
                (Some(a), Some(p99)) => format!(
                    "{} {:.2}% p99 {}",
                    p.name,
                    a * 100.0,
                    crate::text::duration(Duration::from_micros(p99))
                ),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_probe_without_responses_says_so_instead_of_zero() {
        let status = LiveStatus {
            phase: "baseline".into(),
            probes: vec![
                LiveProbe {
                    name: "web".into(),
                    ..LiveProbe::default()
                },
                LiveProbe {
                    name: "db".into(),
                    availability: Some(0.5),
                    p99_us: None,
                },
                LiveProbe {
                    name: "api".into(),
                    availability: Some(0.9987),
                    p99_us: Some(1500),
                },
            ],
            active_faults: vec!["slow".into()],
            ..LiveStatus::default()
        };
        assert_eq!(
            status.line(),
            "baseline | web no responses yet | db 50.00% | api 99.87% p99 1.50ms | faults: slow"
        );
    }
}
