//! Rules for `spec.prometheus`, `spec.alertmanager`, `spec.alerts` and the PromQL
//! objectives and stop conditions: each has the server it queries, a URL this build can
//! reach (http://), intervals above zero and names that make unique verdict ids.

use super::Checker;
use crate::experiment::spec::{AlertSource, Spec};

/// A URL of a monitoring server: http://host[:port][/prefix].
fn url(c: &mut Checker<'_>, path: &str, what: &str, url: &str) {
    match url.parse::<hyper::Uri>() {
        Ok(uri) if uri.scheme_str() == Some("http") && uri.host().is_some() => {}
        Ok(uri) if uri.scheme_str() == Some("https") => c.report(
            path,
            format!("`{url}`: https is not supported yet for {what}: use http://host:port"),
        ),
        _ => c.report(
            path,
            format!(
                "`{url}` is not a {what} URL: use http://host:port, like http://127.0.0.1:9090"
            ),
        ),
    }
}

pub(super) fn check(c: &mut Checker<'_>, spec: &Spec) {
    if let Some(p) = &spec.prometheus {
        let https = p.url.starts_with("https://");
        match (&p.tls, https) {
            (Some(_), false) => {
                c.report("spec.prometheus.tls", "tls only applies to an https:// URL")
            }
            (Some(t), true) if t.ca.is_some() == t.insecure_skip_verify => c.report(
                "spec.prometheus.tls",
                "set exactly one of `ca: PATH` (the PEM file of the CA that signed \
                 Prometheus's certificate) or `insecureSkipVerify: true`",
            ),
            (None, true) => c.report(
                "spec.prometheus.url",
                format!(
                    "`{}`: https needs `tls: {{ ca: PATH }}` (the PEM file of the CA that \
                     signed Prometheus's certificate) or `tls: {{ insecureSkipVerify: true }}`",
                    p.url
                ),
            ),
            _ => {}
        }
        if https {
            url(
                c,
                "spec.prometheus.url",
                "Prometheus",
                &p.url.replacen("https://", "http://", 1),
            );
        } else {
            url(c, "spec.prometheus.url", "Prometheus", &p.url);
        }
        if let Some(t) = &p.bearer_token {
            if t.env.is_some() == t.file.is_some() {
                c.report(
                    "spec.prometheus.bearerToken",
                    "set exactly one of `env: VARIABLE` or `file: PATH`",
                );
            }
        }
    }
    if let Some(a) = &spec.alertmanager {
        url(c, "spec.alertmanager.url", "Alertmanager", &a.url);
    }
    let no_prometheus = spec.prometheus.is_none();
    let objectives = spec
        .objectives
        .promql
        .iter()
        .map(|o| (o.name.as_str(), o.every));
    let aborts = spec
        .abort
        .iter()
        .flat_map(|a| a.promql.iter().map(|o| (o.name.as_str(), o.every)));
    for (section, list) in [
        ("spec.objectives.promql", objectives.collect::<Vec<_>>()),
        ("spec.abort.promql", aborts.collect()),
    ] {
        let named = list
            .iter()
            .enumerate()
            .map(|(i, (name, _))| (format!("{section}[{i}]"), *name));
        c.unique_names("promql", named.collect::<Vec<_>>());
        for (i, (_, every)) in list.iter().enumerate() {
            let path = format!("{section}[{i}]");
            c.positive(&format!("{path}.every"), *every, "like 5s");
            if no_prometheus {
                c.report_key(
                    &path,
                    "a PromQL query needs a server to ask: add `spec.prometheus: { url: http://HOST:9090 }`",
                );
            }
        }
    }
    let named = spec
        .alerts
        .iter()
        .enumerate()
        .map(|(i, a)| (format!("spec.alerts[{i}]"), a.name.as_str()));
    c.unique_names("alert", named.collect::<Vec<_>>());
    for (i, a) in spec.alerts.iter().enumerate() {
        let path = format!("spec.alerts[{i}]");
        c.positive(&format!("{path}.every"), a.every, "like 1s");
        c.positive(
            &format!("{path}.firesWithin"),
            Some(a.fires_within),
            "like 2m",
        );
        match a.source {
            AlertSource::Alertmanager if spec.alertmanager.is_none() => c.report_key(
                &path,
                format!(
                    "alert `{}` is read from Alertmanager (the default `source`): add \
                     `spec.alertmanager: {{ url: http://HOST:9093 }}`, or set `source: prometheus`",
                    a.name
                ),
            ),
            AlertSource::Prometheus if no_prometheus => c.report_key(
                &path,
                format!(
                    "alert `{}` is read from Prometheus (`source: prometheus`): add \
                     `spec.prometheus: {{ url: http://HOST:9090 }}`",
                    a.name
                ),
            ),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{one, problems, BASE};

    const PROM: &str = "  prometheus: { url: \"http://127.0.0.1:9090\" }\n";

    #[test]
    fn promql_objectives_and_alerts_with_their_servers_pass() {
        let text = format!(
            "{BASE}{PROM}  alertmanager: {{ url: \"http://127.0.0.1:9093\" }}\n  objectives:\n    promql:\n      - {{ name: up, query: up, comparator: \">=\", threshold: 1, every: 1s }}\n  abort:\n    promql:\n      - {{ name: down, query: up, comparator: \"<\", threshold: 1 }}\n  alerts:\n    - {{ name: Down, firesWithin: 30s, resolvesWithin: 1m }}\n"
        );
        assert_eq!(problems(&text), vec![]);
    }

    #[test]
    fn promql_needs_prometheus() {
        let text = format!(
            "{BASE}  objectives:\n    promql:\n      - {{ name: up, query: up, comparator: \">=\", threshold: 1 }}\n"
        );
        assert_eq!(
            one(&text),
            "13:9: spec.objectives.promql[0]: a PromQL query needs a server to ask: add \
             `spec.prometheus: { url: http://HOST:9090 }`"
        );
    }

    #[test]
    fn every_must_be_positive_and_names_unique() {
        let text = format!(
            "{BASE}{PROM}  objectives:\n    promql:\n      - {{ name: up, query: up, comparator: \">=\", threshold: 1, every: 0s }}\n      - {{ name: up, query: up, comparator: \">=\", threshold: 1 }}\n"
        );
        let found = problems(&text);
        assert_eq!(found.len(), 2, "{found:#?}");
        assert_eq!(
            found[0].message,
            "spec.objectives.promql[0].every: must be greater than 0s, like 5s"
        );
        assert!(found[1]
            .message
            .starts_with("spec.objectives.promql[1].name: promql name `up` is already used"));
    }

    #[test]
    fn alerts_need_their_source() {
        let text = format!("{BASE}  alerts:\n    - {{ name: Down, firesWithin: 30s }}\n");
        assert!(one(&text).starts_with(
            "12:7: spec.alerts[0]: alert `Down` is read from Alertmanager (the default `source`)"
        ));
        let text = format!(
            "{BASE}  alerts:\n    - {{ name: Down, firesWithin: 30s, source: prometheus }}\n"
        );
        assert!(one(&text).contains("add `spec.prometheus: { url: http://HOST:9090 }`"));
    }

    #[test]
    fn https_needs_a_way_to_trust_the_server() {
        let text = format!("{BASE}  prometheus: {{ url: \"https://prom:9090\" }}\n");
        assert!(one(&text).contains("https needs `tls: { ca: PATH }`"));
        let text = format!(
            "{BASE}  prometheus: {{ url: \"https://prom:9090\", tls: {{ ca: ca.pem }} }}\n"
        );
        assert_eq!(problems(&text), vec![]);
        let text = format!(
            "{BASE}  prometheus: {{ url: \"https://prom:9090\", tls: {{ ca: ca.pem, insecureSkipVerify: true }} }}\n"
        );
        assert!(one(&text).contains("set exactly one of `ca: PATH`"));
        let text = format!(
            "{BASE}  prometheus: {{ url: \"http://prom:9090\", tls: {{ insecureSkipVerify: true }} }}\n"
        );
        assert!(one(&text).contains("tls only applies to an https:// URL"));
        let text = format!("{BASE}  alertmanager: {{ url: \"https://am:9093\" }}\n");
        assert!(one(&text).contains("https is not supported yet for Alertmanager"));
    }
}
