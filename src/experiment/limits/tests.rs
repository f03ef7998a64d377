//! Each limit, at and just past its value, and the real experiment files far below all.

use super::super::position::Positions;
use super::*;

fn counts(text: &str) -> Counts {
    Positions::scan(text).map_or_else(|r| panic!("refused: {r:?}"), |p| p.counts())
}

/// The refusal for `text`, as `LINE:COL: message`.
fn refused(text: &str) -> String {
    match Positions::scan(text) {
        Ok(p) => panic!("accepted, counts {:?}", p.counts()),
        Err(r) => format!("{}:{}: {}", r.pos.line, r.pos.column, r.message),
    }
}

#[test]
fn real_experiments_are_far_below_every_limit() {
    // The numbers the limits' docs quote: 342 values, 8 deep, no alias, 3 KiB.
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut seen = 0;
    for dir in ["experiments", "tests/good_input"] {
        for entry in std::fs::read_dir(root.join(dir)).unwrap() {
            let path = entry.unwrap().path();
            let text = std::fs::read_to_string(&path).unwrap();
            let c = counts(&text);
            let shown = path.display();
            assert!(text.len() <= 8 << 10, "{shown}: {} bytes", text.len());
            assert!(c.nodes <= 1_000, "{shown}: {c:?}");
            assert!(c.depth <= 10, "{shown}: {c:?}");
            assert!(c.aliases <= 10, "{shown}: {c:?}");
            assert!(text.len() <= MAX_LOOKAHEAD, "{shown}");
            seen += 1;
        }
    }
    assert!(
        seen >= 2,
        "no experiment files found under {}",
        root.display()
    );
}

#[test]
fn nesting_is_refused_past_max_depth() {
    let nest = |n: usize| format!("{}1{}", "[".repeat(n), "]".repeat(n));
    assert_eq!(counts(&nest(MAX_DEPTH)).depth, MAX_DEPTH);
    let msg = refused(&nest(MAX_DEPTH + 1));
    assert!(
        msg.starts_with("1:65: mappings and sequences nest more than 64 deep here"),
        "{msg}"
    );
    // Block style: the 65th mapping starts at its first key, on line 65.
    let block: String = (0..=MAX_DEPTH)
        .map(|d| format!("{}a:\n", "  ".repeat(d)))
        .collect();
    let msg = refused(&block);
    assert!(
        msg.starts_with("65:129: mappings and sequences nest"),
        "{msg}"
    );
    // yaml-rust2 gives up on flow nesting at 256 before we see any of it: same refusal.
    let msg = refused(&"[".repeat(300));
    assert!(
        msg.starts_with("1:256: mappings and sequences nest more than 64"),
        "{msg}"
    );
}

#[test]
fn aliases_are_refused_past_max_aliases() {
    let text = |n: usize| format!("a: &a 1\nb: [{}]\n", vec!["*a"; n].join(", "));
    assert_eq!(counts(&text(MAX_ALIASES)).aliases, MAX_ALIASES);
    // The 1001st alias, at column 5 + 4 * 1000.
    let msg = refused(&text(MAX_ALIASES + 1));
    assert!(
        msg.starts_with("2:4005: more than 1000 YAML aliases (`*name`)"),
        "{msg}"
    );
}

#[test]
fn aliases_count_what_they_expand_to() {
    // An anchored sequence of 99 scalars is 100 values; each alias copies all of them.
    let anchor = format!("a: &a [{}]\n", vec!["x"; 99].join(", "));
    let c = counts(&format!("{anchor}b: [*a, *a, *a]\n"));
    // root + a + 100 + b + its sequence + 3 x 100
    assert_eq!(c.nodes, 1 + 1 + 100 + 1 + 1 + 300);
    // Nested anchors multiply: an alias to a value holding aliases counts them expanded.
    let c = counts(&format!("{anchor}b: &b [*a, *a]\nc: [*b, *b]\n"));
    assert_eq!(c.nodes, 1 + 1 + 100 + 1 + 201 + 1 + 1 + 2 * 201);
    // Past the budget: 102 values before the fan-out, 101 a line (key and copy), so
    // line 1 + 495 crosses 50,000, at its alias.
    let fanout: String = (0..1000).map(|i| format!("k{i}: *a\n")).collect();
    let msg = refused(&format!("{anchor}{fanout}"));
    assert!(
        msg.starts_with(
            "496:7: YAML aliases here would expand the document past 50000 values: \
             experiment files may use anchors and aliases for small shared pieces only"
        ),
        "{msg}"
    );
}

#[test]
fn billion_laughs_stops_at_the_first_level_past_the_budget() {
    let mut text = String::from("a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n");
    for i in 1..10 {
        let refs = vec![format!("*a{}", i - 1); 9].join(", ");
        text.push_str(&format!("a{i}: &a{i} [{refs}]\n"));
    }
    // a3 is 7,381 values (10, 91, 820, 7381: one more than 9 times the level below);
    // the sixth of the nine copies of it on line 5 crosses 50,000.
    let msg = refused(&text);
    assert!(msg.starts_with("5:35:"), "{msg}");
    assert!(msg.contains("YAML aliases here would expand"), "{msg}");
}

#[test]
fn an_alias_inside_its_own_anchor_is_refused() {
    let msg = refused("a: &a [1, *a]\n");
    assert!(
        msg.starts_with("1:11: this YAML alias refers to a value that contains it"),
        "{msg}"
    );
    // A redefined anchor: the alias names the latest, complete one.
    let c = counts("a: &x [1, 2]\nb: &x 1\nc: *x\n");
    // root, a + [1, 2], b + 1, c + the copy of `1`
    assert_eq!(c.nodes, 1 + 4 + 2 + 2);
}

#[test]
fn values_past_max_nodes_are_refused_even_without_aliases() {
    let flat = |n: usize| format!("[{}]", vec!["1"; n].join(","));
    assert_eq!(counts(&flat(49_999)).nodes, MAX_NODES);
    let msg = refused(&flat(50_000));
    assert!(
        msg.starts_with("1:100000: the document holds more than 50000 values here: experiment files hold at most 50000"),
        "{msg}"
    );
    assert!(!msg.contains("alias"), "{msg}");
}

#[test]
fn the_scanner_reads_at_most_max_lookahead_past_the_last_value() {
    // A flow sequence inside another could be a mapping key: yaml-rust2 reads all of it
    // before the first event.
    let inner = |chars: usize| format!("[[{}1]]\n", "1234567,".repeat(chars / 8));
    assert!(counts(&inner(MAX_LOOKAHEAD - 100)).nodes > 16_000);
    let msg = refused(&inner(MAX_LOOKAHEAD + 100));
    assert!(
        msg.starts_with(
            "1:1: the YAML parser reads on from here past 128 KiB (131072 characters, up to \
             line 1, column 131073) without finishing a value"
        ),
        "{msg}"
    );
    // One scalar is one token too, however long.
    let msg = refused(&format!("a: 1\nb: {}\n", "x".repeat(MAX_LOOKAHEAD + 10)));
    assert!(
        msg.starts_with("2:1: the YAML parser reads on from here"),
        "{msg}"
    );
    // Comments and blank space make no token: they are not counted.
    let comment = format!("# {}\n", "c".repeat(MAX_LOOKAHEAD));
    let blank = "\n".repeat(MAX_LOOKAHEAD);
    let padded = format!(
        "a: 1\n{comment}{blank}   {comment}b: [{}]\n",
        "x ".repeat(1000)
    );
    assert_eq!(counts(&padded).nodes, 1 + 2 + 2 + 1);
}
