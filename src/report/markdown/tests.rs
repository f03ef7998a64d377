//! What CI shows in the job summary.

use super::*;
use crate::report::fixture::verdict;

fn line_with<'a>(md: &'a str, needle: &str) -> &'a str {
    md.lines()
        .find(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("no line with {needle:?} in:\n{md}"))
}

/// Cells of a table row, splitting on unescaped pipes only (as GFM does).
fn cells(row: &str) -> Vec<String> {
    let mut cells = vec![String::new()];
    let mut escaped = false;
    for c in row.trim().trim_matches('|').chars() {
        match c {
            '|' if !escaped => cells.push(String::new()),
            _ => cells.last_mut().unwrap().push(c),
        }
        escaped = c == '\\';
    }
    cells.iter().map(|c| c.trim().to_string()).collect()
}

#[test]
fn headline_states_status_and_exit_code() {
    let md = render_markdown(&Report::test());
    let first = md.lines().next().unwrap();
    assert_eq!(first, "## ❌ checkout-failover: objectives failed");
    assert!(md.contains("**failed** (exit 1)"), "{md}");
    let met = render_markdown(&Report::test().with_status(RunStatus::Met, None));
    assert!(met.starts_with("## ✅ checkout-failover: objectives met\n"));
    let stuck = render_markdown(
        &Report::test().with_status(RunStatus::RevertUnconfirmed, Some("agent node-a gone")),
    );
    assert!(stuck.starts_with("## 🚨 "), "{stuck}");
    assert!(stuck.contains("**revert unconfirmed** (exit 4)"), "{stuck}");
    assert!(stuck.contains("> **Reason:** agent node-a gone"), "{stuck}");
}

#[test]
fn verdict_rows_have_status_measured_required_and_note() {
    let md = render_markdown(&Report::test());
    assert_eq!(
        cells(line_with(&md, "| ❌ fail |")),
        [
            "❌ fail",
            "rto/checkout",
            "38.1s",
            "<= 30s",
            "first failure at 20.3s, recovered at 58.4s"
        ]
    );
    assert_eq!(
        cells(line_with(&md, "latency/db/recovery")),
        [
            "⏭️ not measured",
            "latency/db/recovery",
            "-",
            "p99 <= 50ms",
            "no ok responses during recovery"
        ]
    );
    assert!(line_with(&md, "availability/checkout/baseline").starts_with("| ✅ pass |"));
}

#[test]
fn pipes_and_newlines_in_cells_do_not_break_tables() {
    let r = Report::test().with_verdict(verdict(
        "steadyState/a|b/run",
        VerdictStatus::Fail,
        Some("1|2"),
        ">= 3",
        Some("line one\r\nline | two <script>"),
    ));
    let md = render_markdown(&r);
    let row = line_with(&md, "steadyState/");
    assert_eq!(
        cells(row),
        [
            "❌ fail",
            r"steadyState/a\|b/run",
            r"1\|2",
            ">= 3",
            r"line one line \| two &lt;script>"
        ]
    );
}

#[test]
fn probe_tables_per_phase_and_rto_with_resolution() {
    let md = render_markdown(&Report::test());
    assert!(md.contains("#### checkout — http `http://127.0.0.1:8080/checkout` at 50/s"));
    assert_eq!(
        cells(line_with(&md, "| faults | 1500 |")),
        [
            "faults",
            "1500",
            "13.47%",
            "210ms",
            "1.80s",
            "4.90s",
            "5.00s",
            "timeout 1210, refused 88"
        ]
    );
    let rto = line_with(&md, "**RTO:**");
    assert!(rto.contains("recover 38.1s"), "{rto}");
    assert!(rto.contains("resolution ±100ms"), "{rto}");
}

#[test]
fn prober_limited_warning_and_seed_are_shown() {
    let md = render_markdown(&Report::test().with_prober_limited("checkout"));
    assert!(line_with(&md, "prober-limited").starts_with("> ⚠️ probe checkout"));
    assert!(
        md.contains("`shakeout run experiments/checkout-failover.yaml --seed 424242`"),
        "{md}"
    );
    assert!(!render_markdown(&Report::test()).contains("prober-limited"));
}

#[test]
fn faults_show_exit_status_and_failed_output() {
    let mut r = Report::test();
    if let Some(revert) = r.faults[0].revert.as_mut() {
        revert.success = false;
        revert.exit_code = Some(5);
        revert.command = ["sh", "-c", "echo `date` | logger"]
            .map(String::from)
            .to_vec();
        revert.stderr = "logger: socket: ```denied```\n".to_string();
    }
    let md = render_markdown(&r);
    let row = cells(line_with(&md, "| kill-primary |"));
    assert_eq!(row[3], "reverted");
    assert_eq!(
        row[4],
        r"`systemctl stop postgresql@16-main` → exit 0 in 12.0ms"
    );
    assert_eq!(
        row[5],
        r"``sh -c 'echo `date` \| logger'`` → exit 5 in 12.0ms"
    );
    // The stderr block's fence is longer than the backticks inside it.
    assert!(md.contains("kill-primary revert stderr"), "{md}");
    assert!(
        md.contains("````text\nlogger: socket: ```denied```\n````"),
        "{md}"
    );
}

#[test]
fn events_keep_millisecond_offsets() {
    let md = render_markdown(&Report::test());
    assert!(
        md.contains("| 20.050s | service | postgres primary exited (signal 15) |"),
        "{md}"
    );
}

#[test]
fn services_table_and_the_output_of_one_that_misbehaved() {
    let md = render_markdown(&Report::test().with_service(false));
    let row = cells(line_with(&md, "| web |"));
    assert_eq!(row[1..], ["2", "1", "signal 9 at 20.050s", "✅ ok"]);
    assert!(!md.contains("web last output"), "{md}");
    let md = render_markdown(&Report::test().with_service(true));
    let row = cells(line_with(&md, "| web |"));
    assert_eq!(row[1..4], ["6", "5", "exit 1 at 25.500s"]);
    assert!(
        row[4].starts_with("❌ service `web` is crash-looping: 5 restarts"),
        "{}",
        row[4]
    );
    assert!(
        md.contains("web last output</summary>\n\n```text\nweb: config /etc/web.toml: permission denied\nweb: listening on 127.0.0.1:8080\n```"),
        "{md}"
    );
}
