//! The network layer's error: what was wrong with the request, what the node lacks, or
//! what failed. The agent core maps each to its HTTP status (`crate::error`).

/// Why a network fault could not be applied or reverted.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    /// The request is wrong; `field` is its path (`spec.network.loss`).
    #[error("{field}: {message}")]
    BadSpec { field: String, message: String },
    /// The node lacks what the fault needs (the message names it).
    #[error("{0}")]
    Unavailable(String),
    /// A command or syscall failed.
    #[error("{0}")]
    Failed(String),
}
