//! How much work an experiment file may ask of the loader. A few kilobytes of YAML can
//! ask for gigabytes (aliases that copy anchors into each other, thousands of nested
//! brackets), and serde_yaml builds all of it before any of our checks run; so the
//! position walk counts, event by event, what serde_yaml would build and stops at the
//! first token that goes past a limit, before serde_yaml reads the text. Real experiment
//! files (`experiments/`, `tests/good_input/`) are at most 3 KiB, hold at most 342
//! values, nest at most 8 deep and use no alias (`tests.rs` checks it); every limit is
//! far above that and low enough that any file within them loads in well under a second
//! and 64 MiB (`benches/hostile_yaml.py` measures it, BENCHMARKS.md has the numbers).

use std::cell::Cell;
use std::rc::Rc;
use std::str::Chars;

use super::pos::Pos;

/// Largest experiment file read, in bytes: 300 times the largest real one. It bounds
/// everything that the limits below do not count: text, scalars, comments.
pub const MAX_FILE_BYTES: u64 = 1 << 20;

/// Deepest nesting of mappings and sequences (the document's own mapping is 1). Real
/// experiments nest at most 8 deep (`spec.faults[4].process.target.pods.allowProtected`).
/// serde_yaml refuses 128 levels anyway ("recursion limit exceeded"), and its parser
/// does work in proportion to the depth for every token in a flow collection.
pub const MAX_DEPTH: usize = 64;

/// Most aliases (`*name`) in a file. Real experiments use none; an anchor shared by
/// every fault of a large experiment is a few dozen aliases.
pub const MAX_ALIASES: usize = 1_000;

/// Most values (scalars, mappings, sequences) serde_yaml would build, counting each
/// alias as a copy of what it refers to: this is what stops alias fan-out and "billion
/// laughs", a few hundred bytes each. Real experiments hold at most 342. serde_yaml's
/// costliest values are one-item sequences nested 64 deep: about 600 bytes each at its
/// peak (its event list and the tree), so 50,000 of them peak at 35 MiB and 0.1 s in a
/// release build (100,000 reached 62 MiB).
pub const MAX_NODES: u64 = 50_000;

/// Most characters yaml-rust2's scanner may read past the last value it finished,
/// blanks and comments not counted. It reads a whole scalar before handing it over, and
/// a whole flow collection (`[...]`, `{...}`) that could still turn out to be a mapping
/// key (one that starts a document, or an item of another flow sequence), holding about
/// one token per two characters: 1 MiB of `[[1,1,1,...` held 123 MiB before the first
/// value reached our checks. 128 KiB of it is about 12 MiB; a whole real experiment
/// written as one flow mapping (JSON) is 4 KiB.
pub const MAX_LOOKAHEAD: usize = 128 << 10;

/// A limit the text went past: where, and a message saying which and what is allowed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub pos: Pos,
    pub message: String,
}

impl Refusal {
    fn at(pos: Pos, message: String) -> Refusal {
        Refusal { pos, message }
    }

    /// Nesting past [`MAX_DEPTH`] at `pos`.
    pub fn too_deep(pos: Pos) -> Refusal {
        Refusal::at(
            pos,
            format!(
                "mappings and sequences nest more than {MAX_DEPTH} deep here: experiment \
                 files may nest at most {MAX_DEPTH} levels (a real experiment needs 8)"
            ),
        )
    }
}

/// How big a document is, as counted against the limits.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Values, aliases expanded (against [`MAX_NODES`]).
    pub nodes: u64,
    /// Deepest nesting seen (against [`MAX_DEPTH`]).
    pub depth: usize,
    /// Aliases (against [`MAX_ALIASES`]).
    pub aliases: usize,
}

/// A collection whose end has not been seen yet.
#[derive(Debug)]
struct Open {
    /// Its anchor id (yaml-rust2 numbers anchors from 1; 0 is none).
    anchor: usize,
    /// [`Budget::nodes`] when it started, to know its expanded size when it ends.
    nodes_before: u64,
}

/// Running totals of one document, fed one parser event at a time.
#[derive(Debug, Default)]
pub struct Budget {
    /// Values so far, aliases expanded.
    nodes: u64,
    aliases: usize,
    /// Whether an alias added to `nodes` (to say so when the total goes past the limit).
    expanded: bool,
    open: Vec<Open>,
    /// Deepest `open` has been.
    depth: usize,
    /// Expanded size of each anchored value once it is complete, by anchor id;
    /// 0 while it is still open.
    sizes: Vec<u64>,
}

impl Budget {
    /// A scalar, anchored with `anchor` (0: none).
    pub fn scalar(&mut self, anchor: usize, pos: Pos) -> Result<(), Refusal> {
        self.add(1, pos, false)?;
        self.anchored(anchor, 1);
        Ok(())
    }

    /// A mapping or sequence starts.
    pub fn start(&mut self, anchor: usize, pos: Pos) -> Result<(), Refusal> {
        if self.open.len() >= MAX_DEPTH {
            return Err(Refusal::too_deep(pos));
        }
        let nodes_before = self.nodes;
        self.add(1, pos, false)?;
        self.open.push(Open {
            anchor,
            nodes_before,
        });
        self.depth = self.depth.max(self.open.len());
        Ok(())
    }

    /// The innermost open mapping or sequence ends.
    pub fn end(&mut self) {
        if let Some(open) = self.open.pop() {
            self.anchored(open.anchor, self.nodes - open.nodes_before);
        }
    }

    /// An alias to the value anchored as `anchor`: serde_yaml copies that value here.
    pub fn alias(&mut self, anchor: usize, pos: Pos) -> Result<(), Refusal> {
        self.aliases += 1;
        if self.aliases > MAX_ALIASES {
            return Err(Refusal::at(
                pos,
                format!(
                    "more than {MAX_ALIASES} YAML aliases (`*name`): experiment files may use \
                     anchors and aliases for small shared pieces only, at most {MAX_ALIASES} \
                     aliases"
                ),
            ));
        }
        match self.sizes.get(anchor).copied() {
            Some(size) if size > 0 => self.add(size, pos, true),
            // The parser refuses aliases to unknown anchors, so this one is still open:
            // the alias sits inside the value it names.
            _ => Err(Refusal::at(
                pos,
                "this YAML alias refers to a value that contains it, which would repeat \
                 forever: an alias may only refer to a value that is complete before it"
                    .to_string(),
            )),
        }
    }

    /// The totals so far.
    pub fn counts(&self) -> Counts {
        Counts {
            nodes: self.nodes,
            depth: self.depth,
            aliases: self.aliases,
        }
    }

    fn anchored(&mut self, anchor: usize, size: u64) {
        if anchor == 0 {
            return;
        }
        if self.sizes.len() <= anchor {
            self.sizes.resize(anchor + 1, 0);
        }
        self.sizes[anchor] = size;
    }

    fn add(&mut self, n: u64, pos: Pos, alias: bool) -> Result<(), Refusal> {
        self.expanded |= alias;
        self.nodes = self.nodes.saturating_add(n);
        if self.nodes <= MAX_NODES {
            return Ok(());
        }
        let message = if alias {
            format!(
                "YAML aliases here would expand the document past {MAX_NODES} values: \
                 experiment files may use anchors and aliases for small shared pieces only"
            )
        } else if self.expanded {
            format!(
                "the document holds more than {MAX_NODES} values here, counting what its \
                 aliases expand to: experiment files hold at most {MAX_NODES} (a real one, \
                 a few hundred)"
            )
        } else {
            format!(
                "the document holds more than {MAX_NODES} values here: experiment files \
                 hold at most {MAX_NODES} (a real one, a few hundred)"
            )
        };
        Err(Refusal::at(pos, message))
    }
}

/// How far yaml-rust2's scanner has read, and how far it may: [`MAX_LOOKAHEAD`] chars
/// past the last event, blanks and comments not counted. Shared (`Rc`) between the
/// reader the parser owns and the walk that moves the limit on at each event.
#[derive(Debug, Default)]
pub struct Lookahead {
    /// Chars handed to the scanner so far.
    read: Cell<usize>,
    /// Chars it may have read before the next event: the last event's index plus
    /// [`MAX_LOOKAHEAD`], plus one for each blank or comment char read (they make no
    /// token, so cost nothing to look past).
    limit: Cell<usize>,
    /// Whether the input was cut short at `limit` (the scanner then saw an early end).
    cut: Cell<bool>,
}

impl Lookahead {
    /// A meter for a walk that has seen no event yet.
    pub fn new() -> Rc<Lookahead> {
        let lookahead = Lookahead::default();
        lookahead.limit.set(MAX_LOOKAHEAD);
        Rc::new(lookahead)
    }

    /// `text` as the scanner should read it: char by char, ending at the limit.
    pub fn reader<'t>(self: &Rc<Self>, text: &'t str) -> Metered<'t> {
        Metered {
            chars: text.chars(),
            meter: Rc::clone(self),
            comment: false,
            after_blank: true,
        }
    }

    /// The parser produced an event at char index `index`.
    pub fn event_at(&self, index: usize) {
        let limit = index.saturating_add(MAX_LOOKAHEAD);
        self.limit.set(self.limit.get().max(limit));
    }

    /// The refusal, if the scanner was cut short since the event at `last`: whatever it
    /// made of the early end is not about the file.
    pub fn check(&self, text: &str, last: Pos) -> Result<(), Refusal> {
        if !self.cut.get() {
            return Ok(());
        }
        let (mut line, mut column) = (1, 1);
        for c in text.chars().take(self.limit.get()) {
            if c == '\n' {
                line += 1;
                column = 1;
            } else {
                column += 1;
            }
        }
        Err(Refusal::at(
            last,
            format!(
                "the YAML parser reads on from here past 128 KiB ({MAX_LOOKAHEAD} characters, \
                 up to line {line}, column {column}) without finishing a value: experiment \
                 files keep each value and each flow collection (`[...]`, `{{...}}`) under \
                 128 KiB, not counting comments and blank space; write long lists in block \
                 style, one `- item` per line"
            ),
        ))
    }
}

/// The text as the scanner reads it, through a [`Lookahead`].
pub struct Metered<'t> {
    chars: Chars<'t>,
    meter: Rc<Lookahead>,
    /// Inside a comment (`#` after a blank or at the start of a line, to the line's end).
    /// Inside a quoted or block scalar this may be wrong, but never in a way that hides
    /// tokens: there the whole text is one scalar token.
    comment: bool,
    /// The last char was blank (or there was none yet).
    after_blank: bool,
}

impl Iterator for Metered<'_> {
    type Item = char;

    fn next(&mut self) -> Option<char> {
        let meter = &self.meter;
        let read = meter.read.get();
        if read >= meter.limit.get() {
            meter
                .cut
                .set(meter.cut.get() || !self.chars.as_str().is_empty());
            return None;
        }
        let c = self.chars.next()?;
        meter.read.set(read + 1);
        let blank = matches!(c, ' ' | '\t' | '\n' | '\r');
        if c == '#' && self.after_blank {
            self.comment = true;
        } else if c == '\n' || c == '\r' {
            self.comment = false;
        }
        if blank || self.comment {
            meter.limit.set(meter.limit.get() + 1);
        }
        self.after_blank = blank;
        Some(c)
    }
}

#[cfg(test)]
mod tests;
