//! shakeout: a chaos and availability testing harness. The controller reads a YAML
//! experiment, injects faults on a timeline, probes the service at a constant rate, and
//! verifies recovery objectives (availability, latency, RTO) in reports for people, CI
//! and machines. `main.rs` is a thin shell over this library.

pub mod catalog;
pub mod cmd;
pub mod experiment;
pub mod fault;
pub mod kube;
pub mod monitor;
pub mod probe;
pub mod progress;
pub mod record;
pub mod report;
pub mod run;
pub mod sample;
pub mod text;
pub mod verdict;

/// Exit codes (DESIGN.md §5); scripts and CI depend on them.
pub mod exit {
    /// All objectives met.
    pub const MET: i32 = 0;
    /// An objective failed.
    pub const FAILED: i32 = 1;
    /// Aborted by a stop condition or interrupted; faults reverted.
    pub const ABORTED: i32 = 2;
    /// Could not run: bad file, unreachable target, permission.
    pub const CANNOT_RUN: i32 = 3;
    /// A revert could not be confirmed: a person must look.
    pub const REVERT_UNCONFIRMED: i32 = 4;
}
