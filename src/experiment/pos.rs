//! A place in an experiment file: what every message about the file points at. Its own
//! module, below both the position walk and the limits it enforces.

/// A 1-based position in the text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Pos {
    pub line: usize,
    pub column: usize,
}

impl Pos {
    /// The start of the file: where problems without a better place are reported.
    pub const START: Pos = Pos { line: 1, column: 1 };
}
