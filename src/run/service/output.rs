//! What a supervised service prints: both pipes read at once, so a chatty service never
//! blocks on a full pipe; the last lines of each kept in a ring bounded in lines and
//! bytes, for its exit message and the report; everything appended to its `log` file
//! when it has one.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::process::Child;
use tokio::task::JoinHandle;

/// Lines kept per stream.
pub const MAX_LINES: usize = 50;
/// Bytes kept per stream (the oldest lines go first).
pub const MAX_BYTES: usize = 8 * 1024;
/// A longer line keeps its first this many bytes, then `…`.
pub const MAX_LINE: usize = 1024;
/// An unfinished line held back from the log file, so that a stdout line and a stderr
/// line never mix mid-line; a longer one is written as it comes.
const LOG_HOLD: usize = 64 * 1024;
const READ_CHUNK: usize = 64 * 1024;

/// The last lines of one stream. Blank lines are skipped: they tell a person nothing.
#[derive(Debug, Default)]
pub struct Ring {
    lines: VecDeque<String>,
    bytes: usize,
    /// The line being read (after the last newline), at most [`MAX_LINE`] bytes of it.
    partial: Vec<u8>,
    /// The line being read was longer than [`MAX_LINE`].
    cut: bool,
}

impl Ring {
    /// Take in a chunk of the stream as it was read.
    pub fn push(&mut self, chunk: &[u8]) {
        let newlines = chunk.iter().filter(|b| **b == b'\n').count();
        let mut rest = chunk;
        if newlines > MAX_LINES {
            // Every line before the chunk's last MAX_LINES is evicted anyway: skip them
            // without building them (a chatty service costs a scan, not an allocation a line).
            let skip = newlines - MAX_LINES;
            if let Some((at, _)) = chunk
                .iter()
                .enumerate()
                .filter(|(_, b)| **b == b'\n')
                .nth(skip - 1)
            {
                rest = &chunk[at + 1..];
                *self = Ring::default();
            }
        }
        for piece in rest.split_inclusive(|b| *b == b'\n') {
            match piece.strip_suffix(b"\n") {
                Some(body) => {
                    self.extend(body);
                    self.finish_line();
                }
                None => self.extend(piece),
            }
        }
    }

    fn extend(&mut self, bytes: &[u8]) {
        let room = MAX_LINE.saturating_sub(self.partial.len());
        if bytes.len() > room {
            self.cut = true;
        }
        self.partial
            .extend_from_slice(&bytes[..bytes.len().min(room)]);
    }

    fn current(&self) -> Option<String> {
        let text = String::from_utf8_lossy(&self.partial);
        let text = text.trim_end();
        if text.trim().is_empty() {
            return None;
        }
        Some(if self.cut {
            format!("{text}…")
        } else {
            text.to_owned()
        })
    }

    fn finish_line(&mut self) {
        if let Some(line) = self.current() {
            self.bytes += line.len();
            self.lines.push_back(line);
            while self.lines.len() > MAX_LINES || self.bytes > MAX_BYTES {
                match self.lines.pop_front() {
                    Some(old) => self.bytes -= old.len(),
                    None => break,
                }
            }
        }
        self.partial.clear();
        self.cut = false;
    }

    /// The kept lines, oldest first; an unfinished last line (a service killed mid-line)
    /// included.
    pub fn lines(&self) -> Vec<String> {
        let mut lines: Vec<String> = self.lines.iter().cloned().collect();
        lines.extend(self.current());
        lines
    }
}

#[derive(Clone, Copy)]
enum Stream {
    Stdout,
    Stderr,
}

/// Both streams of one service, across its restarts.
#[derive(Debug)]
pub struct Output {
    stdout: Mutex<Ring>,
    stderr: Mutex<Ring>,
    /// The `log` file, opened once for the run in append mode.
    log: Option<std::fs::File>,
}

/// The readers of one started process; they end at end of file.
pub struct Readers(Vec<JoinHandle<()>>);

impl Readers {
    /// Wait, at most `within`, for both pipes to reach end of file, so the last lines are
    /// in the rings. A grandchild that kept the pipes open keeps its reader going.
    pub async fn finish(self, within: Duration) {
        let _ = tokio::time::timeout(within, async {
            for reader in self.0 {
                let _ = reader.await;
            }
        })
        .await;
    }
}

impl Output {
    pub fn new(log: Option<std::fs::File>) -> Arc<Output> {
        Arc::new(Output {
            stdout: Mutex::default(),
            stderr: Mutex::default(),
            log,
        })
    }

    /// Start reading a just-spawned child's piped stdout and stderr.
    pub fn read(self: &Arc<Output>, child: &mut Child) -> Readers {
        let mut readers = Vec::new();
        if let Some(pipe) = child.stdout.take() {
            readers.push(tokio::spawn(self.clone().drain(Stream::Stdout, pipe)));
        }
        if let Some(pipe) = child.stderr.take() {
            readers.push(tokio::spawn(self.clone().drain(Stream::Stderr, pipe)));
        }
        Readers(readers)
    }

    fn ring(&self, stream: Stream) -> std::sync::MutexGuard<'_, Ring> {
        let ring = match stream {
            Stream::Stdout => &self.stdout,
            Stream::Stderr => &self.stderr,
        };
        ring.lock().unwrap_or_else(|p| p.into_inner())
    }

    async fn drain(self: Arc<Output>, stream: Stream, mut pipe: impl AsyncRead + Unpin) {
        let mut log = self
            .log
            .as_ref()
            .and_then(|f| f.try_clone().ok())
            .map(tokio::fs::File::from_std);
        let mut held: Vec<u8> = Vec::new();
        let mut buf = vec![0u8; READ_CHUNK];
        loop {
            let n = match pipe.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            self.ring(stream).push(&buf[..n]);
            if log.is_some() {
                held.extend_from_slice(&buf[..n]);
                let whole = if held.len() > LOG_HOLD {
                    held.len()
                } else {
                    held.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1)
                };
                if whole > 0 {
                    append(&mut log, &held[..whole]).await;
                    held.drain(..whole);
                }
            }
        }
        append(&mut log, &held).await;
    }

    /// Last lines on standard output, oldest first.
    pub fn stdout(&self) -> Vec<String> {
        self.ring(Stream::Stdout).lines()
    }

    /// Last lines on standard error, oldest first.
    pub fn stderr(&self) -> Vec<String> {
        self.ring(Stream::Stderr).lines()
    }

    /// Up to `n` last lines, stderr's first (that is where a failing program says why).
    pub fn last(&self, n: usize) -> Vec<String> {
        let tail = |lines: Vec<String>, n: usize| -> Vec<String> {
            let skip = lines.len().saturating_sub(n);
            lines.into_iter().skip(skip).collect()
        };
        let mut lines = tail(self.stderr(), n);
        let left = n - lines.len();
        lines.extend(tail(self.stdout(), left));
        lines
    }

    /// `; its last output: LINE`, or the lines indented below, or nothing: for a message
    /// that says why a service did not start.
    pub fn said(&self, n: usize) -> String {
        match self.last(n).as_slice() {
            [] => String::new(),
            [one] => format!("; its last output: {one}"),
            many => format!("; its last output:\n  {}", many.join("\n  ")),
        }
    }
}

/// Append to the log file; after an error, stop writing to it (the ring goes on).
async fn append(log: &mut Option<tokio::fs::File>, bytes: &[u8]) {
    let Some(file) = log else { return };
    if bytes.is_empty() {
        return;
    }
    if let Err(error) = async {
        file.write_all(bytes).await?;
        file.flush().await
    }
    .await
    {
        tracing::warn!(%error, "cannot write to a service's log file; no more output goes there");
        *log = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ring(chunks: &[&[u8]]) -> Vec<String> {
        let mut r = Ring::default();
        for c in chunks {
            r.push(c);
        }
        r.lines()
    }

    #[test]
    fn lines_across_chunks_and_the_unfinished_last_one() {
        assert_eq!(
            ring(&[b"one\ntw", b"o\r\n\n  \nthr", b"ee"]),
            ["one", "two", "three"]
        );
    }

    #[test]
    fn bounded_in_lines_bytes_and_line_length() {
        let many: String = (0..1000).map(|i| format!("line {i}\n")).collect();
        let kept = ring(&[many.as_bytes()]);
        assert_eq!(kept.len(), MAX_LINES);
        assert_eq!(kept.last().map(String::as_str), Some("line 999"));
        assert_eq!(kept[0], "line 950");
        // One line at a time, too.
        let mut r = Ring::default();
        for i in 0..1000 {
            r.push(format!("line {i}\n").as_bytes());
        }
        assert_eq!(r.lines(), kept);
        // Long lines: cut, and the bytes bound drops the oldest.
        let long = format!("{}\n", "x".repeat(5000));
        let kept = ring(&[long.as_bytes(), long.as_bytes(), long.as_bytes(), b"end\n"]);
        assert!(kept.iter().all(|l| l.len() <= MAX_LINE + '…'.len_utf8()));
        assert!(kept[0].ends_with('…'));
        assert_eq!(kept.last().map(String::as_str), Some("end"));
        let bytes: usize = kept.iter().map(String::len).sum();
        assert!(bytes <= MAX_BYTES, "{bytes}");
        // A line that never ends holds at most MAX_LINE.
        let mut r = Ring::default();
        for _ in 0..100 {
            r.push(&[b'y'; 4096]);
        }
        assert_eq!(r.partial.len(), MAX_LINE);
    }

    #[tokio::test]
    async fn reads_both_pipes_and_appends_to_the_log() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("svc.log");
        std::fs::write(&path, "earlier\n").unwrap();
        let log = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        let output = Output::new(Some(log));
        // Lots on stderr before anything on stdout: one pipe read after the other would
        // block the service on a full stderr pipe.
        let mut child = tokio::process::Command::new("sh")
            .args([
                "-c",
                "yes err | head -c 300000 >&2; echo 'bad thing' >&2; echo out; printf partial",
            ])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let readers = output.read(&mut child);
        child.wait().await.unwrap();
        readers.finish(Duration::from_secs(5)).await;
        assert_eq!(output.stdout(), ["out", "partial"]);
        assert_eq!(
            output.stderr().last().map(String::as_str),
            Some("bad thing")
        );
        assert_eq!(output.last(2), ["err", "bad thing"]);
        // Stderr's lines take the room first; stdout's fill what is left.
        assert_eq!(output.last(4), ["err", "err", "err", "bad thing"]);
        assert_eq!(output.stderr().len(), MAX_LINES);
        let quiet = Output::new(None);
        quiet.stderr.lock().unwrap().push(b"why\n");
        quiet.stdout.lock().unwrap().push(b"a\nb\nc\n");
        assert_eq!(quiet.last(3), ["why", "b", "c"]);
        assert_eq!(quiet.said(3), "; its last output:\n  why\n  b\n  c");
        assert_eq!(output.said(1), "; its last output: bad thing");
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.starts_with("earlier\n"));
        assert_eq!(
            text.len(),
            "earlier\n".len() + 300_000 + "bad thing\nout\npartial".len()
        );
        // Each stream's lines whole; which stream's come first is up to the scheduler.
        // (stdout's `out` may land between stderr's last `err` and `bad thing`.)
        assert!(
            text.contains("\nbad thing\n"),
            "{}",
            &text[text.len() - 40..]
        );
        assert!(text.contains("out\n") && text.contains("partial"));
    }
}
