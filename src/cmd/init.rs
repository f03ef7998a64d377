//! `shakeout init [FILE]`: a commented starter experiment that runs as it is.

use std::io::Write;
use std::path::Path;

use crate::exit;

/// The starter, the same text as `experiments/starter.yaml` (validated with the others).
pub const STARTER: &str = include_str!("../../experiments/starter.yaml");

/// Write the starter to `file` (`-`: stdout). An existing file is left alone unless
/// `force`; a failed write leaves no partial file.
pub fn init(file: &Path, force: bool) -> i32 {
    if file == Path::new("-") {
        super::emit(STARTER);
        return exit::MET;
    }
    if file.exists() && !force {
        eprintln!(
            "{}: already exists; shakeout init leaves it alone (--force replaces it, \
             or name another file)",
            file.display()
        );
        return exit::CANNOT_RUN;
    }
    match crate::report::write_atomic(file, STARTER.as_bytes()) {
        Ok(()) => {
            println!(
                "wrote {f}: a sample service, probed and killed.\n\
                 next: shakeout run {f}   (then point it at your own service)",
                f = file.display()
            );
            let _ = std::io::stdout().flush();
            exit::MET
        }
        Err(e) => {
            eprintln!("cannot write {}: {e}", file.display());
            exit::CANNOT_RUN
        }
    }
}
