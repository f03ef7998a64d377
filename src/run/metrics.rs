//! `shakeout run --metrics-listen ADDR`: the run as Prometheus metrics on `/metrics`
//! (OpenMetrics text, prometheus-client): per probe the sends scheduled, ok and failed by
//! kind and a latency histogram of ok responses; each fault as active or not; the run's
//! phase. The runner refreshes one snapshot a few times a second and each scrape encodes
//! it, so a scrape never touches the probes' hot path.

use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;
use tokio_util::sync::CancellationToken;

use crate::probe::{Counts, Outcome, Phase, Recorder};

/// Upper bounds of the latency histogram's buckets, seconds.
const BOUNDS: [f64; 13] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

#[derive(Debug, Default, Clone)]
struct ProbeSnap {
    name: String,
    counts: Counts,
    /// Cumulative count of ok responses at or under each bound.
    buckets: Vec<u64>,
    sum_seconds: f64,
    count: u64,
}

#[derive(Debug, Default)]
struct Snapshot {
    phase: &'static str,
    probes: Vec<ProbeSnap>,
    /// Every fault of the experiment and whether it is applied now.
    faults: Vec<(String, bool)>,
}

/// The run's live state, as the metrics show it.
#[derive(Debug, Default, Clone)]
pub struct Live(Arc<Mutex<Snapshot>>);

impl Live {
    /// Refresh from the recorders, the phase and the active faults.
    pub fn update(
        &self,
        phase: &'static str,
        recorders: &[Arc<Recorder>],
        all: &[String],
        active: &[String],
    ) {
        let probes = recorders
            .iter()
            .map(|r| {
                let mut total = r.phase_snapshot(Phase::Baseline);
                for p in [Phase::Faults, Phase::Recovery, Phase::Steady] {
                    total.merge(&r.phase_snapshot(p));
                }
                let h = &total.latency;
                ProbeSnap {
                    name: r.name().to_owned(),
                    counts: total.counts,
                    buckets: BOUNDS
                        .iter()
                        .map(|b| h.count_between(0, (b * 1e6) as u64))
                        .collect(),
                    sum_seconds: h.mean() * h.len() as f64 / 1e6,
                    count: h.len(),
                }
            })
            .collect();
        let faults = all
            .iter()
            .map(|f| (f.clone(), active.contains(f)))
            .collect();
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = Snapshot {
            phase,
            probes,
            faults,
        };
    }
}

impl Collector for Live {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let s = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let mut counter = |name: &str, help: &str, rows: Vec<(Vec<(&str, String)>, u64)>| {
            let mut m = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
            for (labels, v) in rows {
                ConstCounter::new(v).encode(m.encode_family(&labels)?)?;
            }
            Ok::<(), std::fmt::Error>(())
        };
        let probe = |p: &ProbeSnap| vec![("probe", p.name.clone())];
        counter(
            "shakeout_probe_scheduled",
            "Sends due so far, whatever became of them",
            s.probes
                .iter()
                .map(|p| (probe(p), p.counts.scheduled()))
                .collect(),
        )?;
        counter(
            "shakeout_probe_ok",
            "Sends that got an ok response",
            s.probes.iter().map(|p| (probe(p), p.counts.ok())).collect(),
        )?;
        let errors = s
            .probes
            .iter()
            .flat_map(|p| {
                Outcome::ALL.iter().filter(|o| !o.is_ok()).map(move |o| {
                    let mut l = probe(p);
                    l.push(("kind", o.as_str().to_owned()));
                    (l, p.counts.get(*o))
                })
            })
            .collect();
        counter(
            "shakeout_probe_errors",
            "Failed sends by kind (status, timeout, refused, reset, missed...)",
            errors,
        )?;
        {
            let mut m = encoder.encode_descriptor(
                "shakeout_probe_latency_seconds",
                "Latency of ok responses from their intended send time",
                None,
                MetricType::Histogram,
            )?;
            for p in &s.probes {
                // The encoder sums the buckets itself; `f64::MAX` is written `+Inf`.
                let mut below = 0;
                let buckets: Vec<(f64, u64)> = BOUNDS
                    .iter()
                    .copied()
                    .zip(p.buckets.iter().copied())
                    .chain([(f64::MAX, p.count)])
                    .map(|(bound, cumulative)| {
                        let n = cumulative.saturating_sub(below);
                        below = cumulative.max(below);
                        (bound, n)
                    })
                    .collect();
                let labels = probe(p);
                m.encode_family(&labels)?
                    .encode_histogram::<Vec<(String, String)>>(
                        p.sum_seconds,
                        p.count,
                        &buckets,
                        None,
                    )?;
            }
        }
        let mut gauge = |name: &str, help: &str, rows: Vec<(Vec<(&str, String)>, i64)>| {
            let mut m = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
            for (labels, v) in rows {
                ConstGauge::new(v).encode(m.encode_family(&labels)?)?;
            }
            Ok::<(), std::fmt::Error>(())
        };
        gauge(
            "shakeout_fault_active",
            "1 while the fault is applied, else 0",
            s.faults
                .iter()
                .map(|(f, on)| (vec![("fault", f.clone())], i64::from(*on)))
                .collect(),
        )?;
        gauge(
            "shakeout_run_phase",
            "1 for the phase the run is in (baseline, faults, recovery, steady), else 0",
            Phase::ALL
                .iter()
                .map(|p| {
                    (
                        vec![("phase", p.as_str().to_owned())],
                        i64::from(p.as_str() == s.phase),
                    )
                })
                .collect(),
        )?;
        Ok(())
    }
}

/// Serve `/metrics` on `listener` until `stop`.
pub fn serve(listener: std::net::TcpListener, live: Live, stop: CancellationToken) {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(live));
    let registry = Arc::new(registry);
    tokio::spawn(async move {
        let listener = match listener
            .set_nonblocking(true)
            .and_then(|()| tokio::net::TcpListener::from_std(listener))
        {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(error = %e, "--metrics-listen: cannot serve");
                return;
            }
        };
        loop {
            let accepted = tokio::select! {
                a = listener.accept() => a,
                _ = stop.cancelled() => return,
            };
            let Ok((stream, _)) = accepted else {
                // A transient accept error (no file descriptors): try again shortly.
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            };
            let registry = registry.clone();
            tokio::spawn(async move {
                let service = service_fn(move |req| answer(req, registry.clone()));
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
}

async fn answer(
    req: Request<hyper::body::Incoming>,
    registry: Arc<Registry>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    if req.uri().path() != "/metrics" {
        let mut resp = Response::new(Full::new(Bytes::from("metrics are on /metrics\n")));
        *resp.status_mut() = StatusCode::NOT_FOUND;
        return Ok(resp);
    }
    Ok(crate::sample::openmetrics(&registry))
}
