//! Live progress on stderr: an indicatif bar on a TTY, plain timestamped lines otherwise
//! (CI logs), nothing with `--quiet`.

use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

use crate::progress::{LiveStatus, Progress, Quiet};

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
