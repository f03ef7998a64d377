//! A failed API call, said the way a person can act on: what we were doing, which API
//! server, and why. The server's refusals (RBAC, a disruption budget, throttling) carry
//! its status and message; a request that never got an answer is told apart by its
//! cause, found down the error's `source()` chain: refused, timed out, a certificate the
//! kubeconfig's CA did not sign, a name that does not resolve.

use std::error::Error as StdError;

/// The hint after an API status: what to do about it.
fn hint(status: &kube::core::Status) -> &'static str {
    match status.code {
        401 => " (the credentials were refused: check the kubeconfig user or token)",
        403 => " (RBAC: the controller's account needs this permission; the Helm chart's controller Role grants it)",
        429 if blocked_by_budget(status) => "",
        429 => " (the API server kept throttling after retries)",
        _ => "",
    }
}

/// A 429 from the eviction subresource: a PodDisruptionBudget said no (its cause is
/// `DisruptionBudget`), not the server's rate limiting.
pub fn blocked_by_budget(status: &kube::core::Status) -> bool {
    status.code == 429
        && status
            .details
            .as_ref()
            .is_some_and(|d| d.causes.iter().any(|c| c.reason == "DisruptionBudget"))
}

/// `doing` failed against the API server at `server`: the server's status and message,
/// or why no answer came.
pub fn describe(server: &str, doing: &str, e: &kube::Error) -> String {
    match e {
        kube::Error::Api(s) if blocked_by_budget(s) => {
            let causes: Vec<&str> = s
                .details
                .iter()
                .flat_map(|d| &d.causes)
                .filter(|c| c.reason == "DisruptionBudget")
                .map(|c| c.message.as_str())
                .collect();
            let causes = match causes.is_empty() {
                true => String::new(),
                false => format!(" ({})", causes.join("; ")),
            };
            format!(
                "{doing}: blocked by a disruption budget: {}{causes}",
                s.message
            )
        }
        kube::Error::Api(s) => {
            format!("{doing}: {} {}: {}{}", s.code, s.reason, s.message, hint(s))
        }
        other => format!("{doing}: {}", unreachable(server, other)),
    }
}

/// Why a request to `server` got no answer, from the first cause in `e`'s chain that
/// says more than "client error (Connect)".
pub fn unreachable(server: &str, e: &(dyn StdError + 'static)) -> String {
    let mut chain = Some(e);
    while let Some(err) = chain {
        if let Some(tls) = err.downcast_ref::<rustls::Error>() {
            return certificate(server, tls);
        }
        let io = err.downcast_ref::<std::io::Error>();
        if let Some(io) = io {
            use std::io::ErrorKind::*;
            match io.kind() {
                ConnectionRefused => {
                    return format!(
                        "{} refused the connection (nothing listens there: is the cluster up, and is the kubeconfig's `server` right?)",
                        at(server)
                    )
                }
                TimedOut => {
                    return format!(
                        "no answer from {} within {} (timed out: a firewall or VPN in the way, or a wrong address?)",
                        at(server),
                        shakeout_api::Dur(super::API_TIMEOUT)
                    )
                }
                ConnectionReset | ConnectionAborted | BrokenPipe | UnexpectedEof => {
                    return format!(
                        "{} closed the connection ({io}): is it a Kubernetes API server, and does it speak TLS as the kubeconfig's `server` says?",
                        at(server)
                    )
                }
                _ => {}
            }
        }
        if err.to_string() == "dns error" {
            let why = err.source().map(|s| format!(": {s}")).unwrap_or_default();
            return format!("cannot resolve the host of {}{why}", at(server));
        }
        chain = next(err);
    }
    format!("no answer from {}: {}", at(server), chain_text(e))
}

/// `the API server at https://…`, or just `the API server` when the caller does not know
/// which.
fn at(server: &str) -> String {
    match server {
        "" => "the API server".into(),
        s => format!("the API server at {s}"),
    }
}

/// A TLS failure, with what to check for the common certificate problems.
fn certificate(server: &str, e: &rustls::Error) -> String {
    use rustls::CertificateError as C;
    let why = match e {
        rustls::Error::InvalidCertificate(C::UnknownIssuer) => {
            "its certificate is not signed by the CA the kubeconfig trusts (`certificate-authority-data`): is the kubeconfig for this cluster?"
        }
        rustls::Error::InvalidCertificate(C::NotValidForName)
        | rustls::Error::InvalidCertificate(C::NotValidForNameContext { .. }) => {
            "its certificate is not valid for the host name in the kubeconfig's `server` (or set `tls-server-name`)"
        }
        rustls::Error::InvalidCertificate(C::Expired)
        | rustls::Error::InvalidCertificate(C::ExpiredContext { .. }) => {
            "its certificate has expired (or this machine's clock is wrong)"
        }
        rustls::Error::InvalidCertificate(C::NotValidYet)
        | rustls::Error::InvalidCertificate(C::NotValidYetContext { .. }) => {
            "its certificate is not valid yet (or this machine's clock is wrong)"
        }
        rustls::Error::InvalidCertificate(_) => "its certificate was refused",
        _ => {
            return format!(
                "the TLS handshake with {} failed ({e}): does it speak TLS, as the kubeconfig's `https://` says?",
                at(server)
            )
        }
    };
    format!("{} failed the certificate check: {why} ({e})", at(server))
}

/// `a: b: c` for an error and its sources, without repeating a message its source has.
pub fn chain_text(e: &(dyn StdError + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut chain = Some(e);
    while let Some(err) = chain {
        let text = err.to_string();
        if !parts.last().is_some_and(|p| p.contains(&text)) {
            parts.push(text);
        }
        chain = next(err);
    }
    parts.join(": ")
}

/// The error below `err`: for an io::Error, the error it wraps (its own `source()` skips
/// that one: hyper-rustls wraps tokio-rustls' io::Error, which wraps rustls' error).
fn next<'a>(err: &'a (dyn StdError + 'static)) -> Option<&'a (dyn StdError + 'static)> {
    match err
        .downcast_ref::<std::io::Error>()
        .and_then(|io| io.get_ref())
    {
        Some(inner) => Some(inner),
        None => err.source(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An error with a message and a source, like the layers of hyper's client.
    #[derive(Debug)]
    struct Layer(&'static str, Box<dyn StdError + Send + Sync>);

    impl std::fmt::Display for Layer {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(self.0)
        }
    }

    impl StdError for Layer {
        fn source(&self) -> Option<&(dyn StdError + 'static)> {
            Some(&*self.1)
        }
    }

    fn wrapped(inner: Box<dyn StdError + Send + Sync>) -> Layer {
        Layer(
            "client error (Connect)",
            Box::new(Layer("tcp connect error", inner)),
        )
    }

    const SERVER: &str = "https://10.0.0.1:6443";

    #[test]
    fn refused_timeout_and_certificate_are_told_apart() {
        let refused = wrapped(Box::new(std::io::Error::from(
            std::io::ErrorKind::ConnectionRefused,
        )));
        let text = unreachable(SERVER, &refused);
        assert!(text.contains(SERVER) && text.contains("refused"), "{text}");

        // hyper-timeout's connect timeout: an io::Error of kind TimedOut around `Elapsed`.
        let timeout = wrapped(Box::new(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            "deadline has elapsed",
        )));
        let text = unreachable(SERVER, &timeout);
        assert!(
            text.contains(SERVER) && text.contains("timed out"),
            "{text}"
        );

        // hyper-rustls: an io::Error around tokio-rustls' io::Error around rustls' error
        // (each io::Error's source() skips the error it wraps).
        let tls = wrapped(Box::new(std::io::Error::other(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer),
        ))));
        let text = unreachable(SERVER, &tls);
        assert!(
            text.contains(SERVER) && text.contains("not signed by the CA the kubeconfig trusts"),
            "{text}"
        );

        let other = wrapped(Box::new(std::io::Error::other("something odd")));
        let text = unreachable(SERVER, &other);
        assert!(
            text.contains("client error (Connect): tcp connect error: something odd"),
            "{text}"
        );
    }
}
