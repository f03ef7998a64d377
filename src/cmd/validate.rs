//! `shakeout validate FILE...` and `shakeout schema`.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use crate::exit;
use crate::experiment::Vars;

/// Check each file; exit 0 when all are valid, 3 otherwise (every problem printed).
/// `-` reads the experiment from standard input (once: stdin has one experiment).
pub fn validate(files: &[PathBuf], vars: &Vars) -> i32 {
    if files.iter().filter(|f| f.as_os_str() == "-").count() > 1 {
        eprintln!(
            "error: `-` (standard input) is named more than once: stdin holds one \
             experiment; name the others as files"
        );
        return exit::CANNOT_RUN;
    }
    if files.iter().any(|f| f.as_os_str() == "-") && std::io::stdin().is_terminal() {
        eprintln!("reading an experiment from standard input (end it with Ctrl-D)");
    }
    let mut code = exit::MET;
    for file in files {
        match crate::experiment::load(Path::new(file), vars) {
            Ok(exp) => println!("{}: ok ({})", exp.source.display(), exp.file.metadata.name),
            Err(e) => {
                eprintln!("{e}");
                code = exit::CANNOT_RUN;
            }
        }
    }
    code
}

/// Print the experiment files' JSON Schema.
pub fn schema() -> i32 {
    super::emit(&crate::experiment::schema_text());
    exit::MET
}
