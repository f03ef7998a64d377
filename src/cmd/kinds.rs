//! `shakeout faults` and `shakeout probes`: what each kind does and needs, with an entry
//! that uses it (from [`crate::catalog`]).

use crate::catalog::{Kind, FAULTS, PROBES};
use crate::exit;

fn print(title: &str, under: &str, kinds: &[Kind]) -> i32 {
    let mut text = format!("{title} (each example is one entry under `{under}`)\n\n");
    for kind in kinds {
        text.push_str(&format!(
            "{}\n  does:  {}\n  needs: {}\n  - {}\n\n",
            kind.name, kind.does, kind.needs, kind.example
        ));
    }
    super::emit(&text);
    exit::MET
}

/// Every fault kind.
pub fn faults() -> i32 {
    print("fault kinds", "spec.faults", FAULTS)
}

/// Every probe kind.
pub fn probes() -> i32 {
    print("probe kinds", "spec.probes", PROBES)
}
