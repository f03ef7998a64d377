//! Where each value sits in the experiment text. serde only reports positions for the
//! errors it finds itself; semantic rules run on the parsed types, so this module walks
//! the same text with yaml-rust2's marked events and maps paths like `spec.faults[2].at`
//! to 1-based (line, column), so every rule can point at the value it is about. The walk
//! runs first, one event at a time, so it is also where [`super::limits`] are enforced:
//! it stops at the first token past one, before serde_yaml reads the text.

use std::collections::HashMap;

use yaml_rust2::parser::{Event, Parser};
use yaml_rust2::scanner::Marker;

use super::limits::{Budget, Counts, Lookahead, Refusal};

pub use super::pos::Pos;

/// The char index and position of a parser marker.
fn from_marker(m: Marker) -> (usize, Pos) {
    // yaml-rust2 counts lines from 1 but columns from 0.
    let pos = Pos {
        line: m.line().max(1),
        column: m.col() + 1,
    };
    (m.index(), pos)
}

/// Where one node sits: its own start and, for a mapping entry, its key.
#[derive(Debug, Clone, Copy)]
struct Entry {
    key: Option<Pos>,
    value: Pos,
    /// Char index of `value`, to correct block-mapping starts (see `on_node`).
    index: usize,
}

/// Positions of every node of the first document, by path.
#[derive(Debug, Default)]
pub struct Positions {
    /// Keyed by the path's hash ([`PathKey`]), not the path: a path repeats every key
    /// above it, so storing them whole would cost (depth x key length) per value.
    entries: HashMap<u128, Entry>,
    documents: Vec<Pos>,
    error: Option<(Pos, String)>,
    /// Char index where a syntax error stopped the walk; the text after it is unchecked.
    stopped_at: Option<usize>,
    counts: Counts,
}

impl Positions {
    /// Walk `text`, one parser event at a time, and stop at the first token that goes
    /// past a limit in [`super::limits`] (the refusal says which and where) or at the
    /// start of a second document (which the caller refuses). A syntax error also stops
    /// the walk but is not a refusal: it is kept in [`Positions::error`], with the
    /// positions found before it still usable.
    pub fn scan(text: &str) -> Result<Positions, Refusal> {
        let mut walker = Walker::default();
        let lookahead = Lookahead::new();
        let mut parser = Parser::new(lookahead.reader(text));
        let mut last = Pos::START;
        loop {
            let next = parser.next_token();
            lookahead.check(text, last)?;
            let (ev, mark) = match next {
                Ok(next) => next,
                Err(e) => {
                    let (index, pos) = from_marker(*e.marker());
                    // yaml-rust2 counts flow nesting in a u8 and gives up at 256 levels,
                    // before any of them reaches `Budget::start` (it reads a whole flow
                    // collection ahead when it could be a key): the same refusal.
                    if e.info() == "recursion limit exceeded" {
                        return Err(Refusal::too_deep(pos));
                    }
                    walker.positions.error = Some((pos, e.info().to_string()));
                    walker.positions.stopped_at = Some(index);
                    break;
                }
            };
            let (index, pos) = from_marker(mark);
            last = pos;
            lookahead.event_at(index);
            if ev == Event::StreamEnd {
                break;
            }
            let mapping = matches!(ev, Event::MappingStart(..));
            match walker.on_event(ev, mark) {
                Ok(true) => {}
                Ok(false) => break,
                Err(mut refusal) => {
                    // A block mapping's start mark lies after its first key (see
                    // `on_node`); point where a reader sees it begin.
                    if let (true, Ok((_, key))) = (mapping, parser.next_token()) {
                        let (key_index, key_pos) = from_marker(key);
                        if key_index < index {
                            refusal.pos = key_pos;
                        }
                    }
                    return Err(refusal);
                }
            }
        }
        walker.positions.counts = walker.budget.counts();
        Ok(walker.positions)
    }

    /// Start of the value at `path`, if the text has it.
    pub fn value(&self, path: &str) -> Option<Pos> {
        self.entries.get(&PathKey::of(path).hash).map(|e| e.value)
    }

    /// Position of the key of the mapping entry at `path`, if the text has it.
    pub fn key(&self, path: &str) -> Option<Pos> {
        self.entries
            .get(&PathKey::of(path).hash)
            .and_then(|e| e.key)
    }

    /// The value at `path` or, when it is missing, at its nearest ancestor that exists
    /// (the mapping a missing field belongs in).
    pub fn nearest(&self, path: &str) -> Pos {
        let mut path = path;
        loop {
            if let Some(pos) = self.value(path) {
                return pos;
            }
            match parent(path) {
                Some(p) => path = p,
                None => return Pos::START,
            }
        }
    }

    /// The key at `path` when there is one (for "this field should not be here"),
    /// else the same as [`Positions::nearest`].
    pub fn nearest_key(&self, path: &str) -> Pos {
        self.key(path).unwrap_or_else(|| self.nearest(path))
    }

    /// Start of each YAML document in the text; the walk stops at the second one.
    pub fn documents(&self) -> &[Pos] {
        &self.documents
    }

    /// The syntax error that stopped the walk, if any.
    pub fn error(&self) -> Option<&(Pos, String)> {
        self.error.as_ref()
    }

    /// How big the first document is, as counted against [`super::limits`].
    pub fn counts(&self) -> Counts {
        self.counts
    }

    /// Char index where a syntax error stopped the walk (`None`: the walk reached the
    /// end of the text, or of the first document). No limit was checked after it.
    pub fn stopped_at(&self) -> Option<usize> {
        self.stopped_at
    }
}

/// `a.b[2].c` -> `a.b[2]` -> `a.b` -> `a` -> `` -> None.
fn parent(path: &str) -> Option<&str> {
    if path.is_empty() {
        return None;
    }
    Some(match path.rfind(['.', '[']) {
        Some(i) => &path[..i],
        None => "",
    })
}

/// A path like `spec.faults[2].at`, as a hash that grows with the path: the walk extends
/// its parent's hash by `.key` or `[i]` (cost: the key's length), and a lookup hashes the
/// whole path string; FNV-1a reads bytes one at a time, so both give the same value.
/// 128 bits: two of a file's paths colliding is not a practical concern (and would only
/// misplace a message).
#[derive(Debug, Clone, Copy)]
struct PathKey {
    hash: u128,
    /// Whether the path is empty (the document root): its children have no leading dot.
    empty: bool,
}

impl PathKey {
    const ROOT: PathKey = PathKey {
        hash: 0x6c62_272e_07bb_0142_62b8_2175_6295_c58d,
        empty: true,
    };
    const PRIME: u128 = 0x0000_0000_0100_0000_0000_0000_0000_013b;

    /// The key of a whole path string.
    fn of(path: &str) -> PathKey {
        PathKey::ROOT.field(path)
    }

    /// The path of mapping entry `key` under this one (`a.b` + `c` = `a.b.c`).
    fn field(self, key: &str) -> PathKey {
        let mut next = self;
        if !self.empty {
            next.write(b".");
        }
        next.write(key.as_bytes());
        next.empty = self.empty && key.is_empty();
        next
    }

    /// The path of sequence item `index` under this one (`a.b` + 2 = `a.b[2]`).
    fn item(self, index: usize) -> PathKey {
        let mut next = self;
        next.write(b"[");
        next.write(index.to_string().as_bytes());
        next.write(b"]");
        next.empty = false;
        next
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.hash = (self.hash ^ u128::from(b)).wrapping_mul(PathKey::PRIME);
        }
    }
}

enum Frame {
    /// `key` is the pending key's path (and where the key is) once it was read.
    Map {
        path: PathKey,
        key: Option<(PathKey, Pos)>,
        first: bool,
    },
    Seq {
        path: PathKey,
        next: usize,
    },
}

#[derive(Default)]
struct Walker {
    positions: Positions,
    budget: Budget,
    stack: Vec<Frame>,
}

impl Walker {
    /// A node starts: work out its path, or `None` when it is a mapping key.
    fn on_node(&mut self, text_key: Option<&str>, index: usize, pos: Pos) -> Option<PathKey> {
        let (path, key) = match self.stack.last_mut() {
            None => (PathKey::ROOT, None),
            Some(Frame::Seq { path, next }) => {
                *next += 1;
                (path.item(*next - 1), None)
            }
            Some(Frame::Map { path, key, first }) => match key.take() {
                Some((k, kpos)) => (k, Some(kpos)),
                None => {
                    // A block mapping's start mark lies after its first key; its first
                    // key is where a reader sees the mapping begin.
                    if std::mem::take(first) {
                        if let Some(e) = self.positions.entries.get_mut(&path.hash) {
                            if index < e.index {
                                e.value = pos;
                                e.index = index;
                            }
                        }
                    }
                    // Complex (non-scalar) keys are not part of our format; give them a
                    // placeholder so the walk stays in step.
                    let name = text_key.unwrap_or("?");
                    *key = Some((path.field(name), pos));
                    return match text_key {
                        Some(_) => None,
                        None => Some(path.field("??")),
                    };
                }
            },
        };
        self.positions.entries.entry(path.hash).or_insert(Entry {
            key,
            value: pos,
            index,
        });
        Some(path)
    }

    /// One parser event; `Ok(false)` once the walk is done (a second document starts).
    fn on_event(&mut self, ev: Event, mark: Marker) -> Result<bool, Refusal> {
        let (index, pos) = from_marker(mark);
        match ev {
            Event::DocumentStart => {
                self.positions.documents.push(pos);
                // Only the first document is mapped; the caller refuses a second one.
                return Ok(self.positions.documents.len() == 1);
            }
            Event::Scalar(text, _, anchor, _) => {
                self.budget.scalar(anchor, pos)?;
                self.on_node(Some(&text), index, pos);
            }
            Event::Alias(anchor) => {
                self.budget.alias(anchor, pos)?;
                self.on_node(Some("*alias"), index, pos);
            }
            Event::MappingStart(anchor, _) => {
                self.budget.start(anchor, pos)?;
                let path = self.on_node(None, index, pos).unwrap_or(PathKey::ROOT);
                self.stack.push(Frame::Map {
                    path,
                    key: None,
                    first: true,
                });
            }
            Event::SequenceStart(anchor, _) => {
                self.budget.start(anchor, pos)?;
                let path = self.on_node(None, index, pos).unwrap_or(PathKey::ROOT);
                self.stack.push(Frame::Seq { path, next: 0 });
            }
            Event::MappingEnd | Event::SequenceEnd => {
                self.budget.end();
                self.stack.pop();
            }
            Event::Nothing | Event::StreamStart | Event::StreamEnd | Event::DocumentEnd => {}
        }
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scan(text: &str) -> Positions {
        Positions::scan(text).unwrap_or_else(|r| panic!("refused: {r:?}"))
    }

    fn p(line: usize, column: usize) -> Option<Pos> {
        Some(Pos { line, column })
    }

    const DOC: &str = "\
apiVersion: shakeout/v1
metadata: { name: x, labels: { app.kubernetes.io/name: shop } }
spec:
  duration: 1m
  faults:
    - name: a
      at: 10s
    - name: b
      exec:
        command: [kill, \"-9\", x]
";

    #[test]
    fn maps_paths_to_one_based_value_positions() {
        let pos = scan(DOC);
        assert_eq!(pos.value("apiVersion"), p(1, 13));
        assert_eq!(pos.value("metadata.name"), p(2, 19));
        assert_eq!(pos.value("spec.duration"), p(4, 13));
        assert_eq!(pos.value("spec.faults[0].at"), p(7, 11));
        assert_eq!(pos.value("spec.faults[1].exec.command[1]"), p(10, 25));
        assert_eq!(pos.key("spec.faults[0].at"), p(7, 7));
        assert_eq!(
            pos.value("metadata.labels.app.kubernetes.io/name"),
            p(2, 56)
        );
        assert!(pos.error().is_none());
    }

    #[test]
    fn block_mappings_start_at_their_first_key_and_flow_ones_at_the_brace() {
        let pos = scan(DOC);
        assert_eq!(pos.value(""), p(1, 1));
        assert_eq!(pos.value("spec"), p(4, 3));
        assert_eq!(pos.value("spec.faults"), p(6, 5));
        assert_eq!(pos.value("spec.faults[1]"), p(8, 7));
        assert_eq!(pos.value("metadata"), p(2, 11));
    }

    #[test]
    fn missing_values_fall_back_to_the_nearest_ancestor() {
        let pos = scan(DOC);
        assert_eq!(Some(pos.nearest("spec.faults[0].duration")), p(6, 7));
        assert_eq!(Some(pos.nearest("spec.steadyState.window")), p(4, 3));
        assert_eq!(Some(pos.nearest_key("spec.faults[0].at")), p(7, 7));
        assert_eq!(Some(pos.nearest_key("spec.faults[0].exec")), p(6, 7));
        assert_eq!(pos.nearest("nothing.here"), Pos { line: 1, column: 1 });
    }

    #[test]
    fn counts_documents_and_maps_only_the_first() {
        let pos = scan("a: 1\n---\na: 2\nb: 3\n");
        assert_eq!(pos.documents().len(), 2);
        assert_eq!(pos.documents()[1], Pos { line: 2, column: 1 });
        assert_eq!(pos.value("a"), p(1, 4));
        assert_eq!(pos.value("b"), None);
        assert!(scan("").documents().is_empty());
        assert!(scan("# only a comment\n").documents().is_empty());
    }

    #[test]
    fn keeps_the_syntax_error_and_what_came_before_it() {
        let pos = scan("a: 1\nb: \"open\n");
        assert_eq!(pos.value("a"), p(1, 4));
        let (at, message) = pos.error().cloned().unwrap_or_else(|| panic!("no error"));
        assert_eq!(at.line, 2);
        assert!(message.contains("quoted scalar"), "{message}");
    }

    #[test]
    fn parents() {
        assert_eq!(parent("a.b[2].c"), Some("a.b[2]"));
        assert_eq!(parent("a.b[2]"), Some("a.b"));
        assert_eq!(parent("a"), Some(""));
        assert_eq!(parent(""), None);
    }
}
