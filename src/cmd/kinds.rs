//! `shakeout faults` and `shakeout probes`: what each kind does and needs, with an entry
//! that uses it (from [`crate::catalog`]).

use crate::catalog::{Kind, CERTIFICATE_OBJECTIVE, FAULTS, PROBES};
use crate::exit;

fn listing(title: &str, under: &str, kinds: &[Kind]) -> String {
    let mut text = format!("{title} (each example is one entry under `{under}`)\n\n");
    for kind in kinds {
        text.push_str(&format!(
            "{}\n  does:  {}\n  needs: {}\n  - {}\n\n",
            kind.name, kind.does, kind.needs, kind.example
        ));
    }
    text
}

/// Every fault kind.
pub fn faults() -> i32 {
    super::emit(&listing("fault kinds", "spec.faults", FAULTS));
    exit::MET
}

/// Every probe kind.
pub fn probes() -> i32 {
    let mut text = listing("probe kinds", "spec.probes", PROBES);
    text.push_str(&format!(
        "https probes have an objective of their own (under `spec.objectives`): the served \
         certificate must stay valid for a while yet\n  {CERTIFICATE_OBJECTIVE}\n"
    ));
    super::emit(&text);
    exit::MET
}
