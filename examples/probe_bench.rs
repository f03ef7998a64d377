//! Probe one URL with the library's prober and print one JSON line of results, so a
//! benchmark harness can compare it with wrk and oha (rate, latency, lag, CPU, memory).
//!
//! `cargo run --release --example probe_bench -- --url http://127.0.0.1:8080/ --rate 1000
//!  --connections 16 --duration 10 [--new-connections]`
//!
//! https:// URLs: `--ca ca.pem` (or `--insecure`), `--http-version auto|http1|http2`; the
//! line then carries `connectionSetup` (connections opened, TCP connect and TLS handshake
//! p50/p99) as the run report does.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Parser;
use hdrhistogram::Histogram;
use hyper::Uri;
use nix::sys::resource::{getrusage, UsageWho};
use shakeout::experiment::model::TlsTarget;
use shakeout::experiment::spec::{ConnectionMode, HttpVersion};
use shakeout::probe::tls::TlsClient;
use shakeout::probe::{self, HttpTarget, Outcome, Pace, ProbeConfig, Recorder, Target};
use tokio_util::sync::CancellationToken;

#[derive(Parser, Debug)]
struct Args {
    /// `http://host:port/path`.
    #[arg(long)]
    url: String,
    /// Sends per second, or `max` for closed-loop back-to-back sends.
    #[arg(long)]
    rate: String,
    /// In-flight bound (workers, each with its own connection).
    #[arg(long, default_value_t = 16)]
    connections: usize,
    /// Seconds to probe.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Open a new connection per request instead of keeping connections alive.
    #[arg(long)]
    new_connections: bool,
    /// Runtime worker threads; 0 runs everything on one current-thread runtime. Default:
    /// 0 for a paced rate (fewest wake-ups per send), every core for `max`.
    #[arg(long)]
    threads: Option<usize>,
    /// Per-request deadline in milliseconds.
    #[arg(long, default_value_t = 1000)]
    timeout_ms: u64,
    /// https://: trust this CA's PEM file instead of the system's store.
    #[arg(long)]
    ca: Option<std::path::PathBuf>,
    /// https://: accept any certificate (`insecureSkipVerify`).
    #[arg(long)]
    insecure: bool,
    /// https://: the name to verify and send (default: the URL's host).
    #[arg(long)]
    server_name: Option<String>,
    /// `auto` (ALPN over TLS), `http1` or `http2`.
    #[arg(long, default_value = "auto")]
    http_version: String,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let pace = match args.rate.as_str() {
        "max" => Pace::Max,
        n => Pace::Rate(n.parse().with_context(|| format!("--rate `{n}`"))?),
    };
    let uri: Uri = args.url.parse().context("--url")?;
    let timeout = Duration::from_millis(args.timeout_ms);
    let connection = if args.new_connections {
        ConnectionMode::New
    } else {
        ConnectionMode::KeepAlive
    };
    let version = match args.http_version.as_str() {
        "auto" => HttpVersion::Auto,
        "http1" => HttpVersion::Http1,
        "http2" => HttpVersion::Http2,
        v => anyhow::bail!("--http-version `{v}`: auto, http1 or http2"),
    };
    let https = uri.scheme_str() == Some("https");
    let host = uri.host().unwrap_or_default().to_string();
    let mut target = HttpTarget::get(uri, timeout, connection)
        .ok_or_else(|| anyhow::anyhow!("--url `{}` has no host", args.url))?;
    target.version = version;
    if https && target.uri.port_u16().is_none() {
        // `HttpTarget::get` is for plain-http readiness checks: it defaults to port 80.
        target.authority = format!("{host}:443");
    }
    let tls = if https {
        let tls = TlsTarget {
            ca: args.ca.clone(),
            server_name: args.server_name.clone().unwrap_or(host),
            insecure_skip_verify: args.insecure,
            client: None,
        };
        let client = TlsClient::new(&tls, version).map_err(|e| anyhow::anyhow!(e))?;
        target.tls = Some(tls);
        Some(client)
    } else {
        None
    };
    let config = ProbeConfig {
        name: "bench".into(),
        pace,
        max_in_flight: args.connections.max(1),
        target: Target::Http(target),
        tls,
    };
    // One thread by default, at every rate: measured here, two worker threads wake each
    // other per request and cost 1.38x wrk's CPU per request at max rate, one costs 1.04x.
    let threads = args.threads.unwrap_or(0);
    let runtime = match threads {
        0 => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?,
        n => tokio::runtime::Builder::new_multi_thread()
            .worker_threads(n)
            .enable_all()
            .build()?,
    };
    let recorder = Arc::new(Recorder::new("bench", Duration::from_secs(1)));
    let started = Instant::now();
    let stats = runtime.block_on(async {
        let origin = Instant::now();
        let running = probe::start(config, origin, recorder.clone(), CancellationToken::new());
        tokio::time::sleep(Duration::from_secs_f64(args.duration)).await;
        running.stop().await
    });
    let wall = started.elapsed().as_secs_f64();
    let recording = recorder.finish(stats.stopped_at);
    let total = recording.total();
    let setup = &recording.setup;
    let usage = getrusage(UsageWho::RUSAGE_SELF)?;
    let cpu = |t: nix::sys::time::TimeVal| t.tv_sec() as f64 + t.tv_usec() as f64 / 1e6;
    let cpu_s = cpu(usage.user_time()) + cpu(usage.system_time());
    let errors: serde_json::Map<String, serde_json::Value> = Outcome::ALL
        .iter()
        .filter(|o| !o.is_ok())
        .map(|o| (o.as_str().to_string(), total.counts.get(*o).into()))
        .collect();
    let q = |h: &Histogram<u64>, q: f64| {
        if h.is_empty() {
            0
        } else {
            h.value_at_quantile(q)
        }
    };
    let pq = |h: &Histogram<u64>| {
        (!h.is_empty()).then(|| serde_json::json!({ "p50": q(h, 0.5), "p99": q(h, 0.99) }))
    };
    let line = serde_json::json!({
        "sent": stats.scheduled,
        "ok": total.counts.ok(),
        "errors": errors,
        "workers": stats.workers,
        "threads": threads,
        "durationS": stats.stopped_at.as_secs_f64(),
        "rate": stats.scheduled as f64 / stats.stopped_at.as_secs_f64().max(1e-9),
        "latencyUs": {
            "p50": q(&total.latency, 0.5),
            "p90": q(&total.latency, 0.9),
            "p99": q(&total.latency, 0.99),
            "max": total.latency.max(),
        },
        "lagUs": { "p50": q(&recording.lag, 0.5), "p99": q(&recording.lag, 0.99) },
        "cpuS": cpu_s,
        "cpuPct": 100.0 * cpu_s / wall,
        "cpuUsPerReq": 1e6 * cpu_s / (stats.scheduled.max(1) as f64),
        // Linux reports ru_maxrss in KiB.
        "maxRssKiB": usage.max_rss(),
        "connectionSetup": {
            "opened": setup.connect.len(),
            "connectUs": pq(&setup.connect),
            // null over plain http (no handshakes)
            "handshakeUs": pq(&setup.handshake),
            "tlsFailures": setup.tls_failures.iter().sum::<u64>(),
        },
    });
    println!("{line}");
    Ok(())
}
