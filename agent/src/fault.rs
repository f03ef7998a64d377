//! Faults the agent applies; each kind lives in its own module.

pub mod net;
