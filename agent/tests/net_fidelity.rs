//! Fidelity numbers for the report and the later benchmark (ignored by default; run with
//! `cargo test -p shakeout-agent --test net_fidelity -- --ignored --nocapture` as root):
//! nfqueue delay error by packet rate, loss ratios, apply/revert latency.
#![allow(clippy::unwrap_used)]

mod net_lab;

use std::net::UdpSocket;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use shakeout_agent::fault::net::Net;
use shakeout_api::{Dur, Latency, Mechanism, NetworkFault, Percent};

use net_lab::Lab;

static ORIGIN: OnceLock<Instant> = OnceLock::new();

fn now_ns() -> u64 {
    ORIGIN.get_or_init(Instant::now).elapsed().as_nanos() as u64
}

fn pct(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    v[((v.len() - 1) as f64 * p).round() as usize]
}

/// One-way delays (ms) of `rate` datagrams/s for `secs`, client → server.
fn one_way(lab: &Lab, rate: u64, secs: f64) -> Vec<f64> {
    let ip = lab.server_ip;
    let rx = lab.in_ns(&lab.server, move || UdpSocket::bind((ip, 0)).unwrap());
    rx.set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let to = rx.local_addr().unwrap();
    let samples = Arc::new(Mutex::new(Vec::new()));
    let (s2, done) = (samples.clone(), Arc::new(AtomicBool::new(false)));
    let d2 = done.clone();
    let receiver = std::thread::spawn(move || {
        let mut buf = [0u8; 16];
        loop {
            match rx.recv(&mut buf) {
                Ok(_) => {
                    let sent = u64::from_be_bytes(buf[..8].try_into().unwrap());
                    s2.lock().unwrap().push((now_ns() - sent) as f64 / 1e6);
                }
                Err(_) if d2.load(Ordering::SeqCst) => break,
                Err(_) => {}
            }
        }
    });
    let tx = lab.in_ns(&lab.client, || UdpSocket::bind("0.0.0.0:0").unwrap());
    let n = (rate as f64 * secs) as u64;
    let start = Instant::now();
    for i in 0..n {
        let due = start + Duration::from_nanos(i * 1_000_000_000 / rate);
        let wait = due.saturating_duration_since(Instant::now());
        if wait > Duration::from_micros(100) {
            std::thread::sleep(wait);
        }
        let _ = tx.send_to(&now_ns().to_be_bytes(), to);
    }
    std::thread::sleep(Duration::from_millis(200));
    done.store(true, Ordering::SeqCst);
    receiver.join().unwrap();
    let v = samples.lock().unwrap().clone();
    v
}

#[tokio::test]
#[ignore = "measurement for the report; slow"]
async fn net_fidelity() {
    let Some(lab) = Lab::new("net_fidelity") else {
        return;
    };
    let net = Net::new(&std::env::temp_dir());
    let mut base = one_way(&lab, 1000, 1.0);
    let base50 = pct(&mut base, 0.5);
    println!(
        "baseline one-way p50 {base50:.3} ms p99 {:.3} ms",
        pct(&mut base, 0.99)
    );
    let delay = NetworkFault {
        latency: Some(Latency {
            delay: Dur::from_millis(50),
            jitter: None,
        }),
        peers: vec![lab.server_ip.to_string()],
        namespace: lab.ns(),
        ..Default::default()
    };
    let applied = net.apply("fid", &delay, 1).await.unwrap();
    for rate in [1000u64, 2000, 5000, 10000, 20000, 40000] {
        let mut v = one_way(&lab, rate, 1.5);
        let sent = (rate as f64 * 1.5) as usize;
        let (p50, p99) = (pct(&mut v, 0.5), pct(&mut v, 0.99));
        println!(
            "nfqueue 50ms @ {rate:>5}/s: got {}/{sent}, one-way p50 {p50:.3} ms p99 {p99:.3} ms, added error p50 {:.3} ms p99 {:.3} ms",
            v.len(),
            p50 - 50.0 - base50,
            p99 - 50.0 - base50
        );
    }
    println!("counters {:?}", net.queue_counters("fid"));
    net.revert(&applied).await.unwrap();

    for (mech, name) in [
        (Mechanism::Nftables, "nftables"),
        (Mechanism::Nfqueue, "nfqueue"),
    ] {
        let spec = NetworkFault {
            loss: Some(Percent(10.0)),
            mechanism: Some(mech),
            namespace: lab.ns(),
            ..Default::default()
        };
        let a = net.apply("fidloss", &spec, 7).await.unwrap();
        let v = one_way(&lab, 5000, 2.0);
        println!("{name} loss 10%: received {} of 10000 → measured loss {:.2}% (99% interval 9.23%..10.77%)", v.len(), 100.0 - v.len() as f64 / 100.0);
        net.revert(&a).await.unwrap();
    }

    for (mech, name) in [
        (Mechanism::Nftables, "nftables"),
        (Mechanism::Nfqueue, "nfqueue"),
    ] {
        let spec = NetworkFault {
            loss: Some(Percent(1.0)),
            latency: (mech == Mechanism::Nfqueue).then(|| Latency {
                delay: Dur::from_millis(5),
                jitter: None,
            }),
            mechanism: Some(mech),
            namespace: lab.ns(),
            ..Default::default()
        };
        let (mut ap, mut rv) = (Vec::new(), Vec::new());
        for i in 0..200 {
            let t = Instant::now();
            let a = net.apply(&format!("cyc{i}"), &spec, i).await.unwrap();
            ap.push(t.elapsed().as_secs_f64() * 1e3);
            let t = Instant::now();
            net.revert(&a).await.unwrap();
            rv.push(t.elapsed().as_secs_f64() * 1e3);
        }
        println!(
            "{name} apply p50 {:.2} ms p99 {:.2} ms; revert p50 {:.2} ms p99 {:.2} ms (200 cycles)",
            pct(&mut ap, 0.5),
            pct(&mut ap, 0.99),
            pct(&mut rv, 0.5),
            pct(&mut rv, 0.99)
        );
    }
}
