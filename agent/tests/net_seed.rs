//! `--seed` replays network loss: a fault applied through the agent with the same seed
//! drops the same packets of the same traffic, and another seed drops others. Numbered
//! UDP datagrams through an nfqueue loss fault, counted by number at the far end.
#![allow(clippy::unwrap_used)]

mod net_lab;

use std::collections::BTreeSet;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use shakeout_agent::fault::net::Mechanism;
use shakeout_agent::{Agent, AgentConfig};
use shakeout_api::{ApplyRequest, Dur, FaultSpec, NetworkFault, Percent, Protocol};

use net_lab::Lab;

const PACKETS: u64 = 200;

/// Datagram numbers received in the server namespace.
struct Sink {
    addr: SocketAddr,
    seen: Arc<Mutex<BTreeSet<u64>>>,
    stop: Arc<AtomicBool>,
}

impl Sink {
    fn start(lab: &Lab) -> Sink {
        let ip = lab.server_ip;
        let sock = lab.in_ns(&lab.server, move || UdpSocket::bind((ip, 0)).unwrap());
        sock.set_read_timeout(Some(Duration::from_millis(20)))
            .unwrap();
        let sink = Sink {
            addr: sock.local_addr().unwrap(),
            seen: Arc::default(),
            stop: Arc::default(),
        };
        let (seen, stop) = (sink.seen.clone(), sink.stop.clone());
        std::thread::spawn(move || {
            let mut buf = [0u8; 8];
            while !stop.load(Ordering::Relaxed) {
                if let Ok(8) = sock.recv(&mut buf) {
                    seen.lock().unwrap().insert(u64::from_be_bytes(buf));
                }
            }
        });
        sink
    }

    /// Sends datagrams 0..PACKETS from the client namespace, paced, and returns the
    /// numbers that arrived once nothing more has for 200 ms.
    fn burst(&self, lab: &Lab) -> BTreeSet<u64> {
        self.seen.lock().unwrap().clear();
        let sock = lab.in_ns(&lab.client, || UdpSocket::bind("0.0.0.0:0").unwrap());
        for i in 0..PACKETS {
            sock.send_to(&i.to_be_bytes(), self.addr).unwrap();
            if i % 16 == 15 {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut last = (0, Instant::now());
        while last.1.elapsed() < Duration::from_millis(200) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
            let now = self.seen.lock().unwrap().len();
            if now != last.0 {
                last = (now, Instant::now());
            }
        }
        self.seen.lock().unwrap().clone()
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_seed_drops_the_same_packets() {
    let Some(lab) = Lab::new("the_same_seed_drops_the_same_packets") else {
        return;
    };
    let sink = Sink::start(&lab);
    assert_eq!(
        sink.burst(&lab).len() as u64,
        PACKETS,
        "the path loses packets without any fault"
    );
    let dir = tempfile::tempdir().unwrap();
    let mut config = AgentConfig::new(dir.path().join("state"));
    config.sweep_tagged_network = false;
    let agent = Agent::start(config).await.unwrap();
    let caller = agent.caller("ci");

    let pattern = async |seed: u64| {
        let spec = NetworkFault {
            loss: Some(Percent(50.0)),
            peers: vec![lab.server_ip.to_string()],
            ports: vec![sink.addr.port()],
            protocol: Protocol::Udp,
            namespace: lab.ns(),
            mechanism: Some(Mechanism::Nfqueue),
            seed: Some(seed),
            ..Default::default()
        };
        let req = ApplyRequest {
            experiment: "seed".into(),
            fault: "loss".into(),
            duration: Dur::from_secs(30),
            lease: None,
            dry_run: false,
            spec: FaultSpec::Network(spec),
        };
        let applied = agent.apply(&caller, req).await.unwrap();
        let got = sink.burst(&lab);
        agent.revert(&caller, &applied.id).await.unwrap();
        got
    };
    let first = pattern(7).await;
    let again = pattern(7).await;
    let other = pattern(8).await;
    // Binomial(200, 0.5): 100 ± 40 is over five standard deviations.
    assert!(
        (60..=140).contains(&first.len()),
        "{} of {PACKETS} arrived",
        first.len()
    );
    assert_eq!(first, again, "the same seed dropped other packets");
    assert_ne!(first, other, "another seed dropped the same packets");
    agent.shutdown().await;
}
