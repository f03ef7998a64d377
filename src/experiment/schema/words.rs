//! What the schema says to people: a title for each definition (editors show it where
//! they would otherwise show the Rust type's name, as in yaml-language-server's
//! "insert the required fields" completion), and for each unit what it expects, with
//! examples, and how to check a value (its real parser).

use std::str::FromStr;

use shakeout_api::{Dur, Percent, Rate, StatusRanges, UnitError, Validity};

/// A unit written as a string with its unit: how editors describe it and the loader reads it.
#[derive(Debug)]
pub struct Unit {
    /// The definition's name in the schema.
    pub name: &'static str,
    pub title: &'static str,
    pub description: &'static str,
    /// What a valid value looks like, after "Expected" or "expected".
    pub expected: &'static str,
    pub examples: &'static [&'static str],
    /// The loader's parser: `Err` holds its message.
    pub parse: fn(&str) -> Result<(), String>,
}

fn parses<T: FromStr<Err = UnitError>>(text: &str) -> Result<(), String> {
    text.parse::<T>().map(drop).map_err(|e| e.0)
}

/// Every unit the spec types use.
pub const UNITS: [Unit; 5] = [
    Unit {
        name: "Duration",
        title: "duration",
        description: "A duration with its unit: 250ms, 1.5s, 2m or 1h30m (units: ns, us, ms, s, m, h).",
        expected: "a duration with a unit, like 250ms, 1.5s, 2m or 1h30m (units: ns, us, ms, s, m, h)",
        examples: &["500ms", "10s", "2m"],
        parse: parses::<Dur>,
    },
    Unit {
        name: "Percent",
        title: "percentage",
        description: "A percentage: a number from 0 to 100 followed by %, like 95% or 99.9%.",
        expected: "a number from 0 to 100 followed by %, like 95% or 99.9%",
        examples: &["99.9%", "95%"],
        parse: parses::<Percent>,
    },
    Unit {
        name: "Rate",
        title: "rate",
        description: "A count per unit of time: 200/s, 10k/s or 600/m (units: s, m, h).",
        expected: "a count per unit of time, like 200/s, 10k/s or 600/m (units: s, m, h)",
        examples: &["100/s", "10k/s", "600/m"],
        parse: parses::<Rate>,
    },
    Unit {
        name: "StatusRanges",
        title: "HTTP statuses",
        description: "HTTP status codes (100 to 599) or ranges, separated by commas: 200, 200-299 or 200-299,404.",
        expected: "HTTP status codes from 100 to 599 or ranges, like 200, 200-299 or 200-299,404",
        examples: &["200-299", "200-299,404"],
        parse: parses::<StatusRanges>,
    },
    Unit {
        name: "Validity",
        title: "validity",
        description: "A whole number of days or hours: 21d, 30d or 12h (units: d, h).",
        expected: "a whole number of days or hours, like 21d, 30d or 12h",
        examples: &["21d", "30d"],
        parse: parses::<Validity>,
    },
];

/// The unit defined as `name`, if it is one.
pub fn unit(name: &str) -> Option<&'static Unit> {
    UNITS.iter().find(|u| u.name == name)
}

/// The title of definition `name` (`None`: a definition added without one, which a test
/// refuses).
pub fn title(name: &str) -> Option<&'static str> {
    if let Some(unit) = unit(name) {
        return Some(unit.title);
    }
    TITLES.iter().find(|(n, _)| *n == name).map(|(_, t)| *t)
}

/// Titles of the definitions that are not units, by definition name.
const TITLES: &[(&str, &str)] = &[
    ("AbortAvailability", "abort on low availability"),
    ("AbortPromql", "abort on a PromQL condition"),
    ("AlertSource", "where the alert is read"),
    ("AlertSpec", "expected alert"),
    ("AlertmanagerSpec", "Alertmanager"),
    ("AbortSpec", "stop conditions"),
    ("AgentReach", "how to reach agent pods"),
    ("AgentSpec", "node agent"),
    ("AvailabilityObjective", "availability objective"),
    ("CertificateObjective", "certificate objective"),
    ("ClusterAgentsSpec", "cluster agents"),
    ("Comparator", "comparison"),
    ("ConnectionMode", "connection mode"),
    ("Direction", "traffic direction"),
    ("During", "part of the run"),
    ("ExecFaultSpec", "exec fault"),
    ("ExpectSpec", "expected response"),
    ("ExpectStatusSpec", "acknowledging statuses"),
    ("FaultSpec", "fault"),
    ("GrpcProbeSpec", "gRPC health probe"),
    ("HttpProbeSpec", "HTTP probe"),
    ("HttpRequestSpec", "HTTP request"),
    ("HttpVersion", "HTTP version"),
    ("HttpWriteSpec", "HTTP write backend"),
    ("KillSpec", "kill"),
    ("KubernetesSpec", "Kubernetes cluster"),
    ("Latency", "added latency"),
    ("LatencyBounds", "latency bounds"),
    ("LatencyObjective", "latency objective"),
    ("MaxDuration", "upper bound"),
    ("Mechanism", "network fault mechanism"),
    ("Metadata", "metadata"),
    ("MinAvailability", "lowest availability"),
    ("NamespaceSpec", "network namespace"),
    ("NetworkFaultSpec", "network fault"),
    ("ObjectivesSpec", "objectives"),
    ("PacketFilter", "packet filter"),
    ("PauseSpec", "pause"),
    ("PodDeleteSpec", "pod deletion"),
    ("PodFaultSpec", "pod fault"),
    ("PodMode", "how many pods"),
    ("PodRecoveryObjective", "pod recovery objective"),
    ("PodSelector", "pods"),
    ("ProbeSpec", "probe"),
    ("ProcessFaultSpec", "process fault"),
    ("ProcessTargetSpec", "target processes"),
    ("PromqlObjective", "PromQL objective"),
    ("PrometheusSpec", "Prometheus server"),
    ("PrometheusTls", "TLS to Prometheus"),
    ("Protocol", "protocol"),
    ("ReadBackSpec", "read-back bounds"),
    ("ReadySpec", "readiness check"),
    ("RecordingSpec", "recording"),
    ("RedisMode", "Redis storage mode"),
    ("RedisWriteSpec", "Redis write backend"),
    ("RestartPolicy", "restart policy"),
    ("RestartSpec", "restart"),
    ("RpoObjective", "RPO objective"),
    ("RtoObjective", "RTO objective"),
    ("Selection", "subset of the matches"),
    ("ServiceSpec", "service"),
    ("Spec", "experiment spec"),
    ("SteadyStateSpec", "steady state"),
    ("TcpProbeSpec", "TCP probe"),
    ("TlsSpec", "TLS settings"),
    ("TokenFrom", "token source"),
    ("WriteProbeSpec", "write probe"),
];
