//! The agent's one error type: each variant is one HTTP status and one stable
//! `ErrorBody.code`, so the in-process (embedded) agent and the HTTP agent fail alike.

use shakeout_api::ErrorBody;

/// Result alias for the agent core.
pub type Result<T, E = AgentError> = std::result::Result<T, E>;

/// Why the agent refused or failed a request.
#[derive(Debug, Clone, thiserror::Error)]
pub enum AgentError {
    /// 401: no token or an unknown one.
    #[error("unauthorized: {0}")]
    Unauthorized(String),
    /// 403: the caller's policy does not allow this.
    #[error("forbidden: {0}")]
    Forbidden(String),
    /// 403: a match is protected (pid 1, the agent, its ancestors, protected names).
    #[error("protected target: {0}")]
    ProtectedTarget(String),
    /// 400: the request is wrong; `field` says where.
    #[error("bad spec: {field}: {message}")]
    BadSpec { field: String, message: String },
    /// 404: no such fault.
    #[error("not found: {0}")]
    NotFound(String),
    /// 409: the target already has a fault of an exclusive kind.
    #[error("conflict: {0}")]
    Conflict(String),
    /// 413: request body over the limit.
    #[error("too large: {0}")]
    TooLarge(String),
    /// 408: the request did not arrive in time.
    #[error("timeout: {0}")]
    Timeout(String),
    /// 503: the mechanism this fault needs is missing on the node.
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// 500: the agent failed (I/O, ledger, signal delivery).
    #[error("internal: {0}")]
    Internal(String),
}

impl AgentError {
    /// Shorthand for a `BadSpec`.
    pub fn bad_spec(field: impl Into<String>, message: impl Into<String>) -> Self {
        AgentError::BadSpec {
            field: field.into(),
            message: message.into(),
        }
    }

    /// HTTP status code.
    pub fn status(&self) -> u16 {
        match self {
            AgentError::Unauthorized(_) => 401,
            AgentError::Forbidden(_) | AgentError::ProtectedTarget(_) => 403,
            AgentError::BadSpec { .. } => 400,
            AgentError::NotFound(_) => 404,
            AgentError::Conflict(_) => 409,
            AgentError::TooLarge(_) => 413,
            AgentError::Timeout(_) => 408,
            AgentError::Unavailable(_) => 503,
            AgentError::Internal(_) => 500,
        }
    }

    /// Stable machine code (`ErrorBody.code`).
    pub fn code(&self) -> &'static str {
        match self {
            AgentError::Unauthorized(_) => "unauthorized",
            AgentError::Forbidden(_) => "forbidden",
            AgentError::ProtectedTarget(_) => "protectedTarget",
            AgentError::BadSpec { .. } => "badSpec",
            AgentError::NotFound(_) => "notFound",
            AgentError::Conflict(_) => "conflict",
            AgentError::TooLarge(_) => "tooLarge",
            AgentError::Timeout(_) => "timeout",
            AgentError::Unavailable(_) => "unavailable",
            AgentError::Internal(_) => "internal",
        }
    }

    /// The human message without the code prefix.
    pub fn message(&self) -> String {
        match self {
            AgentError::BadSpec { field, message } => format!("{field}: {message}"),
            AgentError::Unauthorized(m)
            | AgentError::Forbidden(m)
            | AgentError::ProtectedTarget(m)
            | AgentError::NotFound(m)
            | AgentError::Conflict(m)
            | AgentError::TooLarge(m)
            | AgentError::Timeout(m)
            | AgentError::Unavailable(m)
            | AgentError::Internal(m) => m.clone(),
        }
    }

    /// The JSON body of the error answer.
    pub fn body(&self) -> ErrorBody {
        ErrorBody {
            code: self.code().to_string(),
            message: self.message(),
            field: match self {
                AgentError::BadSpec { field, .. } => Some(field.clone()),
                _ => None,
            },
        }
    }
}

impl From<crate::ledger::LedgerError> for AgentError {
    fn from(e: crate::ledger::LedgerError) -> Self {
        AgentError::Internal(e.to_string())
    }
}

impl From<crate::fault::net::NetError> for AgentError {
    fn from(e: crate::fault::net::NetError) -> Self {
        use crate::fault::net::NetError;
        match e {
            NetError::BadSpec { field, message } => AgentError::BadSpec { field, message },
            NetError::Unavailable(m) => AgentError::Unavailable(m),
            NetError::Failed(m) => AgentError::Internal(m),
        }
    }
}
