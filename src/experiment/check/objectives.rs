//! Rules for `spec.objectives` and `spec.abort`: every probe they name exists, every
//! latency objective bounds something, recovery needs a positive stability time. A typo
//! in a probe name would otherwise pass a run by measuring nothing.

use super::timeline::percentiles;
use super::{listing, Checker};
use crate::experiment::spec::Spec;

pub(super) fn check(c: &mut Checker<'_>, spec: &Spec) {
    let probes: Vec<&str> = spec.probes.iter().map(|p| p.name.as_str()).collect();
    let objectives = &spec.objectives;
    let named = [
        (
            "spec.objectives.availability.probe",
            objectives
                .availability
                .as_ref()
                .and_then(|o| o.probe.as_deref()),
        ),
        (
            "spec.objectives.latency.probe",
            objectives.latency.as_ref().and_then(|o| o.probe.as_deref()),
        ),
        (
            "spec.objectives.rto.probe",
            objectives.rto.as_ref().and_then(|o| o.probe.as_deref()),
        ),
        (
            "spec.objectives.rpo.probe",
            objectives.rpo.as_ref().and_then(|o| o.probe.as_deref()),
        ),
        (
            "spec.objectives.certificate.probe",
            objectives
                .certificate
                .as_ref()
                .and_then(|o| o.probe.as_deref()),
        ),
        (
            "spec.abort.availability.probe",
            spec.abort
                .as_ref()
                .and_then(|a| a.availability.as_ref())
                .and_then(|a| a.probe.as_deref()),
        ),
    ];
    for (path, probe) in named {
        if let Some(probe) = probe.filter(|p| !probes.contains(p)) {
            c.report(
                path,
                format!(
                    "no probe named `{probe}`; probes: {} (leave `probe` out for every probe)",
                    listing(&probes)
                ),
            );
        }
    }
    if let Some(latency) = &objectives.latency {
        percentiles(c, "spec.objectives.latency", &latency.bounds());
    }
    if let Some(rto) = &objectives.rto {
        c.positive("spec.objectives.rto.stableFor", rto.stable_for, "like 1s");
    }
    if let Some(cert) = &objectives.certificate {
        let https: Vec<&str> = spec
            .probes
            .iter()
            .filter(|p| {
                p.http
                    .as_ref()
                    .is_some_and(|h| h.url.trim_start().starts_with("https://"))
                    || p.grpc.as_ref().is_some_and(|g| g.tls.is_some())
            })
            .map(|p| p.name.as_str())
            .collect();
        match cert.probe.as_deref() {
            Some(p) if probes.contains(&p) && !https.contains(&p) => c.report(
                "spec.objectives.certificate.probe",
                format!(
                    "probe `{p}` is not an https:// probe (nor a gRPC probe with `tls`), so \
                     it sees no certificate; probes that do: {}",
                    listing(&https)
                ),
            ),
            None if https.is_empty() => c.report_key(
                "spec.objectives.certificate",
                "no https:// probe to see a certificate with (nor a gRPC probe with `tls`): \
                 add a probe with an https:// URL",
            ),
            _ => {}
        }
    }
    if let Some(rpo) = &objectives.rpo {
        let writers: Vec<&str> = spec
            .probes
            .iter()
            .filter(|p| p.write.is_some())
            .map(|p| p.name.as_str())
            .collect();
        match rpo.probe.as_deref() {
            Some(p) if probes.contains(&p) && !writers.contains(&p) => c.report(
                "spec.objectives.rpo.probe",
                format!(
                    "probe `{p}` is not a write probe, so it measures no data loss; write probes: {}",
                    listing(&writers)
                ),
            ),
            None if writers.is_empty() => c.report_key(
                "spec.objectives.rpo",
                "no write probe to measure data loss with: add a probe with `write:`",
            ),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{one, problems, BASE};

    #[test]
    fn objectives_on_existing_probes_pass() {
        let text = format!(
            "{BASE}  objectives:\n    availability: {{ min: 95%, probe: web }}\n    latency: {{ p99: {{ max: 1s }}, probe: web }}\n    rto: {{ max: 5s, stableFor: 2s, probe: web }}\n  abort:\n    availability: {{ below: 10%, for: 5s, probe: web }}\n"
        );
        assert_eq!(problems(&text), vec![]);
    }

    #[test]
    fn objectives_name_existing_probes() {
        let text = format!(
            "{BASE}  objectives:\n    availability: {{ min: 95%, probe: wbe }}\n    latency: {{ p99: {{ max: 1s }}, probe: x }}\n    rto: {{ max: 5s, probe: y }}\n  abort:\n    availability: {{ below: 10%, for: 5s, probe: z }}\n"
        );
        let found = problems(&text);
        let at: Vec<(usize, usize)> = found.iter().map(|d| (d.line, d.column)).collect();
        assert_eq!(at, vec![(12, 38), (13, 41), (14, 28), (16, 49)]);
        assert_eq!(
            found[0].message,
            "spec.objectives.availability.probe: no probe named `wbe`; probes: `web` \
             (leave `probe` out for every probe)"
        );
        assert!(found[3]
            .message
            .starts_with("spec.abort.availability.probe: no probe named `z`"));
    }

    #[test]
    fn latency_objective_sets_a_percentile() {
        let text = format!("{BASE}  objectives:\n    latency: {{ during: run }}\n");
        assert!(one(&text).starts_with(
            "12:14: spec.objectives.latency: set at least one percentile: p50, p90, p95, p99 or p999"
        ));
    }

    #[test]
    fn certificate_objective_needs_an_https_probe() {
        let text = format!("{BASE}  objectives:\n    certificate: {{ minValidity: 21d }}\n");
        assert!(one(&text).starts_with(
            "12:5: spec.objectives.certificate: no https:// probe to see a certificate with"
        ));
        let text =
            format!("{BASE}  objectives:\n    certificate: {{ minValidity: 21d, probe: web }}\n");
        assert!(one(&text).contains("probe `web` is not an https:// probe"));
        let https = BASE.replace("http://127.0.0.1", "https://127.0.0.1");
        let text = format!("{https}  objectives:\n    certificate: {{ minValidity: 21d }}\n");
        assert_eq!(problems(&text), vec![]);
        let grpc = BASE.replace(
            "http: { url: http://127.0.0.1:8080/health }",
            "grpc: { address: \"127.0.0.1:1\", tls: {} }",
        );
        let text = format!("{grpc}  objectives:\n    certificate: {{ minValidity: 21d }}\n");
        assert_eq!(problems(&text), vec![]);
        let grpc = BASE.replace(
            "http: { url: http://127.0.0.1:8080/health }",
            "grpc: { address: \"127.0.0.1:1\", tls: {} }",
        );
        let text = format!("{grpc}  objectives:\n    certificate: {{ minValidity: 21d }}\n");
        assert_eq!(problems(&text), vec![]);
    }

    #[test]
    fn rto_stable_for_positive() {
        let text = format!("{BASE}  objectives:\n    rto: {{ max: 5s, stableFor: 0s }}\n");
        assert_eq!(
            one(&text),
            "12:32: spec.objectives.rto.stableFor: must be greater than 0s, like 1s"
        );
    }
}
