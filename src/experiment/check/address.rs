//! The addresses an experiment names (probe and readiness URLs, `host:port`), each
//! checked with an error that says what would be valid.

use hyper::Uri;

/// Checks an `http://host[:port]/path` URL (service readiness, write probes); the error
/// says what would be valid.
pub(super) fn http_url(text: &str) -> Result<Uri, String> {
    url(text, false)
}

/// Checks an `http://` (or, for probes, `https://`) URL.
pub(super) fn url(url: &str, https: bool) -> Result<Uri, String> {
    const SHAPE: &str = "expected http://host[:port]/path, like http://127.0.0.1:8080/health";
    if !url.contains("://") {
        return Err(format!("`{url}` has no scheme: {SHAPE}"));
    }
    let uri: Uri = url
        .parse()
        .map_err(|e| format!("`{url}` is not a URL ({e}): {SHAPE}"))?;
    match uri.scheme_str() {
        Some("http") => {}
        Some("https") if https => {}
        Some("https") => {
            return Err(format!(
                "`{url}`: https is not supported here (only probes speak TLS); use an http:// URL"
            ))
        }
        Some(other) => {
            return Err(format!(
                "`{url}`: scheme `{other}` is not supported: {SHAPE}"
            ))
        }
        None => return Err(format!("`{url}` has no scheme: {SHAPE}")),
    }
    let authority = uri.authority().map(|a| a.as_str()).unwrap_or_default();
    if uri.host().is_none_or(str::is_empty) {
        return Err(format!("`{url}` has no host: {SHAPE}"));
    }
    if authority.contains('@') {
        return Err(format!(
            "`{url}`: user info is not supported; send credentials with `headers`"
        ));
    }
    // `Uri` accepts any digits as a port; the connection needs 1-65535.
    if let Some(port) = uri.authority().and_then(|a| a.port()) {
        if port.as_u16() == 0 {
            return Err(format!("`{url}`: port must be 1-65535"));
        }
    } else if authority.ends_with(':') || (authority.contains(':') && !authority.ends_with(']')) {
        return Err(format!("`{url}`: port must be 1-65535"));
    }
    Ok(uri)
}

/// Checks a `host:port` address; the error says what would be valid.
pub(super) fn host_port(address: &str) -> Result<(), String> {
    const SHAPE: &str = "expected host:port, like 127.0.0.1:5432, db:5432 or [::1]:5432";
    let (host, port) = address
        .rsplit_once(':')
        .ok_or_else(|| format!("`{address}` has no port: {SHAPE}"))?;
    if host.is_empty() {
        return Err(format!("`{address}` has no host: {SHAPE}"));
    }
    if host.chars().any(|ch| ch.is_whitespace() || ch == '/') {
        return Err(format!("`{address}` is not a host and port: {SHAPE}"));
    }
    if host.contains(':') && !(host.starts_with('[') && host.ends_with(']')) {
        return Err(format!(
            "`{address}`: write an IPv6 host in brackets: {SHAPE}"
        ));
    }
    match port.parse::<u16>() {
        Ok(p) if p > 0 => Ok(()),
        _ => Err(format!(
            "`{address}`: port `{port}` must be 1-65535: {SHAPE}"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        for good in [
            "http://127.0.0.1:8080/health",
            "http://svc/",
            "http://[::1]:80/x?q=1",
            "http://h",
        ] {
            assert!(http_url(good).is_ok(), "{good}");
        }
        for (bad, why) in [
            ("https://h/", "https is not supported here"),
            ("127.0.0.1:8080/health", "has no scheme"),
            ("ftp://h/", "scheme `ftp`"),
            ("http://h:0/", "port must be 1-65535"),
            ("http://h:99999/", "port must be 1-65535"),
            ("http://u:p@h/", "user info"),
            ("http:// h/", "is not a URL"),
        ] {
            let e = http_url(bad).err().unwrap_or_default();
            assert!(e.contains(why), "{bad}: {e}");
        }
    }

    #[test]
    fn addresses() {
        for good in ["127.0.0.1:5432", "db:1", "[::1]:80"] {
            assert_eq!(host_port(good), Ok(()), "{good}");
        }
        for (bad, why) in [
            ("db", "has no port"),
            (":80", "has no host"),
            ("::1:80", "brackets"),
            ("db:0", "must be 1-65535"),
            ("db:x", "must be 1-65535"),
            ("http://db:80", "is not a host and port"),
        ] {
            let e = host_port(bad).err().unwrap_or_default();
            assert!(e.contains(why), "{bad}: {e}");
        }
    }
}
