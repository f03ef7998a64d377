//! `spec.steadyState`, `spec.objectives` and `spec.abort`: what must hold, what each
//! verdict requires, and when to stop early.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use shakeout_api::{Dur, Percent, Validity};

/// The steady-state hypothesis.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SteadyStateSpec {
    /// Length of the window checked before the first fault and again after recovery.
    pub window: Dur,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub availability: Option<MinAvailability>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency: Option<LatencyBounds>,
}

/// A lower bound on availability (ok / scheduled).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct MinAvailability {
    pub min: Percent,
}

/// Upper bounds on latency percentiles (of successful requests, from intended send time).
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct LatencyBounds {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p50: Option<MaxDuration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p90: Option<MaxDuration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p95: Option<MaxDuration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p99: Option<MaxDuration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p999: Option<MaxDuration>,
}

impl LatencyBounds {
    /// The bounds that are set, as (label, quantile, bound).
    pub fn bounds(&self) -> Vec<(&'static str, f64, Dur)> {
        [
            ("p50", 0.50, &self.p50),
            ("p90", 0.90, &self.p90),
            ("p95", 0.95, &self.p95),
            ("p99", 0.99, &self.p99),
            ("p999", 0.999, &self.p999),
        ]
        .into_iter()
        .filter_map(|(label, q, b)| b.as_ref().map(|b| (label, q, b.max)))
        .collect()
    }
}

/// An upper bound on a duration.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct MaxDuration {
    pub max: Dur,
}

/// Which part of the run a verdict looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub enum During {
    /// Before the first fault.
    Baseline,
    /// From the first fault's start to the last fault's end.
    #[default]
    Faults,
    /// From the last fault's end until steady state holds again.
    Recovery,
    /// The final steady-state window after recovery.
    Steady,
    /// The whole run.
    Run,
}

/// Objectives; each becomes one verdict per probe it applies to.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ObjectivesSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub availability: Option<AvailabilityObjective>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency: Option<LatencyObjective>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rto: Option<RtoObjective>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rpo: Option<RpoObjective>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_recovery: Option<PodRecoveryObjective>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate: Option<CertificateObjective>,
    /// PromQL queries evaluated during the run (needs `spec.prometheus`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub promql: Vec<super::PromqlObjective>,
}

/// The certificate an https:// probe is served must stay valid for at least
/// `minValidity` from the time it is seen.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CertificateObjective {
    /// Shortest acceptable time left before the leaf's notAfter, like 21d.
    pub min_validity: Validity,
    /// Only this https:// probe (default: every https:// probe).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probe: Option<String>,
}

/// After a pod deletion, the workloads must have Ready replacements within `max`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PodRecoveryObjective {
    /// Longest time from the deletion until every replacement is Ready.
    pub max: Dur,
    /// Only this pod fault (default: every pod deletion).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fault: Option<String>,
}

/// The measured data-loss window of a write probe must stay under `max`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RpoObjective {
    /// Longest acceptable data-loss window (`0s`: no acknowledged write may be lost).
    pub max: Dur,
    /// Only this write probe (default: every write probe).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probe: Option<String>,
    /// At most this many lost acknowledged writes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_lost: Option<u64>,
    /// At most this many duplicated writes (list and stream reads only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_duplicates: Option<u64>,
    /// At most this many writes stored out of order (list and stream reads only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_out_of_order: Option<u64>,
}

/// Availability over a part of the run must stay at or above `min`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct AvailabilityObjective {
    #[serde(default)]
    pub during: During,
    pub min: Percent,
    /// Only this probe (default: every probe).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probe: Option<String>,
}

/// Latency percentiles over a part of the run must stay under their bounds.
///
/// The percentile fields repeat [`LatencyBounds`]'s on purpose: serde cannot flatten a
/// struct into one that refuses unknown fields, and refusing them is what turns a typo
/// (`p98`) into an error at its line. [`LatencyObjective::bounds`] gives them as one.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct LatencyObjective {
    #[serde(default)]
    pub during: During,
    /// Only this probe (default: every probe).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probe: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p50: Option<MaxDuration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p90: Option<MaxDuration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p95: Option<MaxDuration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p99: Option<MaxDuration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p999: Option<MaxDuration>,
}

impl LatencyObjective {
    /// The percentile bounds of this objective.
    pub fn bounds(&self) -> LatencyBounds {
        LatencyBounds {
            p50: self.p50.clone(),
            p90: self.p90.clone(),
            p95: self.p95.clone(),
            p99: self.p99.clone(),
            p999: self.p999.clone(),
        }
    }
}

/// Measured recovery time must stay under `max`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RtoObjective {
    pub max: Dur,
    /// Only this probe (default: every probe).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probe: Option<String>,
    /// How long availability must stay at the steady-state level to count as recovered (default 1s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stable_for: Option<Dur>,
}

/// Stop conditions, checked live on closed buckets.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct AbortSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub availability: Option<AbortAvailability>,
    /// PromQL stop conditions (needs `spec.prometheus`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub promql: Vec<super::AbortPromql>,
}

/// Abort when a probe's availability stays below `below` for `for`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct AbortAvailability {
    pub below: Percent,
    #[serde(rename = "for")]
    pub for_: Dur,
    /// Only this probe (default: any probe).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probe: Option<String>,
}
