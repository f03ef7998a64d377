//! Loss, blackhole and filters through nftables, observed with counted UDP streams
//! between two namespaces; after revert the table is gone and nothing is lost.
#![allow(clippy::unwrap_used)]

mod net_lab;

use shakeout_agent::fault::net::{Mechanism, Net};
use shakeout_api::{NetworkFault, Percent, Protocol};

use net_lab::Lab;

#[tokio::test]
async fn nftables_loss_lies_within_binomial_bounds_and_revert_removes_the_table() {
    let Some(lab) =
        Lab::new("nftables_loss_lies_within_binomial_bounds_and_revert_removes_the_table")
    else {
        return;
    };
    let (to, count) = lab.udp_sink();
    let net = Net::new(&std::env::temp_dir());
    let spec = NetworkFault {
        loss: Some(Percent(30.0)),
        peers: vec![format!("{}/32", lab.server_ip)],
        namespace: lab.ns(),
        ..Default::default()
    };
    let applied = net.apply("loss1", &spec, 0).await.unwrap();
    assert_eq!(applied.mechanism(), Mechanism::Nftables);

    let n = 3000u64;
    let got = lab.udp_burst(to, &count, n) as f64;
    let (mean, sd) = (n as f64 * 0.7, (n as f64 * 0.3 * 0.7).sqrt());
    // 99.9% interval (z = 3.29), so a correct mechanism fails this one time in a
    // thousand; the 99% interval (z = 2.576) is printed for the record.
    println!(
        "received {got} of {n}; 99% interval {:.0}..{:.0}",
        mean - 2.576 * sd,
        mean + 2.576 * sd
    );
    assert!(
        (got - mean).abs() <= 3.29 * sd,
        "received {got} of {n}, expected {mean} ± {:.0}",
        3.29 * sd
    );

    net.revert(&applied).await.unwrap();
    let ruleset = lab.sh(&lab.client, &["nft", "list", "ruleset"]);
    assert!(!ruleset.contains("shakeout"), "left behind:\n{ruleset}");
    assert_eq!(lab.udp_burst(to, &count, 500), 500, "loss after revert");
    net.revert(&applied).await.unwrap(); // idempotent
}

#[tokio::test]
async fn blackhole_drops_everything_until_reverted() {
    let Some(lab) = Lab::new("blackhole_drops_everything_until_reverted") else {
        return;
    };
    let (to, count) = lab.udp_sink();
    assert_eq!(lab.udp_burst(to, &count, 100), 100);
    let net = Net::new(&std::env::temp_dir());
    let spec = NetworkFault {
        blackhole: true,
        namespace: lab.ns(),
        ..Default::default()
    };
    let applied = net.apply("hole1", &spec, 0).await.unwrap();
    assert_eq!(lab.udp_burst(to, &count, 300), 0);
    net.revert(&applied).await.unwrap();
    assert_eq!(lab.udp_burst(to, &count, 300), 300);
}

#[tokio::test]
async fn port_and_peer_filters_only_affect_what_they_name() {
    let Some(lab) = Lab::new("port_and_peer_filters_only_affect_what_they_name") else {
        return;
    };
    let (hit, hit_count) = lab.udp_sink();
    let (spared, spared_count) = lab.udp_sink();
    let net = Net::new(&std::env::temp_dir());
    let spec = NetworkFault {
        blackhole: true,
        ports: vec![hit.port()],
        protocol: Protocol::Udp,
        namespace: lab.ns(),
        ..Default::default()
    };
    let applied = net.apply("port1", &spec, 0).await.unwrap();
    assert_eq!(
        lab.udp_burst(hit, &hit_count, 200),
        0,
        "the named port is blackholed"
    );
    assert_eq!(
        lab.udp_burst(spared, &spared_count, 200),
        200,
        "another port is untouched"
    );
    net.revert(&applied).await.unwrap();

    let elsewhere = NetworkFault {
        blackhole: true,
        peers: vec!["10.200.251.0/24".into(), "fd00:5ba7::/64".into()],
        namespace: lab.ns(),
        ..Default::default()
    };
    let applied = net.apply("peer1", &elsewhere, 0).await.unwrap();
    assert_eq!(
        lab.udp_burst(hit, &hit_count, 200),
        200,
        "a fault on other peers leaves ours alone"
    );
    net.revert(&applied).await.unwrap();
}
