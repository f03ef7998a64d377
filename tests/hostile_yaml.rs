//! Hostile experiment files cost little: for every shape that once cost seconds or
//! gigabytes (alias fan-out, billion laughs, thousands of nested brackets, a 1 MiB flat
//! file or scalar, many documents), and for the largest files the limits still accept,
//! the real `shakeout validate` exits 3 with a positioned diagnostic within 64 MiB of
//! peak RSS. `benches/hostile_yaml.py` generates the same corpus and measures a release
//! build against 1 s; here only a generous time bound is checked (a loaded 2-core CI
//! machine runs a debug build).
//!
//! Peak RSS comes from GNU time (`/usr/bin/time -f %M`), which forks the binary from its
//! own small process: a child spawned from this test process would inherit the test's
//! high-water mark (Linux keeps `ru_maxrss` across exec, and `posix_spawn` shares the
//! parent's memory until then).

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const MIB: usize = 1 << 20;
/// Peak RSS allowed for `shakeout validate` on any file within the size limit.
const MAX_RSS_KIB: u64 = 64 * 1024;
/// A debug build on a loaded machine; the release build's 1 s is the benchmark's.
const MAX_WALL: Duration = Duration::from_secs(20);
const GNU_TIME: &str = "/usr/bin/time";
const HEAD: &str = "apiVersion: shakeout/v1\nkind: Experiment\n";

/// `prefix`, then `unit` as many times as fits in 1 MiB with `suffix`, then `suffix`.
fn fill(prefix: &str, unit: &str, suffix: &str) -> String {
    let n = (MIB - prefix.len() - suffix.len()) / unit.len();
    format!("{prefix}{}{suffix}", unit.repeat(n))
}

/// Lines from `line(i)` for i = 0.. while the text stays within 1 MiB.
fn lines(prefix: &str, line: impl Fn(usize) -> String) -> String {
    let mut text = prefix.to_string();
    for i in 0.. {
        let next = line(i);
        if text.len() + next.len() > MIB {
            break;
        }
        text.push_str(&next);
    }
    text
}

fn billion_laughs() -> String {
    let mut text = String::from("a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n");
    for i in 1..10 {
        let refs = vec![format!("*a{}", i - 1); 9].join(", ");
        text.push_str(&format!("a{i}: &a{i} [{refs}]\n"));
    }
    text
}

fn long_paths() -> String {
    // 63 keys of 1,000 characters, each nested in the one before, then values under the
    // last: every value's path is 63 KB long.
    let keys: String = (0..63)
        .map(|d| format!("{}{d:04}{}:\n", "  ".repeat(d), "k".repeat(996)))
        .collect();
    lines(&keys, |i| format!("{}c{i}: 1\n", " ".repeat(126)))
}

fn fault_list(item: &str) -> String {
    let head = format!(
        "{HEAD}metadata: {{name: x}}\nspec:\n  duration: 1m\n  probes:\n    \
         - {{name: web, rate: 10/s, http: {{url: \"http://127.0.0.1:1/\"}}}}\n  faults:\n"
    );
    format!("{head}{}", item.repeat(4_800))
}

/// Case `name`: its text (at most 1 MiB) and a piece of the expected diagnostic.
/// `benches/hostile_yaml.py` generates the same files.
fn case(name: &str) -> Option<(String, &'static str)> {
    let expand = "YAML aliases here would expand the document past 50000 values";
    let deep = "mappings and sequences nest more than 64 deep";
    let values = "the document holds more than 50000 values";
    let lookahead = "the YAML parser reads on from here past 128 KiB";
    let second = "a second YAML document starts here";
    let nested = |open: &str, close: &str| {
        let n = (MIB - 2) / (open.len() + close.len());
        format!("{}1{}", open.repeat(n), close.repeat(n))
    };
    let anchor_2000 = format!("anc: &a [{}]\n", vec!["x"; 2000].join(","));
    Some(match name {
        // Shapes the limits refuse.
        "alias_fanout" => (
            format!(
                "{anchor_2000}{}",
                (0..12_000)
                    .map(|i| format!("k{i}: *a\n"))
                    .collect::<String>()
            ),
            expand,
        ),
        "billion_laughs" => (billion_laughs(), expand),
        "recursive_alias" => (
            "a: &a [1, *a]\n".into(),
            "refers to a value that contains it",
        ),
        "many_aliases" => (
            lines("a: &a 1\n", |i| format!("k{i}: *a\n")),
            "more than 1000 YAML aliases",
        ),
        "many_anchors" => (lines("", |i| format!("k{i}: &a{i} 1\n")), values),
        "flow_seq_open" => (fill("", "[", ""), deep),
        "flow_seq_closed" => (nested("[", "]"), deep),
        "flow_map_open" => (fill("", "{a: ", ""), deep),
        "flow_map_closed" => (nested("{a: ", "}"), deep),
        "block_seq_inline" => (fill("", "- ", ""), deep),
        "question_keys" => (fill("", "? ", ""), deep),
        "block_map_indent" => (lines("", |d| format!("{}a:\n", "  ".repeat(d))), deep),
        "block_seq_indent" => (lines("", |d| format!("{}-\n", "  ".repeat(d))), deep),
        "nested_flow_in_block_seq" => (fill("", "- [", ""), "invalid YAML"),
        "tiny_keys" => (lines("", |i| format!("k{i}: 1\n")), values),
        "flat_block_seq" => (fill("", "- 1\n", ""), values),
        "flat_flow_seq" => (fill("x: [", "1,", "1]\n"), values),
        "flat_flow_in_flow" => (fill("[[", "1,", "1]]\n"), lookahead),
        "scalar_plain_1mib" => (fill("x: ", "a", "\n"), lookahead),
        "scalar_quoted_1mib" => (fill("x: \"", "a", "\"\n"), lookahead),
        "scalar_block_1mib" => (
            fill("x: |\n", "  aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\n", ""),
            lookahead,
        ),
        "single_line" => (fill("x: ", "a b ", "\n"), lookahead),
        "escapes" => (fill("x: \"", "\\\\", "\"\n"), lookahead),
        "unicode_escapes" => (fill("x: \"", "\\u0041", "\"\n"), lookahead),
        "long_key" => (format!("{}: 1\n", "k".repeat(MIB - 5)), lookahead),
        "many_documents" => (fill("", "---\n", ""), second),
        "documents_with_content" => (fill("", "--- [1]\n", ""), second),
        "comments" => (
            fill("", "# comment comment comment\n", ""),
            "the file is empty",
        ),
        "blank_lines" => (fill("", "\n", ""), "the file is empty"),
        "tabs" => (fill("", "\t", ""), "tab characters are not allowed"),
        "garbage" => (
            (0..MIB)
                .map(|i| char::from(33 + (i * 7919 % 90) as u8))
                .collect(),
            "invalid YAML",
        ),
        // The largest files within the limits: serde_yaml reads all of them.
        "max_labels" => (
            format!(
                "{HEAD}metadata:\n  name: x\n  labels:\n{}",
                (0..24_990)
                    .map(|i| format!("    k{i}: v\n"))
                    .collect::<String>()
            ),
            "missing field `spec`",
        ),
        "max_aliases" => (
            format!(
                "a: &a [{}]\nb:\n{}",
                vec!["1"; 48].join(","),
                "- *a\n".repeat(1000)
            ),
            "unknown field `a`",
        ),
        "max_depth_flow" => (
            format!("- {}1{}\n", "[".repeat(63), "]".repeat(63)).repeat(49_500 / 65),
            "invalid type: a list, expected a mapping",
        ),
        "max_depth_map" => (
            format!("- {}1{}\n", "{a: ".repeat(63), "}".repeat(63)).repeat(49_500 / 128),
            "invalid type: a list, expected a mapping",
        ),
        "max_long_paths" => (long_paths(), "unknown field `0000kkk"),
        "max_lookahead" => (
            format!("[[{}1]]\n", "1234567,".repeat(16_000)),
            "invalid type: a list, expected a mapping",
        ),
        "max_scalars" => (
            (0..8)
                .map(|i| format!("k{i}: {}\n", "a".repeat(120_000)))
                .collect(),
            "unknown field `k0`",
        ),
        "comment_then_document" => (
            format!("# {}\n{HEAD}metadata: {{name: x}}\n", "c".repeat(MIB - 200)),
            "missing field `spec`",
        ),
        "max_faults" => (
            fault_list("    - {name: f, at: 90s, exec: {command: [\"true\"]}}\n"),
            "starts at 90s",
        ),
        "max_faults_named_alike" => (
            fault_list("    - {name: p, at: 10s, exec: {command: [\"true\"]}}\n"),
            "fault name `p` is already used",
        ),
        _ => return None,
    })
}

/// Run `shakeout validate` on `case` under GNU time; check the exit code, the
/// diagnostic, the peak RSS and the wall time.
fn assert_cheap(case: &str) {
    let Some((text, expected)) = self::case(case) else {
        panic!("no case {case}");
    };
    assert!(text.len() <= MIB, "{case} is {} bytes", text.len());
    let result = (|| -> anyhow::Result<()> {
        anyhow::ensure!(
            Path::new(GNU_TIME).exists(),
            "{GNU_TIME} is missing: install GNU time (Debian package `time`)"
        );
        let dir = tempfile::tempdir()?;
        let file = dir.path().join(format!("{case}.yaml"));
        std::fs::write(&file, &text)?;
        let rss_file = dir.path().join("rss");
        let start = Instant::now();
        let out = Command::new(GNU_TIME)
            .arg("-f")
            .arg("%M")
            .arg("-o")
            .arg(&rss_file)
            .arg(env!("CARGO_BIN_EXE_shakeout"))
            .arg("validate")
            .arg(&file)
            .stdin(Stdio::null())
            .output()?;
        let wall = start.elapsed();
        let stderr = String::from_utf8_lossy(&out.stderr);
        let shown = file.display().to_string();
        let first = stderr.lines().next().unwrap_or_default();
        // FILE:LINE:COL: message, with a line and a column that are numbers.
        let positioned = first.strip_prefix(&format!("{shown}:")).and_then(|rest| {
            let mut parts = rest.splitn(3, ':');
            let line = parts.next()?.parse::<usize>().ok()?;
            let column = parts.next()?.parse::<usize>().ok()?;
            Some((line, column, parts.next()?.to_string()))
        });
        let Some((_, _, message)) = positioned else {
            anyhow::bail!("no FILE:LINE:COL: diagnostic first on stderr:\n{stderr}");
        };
        anyhow::ensure!(
            message.contains(expected),
            "expected `{expected}` in the diagnostic, got:\n{first}"
        );
        anyhow::ensure!(
            out.status.code() == Some(3),
            "expected exit code 3, got {:?}; stderr:\n{stderr}",
            out.status.code()
        );
        let rss_kib: u64 = std::fs::read_to_string(&rss_file)?
            .lines()
            .last()
            .unwrap_or_default()
            .trim()
            .parse()?;
        anyhow::ensure!(
            rss_kib <= MAX_RSS_KIB,
            "peak RSS {:.1} MiB, over {} MiB",
            rss_kib as f64 / 1024.0,
            MAX_RSS_KIB / 1024
        );
        anyhow::ensure!(wall <= MAX_WALL, "took {wall:?}, over {MAX_WALL:?}");
        Ok(())
    })();
    if let Err(e) = result {
        panic!(
            "shakeout validate {case}.yaml ({} bytes): {e:#}",
            text.len()
        );
    }
}

/// One test per case, so a failure names its case and the cases share both cores.
macro_rules! hostile {
    ($($case:ident),* $(,)?) => {
        mod validate {
            $(
                #[test]
                fn $case() {
                    super::assert_cheap(stringify!($case));
                }
            )*
        }
    };
}

hostile! {
    alias_fanout, billion_laughs, recursive_alias, many_aliases, many_anchors,
    flow_seq_open, flow_seq_closed, flow_map_open, flow_map_closed, block_seq_inline,
    question_keys, block_map_indent, block_seq_indent, nested_flow_in_block_seq, tiny_keys,
    flat_block_seq, flat_flow_seq, flat_flow_in_flow, scalar_plain_1mib, scalar_quoted_1mib,
    scalar_block_1mib, single_line, escapes, unicode_escapes, long_key, many_documents,
    documents_with_content, comments, blank_lines, tabs, garbage, max_labels, max_aliases,
    max_depth_flow, max_depth_map, max_long_paths, max_lookahead, max_scalars,
    comment_then_document, max_faults, max_faults_named_alike,
}
