//! Builds the [`Report`]: the experiment, the run record and the verdicts' judgment, in
//! the shape of the JSON contract (percentiles in milliseconds, phases, buckets). Pure:
//! no I/O, no clock, no judgment of its own.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use hdrhistogram::Histogram;

use super::*;
use crate::experiment::Experiment;
use crate::probe::{Counts, Outcome, Phase, PhaseStats, ProbeConfig, ProbeRecording, Target};
use crate::record::RunRecord;
use crate::verdict::judge::Judgment;

fn experiment_info(exp: &Experiment) -> ExperimentInfo {
    ExperimentInfo {
        name: exp.file.metadata.name.clone(),
        file: exp.source.display().to_string(),
        labels: exp.file.metadata.labels.clone(),
    }
}

/// A report for a run that could not start (exit 3).
pub fn error_report(exp: &Experiment, seed: u64, reason: String) -> Report {
    Report {
        schema_version: SCHEMA_VERSION.into(),
        experiment: experiment_info(exp),
        run: RunInfo {
            status: RunStatus::Error,
            exit_code: RunStatus::Error.exit_code(),
            reason: Some(reason),
            seed,
            started_at: humantime::format_rfc3339_millis(SystemTime::now()).to_string(),
            duration_ms: 0.0,
            bucket_ms: 0.0,
            shakeout_version: env!("CARGO_PKG_VERSION").into(),
        },
        warnings: Vec::new(),
        phases: Vec::new(),
        probes: Vec::new(),
        faults: Vec::new(),
        services: Vec::new(),
        events: Vec::new(),
        verdicts: Vec::new(),
        promql: Vec::new(),
        alerts: Vec::new(),
    }
}

fn ms_of_us(us: u64) -> f64 {
    us as f64 / 1000.0
}

/// Percentiles of a microsecond histogram, in milliseconds.
pub fn latency_summary(h: &Histogram<u64>) -> LatencySummary {
    if h.is_empty() {
        return LatencySummary::default();
    }
    LatencySummary {
        count: h.len(),
        min_ms: Some(ms_of_us(h.min())),
        mean_ms: Some(h.mean() / 1000.0),
        p50_ms: Some(ms_of_us(h.value_at_quantile(0.50))),
        p90_ms: Some(ms_of_us(h.value_at_quantile(0.90))),
        p99_ms: Some(ms_of_us(h.value_at_quantile(0.99))),
        p999_ms: Some(ms_of_us(h.value_at_quantile(0.999))),
        max_ms: Some(ms_of_us(h.max())),
    }
}

fn errors(c: &Counts) -> BTreeMap<String, u64> {
    Outcome::ALL
        .iter()
        .filter(|o| !o.is_ok() && c.get(**o) > 0)
        .map(|o| (o.as_str().to_owned(), c.get(*o)))
        .collect()
}

fn phase_report(name: &str, s: &PhaseStats) -> PhaseReport {
    PhaseReport {
        phase: name.into(),
        scheduled: s.counts.scheduled(),
        ok: s.counts.ok(),
        availability_percent: s.counts.availability().map(|a| a * 100.0),
        errors: errors(&s.counts),
        latency: latency_summary(&s.latency),
    }
}

/// The report of a finished run.
pub fn build(exp: &Experiment, r: RunRecord, j: Judgment) -> Report {
    let spans = r.timeline.spans(r.end);
    let warnings = r
        .configs
        .iter()
        .filter(|c| c.tls.as_ref().is_some_and(|t| t.insecure))
        .map(|c| super::connection::insecure_warning(&c.name))
        .collect();
    let probes = r
        .configs
        .iter()
        .zip(&r.recordings)
        .zip(j.rtos)
        .zip(r.writes)
        .zip(j.prober_limited)
        .map(|((((c, rec), rto), write), limited)| {
            probe_report(c, rec, rto, write, limited, &spans)
        })
        .collect();
    Report {
        schema_version: SCHEMA_VERSION.into(),
        experiment: experiment_info(exp),
        run: RunInfo {
            status: j.status,
            exit_code: j.status.exit_code(),
            reason: j.reason,
            seed: r.seed,
            started_at: humantime::format_rfc3339_millis(r.started_at).to_string(),
            duration_ms: ms(r.end),
            bucket_ms: ms(r.bucket),
            shakeout_version: env!("CARGO_PKG_VERSION").into(),
        },
        warnings,
        phases: spans
            .iter()
            .map(|(p, s, e)| PhaseSpan {
                phase: p.as_str().into(),
                start_ms: ms(*s),
                end_ms: ms(*e),
            })
            .collect(),
        probes,
        faults: r.faults,
        services: r.services,
        events: r.events,
        verdicts: j.verdicts,
        promql: r.monitor.promql,
        alerts: r.monitor.alerts,
    }
}

fn probe_report(
    c: &ProbeConfig,
    r: &ProbeRecording,
    rto: Option<RtoReport>,
    write: Option<WriteReport>,
    prober_limited: bool,
    spans: &[(Phase, Duration, Duration)],
) -> ProbeReport {
    let mut phases: Vec<PhaseReport> = spans
        .iter()
        .map(|(p, _, _)| phase_report(p.as_str(), r.phase(*p)))
        .collect();
    phases.push(phase_report("run", &r.total()));
    let (connection, version) = match &c.target {
        Target::Http(h) => (
            Some(match h.connection {
                crate::experiment::spec::ConnectionMode::KeepAlive => "keepAlive".to_owned(),
                crate::experiment::spec::ConnectionMode::New => "new".to_owned(),
            }),
            Some(
                match h.version {
                    crate::experiment::spec::HttpVersion::Auto => "auto",
                    crate::experiment::spec::HttpVersion::Http1 => "http1",
                    crate::experiment::spec::HttpVersion::Http2 => "http2",
                }
                .to_owned(),
            ),
        ),
        Target::Tcp(_) | Target::Grpc(_) | Target::Write(_) => (None, None),
    };
    ProbeReport {
        name: c.name.clone(),
        kind: c.target.kind().into(),
        target: c.target.describe(),
        rate_per_second: c.pace.per_second().unwrap_or(0.0),
        connection,
        version,
        connection_setup: super::connection::setup_report(c, &r.setup),
        tls: super::connection::tls_report(c, &r.setup),
        grpc: super::grpc::grpc_report(c, &r.setup),
        max_in_flight: c.max_in_flight as u64,
        prober_limited,
        scheduling_lag: latency_summary(&r.lag),
        phases,
        rto,
        timeline: r
            .buckets
            .iter()
            .map(|b| BucketReport {
                start_ms: ms(b.start),
                scheduled: b.counts.scheduled(),
                ok: b.counts.ok(),
                errors: errors(&b.counts),
                p99_ms: (b.p99_us > 0).then(|| ms_of_us(b.p99_us)),
                max_ms: (b.max_us > 0).then(|| ms_of_us(b.max_us)),
            })
            .collect(),
        write,
    }
}
