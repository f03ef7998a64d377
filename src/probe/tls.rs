//! TLS for https:// probes: the client configuration (whom to trust, which protocols to
//! offer, the client certificate), why a handshake failed, and what the served leaf
//! certificate says. A failed handshake is its own outcome (`tls`), with its reason,
//! because "the certificate expired" and "the process is down" call for different people.

use std::error::Error as StdError;
use std::fs;
use std::path::Path;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::Resumption;
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::experiment::model::TlsTarget;
use crate::experiment::spec::HttpVersion;

/// Why a TLS handshake (or the TLS layer of a connection) failed.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "camelCase")]
pub enum TlsReason {
    /// The certificate's chain does not lead to a trusted CA.
    UnknownIssuer,
    /// The certificate (or one of its chain) has expired.
    Expired,
    /// The certificate is not valid yet.
    NotYetValid,
    /// The certificate is not valid for the server name.
    NameMismatch,
    /// The certificate was revoked.
    Revoked,
    /// Any other problem with the certificate (bad signature, wrong usage, unreadable).
    BadCertificate,
    /// The server refused the handshake with an alert (a client certificate it wanted,
    /// or did not accept; no common protocol version or cipher).
    RejectedByServer,
    /// Anything else at the TLS layer (not TLS at all, a broken record).
    Protocol,
}

impl TlsReason {
    /// Every reason, in report order.
    pub const ALL: [TlsReason; 8] = [
        TlsReason::UnknownIssuer,
        TlsReason::Expired,
        TlsReason::NotYetValid,
        TlsReason::NameMismatch,
        TlsReason::Revoked,
        TlsReason::BadCertificate,
        TlsReason::RejectedByServer,
        TlsReason::Protocol,
    ];
    /// Number of reasons.
    pub const COUNT: usize = 8;

    /// Stable name used in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            TlsReason::UnknownIssuer => "unknownIssuer",
            TlsReason::Expired => "expired",
            TlsReason::NotYetValid => "notYetValid",
            TlsReason::NameMismatch => "nameMismatch",
            TlsReason::Revoked => "revoked",
            TlsReason::BadCertificate => "badCertificate",
            TlsReason::RejectedByServer => "rejectedByServer",
            TlsReason::Protocol => "protocol",
        }
    }

    fn of(error: &rustls::Error) -> TlsReason {
        use CertificateError as C;
        match error {
            rustls::Error::InvalidCertificate(cert) => match cert {
                C::UnknownIssuer => TlsReason::UnknownIssuer,
                C::Expired | C::ExpiredContext { .. } => TlsReason::Expired,
                C::NotValidYet | C::NotValidYetContext { .. } => TlsReason::NotYetValid,
                C::NotValidForName | C::NotValidForNameContext { .. } => TlsReason::NameMismatch,
                C::Revoked => TlsReason::Revoked,
                _ => TlsReason::BadCertificate,
            },
            rustls::Error::AlertReceived(_) => TlsReason::RejectedByServer,
            _ => TlsReason::Protocol,
        }
    }
}

/// The TLS error in an error's source chain (tokio-rustls and hyper wrap it in
/// `io::Error`s): its reason and its text.
pub(super) fn failure(error: &(dyn StdError + 'static)) -> Option<(TlsReason, String)> {
    let mut cause = Some(error);
    while let Some(err) = cause {
        if let Some(tls) = err.downcast_ref::<rustls::Error>() {
            return Some((TlsReason::of(tls), tls.to_string()));
        }
        let io = err.downcast_ref::<std::io::Error>();
        // h2's errors do not give their I/O cause as a source.
        let io = io.or_else(|| err.downcast_ref::<h2::Error>().and_then(h2::Error::get_io));
        if let Some(io) = io {
            // `io::Error::source` skips the custom error it wraps; look inside.
            if let Some(tls) = io.get_ref().and_then(|e| e.downcast_ref::<rustls::Error>()) {
                return Some((TlsReason::of(tls), tls.to_string()));
            }
            // h2 keeps an I/O error as its kind and text only, so an alert that ends an
            // HTTP/2 connection after the handshake (TLS 1.3: a client certificate the
            // server wanted) is known by rustls's words for it.
            let text = io.to_string();
            if io.kind() == std::io::ErrorKind::InvalidData
                && text.starts_with("received fatal alert")
            {
                return Some((TlsReason::RejectedByServer, text));
            }
        }
        cause = err.source();
    }
    None
}

/// What a served leaf certificate says, as reports show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CertificateInfo {
    /// Distinguished name of the subject, like `CN=api.example.com`.
    pub subject: String,
    /// Distinguished name of the issuer.
    pub issuer: String,
    /// End of validity, seconds since the Unix epoch.
    pub not_after_unix: i64,
    /// Start of validity, seconds since the Unix epoch.
    pub not_before_unix: i64,
    /// Serial number, hexadecimal.
    pub serial: String,
}

impl CertificateInfo {
    /// Parse a DER certificate; `None` when it is not one (rustls verified it, unless
    /// `insecureSkipVerify` let anything through).
    pub fn parse(der: &[u8]) -> Option<CertificateInfo> {
        let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
        let validity = cert.validity();
        Some(CertificateInfo {
            subject: cert.subject().to_string(),
            issuer: cert.issuer().to_string(),
            not_after_unix: validity.not_after.timestamp(),
            not_before_unix: validity.not_before.timestamp(),
            serial: cert.raw_serial_as_string(),
        })
    }
}

/// The TLS client of an https:// probe, made once before the run.
#[derive(Debug, Clone)]
pub struct TlsClient {
    pub config: Arc<ClientConfig>,
    /// The name verified and sent (SNI).
    pub server_name: ServerName<'static>,
    /// `insecureSkipVerify`: reports warn about it.
    pub insecure: bool,
}

impl TlsClient {
    /// The client of `tls`, speaking `version`; the error says what to fix.
    pub fn new(tls: &TlsTarget, version: HttpVersion) -> Result<TlsClient, String> {
        Ok(TlsClient {
            config: client_config(tls, version)?,
            server_name: server_name(tls)?,
            insecure: tls.insecure_skip_verify,
        })
    }
}

/// The rustls client configuration of one probe: whom it trusts, which protocols it
/// offers (ALPN), the client certificate it presents. The error says what to fix.
fn client_config(tls: &TlsTarget, version: HttpVersion) -> Result<Arc<ClientConfig>, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS: {e}"))?;
    let builder = if tls.insecure_skip_verify {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAnything(provider)))
    } else {
        builder.with_root_certificates(roots(tls.ca.as_deref())?)
    };
    let mut config = match &tls.client {
        Some((cert, key)) => {
            let chain = certificates(cert)?;
            let key = PrivateKeyDer::from_pem_file(key).map_err(|e| {
                format!(
                    "tls.clientKey: cannot read a private key from {}: {e}",
                    key.display()
                )
            })?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| format!("tls.clientCert: {e}"))?
        }
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = match version {
        HttpVersion::Auto => vec![b"h2".to_vec(), b"http/1.1".to_vec()],
        HttpVersion::Http1 => vec![b"http/1.1".to_vec()],
        HttpVersion::Http2 => vec![b"h2".to_vec()],
    };
    // Every new connection makes a full handshake: a probe is there to see the
    // certificate the server serves now, and what a full handshake costs.
    config.resumption = Resumption::disabled();
    Ok(Arc::new(config))
}

/// The server name to verify and to send (SNI).
fn server_name(tls: &TlsTarget) -> Result<ServerName<'static>, String> {
    ServerName::try_from(tls.server_name.clone())
        .map_err(|e| format!("tls.serverName `{}`: {e}", tls.server_name))
}

fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let text = fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let certs = CertificateDer::pem_slice_iter(&text)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{}: not PEM certificates: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("{} holds no PEM certificate", path.display()));
    }
    Ok(certs)
}

/// The CAs of `tls.ca`, or else the system's store.
fn roots(ca: Option<&Path>) -> Result<RootCertStore, String> {
    let mut store = RootCertStore::empty();
    match ca {
        Some(path) => {
            for cert in certificates(path)? {
                store
                    .add(cert)
                    .map_err(|e| format!("tls.ca {}: {e}", path.display()))?;
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            let (added, _) = store.add_parsable_certificates(found.certs);
            if added == 0 {
                let why = found
                    .errors
                    .first()
                    .map(|e| format!(" ({e})"))
                    .unwrap_or_default();
                return Err(format!(
                    "no trusted CA certificate found in the system's store{why}: install \
                     the CA certificates (ca-certificates), point SSL_CERT_FILE at a PEM \
                     bundle, or set `tls.ca` on the probe"
                ));
            }
        }
    }
    Ok(store)
}

/// `insecureSkipVerify`: any certificate, any name, any date. Signatures are still
/// checked, so the handshake is real TLS.
/// Also what the monitoring client trusts with `spec.prometheus.tls.insecureSkipVerify`.
#[derive(Debug)]
pub(crate) struct AcceptAnything(pub(crate) Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAnything {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // Tests fail loudly by design.
mod tests {
    use super::*;

    #[test]
    fn certificate_errors_keep_their_reason() {
        let cases = [
            (CertificateError::UnknownIssuer, TlsReason::UnknownIssuer),
            (CertificateError::Expired, TlsReason::Expired),
            (CertificateError::NotValidForName, TlsReason::NameMismatch),
            (CertificateError::BadSignature, TlsReason::BadCertificate),
        ];
        for (cert, want) in cases {
            let io = std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                rustls::Error::InvalidCertificate(cert),
            );
            assert_eq!(failure(&io).map(|f| f.0), Some(want));
        }
        let alert = rustls::Error::AlertReceived(rustls::AlertDescription::CertificateRequired);
        assert_eq!(
            failure(&alert).map(|f| f.0),
            Some(TlsReason::RejectedByServer)
        );
        // As h2 hands it back: the alert's text only.
        let text = std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "received fatal alert: CertificateRequired",
        );
        assert_eq!(
            failure(&text).map(|f| f.0),
            Some(TlsReason::RejectedByServer)
        );
        let plain = std::io::Error::from(std::io::ErrorKind::ConnectionReset);
        assert_eq!(failure(&plain), None);
    }
}
