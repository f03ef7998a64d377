//! Latency through nfqueue, observed from outside: TCP echo round trips between two
//! namespaces grow by the delay, shrink back on revert, and flow again at once when the
//! reader dies (`--queue-bypass`), after which a sweep removes the leftover rule.
#![allow(clippy::unwrap_used)]

mod net_lab;

use shakeout_agent::fault::net::{Mechanism, Net};
use shakeout_api::{Dur, Latency, NetworkFault};

use net_lab::{rtt_median_ms, Lab};

fn delay_spec(lab: &Lab, ms: u64) -> NetworkFault {
    NetworkFault {
        latency: Some(Latency {
            delay: Dur::from_millis(ms),
            jitter: None,
        }),
        peers: vec![lab.server_ip.to_string()],
        namespace: lab.ns(),
        ..Default::default()
    }
}

#[tokio::test]
async fn nfqueue_latency_adds_the_delay_and_revert_restores_baseline() {
    let Some(lab) = Lab::new("nfqueue_latency_adds_the_delay_and_revert_restores_baseline") else {
        return;
    };
    let mut conn = lab.connect(lab.tcp_echo());
    let base = rtt_median_ms(&mut conn, 30);

    let net = Net::new(&std::env::temp_dir());
    let applied = net.apply("lat1", &delay_spec(&lab, 50), 42).await.unwrap();
    assert_eq!(
        applied.mechanism(),
        Mechanism::Nfqueue,
        "this kernel has no netem: latency goes through nfqueue"
    );
    let faulty = rtt_median_ms(&mut conn, 15);
    // Egress only on the client: each round trip carries one delayed packet.
    let truth = base + 50.0;
    assert!(
        (faulty - truth).abs() <= 2.0,
        "median RTT {faulty:.3} ms, expected {truth:.3} ± 2 ms (baseline {base:.3})"
    );
    let c = net.queue_counters("lat1").unwrap();
    assert!(c.queued >= 15 && c.dropped == 0 && c.errors == 0, "{c:?}");

    net.revert(&applied).await.unwrap();
    let after = rtt_median_ms(&mut conn, 30);
    assert!(
        after < base + 2.0,
        "after revert RTT {after:.3} ms, baseline {base:.3} ms"
    );
    let rules = lab.sh(&lab.client, &["iptables", "-S"]);
    assert!(!rules.contains("shakeout"), "left behind:\n{rules}");
    net.revert(&applied).await.unwrap(); // idempotent
}

#[tokio::test]
async fn nfqueue_fails_open_when_the_reader_dies_and_sweep_removes_the_rule() {
    let Some(lab) = Lab::new("nfqueue_fails_open_when_the_reader_dies_and_sweep_removes_the_rule")
    else {
        return;
    };
    let mut conn = lab.connect(lab.tcp_echo());
    let base = rtt_median_ms(&mut conn, 20);

    let net = Net::new(&std::env::temp_dir());
    net.apply("open1", &delay_spec(&lab, 50), 1).await.unwrap();
    assert!(rtt_median_ms(&mut conn, 5) > 45.0);
    // The reader goes away without a revert: the rule stays, the queue has no listener.
    drop(net);
    let rules = lab.sh(&lab.client, &["iptables", "-S"]);
    assert!(
        rules.contains("shakeout:open1"),
        "rule should still be there:\n{rules}"
    );
    let t = std::time::Instant::now();
    let after = rtt_median_ms(&mut conn, 20);
    assert!(
        after < base + 2.0,
        "traffic should flow at once after the reader died: {after:.3} ms"
    );
    assert!(t.elapsed().as_millis() < 500);

    let report = Net::new(&std::env::temp_dir()).sweep_in(&lab.ns()).await;
    assert!(report.errors.is_empty(), "{report:?}");
    assert!(
        report
            .rules_deleted
            .iter()
            .any(|r| r.contains("shakeout:open1")),
        "{report:?}"
    );
    let rules = lab.sh(&lab.client, &["iptables", "-S"]);
    assert!(
        !rules.contains("shakeout") && !rules.contains("SHAKEOUT"),
        "left behind:\n{rules}"
    );
}
