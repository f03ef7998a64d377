//! What a report says of a probe's connections: set-up cost (TCP connect, TLS handshake),
//! TLS failures by reason, the certificate served, and the loud warning a probe that
//! verified nothing (`insecureSkipVerify`) earns in every form.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{latency_summary, LatencySummary};
use crate::probe::tls::{CertificateInfo, TlsReason};
use crate::probe::{ConnectionSetup, ProbeConfig};

/// Connections a probe opened and what each part of opening one cost.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConnectionSetupReport {
    /// Connections opened (for `connection: new`, one per send that reached the server).
    pub opened: u64,
    /// TCP connect time.
    pub tcp_connect: LatencySummary,
    /// TLS handshake time, after the TCP connect (https:// probes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_handshake: Option<LatencySummary>,
}

/// What an https:// probe saw of TLS.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TlsReport {
    /// True when the probe accepted any certificate: nothing about the server was verified.
    pub insecure_skip_verify: bool,
    /// Failed handshakes by reason (`unknownIssuer`, `expired`, `notYetValid`,
    /// `nameMismatch`, `revoked`, `badCertificate`, `rejectedByServer`, `protocol`);
    /// zero reasons omitted. Their sum is the `tls` error count.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub failures: BTreeMap<String, u64>,
    /// The first message of each failure reason, as the TLS library gave it.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub failure_messages: BTreeMap<String, String>,
    /// The leaf certificate served last.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate: Option<CertificateReport>,
    /// How many times the served certificate changed during the run (each is an event).
    pub certificate_changes: u64,
}

/// A leaf certificate, as served.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CertificateReport {
    /// Subject distinguished name.
    pub subject: String,
    /// Issuer distinguished name.
    pub issuer: String,
    /// Start of validity, RFC 3339.
    pub not_before: String,
    /// End of validity, RFC 3339.
    pub not_after: String,
    /// Serial number, hexadecimal.
    pub serial: String,
}

impl CertificateReport {
    pub(crate) fn of(c: &CertificateInfo) -> Self {
        CertificateReport {
            subject: c.subject.clone(),
            issuer: c.issuer.clone(),
            not_before: crate::text::rfc3339_unix(c.not_before_unix),
            not_after: crate::text::rfc3339_unix(c.not_after_unix),
            serial: c.serial.clone(),
        }
    }
}

/// The set-up report of a probe that opened connections (HTTP probes).
pub(super) fn setup_report(c: &ProbeConfig, s: &ConnectionSetup) -> Option<ConnectionSetupReport> {
    if s.connect.is_empty() {
        return None;
    }
    Some(ConnectionSetupReport {
        opened: s.connect.len(),
        tcp_connect: latency_summary(&s.connect),
        tls_handshake: c.tls.as_ref().map(|_| latency_summary(&s.handshake)),
    })
}

/// The TLS report of an https:// probe.
pub(super) fn tls_report(c: &ProbeConfig, s: &ConnectionSetup) -> Option<TlsReport> {
    let tls = c.tls.as_ref()?;
    let failures = TlsReason::ALL
        .iter()
        .filter(|r| s.tls_failures[**r as usize] > 0)
        .map(|r| (r.as_str().to_owned(), s.tls_failures[*r as usize]))
        .collect();
    let failure_messages = TlsReason::ALL
        .iter()
        .filter_map(|r| {
            s.tls_messages[*r as usize]
                .clone()
                .map(|m| (r.as_str().to_owned(), m))
        })
        .collect();
    Some(TlsReport {
        insecure_skip_verify: tls.insecure,
        failures,
        failure_messages,
        certificate: s.certificate.as_ref().map(CertificateReport::of),
        certificate_changes: s.changes.len() as u64,
    })
}

/// The warning of a probe that verified no certificate, the same words in every form.
pub(crate) fn insecure_warning(probe: &str) -> String {
    format!(
        "probe {probe} has tls.insecureSkipVerify: true: the server's certificate was NOT \
         verified (any certificate, name or date was accepted), so this run says nothing \
         about TLS; remove it, or trust the server's CA with tls.ca"
    )
}

/// One line on set-up cost: `tcp connect p50 0.1ms p99 0.3ms, tls handshake p50 ...`.
pub(crate) fn setup_summary(s: &ConnectionSetupReport) -> String {
    let part = |label: &str, l: &LatencySummary| {
        format!(
            "{label} p50 {} p99 {}",
            super::format::opt_duration(l.p50_ms),
            super::format::opt_duration(l.p99_ms)
        )
    };
    let mut text = format!(
        "{} opened; {}",
        s.opened,
        part("tcp connect", &s.tcp_connect)
    );
    if let Some(h) = &s.tls_handshake {
        text.push_str(&format!(", {}", part("tls handshake", h)));
    }
    text
}

/// One line on TLS: the certificate and the failures by reason.
pub(crate) fn tls_summary(t: &TlsReport) -> String {
    let mut parts = Vec::new();
    if let Some(c) = &t.certificate {
        parts.push(format!(
            "certificate {} (issuer {}), valid until {}",
            c.subject, c.issuer, c.not_after
        ));
    }
    if t.certificate_changes > 0 {
        parts.push(format!("changed {} time(s)", t.certificate_changes));
    }
    if !t.failures.is_empty() {
        let f: Vec<String> = t.failures.iter().map(|(k, v)| format!("{k} {v}")).collect();
        parts.push(format!("handshake failures: {}", f.join(", ")));
        if let Some((_, m)) = t.failure_messages.iter().next() {
            parts.push(format!("first: {m}"));
        }
    }
    if parts.is_empty() {
        parts.push("no handshake completed".into());
    }
    parts.join("; ")
}
