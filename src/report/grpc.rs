//! What a report says of a gRPC health probe: the service asked about, and the calls
//! that ended with a status other than OK, counted by code with the server's first
//! message for each (their sum is the `grpcStatus` error count).

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::probe::grpc::CODE_NAMES;
use crate::probe::{ConnectionSetup, ProbeConfig, Target};

/// What a gRPC health probe saw besides SERVING.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GrpcReport {
    /// The service whose health was asked (`""`: the whole server).
    pub service: String,
    /// Calls that ended with a gRPC status other than OK, by code name (`NOT_FOUND`,
    /// `UNIMPLEMENTED`, `UNAVAILABLE`...); zero codes omitted.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub statuses: BTreeMap<String, u64>,
    /// The first message of each code, as the server gave it.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub status_messages: BTreeMap<String, String>,
}

/// The gRPC report of a gRPC probe.
pub(super) fn grpc_report(c: &ProbeConfig, s: &ConnectionSetup) -> Option<GrpcReport> {
    let Target::Grpc(g) = &c.target else {
        return None;
    };
    let statuses = CODE_NAMES
        .iter()
        .zip(s.grpc_statuses)
        .filter(|(_, n)| *n > 0)
        .map(|(name, n)| ((*name).to_owned(), n))
        .collect();
    let status_messages = CODE_NAMES
        .iter()
        .zip(&s.grpc_messages)
        .filter_map(|(name, m)| m.clone().map(|m| ((*name).to_owned(), m)))
        .collect();
    Some(GrpcReport {
        service: g.service.clone(),
        statuses,
        status_messages,
    })
}

/// One line on a gRPC probe's statuses, or `None` when every call ended OK.
pub(crate) fn grpc_summary(g: &GrpcReport) -> Option<String> {
    if g.statuses.is_empty() {
        return None;
    }
    let counts: Vec<String> = g.statuses.iter().map(|(k, v)| format!("{k} {v}")).collect();
    let mut text = format!("statuses: {}", counts.join(", "));
    if let Some((code, m)) = g.status_messages.iter().next() {
        text.push_str(&format!("; first {code}: {m}"));
    }
    Some(text)
}
