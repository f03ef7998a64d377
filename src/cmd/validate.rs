//! `shakeout validate FILE...` and `shakeout schema`.

use std::path::{Path, PathBuf};

use crate::exit;

/// Check each file; exit 0 when all are valid, 3 otherwise (every problem printed).
pub fn validate(files: &[PathBuf]) -> i32 {
    let mut code = exit::MET;
    for file in files {
        match crate::experiment::load(Path::new(file)) {
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
    let text = serde_json::to_string_pretty(&crate::experiment::schema()).unwrap_or_default();
    super::emit(&format!("{text}\n"));
    exit::MET
}
