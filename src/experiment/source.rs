//! The experiment file as text, before any YAML is read: a file that is missing, too big
//! or not text is refused with what it is, and a syntax error caused by a tab in the
//! indentation says so at the tab (YAML parsers only say that a character "cannot start
//! any token", often a line off).

use std::io::{ErrorKind, Read};
use std::path::Path;

use super::limits::MAX_FILE_BYTES;
use super::position::Pos;

/// Why a file could not be read as experiment text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unreadable {
    /// Where, when the problem is in the text (`None`: the file as a whole, like a
    /// missing one, has no line and column).
    pub at: Option<Pos>,
    pub message: String,
}

impl Unreadable {
    fn file(message: impl Into<String>) -> Unreadable {
        Unreadable {
            at: None,
            message: message.into(),
        }
    }

    fn text(message: String) -> Unreadable {
        Unreadable {
            at: Some(Pos::START),
            message,
        }
    }
}

/// The text of `path`, or why it cannot be read. The size is checked twice: up front from
/// the metadata, and while reading, since a pipe or a file under /proc reports a size of
/// 0 (or a file grows): at most `MAX_FILE_BYTES + 1` bytes are ever read.
pub fn read_bounded(path: &Path) -> Result<String, Unreadable> {
    let too_big = |size: &str| {
        Unreadable::text(format!(
            "the file is {size} bytes; experiment files are limited to 1 MiB \
             ({MAX_FILE_BYTES} bytes): an experiment is a few KiB of YAML, so this is \
             probably not the file you meant"
        ))
    };
    let file = std::fs::File::open(path).map_err(|e| match e.kind() {
        ErrorKind::NotFound => Unreadable::file("no such file"),
        _ => Unreadable::file(format!("cannot read file: {e}")),
    })?;
    if let Ok(meta) = file.metadata() {
        if meta.is_dir() {
            return Err(Unreadable::file(
                "is a directory: name an experiment file (`.yaml`) in it",
            ));
        }
        if meta.len() > MAX_FILE_BYTES {
            return Err(too_big(&meta.len().to_string()));
        }
    }
    let mut bytes = Vec::new();
    file.take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| Unreadable::file(format!("cannot read file: {e}")))?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(too_big(&format!("more than {MAX_FILE_BYTES}")));
    }
    text(bytes)
}

/// `bytes` as text, or why they are not: a NUL byte or a sequence that is not UTF-8 means
/// a binary file (or one in another encoding), which no YAML experiment is.
fn text(bytes: Vec<u8>) -> Result<String, Unreadable> {
    const NOT_TEXT: &str = "an experiment is a YAML text file (UTF-8)";
    if let Some(at) = bytes.iter().position(|b| *b == 0) {
        return Err(Unreadable::text(format!(
            "this is not a text file: byte {} is a NUL byte; {NOT_TEXT}",
            at + 1
        )));
    }
    String::from_utf8(bytes).map_err(|e| {
        Unreadable::text(format!(
            "this is not a text file: byte {} is not UTF-8; {NOT_TEXT}",
            e.utf8_error().valid_up_to() + 1
        ))
    })
}

/// The tab that most likely caused a syntax error reported on `line`: the first one in the
/// indentation of that line or the next (parsers report some tabs at the start of the
/// value before them), or `None` when neither is indented with a tab.
pub fn tab_in_indentation(text: &str, line: usize) -> Option<Pos> {
    text.lines()
        .enumerate()
        .skip(line.saturating_sub(1))
        .take(2)
        .find_map(|(i, content)| {
            let indent = content.len() - content.trim_start_matches([' ', '\t']).len();
            content[..indent].find('\t').map(|at| Pos {
                line: i + 1,
                // The indentation is ASCII: its byte offset is its column.
                column: at + 1,
            })
        })
}

/// What a tab in the indentation gets instead of the parser's message.
pub const TAB_MESSAGE: &str = "tab characters are not allowed in YAML indentation; use spaces";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binary_files_are_not_text() {
        let e = text(b"apiVersion: x\0y".to_vec()).unwrap_err();
        assert_eq!(e.at, Some(Pos::START));
        assert!(
            e.message
                .starts_with("this is not a text file: byte 14 is a NUL byte"),
            "{}",
            e.message
        );
        let e = text(b"ab\xff\xfe".to_vec()).unwrap_err();
        assert!(
            e.message
                .starts_with("this is not a text file: byte 3 is not UTF-8"),
            "{}",
            e.message
        );
        assert_eq!(text(b"a: \xc3\xa9".to_vec()), Ok("a: é".to_string()));
    }

    #[test]
    fn missing_files_and_directories_have_no_position() {
        let e = read_bounded(Path::new("/nonexistent/x.yaml")).unwrap_err();
        assert_eq!(e, Unreadable::file("no such file"));
        let e = read_bounded(Path::new("/")).unwrap_err();
        assert_eq!(e.at, None);
        assert!(e.message.starts_with("is a directory"), "{}", e.message);
    }

    #[test]
    fn finds_the_tab_on_the_line_or_the_next() {
        let p = |line, column| Some(Pos { line, column });
        assert_eq!(tab_in_indentation("a:\n\tb: 1\n", 2), p(2, 1));
        assert_eq!(tab_in_indentation("a:\n  b: 1\n  \tc: 2\n", 2), p(3, 3));
        assert_eq!(tab_in_indentation("a:\n  b: 1\n  \tc: 2\n", 3), p(3, 3));
        // A tab after the indentation is not one.
        assert_eq!(tab_in_indentation("a:\tb\n", 1), None);
        assert_eq!(tab_in_indentation("a:\n\tb: 1\n", 4), None);
        assert_eq!(tab_in_indentation("\ta: 1\n", 1), p(1, 1));
    }
}
