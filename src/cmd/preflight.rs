//! `shakeout preflight FILE`: reach every agent (and the cluster) the experiment uses,
//! print what each can do and what is missing; exit 0 when every one is ready, 3 if not.

use std::path::Path;

use super::block_on;
use crate::exit;
use crate::experiment::Vars;
use crate::fault::preflight::render;

pub(super) fn preflight_file(file: &Path, vars: &Vars) -> i32 {
    let exp = match crate::experiment::load(file, vars) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("{e}");
            return exit::CANNOT_RUN;
        }
    };
    block_on(async {
        let found = match crate::run::setup::preflight(&exp).await {
            Ok(f) => f,
            Err(e) => {
                eprintln!("{e}");
                return exit::CANNOT_RUN;
            }
        };
        for line in &found.swept {
            println!("embedded agent swept what a dead controller left: {line}");
        }
        for problem in &found.problems {
            eprintln!("{problem}");
        }
        print!("{}", render(&found.checks));
        if found.ok() {
            exit::MET
        } else {
            exit::CANNOT_RUN
        }
    })
}
