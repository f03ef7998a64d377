//! Turning transport errors into outcomes. The distinctions are the point of a chaos
//! probe: refused means the process is down, reset means it died with connections open,
//! connect timeout means packets vanish, timeout means it hangs (FIELD-NOTES §1.5), tls
//! means the certificate or the handshake is wrong, not the process.

use std::error::Error as StdError;
use std::io;

use super::Outcome;

/// Where in a send an error happened: the same kernel error means different things.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Stage {
    /// Establishing the TCP connection.
    Connect,
    /// Writing the request or reading the response on an established connection.
    Exchange,
}

/// Classify an I/O error from the socket (or the TLS layer over it).
pub(super) fn io_error(error: &io::Error, stage: Stage) -> Outcome {
    use io::ErrorKind as K;
    if super::tls::failure(error).is_some() {
        return Outcome::Tls;
    }
    match error.kind() {
        K::ConnectionRefused => Outcome::Refused,
        // A peer that vanished with the connection open: RST, a write into a closed
        // socket, or EOF where the protocol needed more bytes.
        K::ConnectionReset
        | K::ConnectionAborted
        | K::BrokenPipe
        | K::UnexpectedEof
        | K::NotConnected => Outcome::Reset,
        // The kernel gave up retransmitting: SYNs lost while connecting, data lost after.
        K::TimedOut => match stage {
            Stage::Connect => Outcome::ConnectTimeout,
            Stage::Exchange => Outcome::Timeout,
        },
        _ => Outcome::Other,
    }
}

/// Classify a hyper error. The I/O cause, when there is one, is the most precise signal;
/// hyper's own kinds cover a connection that closed cleanly at the wrong moment.
pub(super) fn hyper_error(error: &hyper::Error) -> Outcome {
    if let Some(io) = io_source(error) {
        return io_error(io, Stage::Exchange);
    }
    if error.is_incomplete_message() || error.is_canceled() || error.is_closed() {
        // EOF mid-response, or the connection went away before the request could be
        // written: in both cases the server closed a connection it had accepted.
        Outcome::Reset
    } else if error.is_timeout() {
        Outcome::Timeout
    } else {
        // Parse errors, protocol violations: the server answered, but not with HTTP.
        Outcome::Other
    }
}

/// Classify any error by the first I/O error in its source chain (an HTTP/2 stream reset
/// without one is the server's doing: reset); else other.
pub(super) fn error_chain(error: &(dyn StdError + 'static)) -> Outcome {
    if let Some(io) = io_source(error) {
        return io_error(io, Stage::Exchange);
    }
    let mut cause = Some(error);
    while let Some(err) = cause {
        if err.downcast_ref::<h2::Error>().is_some() {
            return Outcome::Reset;
        }
        cause = err.source();
    }
    Outcome::Other
}

/// The first `io::Error` in an error's source chain.
fn io_source<'a>(error: &'a (dyn StdError + 'static)) -> Option<&'a io::Error> {
    let mut cause = Some(error);
    while let Some(err) = cause {
        if let Some(io) = err.downcast_ref::<io::Error>() {
            return Some(io);
        }
        // h2's errors do not give their I/O cause as a source.
        if let Some(io) = err.downcast_ref::<h2::Error>().and_then(h2::Error::get_io) {
            return Some(io);
        }
        cause = err.source();
    }
    None
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // Tests fail loudly by design.
mod tests {
    use super::*;

    use bytes::Bytes;
    use http_body_util::Empty;
    use hyper::client::conn::http1;
    use hyper_util::rt::TokioIo;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[test]
    fn kernel_errors_map_to_their_meaning() {
        let cases = [
            (
                io::ErrorKind::ConnectionRefused,
                Stage::Connect,
                Outcome::Refused,
            ),
            (
                io::ErrorKind::ConnectionReset,
                Stage::Exchange,
                Outcome::Reset,
            ),
            (io::ErrorKind::BrokenPipe, Stage::Exchange, Outcome::Reset),
            (
                io::ErrorKind::UnexpectedEof,
                Stage::Exchange,
                Outcome::Reset,
            ),
            (
                io::ErrorKind::TimedOut,
                Stage::Connect,
                Outcome::ConnectTimeout,
            ),
            (io::ErrorKind::TimedOut, Stage::Exchange, Outcome::Timeout),
            (
                io::ErrorKind::AddrNotAvailable,
                Stage::Connect,
                Outcome::Other,
            ),
        ];
        for (kind, stage, want) in cases {
            assert_eq!(io_error(&io::Error::from(kind), stage), want, "{kind:?}");
        }
        // Raw errno values, as the socket calls return them (Linux numbering).
        let refused = io::Error::from_raw_os_error(111);
        assert_eq!(io_error(&refused, Stage::Connect), Outcome::Refused);
        let reset = io::Error::from_raw_os_error(104);
        assert_eq!(io_error(&reset, Stage::Exchange), Outcome::Reset);
    }

    /// Run one request against an in-memory peer that behaves like `server`, and return
    /// the hyper error the client sees.
    async fn error_from(server: &'static [u8]) -> hyper::Error {
        let (client, mut peer) = tokio::io::duplex(4096);
        tokio::spawn(async move {
            let mut buf = [0u8; 1024];
            let _ = peer.read(&mut buf).await;
            let _ = peer.write_all(server).await;
            // Dropping the peer closes the stream: EOF on the client side.
        });
        let (mut tx, conn) = http1::handshake::<_, Empty<Bytes>>(TokioIo::new(client))
            .await
            .unwrap();
        tokio::spawn(conn);
        let req = hyper::Request::get("/").body(Empty::new()).unwrap();
        tx.send_request(req).await.unwrap_err()
    }

    #[tokio::test]
    async fn connection_closed_before_the_response_is_a_reset() {
        assert_eq!(hyper_error(&error_from(b"").await), Outcome::Reset);
        // Closed in the middle of the head.
        assert_eq!(
            hyper_error(&error_from(b"HTTP/1.1 200 OK\r\nContent-Le").await),
            Outcome::Reset
        );
    }

    #[tokio::test]
    async fn a_peer_that_does_not_speak_http_is_other() {
        let e = error_from(b"SSH-2.0-OpenSSH_9.6\r\n\r\n").await;
        assert_eq!(hyper_error(&e), Outcome::Other, "{e:?}");
    }
}
