//! Where each value sits in the experiment text. serde only reports positions for the
//! errors it finds itself; semantic rules run on the parsed types, so this module walks
//! the same text with yaml-rust2's marked events and maps paths like `spec.faults[2].at`
//! to 1-based (line, column), so every rule can point at the value it is about.

use std::collections::HashMap;

use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::Marker;

/// A 1-based position in the text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Pos {
    pub line: usize,
    pub column: usize,
}

impl Pos {
    /// The start of the file: where problems without a better place are reported.
    pub const START: Pos = Pos { line: 1, column: 1 };

    fn from_marker(m: Marker) -> (usize, Pos) {
        // yaml-rust2 counts lines from 1 but columns from 0.
        let pos = Pos {
            line: m.line().max(1),
            column: m.col() + 1,
        };
        (m.index(), pos)
    }
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
    entries: HashMap<String, Entry>,
    documents: Vec<Pos>,
    error: Option<(Pos, String)>,
}

impl Positions {
    /// Walk `text`. Never fails: a syntax error stops the walk and is kept in
    /// [`Positions::error`], with the positions found before it still usable.
    pub fn scan(text: &str) -> Positions {
        let mut walker = Walker::default();
        let mut parser = Parser::new_from_str(text);
        if let Err(e) = parser.load(&mut walker, true) {
            let (_, pos) = Pos::from_marker(*e.marker());
            walker.positions.error = Some((pos, e.info().to_string()));
        }
        walker.positions
    }

    /// Start of the value at `path`, if the text has it.
    pub fn value(&self, path: &str) -> Option<Pos> {
        self.entries.get(path).map(|e| e.value)
    }

    /// Position of the key of the mapping entry at `path`, if the text has it.
    pub fn key(&self, path: &str) -> Option<Pos> {
        self.entries.get(path).and_then(|e| e.key)
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

    /// Start of each YAML document in the text.
    pub fn documents(&self) -> &[Pos] {
        &self.documents
    }

    /// The syntax error that stopped the walk, if any.
    pub fn error(&self) -> Option<&(Pos, String)> {
        self.error.as_ref()
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

/// Appends a mapping key to a path.
fn child(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

enum Frame {
    /// `key` is the pending key (and where it is) once it was read.
    Map {
        path: String,
        key: Option<(String, Pos)>,
        first: bool,
    },
    Seq {
        path: String,
        next: usize,
    },
}

#[derive(Default)]
struct Walker {
    positions: Positions,
    stack: Vec<Frame>,
}

impl Walker {
    /// Only the first document is mapped; later ones are only counted (and refused).
    fn mapping(&self) -> bool {
        self.positions.documents.len() == 1
    }

    /// A node starts: work out its path, or `None` when it is a mapping key.
    fn on_node(&mut self, text_key: Option<&str>, index: usize, pos: Pos) -> Option<String> {
        let (path, key) = match self.stack.last_mut() {
            None => (String::new(), None),
            Some(Frame::Seq { path, next }) => {
                *next += 1;
                (format!("{path}[{}]", *next - 1), None)
            }
            Some(Frame::Map { path, key, first }) => match key.take() {
                Some((k, kpos)) => (child(path, &k), Some(kpos)),
                None => {
                    // A block mapping's start mark lies after its first key; its first
                    // key is where a reader sees the mapping begin.
                    if std::mem::take(first) {
                        if let Some(e) = self.positions.entries.get_mut(path.as_str()) {
                            if index < e.index {
                                e.value = pos;
                                e.index = index;
                            }
                        }
                    }
                    // Complex (non-scalar) keys are not part of our format; give them a
                    // placeholder so the walk stays in step.
                    let name = text_key.unwrap_or("?").to_string();
                    *key = Some((name.clone(), pos));
                    return match text_key {
                        Some(_) => None,
                        None => Some(child(path, &format!("?{name}"))),
                    };
                }
            },
        };
        if self.mapping() {
            self.positions.entries.entry(path.clone()).or_insert(Entry {
                key,
                value: pos,
                index,
            });
        }
        Some(path)
    }
}

impl MarkedEventReceiver for Walker {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        let (index, pos) = Pos::from_marker(mark);
        match ev {
            Event::DocumentStart => self.positions.documents.push(pos),
            Event::Scalar(text, ..) => {
                self.on_node(Some(&text), index, pos);
            }
            Event::Alias(_) => {
                self.on_node(Some("*alias"), index, pos);
            }
            Event::MappingStart(..) => {
                let path = self.on_node(None, index, pos).unwrap_or_default();
                self.stack.push(Frame::Map {
                    path,
                    key: None,
                    first: true,
                });
            }
            Event::SequenceStart(..) => {
                let path = self.on_node(None, index, pos).unwrap_or_default();
                self.stack.push(Frame::Seq { path, next: 0 });
            }
            Event::MappingEnd | Event::SequenceEnd => {
                self.stack.pop();
            }
            Event::Nothing | Event::StreamStart | Event::StreamEnd | Event::DocumentEnd => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let pos = Positions::scan(DOC);
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
        let pos = Positions::scan(DOC);
        assert_eq!(pos.value(""), p(1, 1));
        assert_eq!(pos.value("spec"), p(4, 3));
        assert_eq!(pos.value("spec.faults"), p(6, 5));
        assert_eq!(pos.value("spec.faults[1]"), p(8, 7));
        assert_eq!(pos.value("metadata"), p(2, 11));
    }

    #[test]
    fn missing_values_fall_back_to_the_nearest_ancestor() {
        let pos = Positions::scan(DOC);
        assert_eq!(Some(pos.nearest("spec.faults[0].duration")), p(6, 7));
        assert_eq!(Some(pos.nearest("spec.steadyState.window")), p(4, 3));
        assert_eq!(Some(pos.nearest_key("spec.faults[0].at")), p(7, 7));
        assert_eq!(Some(pos.nearest_key("spec.faults[0].exec")), p(6, 7));
        assert_eq!(pos.nearest("nothing.here"), Pos { line: 1, column: 1 });
    }

    #[test]
    fn counts_documents_and_maps_only_the_first() {
        let pos = Positions::scan("a: 1\n---\na: 2\nb: 3\n");
        assert_eq!(pos.documents().len(), 2);
        assert_eq!(pos.documents()[1], Pos { line: 2, column: 1 });
        assert_eq!(pos.value("a"), p(1, 4));
        assert_eq!(pos.value("b"), None);
        assert!(Positions::scan("").documents().is_empty());
        assert!(Positions::scan("# only a comment\n").documents().is_empty());
    }

    #[test]
    fn keeps_the_syntax_error_and_what_came_before_it() {
        let pos = Positions::scan("a: 1\nb: \"open\n");
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
