//! The faults the agent can apply: processes (kill, pause) and network (latency, loss,
//! blackhole), and how targets are found.

pub mod net;
pub mod process;
pub mod target;
