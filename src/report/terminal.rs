//! The result a person reads on stdout when a run ends: aligned text, ending in one
//! `RESULT:` line that matches the exit code. Verdict tags, warnings and the result carry
//! ANSI colour; print it through `anstream`, which strips the colour where it does not
//! belong (a pipe, a file, NO_COLOR, `--color never`), so CI logs get plain text.

use std::fmt::Write as _;

use anstyle::{AnsiColor, Style};

use super::connection::{insecure_warning, setup_summary, tls_summary};
use super::format::{
    action_outcome, agent_summary, command, duration, errors, opt_duration, opt_percent,
    prober_limited_warning, rto_summary, service_output, service_summary, status_words,
    verdict_outcome, verdict_tag, write_summary,
};
use super::{FaultReport, ProbeReport, Report, RunStatus};

/// Lines of a misbehaving service's output shown in the terminal.
const SERVICE_LINES: usize = 5;

/// Renders the run summary for a terminal; ends with a newline.
pub fn render_terminal(r: &Report) -> String {
    let mut out = String::new();
    header(&mut out, r);
    for w in &r.warnings {
        let _ = writeln!(out, "{}: {w}", paint(WARN, "WARNING"));
    }
    for p in &r.probes {
        probe(&mut out, p, &r.faults);
    }
    if !r.faults.is_empty() {
        out.push_str("\nfaults\n");
        for f in &r.faults {
            fault(&mut out, f);
        }
    }
    services(&mut out, r);
    verdicts(&mut out, r);
    footer(&mut out, r);
    out
}

fn header(out: &mut String, r: &Report) {
    let _ = writeln!(out, "{}  ({})", r.experiment.name, r.experiment.file);
    if r.run.status == RunStatus::Error {
        // Nothing was probed: there is no run length or bucket width to speak of.
        let _ = writeln!(
            out,
            "did not start ({}), shakeout {}",
            r.run.started_at, r.run.shakeout_version
        );
        return;
    }
    let _ = writeln!(
        out,
        "started {}, ran {}, timeline buckets {}, shakeout {}",
        r.run.started_at,
        duration(r.run.duration_ms),
        duration(r.run.bucket_ms),
        r.run.shakeout_version
    );
}

fn probe(out: &mut String, p: &ProbeReport, faults: &[FaultReport]) {
    let connection = p
        .connection
        .as_deref()
        .map_or(String::new(), |c| format!(", {c}"));
    let _ = writeln!(
        out,
        "\nprobe {}  {} {}  {}/s{connection}, max in flight {}",
        p.name, p.kind, p.target, p.rate_per_second, p.max_in_flight
    );
    let mut t = Table::new(
        &[
            "phase",
            "scheduled",
            "ok",
            "p50",
            "p90",
            "p99",
            "max",
            "errors",
        ],
        &[1, 2, 3, 4, 5, 6],
    );
    for ph in &p.phases {
        let l = &ph.latency;
        t.row(vec![
            ph.phase.clone(),
            ph.scheduled.to_string(),
            opt_percent(ph.availability_percent),
            opt_duration(l.p50_ms),
            opt_duration(l.p90_ms),
            opt_duration(l.p99_ms),
            opt_duration(l.max_ms),
            errors(&ph.errors),
        ]);
    }
    t.render(out, "  ");
    if let Some(rto) = &p.rto {
        let _ = writeln!(out, "  RTO: {}", rto_summary(rto));
    }
    if let Some(s) = &p.connection_setup {
        let _ = writeln!(out, "  connections: {}", setup_summary(s));
    }
    if let Some(g) = p.grpc.as_ref().and_then(super::grpc::grpc_summary) {
        let _ = writeln!(out, "  gRPC: {g}");
    }
    if let Some(t) = &p.tls {
        let _ = writeln!(out, "  TLS: {}", tls_summary(t));
        if t.insecure_skip_verify {
            let _ = writeln!(
                out,
                "  {}: {}",
                paint(WARN, "WARNING"),
                insecure_warning(&p.name)
            );
        }
    }
    if let Some(w) = &p.write {
        for line in write_summary(w, faults) {
            let _ = writeln!(out, "  RPO: {line}");
        }
    }
    if p.prober_limited {
        let _ = writeln!(
            out,
            "  {}: {}",
            paint(WARN, "WARNING"),
            prober_limited_warning(p)
        );
    }
}

fn fault(out: &mut String, f: &FaultReport) {
    let planned = f
        .planned_duration_ms
        .map_or(String::new(), |d| format!(" for {}", duration(d)));
    let _ = writeln!(
        out,
        "  {} ({}) at {}{planned}: {}",
        f.name,
        f.kind,
        duration(f.at_ms),
        f.status
    );
    if let Some(why) = &f.reason {
        let _ = writeln!(out, "    {why}");
    }
    if let Some(p) = &f.pods {
        let _ = writeln!(out, "    {}", super::format::pods_summary(p));
    }
    for a in f.agent.iter().chain(&f.agents) {
        let _ = writeln!(out, "    {}", agent_summary(a));
    }
    for (label, action) in [("apply ", &f.apply), ("revert", &f.revert)] {
        let Some(a) = action else { continue };
        let _ = writeln!(
            out,
            "    {label}  {} -> {}",
            command(&a.command),
            action_outcome(a)
        );
        // Output of a failed command is the first thing a person needs; success is quiet.
        if !a.success {
            for line in a
                .stderr
                .trim_end()
                .lines()
                .rev()
                .take(5)
                .collect::<Vec<_>>()
                .iter()
                .rev()
            {
                let _ = writeln!(out, "            | {line}");
            }
        }
    }
}

/// Only services that misbehaved (crashed, or were given up on): a healthy service, or one
/// a fault killed, is in the JSON report. A run that could not start already says why.
fn services(out: &mut String, r: &Report) {
    if r.run.status == RunStatus::Error {
        return;
    }
    let bad: Vec<_> = r.services.iter().filter(|s| s.misbehaved()).collect();
    if bad.is_empty() {
        return;
    }
    out.push_str("\nservices\n");
    for s in bad {
        let _ = writeln!(out, "  {}: {}", s.name, service_summary(s));
        if let Some(f) = &s.failed {
            let _ = writeln!(out, "    gave up: {}", f.reason);
        }
        for line in service_output(s, SERVICE_LINES) {
            let _ = writeln!(out, "    | {line}");
        }
    }
}

fn verdicts(out: &mut String, r: &Report) {
    if r.verdicts.is_empty() {
        return;
    }
    out.push_str("\nverdicts\n");
    let mut t = Table::new(&[], &[]);
    for v in &r.verdicts {
        let mut outcome = verdict_outcome(v);
        if let (Some(note), super::VerdictStatus::Pass | super::VerdictStatus::Fail) =
            (&v.note, v.status)
        {
            let _ = write!(outcome, " ({note})");
        }
        t.row(vec![
            paint(verdict_style(v.status), verdict_tag(v.status)),
            v.id.clone(),
            outcome,
        ]);
    }
    t.render(out, "  ");
}

fn footer(out: &mut String, r: &Report) {
    out.push('\n');
    if let Some(reason) = &r.run.reason {
        let _ = writeln!(out, "reason: {reason}");
    }
    let _ = writeln!(
        out,
        "seed: {} (replay with --seed {})",
        r.run.seed, r.run.seed
    );
    // Last line on purpose: `tail -n1` in a script gets the outcome.
    let _ = writeln!(
        out,
        "RESULT: {} (exit {})",
        paint(run_style(r.run.status), status_words(r.run.status)),
        r.run.exit_code
    );
}

const GOOD: Style = AnsiColor::Green.on_default().bold();
const BAD: Style = AnsiColor::Red.on_default().bold();
const WARN: Style = AnsiColor::Yellow.on_default().bold();

/// `text` in `style`, reset after.
fn paint(style: Style, text: &str) -> String {
    format!("{}{text}{}", style.render(), style.render_reset())
}

fn verdict_style(s: super::VerdictStatus) -> Style {
    match s {
        super::VerdictStatus::Pass => GOOD,
        super::VerdictStatus::Fail => BAD,
        super::VerdictStatus::NotMeasured => WARN,
    }
}

fn run_style(s: RunStatus) -> Style {
    match s {
        RunStatus::Met => GOOD,
        RunStatus::Aborted | RunStatus::Interrupted => WARN,
        _ => BAD,
    }
}

/// Display width of a cell: chars (`µs` is two bytes but one column), not counting colour.
fn width(cell: &str) -> usize {
    anstream::adapter::strip_str(cell)
        .to_string()
        .chars()
        .count()
}

/// Column-aligned rows; text left-aligned, numbers and times right-aligned so their
/// units line up.
struct Table {
    rows: Vec<Vec<String>>,
    right: Vec<usize>,
}

impl Table {
    /// `right`: indexes of the columns to right-align.
    fn new(header: &[&str], right: &[usize]) -> Table {
        let mut rows = Vec::new();
        if !header.is_empty() {
            rows.push(header.iter().map(|h| h.to_string()).collect());
        }
        Table {
            rows,
            right: right.to_vec(),
        }
    }

    fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    fn render(&self, out: &mut String, indent: &str) {
        let cols = self.rows.iter().map(Vec::len).max().unwrap_or(0);
        // Widths in chars, not bytes: `µs` is two bytes but one column.
        let widths: Vec<usize> = (0..cols)
            .map(|c| {
                self.rows
                    .iter()
                    .filter_map(|r| r.get(c))
                    .map(|s| width(s))
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        for row in &self.rows {
            let mut line = String::from(indent);
            for (c, cell) in row.iter().enumerate() {
                let pad = widths[c].saturating_sub(width(cell));
                if self.right.contains(&c) {
                    line.push_str(&" ".repeat(pad));
                    line.push_str(cell);
                } else {
                    line.push_str(cell);
                    line.push_str(&" ".repeat(pad));
                }
                line.push_str("  ");
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
    }
}

#[cfg(test)]
mod tests;
