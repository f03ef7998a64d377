//! What opening connections cost and showed: TCP connect and TLS handshake times (one
//! small HdrHistogram each), TLS failures counted by reason with the first message of
//! each, the leaf certificates served (the current one, when it changed), and gRPC
//! statuses by code (a gRPC probe's `grpcStatus` outcomes, with the first message). Bounded
//! whatever the run's length.

use std::sync::Mutex;
use std::time::Duration;

use hdrhistogram::Histogram;

use super::new_histogram;
use crate::probe::tls::{CertificateInfo, TlsReason};

/// gRPC status codes: OK (0) to UNAUTHENTICATED (16).
pub const GRPC_CODES: usize = 17;

/// Most certificate changes kept; a server flapping between two certificates must not
/// grow memory without bound.
const MAX_CHANGES: usize = 100;

/// A served certificate that differed from the one before, and when it was first seen.
#[derive(Debug, Clone, PartialEq)]
pub struct CertificateChange {
    /// From the run origin.
    pub at: Duration,
    pub from: CertificateInfo,
    pub to: CertificateInfo,
}

/// Everything the connections of one probe recorded, after the run.
#[derive(Debug, Clone)]
pub struct ConnectionSetup {
    /// TCP connect times of connections opened, microseconds.
    pub connect: Histogram<u64>,
    /// TLS handshake times of connections opened, microseconds.
    pub handshake: Histogram<u64>,
    /// Failed TLS handshakes (or TLS layers), by reason.
    pub tls_failures: [u64; TlsReason::COUNT],
    /// The first message of each reason, as rustls said it.
    pub tls_messages: [Option<String>; TlsReason::COUNT],
    /// gRPC calls that ended with a status other than OK, by code (0-16).
    pub grpc_statuses: [u64; GRPC_CODES],
    /// The first message of each gRPC status code, as the server gave it.
    pub grpc_messages: [Option<String>; GRPC_CODES],
    /// The first certificate seen.
    pub first_certificate: Option<CertificateInfo>,
    /// The last certificate seen.
    pub certificate: Option<CertificateInfo>,
    /// The earliest notAfter of every certificate seen (Unix seconds).
    pub earliest_not_after: Option<i64>,
    /// Changes of the served certificate, in order (at most 100).
    pub changes: Vec<CertificateChange>,
}

struct Inner {
    connect: Histogram<u64>,
    handshake: Histogram<u64>,
    tls_failures: [u64; TlsReason::COUNT],
    tls_messages: [Option<String>; TlsReason::COUNT],
    grpc_statuses: [u64; GRPC_CODES],
    grpc_messages: [Option<String>; GRPC_CODES],
    /// DER of the last certificate seen: a new handshake compares bytes, and parses only
    /// when they differ.
    der: Vec<u8>,
    first: Option<CertificateInfo>,
    current: Option<CertificateInfo>,
    earliest_not_after: Option<i64>,
    changes: Vec<CertificateChange>,
}

/// The connection log of one probe, shared by its workers.
pub struct SetupLog {
    inner: Mutex<Inner>,
}

fn us(d: Duration) -> u64 {
    (d.as_nanos() as u64 / 1_000).max(1)
}

impl SetupLog {
    pub(super) fn new() -> Self {
        SetupLog {
            inner: Mutex::new(Inner {
                connect: new_histogram(2),
                handshake: new_histogram(2),
                tls_failures: [0; TlsReason::COUNT],
                tls_messages: Default::default(),
                grpc_statuses: [0; GRPC_CODES],
                grpc_messages: Default::default(),
                der: Vec::new(),
                first: None,
                current: None,
                earliest_not_after: None,
                changes: Vec::new(),
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // Counters and histograms only: a poisoned lock still holds consistent data.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A connection was opened: TCP connect time, and the TLS handshake's for https.
    pub fn record_opened(&self, connect: Duration, handshake: Option<Duration>) {
        let mut inner = self.lock();
        inner.connect.saturating_record(us(connect));
        if let Some(h) = handshake {
            inner.handshake.saturating_record(us(h));
        }
    }

    /// A TLS failure and its reason (the message is kept for the first of each reason).
    pub fn record_tls_failure(&self, reason: TlsReason, message: String) {
        let mut inner = self.lock();
        let i = reason as usize;
        inner.tls_failures[i] += 1;
        if inner.tls_messages[i].is_none() {
            inner.tls_messages[i] = Some(message);
        }
    }

    /// A gRPC call that ended with status `code` (not OK): counted by code, the message
    /// kept for the first of each. Codes past 16 count as UNKNOWN (2), as gRPC says.
    pub fn record_grpc_status(&self, code: i32, message: &str) {
        let i = usize::try_from(code)
            .ok()
            .filter(|&i| i < GRPC_CODES)
            .unwrap_or(2);
        let mut inner = self.lock();
        inner.grpc_statuses[i] += 1;
        if inner.grpc_messages[i].is_none() {
            inner.grpc_messages[i] = Some(message.to_owned());
        }
    }

    /// The leaf certificate a handshake saw, `at` from the run origin.
    pub fn record_certificate(&self, at: Duration, der: &[u8]) {
        let mut inner = self.lock();
        if inner.der == der {
            return;
        }
        let Some(info) = CertificateInfo::parse(der) else {
            return;
        };
        inner.der = der.to_vec();
        inner.earliest_not_after = Some(
            inner
                .earliest_not_after
                .map_or(info.not_after_unix, |e| e.min(info.not_after_unix)),
        );
        match inner.current.replace(info.clone()) {
            None => inner.first = Some(info),
            Some(from) if inner.changes.len() < MAX_CHANGES => {
                inner.changes.push(CertificateChange { at, from, to: info });
            }
            Some(_) => {}
        }
    }

    /// The certificate changes after the first `seen` (for live events).
    pub fn changes_since(&self, seen: usize) -> Vec<CertificateChange> {
        self.lock().changes.get(seen..).unwrap_or_default().to_vec()
    }

    pub(super) fn finish(&self) -> ConnectionSetup {
        let inner = self.lock();
        ConnectionSetup {
            connect: inner.connect.clone(),
            handshake: inner.handshake.clone(),
            tls_failures: inner.tls_failures,
            tls_messages: inner.tls_messages.clone(),
            grpc_statuses: inner.grpc_statuses,
            grpc_messages: inner.grpc_messages.clone(),
            first_certificate: inner.first.clone(),
            certificate: inner.current.clone(),
            earliest_not_after: inner.earliest_not_after,
            changes: inner.changes.clone(),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // Tests fail loudly by design.
mod tests {
    use super::*;

    /// A self-signed certificate for `cn`, DER, valid until `not_after` (Unix seconds).
    fn der(cn: &str, not_after: i64) -> Vec<u8> {
        let mut params = rcgen::CertificateParams::new(vec!["localhost".to_string()]).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, cn);
        params.not_after = time::OffsetDateTime::from_unix_timestamp(not_after).unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        params.self_signed(&key).unwrap().der().to_vec()
    }

    #[test]
    fn a_certificate_is_parsed_once_and_each_change_is_kept() {
        let log = SetupLog::new();
        let (a, b) = (der("a", 2_000_000_000), der("b", 1_900_000_000));
        let ms = Duration::from_millis;
        log.record_certificate(ms(10), &a);
        log.record_certificate(ms(20), &a);
        assert!(log.changes_since(0).is_empty());
        log.record_certificate(ms(30), &b);
        log.record_certificate(ms(40), &a);
        let s = log.finish();
        assert_eq!(s.first_certificate.unwrap().subject, "CN=a");
        assert_eq!(s.certificate.unwrap().subject, "CN=a");
        assert_eq!(s.earliest_not_after, Some(1_900_000_000));
        let at: Vec<(Duration, &str)> = s
            .changes
            .iter()
            .map(|c| (c.at, c.to.subject.as_str()))
            .collect();
        assert_eq!(at, [(ms(30), "CN=b"), (ms(40), "CN=a")]);
        assert_eq!(log.changes_since(1).len(), 1);
    }

    #[test]
    fn grpc_statuses_count_by_code_and_keep_the_first_message() {
        let log = SetupLog::new();
        log.record_grpc_status(5, "service not registered");
        log.record_grpc_status(5, "later");
        // Past the last code: UNKNOWN, as gRPC reads it.
        log.record_grpc_status(99, "odd");
        log.record_grpc_status(-1, "odder");
        let s = log.finish();
        assert_eq!(s.grpc_statuses[5], 2);
        assert_eq!(
            s.grpc_messages[5].as_deref(),
            Some("service not registered")
        );
        assert_eq!(s.grpc_statuses[2], 2);
        assert_eq!(s.grpc_messages[2].as_deref(), Some("odd"));
        assert_eq!(s.grpc_statuses.iter().sum::<u64>(), 4);
    }

    #[test]
    fn tls_failures_count_by_reason_and_keep_the_first_message() {
        let log = SetupLog::new();
        log.record_tls_failure(TlsReason::Expired, "first".into());
        log.record_tls_failure(TlsReason::Expired, "second".into());
        log.record_opened(Duration::from_micros(150), Some(Duration::from_millis(2)));
        let s = log.finish();
        assert_eq!(s.tls_failures[TlsReason::Expired as usize], 2);
        assert_eq!(
            s.tls_messages[TlsReason::Expired as usize].as_deref(),
            Some("first")
        );
        assert_eq!((s.connect.len(), s.handshake.len()), (1, 1));
    }
}
