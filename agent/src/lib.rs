//! shakeout-agent: the node agent that applies faults under leases (DESIGN.md §3).
//! Its fault API arrives with issue 3; until then the binary only reports its version
//! and refuses to start, so nobody mistakes it for a working agent.

pub mod fault;

/// What this build of the agent can do.
pub fn status() -> &'static str {
    "shakeout-agent: the fault API (process, network faults, leases, sweep) is not built yet; see issue 3"
}
