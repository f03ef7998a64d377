//! The agent's performance claims as a program (`cargo bench -p shakeout-agent --bench
//! agent [-- --quick]`, as root): fault fidelity (nfqueue delay, loss), apply/revert
//! latency, nfqueue capacity, idle RSS and stripped binary size. Markdown on stdout,
//! JSON in `bench-out/agent.json`. All traffic stays inside two network namespaces the
//! lab creates and deletes (also when a step panics: the lab is dropped on unwind).
#![allow(clippy::unwrap_used)]

#[path = "../tests/net_lab/mod.rs"]
mod net_lab;

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde_json::{json, Value};
use shakeout_agent::fault::net::{Mechanism, Net};
use shakeout_agent::{Agent, AgentConfig};
use shakeout_api::{ApplyRequest, Dur, FaultSpec, Latency, NetworkFault, Percent};

use net_lab::Lab;

/// Goals from issue 3.
const GOAL_DELAY_ERR_MS: f64 = 1.0;
const GOAL_APPLY_P99_MS: f64 = 20.0;
const GOAL_RSS_MIB: f64 = 15.0;
/// z for a two-sided 99 % interval.
const Z99: f64 = 2.5758;
/// Seed of the nfqueue drop (printed, so a run can be replayed).
const SEED: u64 = 0x5ba7;

/// Run lengths; `--quick` shortens every step.
#[derive(Clone, Copy)]
struct Scale {
    delay_secs: f64,
    sweep_secs: f64,
    loss_packets: u64,
    cycles: usize,
}

static ORIGIN: OnceLock<Instant> = OnceLock::new();

fn now_ns() -> u64 {
    ORIGIN.get_or_init(Instant::now).elapsed().as_nanos() as u64
}

fn hist() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3).unwrap()
}

/// Percentile of a µs histogram, in ms.
fn ms(h: &Histogram<u64>, q: f64) -> f64 {
    h.value_at_quantile(q) as f64 / 1e3
}

fn round(v: f64, digits: i32) -> f64 {
    let f = 10f64.powi(digits);
    (v * f).round() / f
}

/// One-way delays of a paced UDP stream client → server.
struct Stream {
    sent: u64,
    received: u64,
    /// One-way delay in µs, from the actual send time (same clock: one process).
    delay: Histogram<u64>,
}

/// Sends `rate` datagrams/s for `secs` (absolute schedule) from the client namespace,
/// waits `tail` for late ones, and returns what arrived.
fn stream(lab: &Lab, rate: u64, secs: f64, tail: Duration) -> Stream {
    let ip = lab.server_ip;
    let rx = lab.in_ns(&lab.server, move || UdpSocket::bind((ip, 0)).unwrap());
    rx.set_read_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    // A deep receive buffer: at high rates the sink must not be what drops.
    let to: SocketAddr = rx.local_addr().unwrap();
    let done = Arc::new(AtomicBool::new(false));
    let d2 = done.clone();
    let receiver = std::thread::spawn(move || {
        let (mut h, mut n, mut buf) = (hist(), 0u64, [0u8; 16]);
        loop {
            match rx.recv(&mut buf) {
                Ok(8) => {
                    let sent = u64::from_be_bytes(buf[..8].try_into().unwrap());
                    h.saturating_record(((now_ns() - sent) / 1_000).max(1));
                    n += 1;
                }
                Ok(_) => {}
                Err(_) if d2.load(Ordering::SeqCst) => break,
                Err(_) => {}
            }
        }
        (h, n)
    });
    let tx = lab.in_ns(&lab.client, || UdpSocket::bind("0.0.0.0:0").unwrap());
    let n = (rate as f64 * secs) as u64;
    let start = Instant::now();
    for i in 0..n {
        let due = start + Duration::from_nanos(i * 1_000_000_000 / rate);
        let wait = due.saturating_duration_since(Instant::now());
        if wait > Duration::from_micros(60) {
            std::thread::sleep(wait);
        }
        // A drop in OUTPUT fails the send with EPERM: that packet counts as lost.
        let _ = tx.send_to(&now_ns().to_be_bytes(), to);
    }
    std::thread::sleep(tail);
    done.store(true, Ordering::SeqCst);
    let (delay, received) = receiver.join().unwrap();
    Stream {
        sent: n,
        received,
        delay,
    }
}

/// Configured delay vs measured, baseline (same rate, no fault) subtracted per percentile.
struct DelayPoint {
    rate: u64,
    delay_ms: f64,
    base: Stream,
    faulty: Stream,
    /// CPU of the nfqueue reader thread(s) during the faulty stream, % of one core.
    reader_cpu_pct: f64,
}

impl DelayPoint {
    /// This point's line of the delay-fidelity table.
    fn row(&self, mechanism: &str, delay_ms: u64) -> String {
        format!(
            "| {mechanism} | {delay_ms} ms | {}/{} | {:.3} / {:.3} | {:.3} / {:.3} | {:+.3} | {:+.3} |",
            self.faulty.received,
            self.faulty.sent,
            ms(&self.base.delay, 0.5),
            ms(&self.base.delay, 0.99),
            ms(&self.faulty.delay, 0.5),
            ms(&self.faulty.delay, 0.99),
            self.err(0.5),
            self.err(0.99)
        )
    }

    fn err(&self, q: f64) -> f64 {
        ms(&self.faulty.delay, q) - ms(&self.base.delay, q) - self.delay_ms
    }
    fn json(&self) -> Value {
        json!({
            "ratePps": self.rate, "configuredMs": self.delay_ms,
            "sent": self.faulty.sent, "received": self.faulty.received,
            "baselineP50Ms": ms(&self.base.delay, 0.5), "baselineP99Ms": ms(&self.base.delay, 0.99),
            "oneWayP50Ms": ms(&self.faulty.delay, 0.5), "oneWayP99Ms": ms(&self.faulty.delay, 0.99),
            "addedErrorP50Ms": round(self.err(0.5), 3), "addedErrorP99Ms": round(self.err(0.99), 3),
            "readerCpuPct": round(self.reader_cpu_pct, 1),
        })
    }
}

fn delay_spec(lab: &Lab, ms: u64, mechanism: Mechanism) -> NetworkFault {
    NetworkFault {
        latency: Some(Latency {
            delay: Dur::from_millis(ms),
            jitter: None,
        }),
        // netem here serves unfiltered egress only; nfqueue gets the narrower filter.
        peers: if mechanism == Mechanism::Netem {
            vec![]
        } else {
            vec![lab.server_ip.to_string()]
        },
        mechanism: Some(mechanism),
        namespace: lab.ns(),
        ..Default::default()
    }
}

async fn delay_point(
    lab: &Lab,
    net: &Net,
    mechanism: Mechanism,
    delay_ms: u64,
    rate: u64,
    secs: f64,
) -> DelayPoint {
    let base = stream(lab, rate, secs, Duration::from_millis(200));
    let spec = delay_spec(lab, delay_ms, mechanism);
    let applied = net.apply("bench-delay", &spec, SEED).await.unwrap();
    let (cpu0, t0) = (reader_cpu_ticks(), Instant::now());
    let faulty = stream(lab, rate, secs, Duration::from_millis(200 + 2 * delay_ms));
    let ticks = reader_cpu_ticks() - cpu0;
    let reader_cpu_pct = ticks as f64 / clock_ticks() / t0.elapsed().as_secs_f64() * 100.0;
    net.revert(&applied).await.unwrap();
    DelayPoint {
        rate,
        delay_ms: delay_ms as f64,
        base,
        faulty,
        reader_cpu_pct,
    }
}

/// utime + stime (clock ticks) of this process's nfqueue reader threads: where the
/// reader's capacity goes.
fn reader_cpu_ticks() -> u64 {
    let tasks = std::fs::read_dir("/proc/self/task")
        .into_iter()
        .flatten()
        .flatten();
    tasks
        .filter(|t| {
            std::fs::read_to_string(t.path().join("comm"))
                .is_ok_and(|c| c.starts_with("shakeout-nfq"))
        })
        .filter_map(|t| {
            let stat = std::fs::read_to_string(t.path().join("stat")).ok()?;
            // Fields after the parenthesised comm: state is field 3, utime 14, stime 15.
            let rest = stat.rsplit_once(')')?.1;
            let f: Vec<&str> = rest.split_whitespace().collect();
            Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
        })
        .sum()
}

fn clock_ticks() -> f64 {
    // USER_HZ is 100 on every Linux ABI this agent targets.
    100.0
}

/// Measured loss vs configured, with the 99 % binomial interval (normal approximation;
/// n·p ≥ 30 in every row) of the loss ratio for that many packets.
async fn loss_row(lab: &Lab, net: &Net, mechanism: Mechanism, pct: f64, n: u64) -> Value {
    let spec = NetworkFault {
        loss: Some(Percent(pct)),
        peers: vec![lab.server_ip.to_string()],
        mechanism: Some(mechanism),
        namespace: lab.ns(),
        ..Default::default()
    };
    let applied = net.apply("bench-loss", &spec, SEED).await.unwrap();
    let rate = 5_000;
    let s = stream(
        lab,
        rate,
        n as f64 / rate as f64,
        Duration::from_millis(300),
    );
    net.revert(&applied).await.unwrap();
    let p = pct / 100.0;
    let half = Z99 * (p * (1.0 - p) / s.sent as f64).sqrt();
    let measured = 1.0 - s.received as f64 / s.sent as f64;
    let (lo, hi) = ((p - half) * 100.0, (p + half) * 100.0);
    json!({
        "mechanism": format!("{mechanism:?}").to_lowercase(), "configuredPct": pct,
        "sent": s.sent, "received": s.received, "measuredPct": round(measured * 100.0, 3),
        "interval99Pct": [round(lo, 3), round(hi, 3)],
        "inside": (lo..=hi).contains(&(measured * 100.0)),
    })
}

/// p50/p99 of apply and of revert over `cycles` cycles, in ms.
fn cycle_json(
    path: &str,
    what: &str,
    cycles: usize,
    ap: &Histogram<u64>,
    rv: &Histogram<u64>,
) -> Value {
    json!({
        "path": path, "fault": what, "cycles": cycles,
        "applyP50Ms": ms(ap, 0.5), "applyP99Ms": ms(ap, 0.99), "applyMaxMs": ms(ap, 1.0),
        "revertP50Ms": ms(rv, 0.5), "revertP99Ms": ms(rv, 0.99), "revertMaxMs": ms(rv, 1.0),
    })
}

fn loss_spec(lab: &Lab) -> NetworkFault {
    NetworkFault {
        loss: Some(Percent(1.0)),
        peers: vec![lab.server_ip.to_string()],
        mechanism: Some(Mechanism::Nftables),
        namespace: lab.ns(),
        ..Default::default()
    }
}

async fn cycles_net(lab: &Lab, net: &Net, cycles: usize) -> Vec<Value> {
    let mut out = Vec::new();
    for (what, spec) in [
        ("nftables loss 1%", loss_spec(lab)),
        (
            "nfqueue latency 5ms",
            delay_spec(lab, 5, Mechanism::Nfqueue),
        ),
    ] {
        let (mut ap, mut rv) = (hist(), hist());
        for i in 0..cycles {
            let t = Instant::now();
            let a = net.apply(&format!("cyc{i}"), &spec, SEED).await.unwrap();
            ap.saturating_record(t.elapsed().as_micros() as u64);
            let t = Instant::now();
            net.revert(&a).await.unwrap();
            rv.saturating_record(t.elapsed().as_micros() as u64);
        }
        out.push(cycle_json("Net::apply/revert", what, cycles, &ap, &rv));
    }
    out
}

/// The same cycles through the whole agent core: policy, ledger write (before apply)
/// and clear, lease, audit line, metrics.
async fn cycles_agent(lab: &Lab, cycles: usize) -> Vec<Value> {
    let dir = tempfile::tempdir().unwrap();
    let mut config = AgentConfig::new(dir.path().join("state"));
    // Never touch tagged rules of any other agent in the host namespace.
    config.sweep_tagged_network = false;
    let agent = Agent::start(config).await.unwrap();
    let caller = agent.caller("bench");
    let mut out = Vec::new();
    for (what, spec) in [
        ("nftables loss 1%", loss_spec(lab)),
        (
            "nfqueue latency 5ms",
            delay_spec(lab, 5, Mechanism::Nfqueue),
        ),
    ] {
        let (mut ap, mut rv) = (hist(), hist());
        for i in 0..cycles {
            let req = ApplyRequest {
                experiment: "bench".into(),
                fault: format!("cycle-{i}"),
                duration: Dur::from_secs(60),
                lease: None,
                dry_run: false,
                spec: FaultSpec::Network(spec.clone()),
            };
            let t = Instant::now();
            let r = agent.apply(&caller, req).await.unwrap();
            ap.saturating_record(t.elapsed().as_micros() as u64);
            let t = Instant::now();
            agent.revert(&caller, &r.id).await.unwrap();
            rv.saturating_record(t.elapsed().as_micros() as u64);
        }
        out.push(cycle_json("Agent::apply/revert", what, cycles, &ap, &rv));
    }
    agent.shutdown().await;
    out
}

/// The real binary in a throwaway network namespace (`unshare --net`, so its start-up
/// sweep sees nothing of the host's), idle: VmRSS 2 s after it printed `listening`.
fn idle_rss(bin: &str) -> Value {
    let dir = tempfile::tempdir().unwrap();
    let tokens = dir.path().join("tokens");
    std::fs::write(&tokens, "bench:bench-secret-0123456789\n").unwrap();
    // The agent refuses a tokens file that group or others may read.
    std::fs::set_permissions(&tokens, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let mut child = Command::new("unshare")
        .arg("--net")
        .arg(bin)
        .args(["--listen", "127.0.0.1:0", "--tokens"])
        .arg(&tokens)
        .arg("--state-dir")
        .arg(dir.path().join("state"))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if line.starts_with("listening") {
                let _ = tx.send(());
            }
        }
    });
    let ready = rx.recv_timeout(Duration::from_secs(30)).is_ok();
    let mut rss_kib = None;
    if ready {
        std::thread::sleep(Duration::from_secs(2));
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        rss_kib = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok());
    }
    let _ = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status();
    let deadline = Instant::now() + Duration::from_secs(10);
    while child.try_wait().ok().flatten().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    json!({ "ready": ready, "vmRssKiB": rss_kib, "vmRssMiB": rss_kib.map(|k| round(k as f64 / 1024.0, 2)) })
}

fn binary_size(bin: &str) -> Value {
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("shakeout-agent");
    std::fs::copy(bin, &copy).unwrap();
    let unstripped = std::fs::metadata(&copy).unwrap().len();
    let ok = Command::new("strip")
        .arg(&copy)
        .status()
        .is_ok_and(|s| s.success());
    let stripped = ok.then(|| std::fs::metadata(&copy).unwrap().len());
    json!({ "path": bin, "unstrippedBytes": unstripped, "strippedBytes": stripped,
            "strippedMiB": stripped.map(|b| round(b as f64 / 1048576.0, 2)) })
}

fn machine() -> Value {
    let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
    let cpu = read("/proc/cpuinfo")
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|v| v.trim_start_matches([' ', '\t', ':']).to_string())
        .unwrap_or_default();
    json!({
        "kernel": read("/proc/sys/kernel/osrelease").trim(),
        "cpus": std::thread::available_parallelism().map_or(0, |n| n.get()),
        "cpu": cpu,
        "loadavg": read("/proc/loadavg").split_whitespace().take(3).collect::<Vec<_>>().join(" "),
    })
}

fn verdict(met: bool) -> &'static str {
    if met {
        "**met**"
    } else {
        "**not met**"
    }
}

fn is_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").map(|m| m.uid()).ok() == Some(0)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    // `cargo bench` passes `--bench`; `cargo test --all-targets` runs this binary without
    // it, and a benchmark is no test: say so and stop. Anything but `--quick` is ignored.
    if !std::env::args().any(|a| a == "--bench") {
        println!("agent benchmark: run it with `cargo bench -p shakeout-agent --bench agent` (skipped under cargo test)");
        return;
    }
    let quick = std::env::args().any(|a| a == "--quick");
    let scale = if quick {
        Scale {
            delay_secs: 1.0,
            sweep_secs: 1.0,
            loss_packets: 5_000,
            cycles: 100,
        }
    } else {
        Scale {
            delay_secs: 5.0,
            sweep_secs: 2.0,
            loss_packets: 20_000,
            cycles: 1_000,
        }
    };
    let bin = env!("CARGO_BIN_EXE_shakeout-agent");
    let started = Instant::now();
    let mut report =
        json!({ "mode": if quick { "quick" } else { "full" }, "seed": SEED, "machine": machine() });
    println!("# Agent: fault fidelity and cost\n");
    println!(
        "Machine: {} × {}, kernel {}, load average at start {}. Mode: {}. nfqueue seed {SEED:#x}.\n",
        report["machine"]["cpus"], report["machine"]["cpu"].as_str().unwrap_or(""),
        report["machine"]["kernel"].as_str().unwrap_or(""),
        report["machine"]["loadavg"].as_str().unwrap_or(""), report["mode"].as_str().unwrap_or("")
    );
    let mut goals: Vec<(String, String, bool)> = Vec::new();

    if !is_root() {
        eprintln!("network steps skipped: they need root (network namespaces, nftables, nfqueue)");
    } else {
        let Some(lab) = Lab::new("bench") else { return };
        let state = tempfile::tempdir().unwrap();
        let net = Net::new(state.path());
        let mechs = net.mechanisms();
        let netem = mechs
            .iter()
            .find(|m| m.mechanism == Mechanism::Netem)
            .unwrap();

        // Delay fidelity at 1k packets/s.
        eprintln!("delay fidelity…");
        println!("## Delay fidelity at 1,000 packets/s ({} s per row; one-way UDP, client → server namespace)\n", scale.delay_secs);
        println!("| mechanism | configured | received/sent | baseline p50 / p99 ms | one-way p50 / p99 ms | added error p50 ms | added error p99 ms |");
        println!("|---|---:|---:|---:|---:|---:|---:|");
        let mut rows = Vec::new();
        for d in [50, 10] {
            let p = delay_point(&lab, &net, Mechanism::Nfqueue, d, 1_000, scale.delay_secs).await;
            println!("{}", p.row("nfqueue", d));
            goals.push((
                format!(
                    "nfqueue delay p50 error ≤ {GOAL_DELAY_ERR_MS} ms at 1k packets/s ({d} ms)"
                ),
                format!("{:+.3} ms (p99 {:+.3} ms)", p.err(0.5), p.err(0.99)),
                p.err(0.5).abs() <= GOAL_DELAY_ERR_MS,
            ));
            let mut j = p.json();
            j["mechanism"] = json!("nfqueue");
            rows.push(j);
        }
        for d in [50, 10] {
            if netem.available {
                let p = delay_point(&lab, &net, Mechanism::Netem, d, 1_000, scale.delay_secs).await;
                println!("{}", p.row("netem", d));
                let mut j = p.json();
                j["mechanism"] = json!("netem");
                rows.push(j);
            } else {
                let why = netem.why_not.clone().unwrap_or_default();
                println!("| netem | {d} ms | not available on this kernel (sch_netem missing): {} | | | | |", why.replace('|', "/"));
                rows.push(json!({ "mechanism": "netem", "configuredMs": d, "available": false, "whyNot": why }));
            }
        }
        report["delay"] = json!(rows);

        // Loss fidelity.
        eprintln!("loss fidelity…");
        println!(
            "\n## Loss fidelity ({} packets per row at 5,000/s)\n",
            scale.loss_packets
        );
        println!("| mechanism | configured | received/sent | measured | 99 % binomial interval | inside |");
        println!("|---|---:|---:|---:|---:|---|");
        let mut rows = Vec::new();
        for (mech, pct) in [
            (Mechanism::Nftables, 10.0),
            (Mechanism::Nftables, 1.0),
            (Mechanism::Nfqueue, 10.0),
            (Mechanism::Nfqueue, 1.0),
        ] {
            let r = loss_row(&lab, &net, mech, pct, scale.loss_packets).await;
            let inside = r["inside"].as_bool().unwrap_or(false);
            println!(
                "| {} | {pct}% | {}/{} | {:.3}% | {:.3}%..{:.3}% | {} |",
                r["mechanism"].as_str().unwrap_or(""),
                r["received"],
                r["sent"],
                r["measuredPct"].as_f64().unwrap_or(f64::NAN),
                r["interval99Pct"][0].as_f64().unwrap_or(f64::NAN),
                r["interval99Pct"][1].as_f64().unwrap_or(f64::NAN),
                if inside { "yes" } else { "**no**" }
            );
            goals.push((
                format!(
                    "{} loss {pct}% inside the 99 % binomial interval",
                    r["mechanism"].as_str().unwrap_or("")
                ),
                format!(
                    "{:.3}% (interval {:.3}%..{:.3}%)",
                    r["measuredPct"].as_f64().unwrap_or(f64::NAN),
                    r["interval99Pct"][0].as_f64().unwrap_or(f64::NAN),
                    r["interval99Pct"][1].as_f64().unwrap_or(f64::NAN)
                ),
                inside,
            ));
            rows.push(r);
        }
        report["loss"] = json!(rows);

        // Apply / revert latency.
        eprintln!("apply/revert cycles…");
        let mut rows = cycles_net(&lab, &net, scale.cycles).await;
        rows.extend(cycles_agent(&lab, scale.cycles).await);
        println!(
            "\n## Apply and revert latency ({} cycles each, faults in the client namespace)\n",
            scale.cycles
        );
        println!("| path | fault | apply p50 ms | apply p99 ms | apply max ms | revert p50 ms | revert p99 ms | revert max ms |");
        println!("|---|---|---:|---:|---:|---:|---:|---:|");
        for r in &rows {
            let f = |k: &str| r[k].as_f64().unwrap_or(f64::NAN);
            println!(
                "| {} | {} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} |",
                r["path"].as_str().unwrap_or(""),
                r["fault"].as_str().unwrap_or(""),
                f("applyP50Ms"),
                f("applyP99Ms"),
                f("applyMaxMs"),
                f("revertP50Ms"),
                f("revertP99Ms"),
                f("revertMaxMs")
            );
            goals.push((
                format!(
                    "apply p99 ≤ {GOAL_APPLY_P99_MS} ms: {} {}",
                    r["path"].as_str().unwrap_or(""),
                    r["fault"].as_str().unwrap_or("")
                ),
                format!(
                    "{:.2} ms (p50 {:.2} ms; revert p99 {:.2} ms)",
                    f("applyP99Ms"),
                    f("applyP50Ms"),
                    f("revertP99Ms")
                ),
                f("applyP99Ms") <= GOAL_APPLY_P99_MS,
            ));
        }
        report["applyRevert"] = json!(rows);

        // nfqueue capacity at 50 ms.
        eprintln!("nfqueue capacity…");
        println!(
            "\n## nfqueue capacity: 50 ms delay, rising packet rate ({} s per step)\n",
            scale.sweep_secs
        );
        println!("| packets/s | received/sent | baseline p50 / p99 ms | one-way p50 / p99 ms | added error p50 ms | added error p99 ms | reader CPU % of a core |");
        println!("|---:|---:|---:|---:|---:|---:|---:|");
        let (mut rows, mut capacity) = (Vec::new(), None);
        let mut last_ok = None;
        for rate in [1_000, 2_000, 3_000, 5_000, 8_000, 13_000, 21_000, 34_000] {
            let p = delay_point(&lab, &net, Mechanism::Nfqueue, 50, rate, scale.sweep_secs).await;
            println!(
                "| {rate} | {}/{} | {:.3} / {:.3} | {:.3} / {:.3} | {:+.3} | {:+.3} | {:.0} |",
                p.faulty.received,
                p.faulty.sent,
                ms(&p.base.delay, 0.5),
                ms(&p.base.delay, 0.99),
                ms(&p.faulty.delay, 0.5),
                ms(&p.faulty.delay, 0.99),
                p.err(0.5),
                p.err(0.99),
                p.reader_cpu_pct
            );
            rows.push(p.json());
            if p.err(0.5).abs() > GOAL_DELAY_ERR_MS {
                capacity = Some(rate);
                break;
            }
            last_ok = Some(rate);
        }
        match capacity {
            Some(r) => println!(
                "\nAdded error p50 first exceeds 1 ms at **{r} packets/s** (last rate within: {}).",
                last_ok.map_or("none".into(), |r: u64| r.to_string())
            ),
            None => println!("\nAdded error p50 stayed within 1 ms up to the highest rate tried."),
        }
        report["capacity"] =
            json!({ "steps": rows, "firstRateOver1msPps": capacity, "lastRateWithinPps": last_ok });
        drop(net);
        drop(lab);
    }

    // Footprint.
    eprintln!("idle RSS and binary size…");
    let rss = idle_rss(bin);
    let size = binary_size(bin);
    let rss_mib = rss["vmRssMiB"].as_f64().unwrap_or(f64::NAN);
    println!("\n## Footprint\n");
    println!("| measure | value |");
    println!("|---|---:|");
    println!("| idle RSS (VmRSS 2 s after `listening`) | {rss_mib:.2} MiB |");
    println!(
        "| binary size, stripped (unstripped) | {:.2} MiB ({:.2} MiB) |",
        size["strippedMiB"].as_f64().unwrap_or(f64::NAN),
        size["unstrippedBytes"].as_f64().unwrap_or(f64::NAN) / 1048576.0
    );
    goals.push((
        format!("idle RSS ≤ {GOAL_RSS_MIB} MiB"),
        format!("{rss_mib:.2} MiB"),
        rss_mib <= GOAL_RSS_MIB,
    ));
    report["idleRss"] = rss;
    report["binary"] = size;

    println!("\n## Goals\n");
    println!("| goal | measured | verdict |");
    println!("|---|---|---|");
    for (g, m, ok) in &goals {
        println!("| {g} | {m} | {} |", verdict(*ok));
    }
    report["goals"] = goals
        .iter()
        .map(|(g, m, ok)| json!({ "goal": g, "measured": m, "met": ok }))
        .collect();
    report["loadavgEnd"] = machine()["loadavg"].clone();
    report["elapsedSecs"] = json!(round(started.elapsed().as_secs_f64(), 1));
    let out = Path::new(env!("CARGO_MANIFEST_DIR")).join("../bench-out");
    std::fs::create_dir_all(&out).unwrap();
    let file: PathBuf = out.join("agent.json");
    std::fs::write(&file, serde_json::to_string_pretty(&report).unwrap()).unwrap();
    eprintln!(
        "wrote {} in {:.0} s",
        file.display(),
        started.elapsed().as_secs_f64()
    );
}
