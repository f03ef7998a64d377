//! The Markdown summary CI shows next to a job (GitHub's `$GITHUB_STEP_SUMMARY`): status
//! first, then verdicts, then the numbers behind them. User text is escaped so an odd
//! probe name or command cannot break a table.

use std::fmt::Write as _;

use super::format::{
    self, action_outcome, command, duration, errors, offset, opt_duration, opt_percent,
    prober_limited_warning, rto_summary, status_words, write_summary,
};
use super::{ActionReport, Report, RunStatus, VerdictStatus};

/// Renders the run summary as GitHub-flavoured Markdown.
pub fn render_markdown(r: &Report) -> String {
    let mut out = String::new();
    headline(&mut out, r);
    verdicts(&mut out, r);
    probes(&mut out, r);
    faults(&mut out, r);
    services(&mut out, r);
    events(&mut out, r);
    let replay = format!("shakeout run {} --seed {}", r.experiment.file, r.run.seed);
    let _ = writeln!(
        out,
        "\nSeed `{}`: replay with {}.",
        r.run.seed,
        code(&replay)
    );
    out
}

fn headline(out: &mut String, r: &Report) {
    let (emoji, what) = match r.run.status {
        RunStatus::Met => ("✅", "objectives met"),
        RunStatus::Failed => ("❌", "objectives failed"),
        RunStatus::Aborted => ("⚠️", "aborted by a stop condition, faults reverted"),
        RunStatus::Interrupted => ("⚠️", "interrupted, faults reverted"),
        RunStatus::Error => ("💥", "could not run"),
        RunStatus::RevertUnconfirmed => ("🚨", "faults not confirmed reverted: a person must look"),
    };
    let ran = match r.run.status {
        RunStatus::Error => "did not start".to_owned(),
        _ => format!("ran {}", duration(r.run.duration_ms)),
    };
    let _ = writeln!(
        out,
        "## {emoji} {}: {what}\n\n**{}** (exit {}) · seed `{}` · started {} · {ran} · {}\n",
        text(&r.experiment.name),
        status_words(r.run.status),
        r.run.exit_code,
        r.run.seed,
        text(&r.run.started_at),
        text(&r.experiment.file),
    );
    if let Some(reason) = &r.run.reason {
        let _ = writeln!(out, "> **Reason:** {}\n", text(reason));
    }
    for w in &r.warnings {
        let _ = writeln!(out, "> ⚠️ **WARNING:** {}\n", text(w));
    }
    for p in r.probes.iter().filter(|p| p.prober_limited) {
        let _ = writeln!(out, "> ⚠️ {}\n", text(&prober_limited_warning(p)));
    }
}

fn verdicts(out: &mut String, r: &Report) {
    if r.verdicts.is_empty() {
        return;
    }
    out.push_str("### Verdicts\n\n| Status | Verdict | Measured | Required | Note |\n");
    out.push_str("| --- | --- | --- | --- | --- |\n");
    for v in &r.verdicts {
        let status = match v.status {
            VerdictStatus::Pass => "✅ pass",
            VerdictStatus::Fail => "❌ fail",
            VerdictStatus::NotMeasured => "⏭️ not measured",
        };
        let _ = writeln!(
            out,
            "| {status} | {} | {} | {} | {} |",
            cell(&v.id),
            cell(v.measured.as_deref().unwrap_or(format::NONE)),
            cell(&v.required),
            cell(v.note.as_deref().unwrap_or("")),
        );
    }
    out.push('\n');
}

fn probes(out: &mut String, r: &Report) {
    if r.probes.is_empty() {
        return;
    }
    out.push_str("### Probes\n");
    for p in &r.probes {
        let _ = writeln!(
            out,
            "\n#### {} — {} {} at {}/s\n",
            text(&p.name),
            text(&p.kind),
            code(&p.target),
            p.rate_per_second
        );
        out.push_str("| Phase | Scheduled | OK | p50 | p90 | p99 | max | Errors |\n");
        out.push_str("| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |\n");
        for ph in &p.phases {
            let l = &ph.latency;
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} | {} | {} |",
                cell(&ph.phase),
                ph.scheduled,
                opt_percent(ph.availability_percent),
                opt_duration(l.p50_ms),
                opt_duration(l.p90_ms),
                opt_duration(l.p99_ms),
                opt_duration(l.max_ms),
                cell(&errors(&ph.errors)),
            );
        }
        if let Some(rto) = &p.rto {
            let _ = writeln!(out, "\n**RTO:** {}", text(&rto_summary(rto)));
        }
        if let Some(s) = &p.connection_setup {
            let _ = writeln!(
                out,
                "\n**Connections:** {}",
                text(&super::connection::setup_summary(s))
            );
        }
        if let Some(g) = p.grpc.as_ref().and_then(super::grpc::grpc_summary) {
            let _ = writeln!(out, "\n**gRPC:** {}", text(&g));
        }
        if let Some(t) = &p.tls {
            let _ = writeln!(
                out,
                "\n**TLS:** {}",
                text(&super::connection::tls_summary(t))
            );
        }
        if let Some(w) = &p.write {
            out.push('\n');
            for line in write_summary(w, &r.faults) {
                let _ = writeln!(out, "**RPO:** {}  ", text(&line));
            }
        }
    }
    out.push('\n');
}

fn faults(out: &mut String, r: &Report) {
    if r.faults.is_empty() {
        return;
    }
    out.push_str("### Faults\n\n| Fault | Kind | At | Status | Apply | Revert |\n");
    out.push_str("| --- | --- | ---: | --- | --- | --- |\n");
    let mut failed_output = String::new();
    for f in &r.faults {
        let action = |a: &Option<ActionReport>| {
            a.as_ref().map_or_else(
                || format::NONE.to_string(),
                |a| {
                    cell(&format!(
                        "{} → {}",
                        code(&command(&a.command)),
                        action_outcome(a)
                    ))
                },
            )
        };
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} |",
            cell(&f.name),
            cell(&f.kind),
            duration(f.at_ms),
            match &f.reason {
                Some(why) => cell(&format!("{}: {why}", f.status)),
                None => cell(f.status.as_str()),
            },
            match (&f.agent, &f.pods) {
                (Some(a), _) => cell(&format::agent_summary(a)),
                (None, Some(p)) => cell(
                    &std::iter::once(format::pods_summary(p))
                        .chain(f.agents.iter().map(format::agent_summary))
                        .collect::<Vec<_>>()
                        .join("; ")
                ),
                (None, None) => action(&f.apply),
            },
            action(&f.revert),
        );
        for (label, a) in [("apply", &f.apply), ("revert", &f.revert)] {
            if let Some(a) = a
                .as_ref()
                .filter(|a| !a.success && !a.stderr.trim().is_empty())
            {
                let fence = fence(&a.stderr);
                let _ = write!(
                    failed_output,
                    "\n<details><summary>{} {label} stderr</summary>\n\n{fence}text\n{}\n{fence}\n\n</details>\n",
                    text(&f.name),
                    a.stderr.trim_end(),
                );
            }
        }
    }
    out.push_str(&failed_output);
    out.push('\n');
}

fn services(out: &mut String, r: &Report) {
    if r.services.is_empty() {
        return;
    }
    out.push_str("### Services\n\n| Service | Starts | Restarts | Last exit | Status |\n");
    out.push_str("| --- | ---: | ---: | --- | --- |\n");
    let mut output = String::new();
    for s in &r.services {
        let last = s
            .exits
            .iter()
            .rev()
            .find(|e| !e.stopped)
            .or(s.exits.last())
            .map_or_else(
                || format::NONE.to_string(),
                |e| format!("{} at {}", format::exit_outcome(e), offset(e.at_ms)),
            );
        let status = match &s.failed {
            Some(f) => format!("❌ {}", f.reason),
            None if s.misbehaved() => "⚠️ crashed".to_string(),
            None => "✅ ok".to_string(),
        };
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} |",
            cell(&s.name),
            s.starts.len(),
            s.restarts,
            cell(&last),
            cell(&status),
        );
        let lines = format::service_output(s, 20);
        if s.misbehaved() && !lines.is_empty() {
            let lines = lines.join("\n");
            let fence = fence(&lines);
            let _ = write!(
                output,
                "\n<details><summary>{} last output</summary>\n\n{fence}text\n{lines}\n{fence}\n\n</details>\n",
                text(&s.name),
            );
        }
    }
    out.push_str(&output);
    out.push('\n');
}

fn events(out: &mut String, r: &Report) {
    if r.events.is_empty() {
        return;
    }
    out.push_str("<details><summary>Events</summary>\n\n| At | Source | Event |\n");
    out.push_str("| ---: | --- | --- |\n");
    for e in &r.events {
        let _ = writeln!(
            out,
            "| {} | {} | {} |",
            offset(e.at_ms),
            cell(&e.source),
            cell(&e.message)
        );
    }
    out.push_str("\n</details>\n");
}

/// Text for a table cell: a `|` would end the cell and a newline the table, and `<`
/// could open an HTML tag that swallows the rest of the summary.
fn cell(s: &str) -> String {
    text(s).replace('|', r"\|")
}

/// Free text on one line, safe from accidental HTML. Only a `<` that could open a tag
/// (`<b`, `</`, `<!`, `<?`) is escaped, so `<= 30s` stays readable in the raw text.
fn text(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\r' if chars.peek() == Some(&'\n') => {}
            '\n' | '\r' => out.push(' '),
            '<' if chars
                .peek()
                .is_some_and(|n| n.is_ascii_alphabetic() || matches!(n, '/' | '!' | '?')) =>
            {
                out.push_str("&lt;")
            }
            c => out.push(c),
        }
    }
    out
}

/// An inline code span that survives backticks in its content (CommonMark: the fence
/// must be longer than any backtick run inside).
fn code(s: &str) -> String {
    let ticks = "`".repeat(longest_run(s, '`') + 1);
    let pad = if s.starts_with('`') || s.ends_with('`') {
        " "
    } else {
        ""
    };
    format!("{ticks}{pad}{}{pad}{ticks}", s.replace(['\n', '\r'], " "))
}

/// A code-block fence longer than any backtick run in `s` (at least three).
fn fence(s: &str) -> String {
    "`".repeat((longest_run(s, '`') + 1).max(3))
}

fn longest_run(s: &str, c: char) -> usize {
    s.split(|x| x != c).map(str::len).max().unwrap_or(0)
}

#[cfg(test)]
mod tests;
