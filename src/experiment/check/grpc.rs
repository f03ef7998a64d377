//! Rules for a gRPC health probe (`spec.probes[].grpc`): a `host:port` address, a positive
//! timeout, and the same TLS rules as an https:// probe, its server name defaulting to
//! the address's host.

use super::address::host_port;
use super::tls::check_tls;
use super::Checker;
use crate::experiment::model::{GrpcTarget, DEFAULT_TIMEOUT};
use crate::experiment::spec::GrpcProbeSpec;

/// A gRPC probe's rules; the target, defaults applied, when they all hold.
pub(super) fn check(c: &mut Checker<'_>, path: &str, grpc: &GrpcProbeSpec) -> Option<GrpcTarget> {
    let before = c.found.len();
    let address = match host_port(&grpc.address) {
        Ok(()) => Some(grpc.address.clone()),
        Err(e) => {
            c.report(&format!("{path}.address"), e);
            None
        }
    };
    c.positive(&format!("{path}.timeout"), grpc.timeout, "like 500ms");
    let tls = match (&grpc.tls, &address) {
        (Some(spec), Some(address)) => {
            let host = address.rsplit_once(':').map_or("", |(h, _)| h);
            let host = host.trim_start_matches('[').trim_end_matches(']');
            Some(check_tls(c, &format!("{path}.tls"), Some(spec), host)?)
        }
        _ => None,
    };
    (c.found.len() == before).then_some(GrpcTarget {
        address: address?,
        service: grpc.service.clone().unwrap_or_default(),
        timeout: grpc.timeout.map(|d| d.0).unwrap_or(DEFAULT_TIMEOUT),
        tls,
    })
}

#[cfg(test)]
mod tests {
    use super::super::tests::{problems, BASE};

    fn grpc(fields: &str) -> String {
        BASE.replace(
            "http: { url: http://127.0.0.1:8080/health }",
            &format!("grpc: {{ {fields} }}"),
        )
    }

    #[test]
    fn address_timeout_and_tls() {
        assert_eq!(problems(&grpc("address: \"127.0.0.1:50051\"")), vec![]);
        let text = grpc("address: localhost, timeout: 0s");
        let found: Vec<String> = problems(&text).into_iter().map(|d| d.message).collect();
        assert_eq!(found.len(), 2, "{found:#?}");
        assert!(found[0].contains("grpc.address: `localhost` has no port"));
        assert!(found[1].contains("grpc.timeout: must be greater than 0s"));
        let text = grpc("address: \"h:1\", tls: { serverName: \"bad name\" }");
        let found: Vec<String> = problems(&text).into_iter().map(|d| d.message).collect();
        assert_eq!(found.len(), 1, "{found:#?}");
        assert!(found[0].contains("grpc.tls.serverName: `bad name` is not a DNS name"));
    }
}
