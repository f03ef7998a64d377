//! TLS to Prometheus (`spec.prometheus.tls`): trust exactly the certificates of a PEM file
//! (`ca`), or, when asked for in so many words (`insecureSkipVerify: true`), any
//! certificate at all — signatures are still checked, the chain and the name are not.

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::CertificateDer;

use crate::probe::tls::AcceptAnything;

/// A connector trusting `ca` (a PEM file), or nothing in particular with `insecure`.
pub fn connector(ca: Option<&Path>, insecure: bool) -> Result<tokio_rustls::TlsConnector, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?;
    let config = if insecure {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAnything(provider)))
            .with_no_client_auth()
    } else {
        let ca = ca.ok_or("https needs `tls.ca` (or `tls.insecureSkipVerify: true`)")?;
        builder
            .with_root_certificates(roots(ca)?)
            .with_no_client_auth()
    };
    Ok(tokio_rustls::TlsConnector::from(Arc::new(config)))
}

fn roots(ca: &Path) -> Result<rustls::RootCertStore, String> {
    use rustls::pki_types::pem::PemObject;
    let bad = |e: &dyn std::fmt::Display| format!("tls.ca {}: {e}", ca.display());
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca).map_err(|e| bad(&e))? {
        roots.add(cert.map_err(|e| bad(&e))?).map_err(|e| bad(&e))?;
    }
    if roots.is_empty() {
        return Err(bad(&"no certificate in the file"));
    }
    Ok(roots)
}
