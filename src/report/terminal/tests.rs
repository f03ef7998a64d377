//! What a person sees on stdout after a run.

use super::*;
use crate::report::RunStatus;

/// What a pipe or a file gets: the summary without its colour.
fn render_terminal(r: &Report) -> String {
    anstream::adapter::strip_str(&super::render_terminal(r)).to_string()
}

#[test]
fn verdicts_and_the_result_are_coloured_and_columns_still_line_up() {
    let styled = super::render_terminal(&Report::test());
    assert!(
        styled.contains("\u{1b}[1m\u{1b}[32mPASS\u{1b}[0m"),
        "{styled:?}"
    );
    assert!(
        styled.contains("\u{1b}[1m\u{1b}[31mFAIL\u{1b}[0m"),
        "{styled:?}"
    );
    assert!(
        styled.contains("RESULT: \u{1b}[1m\u{1b}[31mfailed\u{1b}[0m (exit 1)"),
        "{styled:?}"
    );
    // Colour takes no columns: the ids start in the same column on every verdict line.
    let plain = render_terminal(&Report::test());
    let columns: Vec<usize> = plain
        .lines()
        .filter(|l| l.starts_with("  PASS") || l.starts_with("  FAIL") || l.starts_with("  SKIP"))
        .map(|l| l[6..].len() - l[6..].trim_start().len())
        .collect();
    assert!(
        columns.len() >= 2 && columns.iter().all(|&c| c == columns[0]),
        "{plain}"
    );
}

fn line_with<'a>(text: &'a str, needle: &str) -> &'a str {
    text.lines()
        .find(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("no line with {needle:?} in:\n{text}"))
}

#[test]
fn last_line_is_result_with_exit_code() {
    let cases = [
        (RunStatus::Met, "RESULT: met (exit 0)"),
        (RunStatus::Failed, "RESULT: failed (exit 1)"),
        (RunStatus::Aborted, "RESULT: aborted (exit 2)"),
        (RunStatus::Interrupted, "RESULT: interrupted (exit 2)"),
        (RunStatus::Error, "RESULT: error (exit 3)"),
        (
            RunStatus::RevertUnconfirmed,
            "RESULT: revert unconfirmed (exit 4)",
        ),
    ];
    for (status, want) in cases {
        let text = render_terminal(&Report::test().with_status(status, None));
        assert_eq!(text.lines().last(), Some(want), "{text}");
    }
}

#[test]
fn seed_and_reason_are_printed_for_replay() {
    let text = render_terminal(
        &Report::test().with_status(RunStatus::Aborted, Some("stop condition: errors > 50%")),
    );
    assert!(
        text.contains("seed: 424242 (replay with --seed 424242)"),
        "{text}"
    );
    assert!(
        text.contains("reason: stop condition: errors > 50%"),
        "{text}"
    );
}

#[test]
fn probe_table_shows_each_phase_with_aligned_columns() {
    let text = render_terminal(&Report::test());
    let header = line_with(&text, "scheduled");
    let faults = line_with(&text, "  faults ");
    assert!(faults.contains("1500"), "{faults}");
    assert!(faults.contains("13.47%"), "{faults}");
    assert!(faults.ends_with("timeout 1210, refused 88"), "{faults}");
    assert!(line_with(&text, "  baseline ").contains("12.3ms"));
    // Right-aligned: every p99 cell ends in the header's p99 column.
    let col_end = |l: &str, cell: &str| {
        let byte = l.find(cell).unwrap() + cell.len();
        l[..byte].chars().count()
    };
    let p99_end = col_end(header, "p99");
    assert_eq!(col_end(faults, "4.90s"), p99_end, "\n{header}\n{faults}");
    let baseline = line_with(&text, "  baseline  ");
    assert_eq!(
        col_end(baseline, "12.3ms"),
        p99_end,
        "\n{header}\n{baseline}"
    );
    // A phase where nothing was scheduled says so instead of inventing 0%.
    let recovery_db = text
        .lines()
        .skip_while(|l| !l.starts_with("probe db"))
        .find(|l| l.trim_start().starts_with("recovery"))
        .unwrap();
    assert!(!recovery_db.contains('%'), "{recovery_db}");
}

#[test]
fn rto_line_gives_all_three_times_and_resolution() {
    let text = render_terminal(&Report::test());
    let rto = line_with(&text, "RTO:");
    for part in [
        "detect 300ms",
        "recover 38.1s",
        "fault end → recovered 8.40s",
        "resolution ±100ms",
    ] {
        assert!(rto.contains(part), "missing {part:?} in {rto}");
    }
}

#[test]
fn prober_limited_probe_is_flagged() {
    let plain = render_terminal(&Report::test());
    assert!(!plain.contains("WARNING"), "{plain}");
    let text = render_terminal(&Report::test().with_prober_limited("db"));
    let warning = line_with(&text, "WARNING:");
    assert!(warning.contains("probe db is prober-limited"), "{warning}");
    assert!(warning.contains("scheduling lag p99 180ms"), "{warning}");
}

#[test]
fn verdicts_show_status_and_measured_vs_required() {
    let text = render_terminal(&Report::test());
    let pass = line_with(&text, "availability/checkout/baseline");
    assert!(pass.trim_start().starts_with("PASS"), "{pass}");
    assert!(pass.contains("measured 100%, required >= 99.9%"), "{pass}");
    let fail = line_with(&text, "rto/checkout");
    assert!(fail.trim_start().starts_with("FAIL"), "{fail}");
    assert!(fail.contains("measured 38.1s, required <= 30s"), "{fail}");
    let skip = line_with(&text, "latency/db/recovery");
    assert!(skip.trim_start().starts_with("SKIP"), "{skip}");
    assert!(
        skip.contains("not measured: no ok responses during recovery"),
        "{skip}"
    );
    // Ids line up so the outcomes form a column.
    assert_eq!(pass.find("measured"), fail.find("measured"));
}

#[test]
fn faults_show_commands_and_failed_output() {
    let mut r = Report::test();
    if let Some(revert) = r.faults[0].revert.as_mut() {
        revert.success = false;
        revert.exit_code = Some(5);
        revert.stderr = "Job for postgresql@16-main.service failed.\n".to_string();
    }
    let text = render_terminal(&r);
    assert!(
        text.contains("kill-primary (exec) at 20.0s for 30.0s: reverted"),
        "{text}"
    );
    assert!(
        text.contains("apply   systemctl stop postgresql@16-main -> exit 0 in 12.0ms"),
        "{text}"
    );
    assert!(text.contains("-> exit 5 in 12.0ms"), "{text}");
    assert!(
        text.contains("| Job for postgresql@16-main.service failed."),
        "{text}"
    );
}

#[test]
fn services_are_shown_only_when_they_misbehaved() {
    // A service a fault killed and the supervisor restarted: nothing to say.
    let text = render_terminal(&Report::test().with_service(false));
    assert!(!text.contains("\nservices\n"), "{text}");
    let text = render_terminal(&Report::test().with_service(true));
    assert!(text.contains("\nservices\n"), "{text}");
    assert!(
        text.contains("  web: 6 starts (5 restarts), last exit 1 at 25.500s"),
        "{text}"
    );
    assert!(
        text.contains("    gave up: service `web` is crash-looping: 5 restarts in 5.45s"),
        "{text}"
    );
    assert!(
        text.contains("    | web: config /etc/web.toml: permission denied\n    | web: listening"),
        "{text}"
    );
    // Before the verdicts, which say the same in their terms.
    assert!(
        text.find("\nservices\n") < text.find("\nverdicts\n"),
        "{text}"
    );
}
