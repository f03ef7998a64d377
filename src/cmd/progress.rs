//! Live progress on stderr: an indicatif bar on a TTY, plain timestamped lines otherwise
//! (CI logs), nothing with `--quiet`. Log lines (`-v`) go through the bar, so no stale
//! frame is left between them.

use std::io::{IsTerminal, Write};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::progress::{LiveStatus, Progress, Quiet};

/// The bar on screen, if any: log lines are printed above it instead of through it.
static ACTIVE: Mutex<Option<ProgressBar>> = Mutex::new(None);

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

/// `[elapsed/expected]`, and the hard limit when the run may go past what is expected.
fn clock(status: &LiveStatus) -> String {
    let elapsed = status.elapsed.as_secs_f64();
    let expected = status.expected_end.as_secs_f64();
    if status.expected_end < status.total {
        format!("{elapsed:>6.1}s/~{expected:.0}s")
    } else {
        format!("{elapsed:>6.1}s/{expected:.0}s")
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
        eprintln!("[{}] {}", clock(status), status.line());
    }
    fn event(&self, at_secs: f64, message: &str) {
        eprintln!("[{at_secs:>7.1}s] {message}");
    }
    fn finish(&self) {}
}

/// An indicatif bar: elapsed of the expected length, phase, the phase's availability and
/// p99 per probe, active faults; cut to the terminal's width.
pub struct Bar {
    bar: ProgressBar,
}

/// Milliseconds: the bar's unit, so its length can follow the expected end.
fn millis(d: Duration) -> u64 {
    d.as_millis().min(u128::from(u64::MAX)) as u64
}

impl Bar {
    fn new() -> Self {
        let bar = ProgressBar::with_draw_target(Some(1), ProgressDrawTarget::stderr());
        let style = ProgressStyle::with_template("{spinner} {prefix} {bar:20} {wide_msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar());
        bar.set_style(style);
        bar.enable_steady_tick(Duration::from_millis(200));
        *ACTIVE.lock().unwrap_or_else(|p| p.into_inner()) = Some(bar.clone());
        Bar { bar }
    }
}

impl Progress for Bar {
    fn update(&self, status: &LiveStatus) {
        self.bar.set_length(millis(status.expected_end).max(1));
        self.bar.set_position(millis(status.elapsed));
        self.bar.set_prefix(clock(status));
        self.bar.set_message(status.line());
    }
    fn event(&self, at_secs: f64, message: &str) {
        self.bar.println(format!("[{at_secs:>7.1}s] {message}"));
    }
    fn finish(&self) {
        *ACTIVE.lock().unwrap_or_else(|p| p.into_inner()) = None;
        self.bar.finish_and_clear();
    }
}

/// Where log lines go: stderr, above the bar when one is drawn (the bar is hidden while
/// the line is written, then drawn again).
#[derive(Clone, Copy)]
pub struct LogWriter;

impl Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let bar = ACTIVE.lock().unwrap_or_else(|p| p.into_inner()).clone();
        match bar {
            Some(bar) => bar.suspend(|| std::io::stderr().write_all(buf))?,
            None => std::io::stderr().write_all(buf)?,
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogWriter {
    type Writer = LogWriter;
    fn make_writer(&'a self) -> Self::Writer {
        *self
    }
}
