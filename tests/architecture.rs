//! The house's layers hold (docs/architecture.md): data flows down, never back up.
//! `experiment`, `probe` and `verdict` never name `report`, `run` or `cmd` (the record
//! is judged, then presented, then printed), and the controller's top-level modules
//! import each other without a cycle. Read from the source text, as a reviewer would.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Every `.rs` file under `dir`.
fn sources(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).expect("read src").flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(sources(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
    out
}

/// The top-level module a file of `src/` belongs to (`src/run/faults/mod.rs` -> `run`).
fn module_of(src: &Path, file: &Path) -> String {
    let rel = file.strip_prefix(src).expect("under src");
    let first = rel.components().next().expect("a component");
    first
        .as_os_str()
        .to_string_lossy()
        .trim_end_matches(".rs")
        .to_string()
}

/// The top-level modules a file names as `crate::NAME`, its tests left out.
fn names(text: &str) -> BTreeSet<String> {
    let code = text.split("#[cfg(test)]").next().unwrap_or_default();
    let mut out = BTreeSet::new();
    for (i, _) in code.match_indices("crate::") {
        let rest = &code[i + "crate::".len()..];
        let name: String = rest
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        if !name.is_empty() {
            out.insert(name);
        }
    }
    out
}

fn graph() -> BTreeMap<String, BTreeMap<String, Vec<String>>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut deps: BTreeMap<String, BTreeMap<String, Vec<String>>> = BTreeMap::new();
    for file in sources(&src) {
        let from = module_of(&src, &file);
        let text = std::fs::read_to_string(&file).expect("read a source file");
        for to in names(&text) {
            if to != from {
                deps.entry(from.clone())
                    .or_default()
                    .entry(to)
                    .or_default()
                    .push(file.display().to_string());
            }
        }
    }
    deps
}

#[test]
fn judged_and_recorded_data_never_names_its_presentation() {
    let deps = graph();
    let mut wrong = Vec::new();
    for low in [
        "experiment",
        "probe",
        "monitor",
        "verdict",
        "record",
        "text",
    ] {
        for high in ["report", "run", "cmd"] {
            if let Some(files) = deps.get(low).and_then(|d| d.get(high)) {
                wrong.push(format!("{low} names {high} in {files:?}"));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "data flows back up:\n{}",
        wrong.join("\n")
    );
}

#[test]
fn no_cycle_between_top_level_modules() {
    let deps = graph();
    // Depth-first search for a back edge, reporting the cycle it closes.
    fn visit(
        node: &str,
        deps: &BTreeMap<String, BTreeMap<String, Vec<String>>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|n| n == node) {
            let mut cycle = path[at..].to_vec();
            cycle.push(node.to_string());
            return Some(cycle);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_string());
        for next in deps.get(node).map(|d| d.keys()).into_iter().flatten() {
            if let Some(c) = visit(next, deps, path, done) {
                return Some(c);
            }
        }
        path.pop();
        done.insert(node.to_string());
        None
    }
    let mut done = BTreeSet::new();
    for node in deps.keys() {
        if let Some(cycle) = visit(node, &deps, &mut Vec::new(), &mut done) {
            let edges: Vec<String> = cycle
                .windows(2)
                .map(|w| format!("{} -> {} ({:?})", w[0], w[1], deps[&w[0]][&w[1]]))
                .collect();
            panic!("import cycle: {}", edges.join("; "));
        }
    }
}

#[test]
fn only_commands_print() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut wrong = Vec::new();
    for file in sources(&src) {
        let module = module_of(&src, &file);
        if module == "cmd" || module == "main" {
            continue;
        }
        let text = std::fs::read_to_string(&file).expect("read a source file");
        let code = text.split("#[cfg(test)]").next().unwrap_or_default();
        for what in [
            "println!",
            "eprintln!",
            "print!(",
            "eprint!(",
            "process::exit",
        ] {
            if code.contains(what) {
                wrong.push(format!("{} uses {what}", file.display()));
            }
        }
    }
    assert!(wrong.is_empty(), "below cmd:\n{}", wrong.join("\n"));
}

#[test]
fn no_source_file_over_600_lines() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let long: Vec<String> = sources(&src)
        .into_iter()
        .filter_map(|f| {
            let n = std::fs::read_to_string(&f).ok()?.lines().count();
            (n > 600).then(|| format!("{} has {n} lines", f.display()))
        })
        .collect();
    assert!(long.is_empty(), "{}", long.join("\n"));
}
