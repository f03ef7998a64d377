//! Live progress on stderr behind one small trait: an indicatif bar on a TTY, plain
//! timestamped lines otherwise (CI logs), nothing with `--quiet`.

use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

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
    fn line(&self) -> String {
        let probes: Vec<String> = self
            .probes
            .iter()
            .map(|(name, avail, p99)| {
                let a = avail
                    .map(|a| format!("{:.2}%", a * 100.0))
                    .unwrap_or_else(|| "-".into());
                format!("{name} {a} p99 {}", fmt_us(*p99))
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

fn fmt_us(us: u64) -> String {
    if us >= 1000 {
        format!("{:.1}ms", us as f64 / 1000.0)
    } else {
        format!("{us}us")
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

/// Pick the display: silent, a bar on a terminal, or plain lines.
pub fn for_terminal(quiet: bool) -> Box<dyn Progress> {
    if quiet {
        Box::new(Quiet)
    } else if std::io::stderr().is_terminal() {
        Box::new(Bar::new())
    } else {
        Box::new(Plain {
            last: Mutex::new(None),
        })
    }
}

/// `--quiet`.
pub struct Quiet;

impl Progress for Quiet {
    fn update(&self, _: &LiveStatus) {}
    fn event(&self, _: f64, _: &str) {}
    fn finish(&self) {}
}

/// Plain timestamped lines, one every few seconds, for logs.
pub struct Plain {
    last: Mutex<Option<Instant>>,
}

const PLAIN_EVERY: Duration = Duration::from_secs(5);

impl Progress for Plain {
    fn update(&self, status: &LiveStatus) {
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        if last.is_some_and(|t| t.elapsed() < PLAIN_EVERY) {
            return;
        }
        *last = Some(Instant::now());
        eprintln!(
            "[{:>7.1}s/{:.0}s] {}",
            status.elapsed.as_secs_f64(),
            status.total.as_secs_f64(),
            status.line()
        );
    }
    fn event(&self, at_secs: f64, message: &str) {
        eprintln!("[{at_secs:>7.1}s] {message}");
    }
    fn finish(&self) {}
}

/// An indicatif bar: elapsed/total, phase, live availability and p99, active faults.
pub struct Bar {
    bar: ProgressBar,
}

impl Bar {
    fn new() -> Self {
        let bar = ProgressBar::new(1000);
        let style = ProgressStyle::with_template("{spinner} [{elapsed_precise}] {bar:30} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar());
        bar.set_style(style);
        bar.enable_steady_tick(Duration::from_millis(200));
        Bar { bar }
    }
}

impl Progress for Bar {
    fn update(&self, status: &LiveStatus) {
        let total = status.total.as_secs_f64().max(0.001);
        self.bar
            .set_position(((status.elapsed.as_secs_f64() / total) * 1000.0).min(1000.0) as u64);
        self.bar.set_message(status.line());
    }
    fn event(&self, at_secs: f64, message: &str) {
        self.bar.println(format!("[{at_secs:>7.1}s] {message}"));
    }
    fn finish(&self) {
        self.bar.finish_and_clear();
    }
}
