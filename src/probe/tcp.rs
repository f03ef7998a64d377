//! TCP connect probes: a send succeeds when the connection is established before its
//! deadline, then it is closed. This sees "process down" (refused) and "packets dropped"
//! (connect timeout) without speaking any protocol.

use std::sync::Arc;
use std::time::Instant;

use tokio::net::TcpStream;
use tokio::time::timeout_at;

use super::classify::{self, Stage};
use super::{Outcome, TcpTarget};

/// Sends TCP connect probes to one address. Cheap to clone: one per worker.
#[derive(Debug, Clone)]
pub(super) struct TcpSender {
    address: Arc<str>,
}

impl TcpSender {
    pub(super) fn new(target: &TcpTarget) -> Self {
        TcpSender {
            address: target.address.as_str().into(),
        }
    }

    /// Connect once; the connection is closed again as soon as it is established.
    pub(super) async fn send(&self, deadline: Instant) -> Outcome {
        let deadline = tokio::time::Instant::from_std(deadline);
        match timeout_at(deadline, TcpStream::connect(&*self.address)).await {
            Ok(Ok(_stream)) => Outcome::Ok,
            Ok(Err(error)) => classify::io_error(&error, Stage::Connect),
            Err(_elapsed) => Outcome::ConnectTimeout,
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // Tests fail loudly by design.
mod tests {
    use super::*;
    use std::time::Duration;

    fn sender(address: String) -> TcpSender {
        TcpSender::new(&TcpTarget {
            address,
            timeout: Duration::from_secs(1),
        })
    }

    #[tokio::test]
    async fn established_is_ok_and_nothing_listening_is_refused() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap().to_string();
        let deadline = Instant::now() + Duration::from_secs(2);
        assert_eq!(sender(address.clone()).send(deadline).await, Outcome::Ok);
        drop(listener);
        assert_eq!(sender(address).send(deadline).await, Outcome::Refused);
    }
}
