//! What an experiment can do, in one place: each fault and probe kind, what it does, what
//! it needs where it runs, and one entry that uses it. `shakeout faults` and
//! `shakeout probes` print it; a test validates every example against the real rules, so
//! the list cannot drift from what the validator accepts.

/// One kind of fault or probe.
#[derive(Debug, Clone, Copy)]
pub struct Kind {
    /// How it is written: `process` + `kill`, `write` (Redis)...
    pub name: &'static str,
    /// What it does, in a sentence.
    pub does: &'static str,
    /// What it needs where it runs (privileges, kernel, tools, cluster access).
    pub needs: &'static str,
    /// A whole list entry under `spec.faults` or `spec.probes`, as YAML flow.
    pub example: &'static str,
}

/// Every fault kind.
pub const FAULTS: &[Kind] = &[
    Kind {
        name: "exec",
        does: "runs a command at `at` (no shell); with a `duration`, runs `revert` when it \
               ends, and on abort, interrupt or the end of the run",
        needs: "whatever the commands need",
        example: r#"{ name: stop-cache, at: 10s, duration: 30s, exec: { command: [systemctl, stop, redis], revert: [systemctl, start, redis] } }"#,
    },
    Kind {
        name: "process + kill",
        does: "sends a signal (KILL by default) to the matching processes, once",
        needs: "permission to signal them: your own processes, or root / CAP_KILL",
        example: r#"{ name: kill-web, at: 10s, process: { target: { service: web }, kill: { signal: KILL } } }"#,
    },
    Kind {
        name: "process + pause",
        does: "SIGSTOP to the matching processes for the fault's `duration`, then SIGCONT",
        needs: "as for kill",
        example: r#"{ name: freeze-worker, at: 10s, duration: 5s, process: { target: { name: worker }, pause: {} } }"#,
    },
    Kind {
        name: "network + latency",
        does: "delays matching packets by `delay` ± `jitter`",
        needs: "root / CAP_NET_ADMIN on the agent's machine; netem (sch_netem + tc), or else \
                nfqueue (nftables `queue` or iptables NFQUEUE, and nfnetlink_queue)",
        example: r#"{ name: slow-db, at: 10s, duration: 30s, network: { latency: { delay: 100ms, jitter: 10ms }, to: { ports: [5432] } } }"#,
    },
    Kind {
        name: "network + loss",
        does: "drops a percentage of matching packets",
        needs: "root / CAP_NET_ADMIN; nft (nftables)",
        example: r#"{ name: lossy-api, at: 10s, duration: 30s, network: { loss: 5%, to: { ports: [8080] } } }"#,
    },
    Kind {
        name: "network + blackhole",
        does: "drops every matching packet",
        needs: "root / CAP_NET_ADMIN; nft (nftables)",
        example: r#"{ name: cut-off-db, at: 10s, duration: 10s, network: { blackhole: true, to: { peers: [10.0.0.5/32] } } }"#,
    },
    Kind {
        name: "pod + delete",
        does: "deletes pods chosen by label selector (one, a fixed count, a percentage or \
               all) and times their replacements until Ready",
        needs: "spec.kubernetes and RBAC: list and delete pods in the namespace",
        example: r#"{ name: lose-a-pod, at: 10s, pod: { delete: { namespace: shop, selector: app=checkout, mode: one } } }"#,
    },
    Kind {
        name: "network or process on pods",
        does: "a network or process fault inside chosen pods, through the node agent on \
               each pod's node",
        needs: "spec.kubernetes, the agent DaemonSet (Helm chart) and its token",
        example: r#"{ name: slow-pods, at: 10s, duration: 30s, network: { latency: { delay: 100ms }, pods: { namespace: shop, selector: app=checkout, mode: fixed, count: 2 } } }"#,
    },
];

/// Every probe kind.
pub const PROBES: &[Kind] = &[
    Kind {
        name: "http",
        does: "an HTTP request at a constant rate; ok when the status (and body) match",
        needs: "a route to the URL (http://)",
        example: r#"{ name: web, rate: 100/s, http: { url: "http://127.0.0.1:8080/health", timeout: 500ms, expect: { status: 200-299 } } }"#,
    },
    Kind {
        name: "http (https)",
        does: "the same over TLS: a failed handshake is its own outcome (`tls`), counted by \
               reason (unknown issuer, expired, name mismatch...); the served certificate's \
               subject, issuer and expiry go in the report, and a change of it in the timeline",
        needs: "a route to the URL; the server's CA in the system store or in `tls.ca`; \
                `tls.clientCert` and `tls.clientKey` for servers that require mTLS",
        example: r#"{ name: api, rate: 50/s, http: { url: "https://127.0.0.1:8443/health", tls: { serverName: api.internal } } }"#,
    },
    Kind {
        name: "http (HTTP/2)",
        does: "HTTP/2 requests, every send in flight multiplexed on one connection \
               (`version: http2`; `auto`, the default, takes h2 when a TLS server offers it)",
        needs:
            "a server that speaks HTTP/2: over TLS by ALPN, or in plain text with prior knowledge",
        example: r#"{ name: grpc-gw, rate: 200/s, http: { url: "http://127.0.0.1:8080/health", version: http2 } }"#,
    },
    Kind {
        name: "tcp",
        does: "a TCP connect at a constant rate; ok when it connects in time",
        needs: "a route to the address",
        example: r#"{ name: db-port, rate: 20/s, tcp: { address: "127.0.0.1:5432", timeout: 250ms } }"#,
    },
    Kind {
        name: "grpc",
        does: "a gRPC health check (`grpc.health.v1.Health/Check`) at a constant rate, every \
               check multiplexed on one HTTP/2 connection; ok when SERVING, `notServing` for \
               any other answer, `grpcStatus` (counted by code) when the call fails with a \
               status, like NOT_FOUND for an unknown service",
        needs: "a server that implements the standard health service; `tls` as for https \
                (its `serverName` defaults to the address's host)",
        example: r#"{ name: api-grpc, rate: 50/s, grpc: { address: "127.0.0.1:50051", service: shop.Checkout, timeout: 500ms } }"#,
    },
    Kind {
        name: "write (http)",
        does: "sequenced writes through your HTTP API, read back after the run: what was \
               acknowledged and then lost is the RPO",
        needs: "a write endpoint and a list endpoint that returns what was kept",
        example: r#"{ name: orders, rate: 50/s, write: { http: { write: { method: PUT, url: "http://127.0.0.1:8080/kv/{key}", body: "{seq}" }, list: { url: "http://127.0.0.1:8080/log?prefix={run}" } } } }"#,
    },
    Kind {
        name: "write (redis)",
        does: "sequenced writes to Redis (SET, or XADD to a stream), read back after the run",
        needs: "a Redis URL (no TLS, no cluster)",
        example: r#"{ name: cache-writes, rate: 100/s, write: { redis: { url: "redis://127.0.0.1:6379/0", mode: set } } }"#,
    },
];

/// The objective on served certificates, as `shakeout probes` shows it with the https
/// probe: a verdict `certificate/PROBE` that fails when the leaf expires sooner.
pub const CERTIFICATE_OBJECTIVE: &str = "certificate: { probe: api, minValidity: 21d }";

/// What the monitoring system can be asked, each `name` the list it is an entry of.
pub const MONITORING: &[Kind] = &[
    Kind {
        name: "objectives.promql",
        does: "a PromQL instant query every `every` while the run goes on; the verdict fails \
               when more than `failureLimit` evaluations in `during` break the comparison; \
               the phase is also asked as a range query for the report",
        needs: "spec.prometheus (http://, or https:// with `tls`; a bad query or an \
                unreachable server stops the run before anything starts)",
        example: r#"{ name: error-ratio, query: "sum(rate(http_errors_total[1m])) / sum(rate(http_requests_total[1m]))", comparator: "<", threshold: 0.05, during: faults, every: 5s, failureLimit: 1 }"#,
    },
    Kind {
        name: "abort.promql",
        does: "stops the run (reverting every fault, exit 2) the first time the query's value \
               satisfies the comparison",
        needs: "spec.prometheus",
        example: r#"{ name: checkout-down, query: "max_over_time(up{job=\"checkout\"}[30s])", comparator: "<", threshold: 1, every: 5s }"#,
    },
    Kind {
        name: "alerts",
        does: "polls the alert (name and labels) every `every` (default 1s): time to fire after \
               the first fault, time to resolve after recovery, and noise before any fault, \
               each a verdict with its resolution (poll + the rule's evaluation interval)",
        needs: "spec.alertmanager (the default source, /api/v2/alerts) or spec.prometheus \
                (`source: prometheus`, /api/v1/alerts); spec.prometheus also gives the rule's \
                evaluation interval",
        example: r#"{ name: HighErrorRate, labels: { service: checkout }, firesWithin: 2m, resolvesWithin: 5m }"#,
    },
];

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    /// An experiment that gives every example what it refers to: a service `web`, an agent,
    /// a cluster.
    fn with(faults: &[&str], probes: &[&str]) -> String {
        let mut text = String::from(
            "apiVersion: shakeout/v1\nkind: Experiment\nmetadata: { name: catalog }\nspec:\n  \
             duration: 2m\n  services:\n    - { name: web, command: [sleep, \"60\"] }\n  \
             kubernetes: { agents: { namespace: shakeout, tokenFrom: { env: SHAKEOUT_TOKEN } } }\n  \
             probes:\n",
        );
        for p in probes {
            text.push_str(&format!("    - {p}\n"));
        }
        if !faults.is_empty() {
            text.push_str("  faults:\n");
            for f in faults {
                text.push_str(&format!("    - {f}\n"));
            }
        }
        text
    }

    const A_PROBE: &str = r#"{ name: p, rate: 1/s, tcp: { address: "127.0.0.1:9" } }"#;

    #[test]
    fn every_fault_example_is_a_valid_fault() {
        for kind in FAULTS {
            let text = with(&[kind.example], &[A_PROBE]);
            if let Err(e) = crate::experiment::parse(
                &text,
                Path::new("catalog.yaml"),
                &crate::experiment::Vars::new(),
            ) {
                panic!("the `{}` example does not validate: {e}\n{text}", kind.name);
            }
        }
    }

    #[test]
    fn every_probe_example_is_a_valid_probe() {
        for kind in PROBES {
            let text = with(&[], &[kind.example]);
            if let Err(e) = crate::experiment::parse(
                &text,
                Path::new("catalog.yaml"),
                &crate::experiment::Vars::new(),
            ) {
                panic!("the `{}` example does not validate: {e}\n{text}", kind.name);
            }
        }
    }

    #[test]
    fn the_certificate_objective_example_is_valid() {
        let probe = PROBES
            .iter()
            .find(|k| k.name == "http (https)")
            .map(|k| k.example)
            .unwrap_or_default();
        let text = format!(
            "{}  objectives:\n    {}\n",
            with(&[], &[probe]),
            CERTIFICATE_OBJECTIVE
        );
        if let Err(e) = crate::experiment::parse(
            &text,
            Path::new("catalog.yaml"),
            &crate::experiment::Vars::new(),
        ) {
            panic!("the certificate objective example does not validate: {e}\n{text}");
        }
    }

    #[test]
    fn every_monitoring_example_is_valid_where_it_goes() {
        for kind in MONITORING {
            let entry = format!("\n    - {}\n", kind.example);
            let section = match kind.name {
                "objectives.promql" => format!(
                    "  objectives:\n    promql:{}",
                    entry.replace("\n    ", "\n      ")
                ),
                "abort.promql" => format!(
                    "  abort:\n    promql:{}",
                    entry.replace("\n    ", "\n      ")
                ),
                _ => format!("  alerts:{entry}"),
            };
            let text = format!(
                "{}  prometheus: {{ url: \"http://127.0.0.1:9090\" }}\n  alertmanager: {{ url: \"http://127.0.0.1:9093\" }}\n{section}",
                with(&[], &[A_PROBE])
            );
            if let Err(e) = crate::experiment::parse(
                &text,
                Path::new("catalog.yaml"),
                &crate::experiment::Vars::new(),
            ) {
                panic!("the `{}` example does not validate: {e}\n{text}", kind.name);
            }
        }
    }

    #[test]
    fn every_fault_action_of_the_schema_has_a_kind() {
        // The schema's fault actions, each named by at least one kind here.
        let text = crate::experiment::schema().to_string();
        for action in ["exec", "process", "network", "pod"] {
            assert!(
                text.contains(&format!("\"{action}\"")),
                "schema lacks {action}"
            );
            assert!(
                FAULTS.iter().any(|k| k.name.starts_with(action)),
                "no catalog entry for `{action}` faults"
            );
        }
    }
}
