//! shakeout-agent: the node agent that applies faults under leases and reverts them,
//! whatever happens (DESIGN.md §3). The core (`Agent`) has no HTTP so the controller can
//! embed it with the same safety; `server` puts it behind the authenticated JSON API.

pub mod agent;
pub mod audit;
pub mod cli;
pub mod error;
pub mod fault;
pub mod guardian;
pub mod lease;
pub mod ledger;
pub mod policy;
pub mod server;
pub mod telemetry;

pub use agent::{Agent, AgentConfig, Caller, ShutdownReport};
pub use error::{AgentError, Result};
pub use policy::{Policy, TokenPolicy};
