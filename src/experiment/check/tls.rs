//! The TLS settings a probe's client uses (https:// and gRPC): checked once, for every
//! protocol that speaks TLS.

use super::Checker;
use crate::experiment::model::TlsTarget;
use crate::experiment::spec::TlsSpec;

/// A probe's TLS rules (https:// and gRPC): files that exist and hold PEM, a client
/// certificate with its key, a valid server name (default: `host`). The settings,
/// resolved, when they hold.
pub(super) fn check_tls(
    c: &mut Checker<'_>,
    path: &str,
    spec: Option<&TlsSpec>,
    host: &str,
) -> Option<TlsTarget> {
    let default = TlsSpec::default();
    let spec = spec.unwrap_or(&default);
    let before = c.found.len();
    let ca = spec
        .ca
        .as_ref()
        .map(|ca| c.pem_file(&format!("{path}.ca"), ca, "a PEM file of CA certificates"));
    let client = match (&spec.client_cert, &spec.client_key) {
        (Some(cert), Some(key)) => Some((
            c.pem_file(&format!("{path}.clientCert"), cert, "a PEM certificate"),
            c.pem_file(&format!("{path}.clientKey"), key, "a PEM private key"),
        )),
        (Some(_), None) => {
            c.report_key(
                &format!("{path}.clientCert"),
                "`clientCert` needs `clientKey`, the PEM file of its private key",
            );
            None
        }
        (None, Some(_)) => {
            c.report_key(
                &format!("{path}.clientKey"),
                "`clientKey` needs `clientCert`, the PEM certificate it belongs to",
            );
            None
        }
        (None, None) => None,
    };
    let server_name = spec.server_name.clone().unwrap_or_else(|| {
        host.trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned()
    });
    if rustls::pki_types::ServerName::try_from(server_name.as_str()).is_err() {
        c.report(
            &format!("{path}.serverName"),
            format!("`{server_name}` is not a DNS name or an IP address, like api.example.com"),
        );
    }
    (c.found.len() == before).then_some(TlsTarget {
        ca,
        server_name,
        insecure_skip_verify: spec.insecure_skip_verify.unwrap_or(false),
        client,
    })
}
