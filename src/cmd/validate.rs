//! `shakeout validate FILE...` and `shakeout schema`.

use std::path::{Path, PathBuf};

use crate::exit;
use crate::experiment::Vars;

/// Check each file; exit 0 when all are valid, 3 otherwise (every problem printed).
pub fn validate(files: &[PathBuf], vars: &Vars) -> i32 {
    let mut code = exit::MET;
    for file in files {
        match crate::experiment::load(Path::new(file), vars) {
            Ok(exp) => println!("{}: ok ({})", file.display(), exp.file.metadata.name),
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
