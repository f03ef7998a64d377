//! Crash safety and detection: after the agent "crashes" mid-fault, a new agent's sweep
//! leaves nothing tagged behind and nothing untagged touched; detection tells the truth
//! about netem on this kernel.
#![allow(clippy::unwrap_used)]

mod net_lab;

use shakeout_agent::fault::net::{Mechanism, Net};
use shakeout_api::{Dur, Latency, NetworkFault, Percent};

use net_lab::{root_or_skip, Lab};

#[tokio::test]
async fn sweep_after_a_crash_removes_every_tagged_rule_and_nothing_else() {
    let Some(lab) = Lab::new("sweep_after_a_crash_removes_every_tagged_rule_and_nothing_else")
    else {
        return;
    };
    lab.sh(
        &lab.client,
        &[
            "iptables", "-A", "OUTPUT", "-p", "udp", "--dport", "9", "-j", "ACCEPT",
        ],
    );
    lab.sh(&lab.client, &["nft", "add", "table", "inet", "bystander"]);

    let net = Net::new(&std::env::temp_dir());
    let loss = NetworkFault {
        loss: Some(Percent(10.0)),
        namespace: lab.ns(),
        ..Default::default()
    };
    let lat = NetworkFault {
        latency: Some(Latency {
            delay: Dur::from_millis(20),
            jitter: Some(Dur::from_millis(5)),
        }),
        ports: vec![80],
        namespace: lab.ns(),
        ..Default::default()
    };
    let a = net.apply("crash-nft", &loss, 0).await.unwrap();
    let b = net.apply("crash-q", &lat, 0).await.unwrap();
    assert_eq!(
        (a.mechanism(), b.mechanism()),
        (Mechanism::Nftables, Mechanism::Nfqueue)
    );
    drop(net); // the "crash": no revert

    let fresh = Net::new(&std::env::temp_dir());
    let report = fresh.sweep_in(&lab.ns()).await;
    assert!(report.errors.is_empty(), "{report:?}");
    for tag in [
        "shakeout:crash-nft",
        "shakeout:crash-q",
        "chain SHAKEOUT-OUT",
        "table inet shakeout",
    ] {
        assert!(
            report.rules_deleted.iter().any(|r| r.contains(tag)),
            "{tag} not in {report:?}"
        );
    }
    let (nft, ipt) = (
        lab.sh(&lab.client, &["nft", "list", "ruleset"]),
        lab.sh(&lab.client, &["iptables", "-S"]),
    );
    assert!(
        !nft.contains("shakeout") && !ipt.contains("shakeout") && !ipt.contains("SHAKEOUT"),
        "{nft}\n{ipt}"
    );
    assert!(
        nft.contains("table inet bystander") && ipt.contains("--dport 9 -j ACCEPT"),
        "untagged rules touched:\n{nft}\n{ipt}"
    );

    // Reverting the ledger's records after the sweep is fine, twice.
    for applied in [&a, &b, &a] {
        fresh.revert(applied).await.unwrap();
    }
    assert!(fresh.sweep_in(&lab.ns()).await.rules_deleted.is_empty());
}

#[tokio::test]
async fn revert_after_the_namespace_is_gone_is_ok() {
    let Some(lab) = Lab::new("revert_after_the_namespace_is_gone_is_ok") else {
        return;
    };
    let net = Net::new(&std::env::temp_dir());
    let spec = NetworkFault {
        blackhole: true,
        namespace: lab.ns(),
        ..Default::default()
    };
    let applied = net.apply("gone1", &spec, 0).await.unwrap();
    drop(lab);
    net.revert(&applied).await.unwrap();
}

#[test]
fn detection_matches_what_tc_says_about_netem() {
    if !root_or_skip("detection_matches_what_tc_says_about_netem") {
        return;
    }
    let net = Net::new(&std::env::temp_dir());
    let lab = Lab::new("detection_matches_what_tc_says_about_netem").unwrap();
    let out = std::process::Command::new("ip")
        .args([
            "netns",
            "exec",
            &lab.client,
            "tc",
            "qdisc",
            "add",
            "dev",
            "lo",
            "root",
            "netem",
            "delay",
            "1ms",
        ])
        .output()
        .unwrap();
    let netem = net
        .mechanisms()
        .into_iter()
        .find(|m| m.mechanism == Mechanism::Netem)
        .unwrap();
    assert_eq!(netem.available, out.status.success(), "{netem:?}");
    if !out.status.success() {
        let kernel_says = String::from_utf8_lossy(&out.stderr)
            .lines()
            .next()
            .unwrap_or_default()
            .trim()
            .to_string();
        let why = netem.why_not.unwrap();
        assert!(
            why.contains(&kernel_says),
            "why_not {why:?} lacks the kernel's {kernel_says:?}"
        );
    }
    let bins = net.binaries();
    for m in net.mechanisms() {
        let needs = match m.mechanism {
            Mechanism::Nftables => "nft",
            Mechanism::Nfqueue => "iptables",
            Mechanism::Netem => continue,
        };
        assert_eq!(m.available, bins[needs], "{m:?}");
    }
}
