//! The typed record against ledger files of today's and older agents
//! (`agent/tests/fixtures/ledger/`, whose README says where each came from): they load,
//! today's write back as the same JSON, an old agent's reads find what they look for in
//! what this one writes, and a record that lacks what a revert needs says what.

use serde_json::{json, Value};

use super::*;

fn fixture(name: &str) -> Value {
    let text = match name {
        "nftables-loss" => include_str!("../../../tests/fixtures/ledger/nftables-loss.json"),
        "nftables-blackhole" => {
            include_str!("../../../tests/fixtures/ledger/nftables-blackhole.json")
        }
        "nfqueue-iptables" => include_str!("../../../tests/fixtures/ledger/nfqueue-iptables.json"),
        "nfqueue-nft-queue" => {
            include_str!("../../../tests/fixtures/ledger/nfqueue-nft-queue.json")
        }
        "netem" => include_str!("../../../tests/fixtures/ledger/netem.json"),
        "old-nftables-host-null-namespace" => {
            include_str!("../../../tests/fixtures/ledger/old-nftables-host-null-namespace.json")
        }
        "old-nfqueue-shared-chain" => {
            include_str!("../../../tests/fixtures/ledger/old-nfqueue-shared-chain.json")
        }
        "old-nfqueue-without-rules" => {
            include_str!("../../../tests/fixtures/ledger/old-nfqueue-without-rules.json")
        }
        other => panic!("no fixture {other}"),
    };
    serde_json::from_str(text).unwrap()
}

/// The `done.applied` part of a fixture: the network record.
fn applied(name: &str) -> Value {
    fixture(name)["done"]["applied"].clone()
}

fn load(v: &Value) -> NetRecord {
    serde_json::from_value(v.clone()).unwrap()
}

fn lab_ns() -> Option<NsRecord> {
    Some(NsRecord {
        pid: 9097,
        inode: 4026532174,
        dev: 4,
        path: Some("/run/netns/so-9083-0-c".into()),
    })
}

const TODAYS: [&str; 5] = [
    "nftables-loss",
    "nftables-blackhole",
    "nfqueue-iptables",
    "nfqueue-nft-queue",
    "netem",
];

#[test]
fn todays_records_load_typed_and_write_back_as_the_same_json() {
    for name in TODAYS {
        let v = applied(name);
        let record = load(&v);
        assert_eq!(serde_json::to_value(&record).unwrap(), v, "{name}");
        assert_eq!(record.id(), fixture(name)["id"], "{name}");
        assert_eq!(record.namespace(), lab_ns().as_ref(), "{name}");
    }
    let id = "f-20331b812fac4d1f";
    assert_eq!(
        load(&applied("nftables-loss")),
        NetRecord::Nftables {
            id: id.into(),
            namespace: lab_ns(),
            table: Some("inet shakeout".into()),
            comment: Some(format!("shakeout:{id}")),
        }
    );
    match load(&applied("nfqueue-iptables")) {
        NetRecord::Nfqueue {
            queue: Some(23463),
            via:
                QueueVia::Iptables {
                    rules: Some(rules),
                    iptables: Some(version),
                },
            ..
        } => {
            assert_eq!(rules.len(), 4);
            assert_eq!(rules[2].bin, "ip6tables");
            assert_eq!(rules[0].chain, "SHAKEOUT-OUT-a34bd93d712e");
            assert!(version.starts_with("iptables v1.8"), "{version}");
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        load(&applied("nfqueue-nft-queue")),
        NetRecord::Nfqueue { queue: Some(23463), via: QueueVia::NftQueue { table, comment: Some(_) }, .. }
            if table == "inet shakeout"
    ));
    assert_eq!(
        load(&applied("netem")),
        NetRecord::Netem {
            id: "f-0b9d3c2e1f4a5867".into(),
            namespace: lab_ns(),
            handle: Some("5ba7:".into()),
            devices: vec!["eth0".into(), "veth1".into()],
        }
    );
}

#[test]
fn older_shapes_still_load() {
    // Host faults before every record named its namespace; nft rule handles of the
    // first network agents.
    let old = load(&applied("old-nftables-host-null-namespace"));
    assert_eq!(old.mechanism(), Mechanism::Nftables);
    assert_eq!(old.namespace(), None);
    // Rules in the shared chains of agents before per-fault chains.
    match load(&applied("old-nfqueue-shared-chain")) {
        NetRecord::Nfqueue {
            namespace: None,
            via: QueueVia::Iptables {
                rules: Some(rules), ..
            },
            ..
        } => assert_eq!(rules[0].chain, "SHAKEOUT-OUT"),
        other => panic!("{other:?}"),
    }
    // No rules at all, or rules that cannot be read: the revert derives the chains.
    let none = QueueVia::Iptables {
        rules: None,
        iptables: None,
    };
    let mut v = applied("old-nfqueue-without-rules");
    assert!(matches!(load(&v), NetRecord::Nfqueue { ref via, .. } if *via == none));
    for garbage in [json!(null), json!("SHAKEOUT-OUT"), json!([{ "chain": 1 }])] {
        v["detail"]["rules"] = garbage.clone();
        assert!(
            matches!(load(&v), NetRecord::Nfqueue { ref via, .. } if *via == none),
            "{garbage}"
        );
    }
    // Nothing but what a revert needs.
    let bare = load(&json!({ "mechanism": "nftables", "detail": { "id": "f-1" } }));
    assert_eq!(bare.id(), "f-1");
    let bare = load(
        &json!({ "mechanism": "nfqueue", "detail": { "id": "f-2", "table": "inet shakeout" } }),
    );
    assert!(matches!(
        bare,
        NetRecord::Nfqueue {
            via: QueueVia::NftQueue { .. },
            ..
        }
    ));
}

/// What today's (and every earlier) agent reads from a network record to revert it,
/// read the way it reads it: from a `serde_json::Value` by key.
#[derive(Debug, PartialEq)]
enum OldRead {
    Nft {
        id: String,
        ns: Option<NsRecord>,
    },
    NftQueue {
        id: String,
        ns: Option<NsRecord>,
    },
    Iptables {
        id: String,
        ns: Option<NsRecord>,
        rules: Option<Vec<Rule>>,
    },
    Netem {
        id: String,
        ns: Option<NsRecord>,
        devices: Vec<String>,
    },
}

fn old_agent_reads(json: &str) -> OldRead {
    #[derive(serde::Deserialize)]
    struct NetApplied {
        mechanism: Mechanism,
        detail: Value,
    }
    let a: NetApplied = serde_json::from_str(json).unwrap();
    let id = a.detail["id"].as_str().unwrap().to_string();
    let ns: Option<NsRecord> =
        serde_json::from_value(a.detail.get("namespace").cloned().unwrap_or_default()).unwrap();
    match a.mechanism {
        Mechanism::Nftables => OldRead::Nft { id, ns },
        Mechanism::Nfqueue if a.detail.get("table").is_some() => OldRead::NftQueue { id, ns },
        Mechanism::Nfqueue => OldRead::Iptables {
            id,
            ns,
            rules: a
                .detail
                .get("rules")
                .and_then(|r| serde_json::from_value(r.clone()).ok()),
        },
        Mechanism::Netem => OldRead::Netem {
            id,
            ns,
            devices: serde_json::from_value(a.detail["devices"].clone()).unwrap(),
        },
    }
}

#[test]
fn an_old_agent_reads_what_this_one_writes() {
    let rule = Rule {
        bin: "iptables".into(),
        chain: "SHAKEOUT-OUT-a34bd93d712e".into(),
        args: vec!["-j".into(), "NFQUEUE".into()],
    };
    let written = [
        (
            NetRecord::Nftables {
                id: "f-a".into(),
                namespace: lab_ns(),
                table: Some("inet shakeout".into()),
                comment: Some("shakeout:f-a".into()),
            },
            OldRead::Nft {
                id: "f-a".into(),
                ns: lab_ns(),
            },
        ),
        (
            NetRecord::Nfqueue {
                id: "f-b".into(),
                namespace: lab_ns(),
                queue: Some(23463),
                via: QueueVia::NftQueue {
                    table: "inet shakeout".into(),
                    comment: Some("shakeout:f-b".into()),
                },
            },
            OldRead::NftQueue {
                id: "f-b".into(),
                ns: lab_ns(),
            },
        ),
        (
            NetRecord::Nfqueue {
                id: "f-c".into(),
                namespace: lab_ns(),
                queue: Some(23464),
                via: QueueVia::Iptables {
                    rules: Some(vec![rule.clone()]),
                    iptables: None,
                },
            },
            OldRead::Iptables {
                id: "f-c".into(),
                ns: lab_ns(),
                rules: Some(vec![rule]),
            },
        ),
        (
            NetRecord::Netem {
                id: "f-d".into(),
                namespace: lab_ns(),
                handle: Some("5ba7:".into()),
                devices: vec!["eth0".into()],
            },
            OldRead::Netem {
                id: "f-d".into(),
                ns: lab_ns(),
                devices: vec!["eth0".into()],
            },
        ),
    ];
    for (record, old) in written {
        let json = serde_json::to_string_pretty(&record).unwrap();
        assert_eq!(old_agent_reads(&json), old, "{json}");
    }
    // The one value today's agent writes as `null`: an unreadable `iptables -V`.
    let v = serde_json::to_value(NetRecord::Nfqueue {
        id: "f-e".into(),
        namespace: None,
        queue: Some(1),
        via: QueueVia::Iptables {
            rules: Some(Vec::new()),
            iptables: None,
        },
    })
    .unwrap();
    assert_eq!(
        v,
        json!({ "mechanism": "nfqueue", "detail": {
            "id": "f-e", "namespace": null, "queue": 1, "rules": [], "iptables": null } })
    );
}

#[test]
fn the_tag_is_the_api_name_of_the_mechanism() {
    for name in TODAYS {
        let record = load(&applied(name));
        assert_eq!(
            serde_json::to_value(&record).unwrap()["mechanism"],
            serde_json::to_value(record.mechanism()).unwrap()
        );
    }
}

#[test]
fn a_record_that_lacks_what_a_revert_needs_says_what() {
    let error = |v: Value| {
        serde_json::from_value::<NetRecord>(v)
            .unwrap_err()
            .to_string()
    };
    let mut v = applied("nftables-loss");
    v["detail"].as_object_mut().unwrap().remove("id");
    assert!(error(v).contains("missing field `id`"));
    let mut v = applied("netem");
    v["detail"].as_object_mut().unwrap().remove("devices");
    assert!(error(v).contains("missing field `devices`"));
    let mut v = applied("nfqueue-iptables");
    v["detail"].as_object_mut().unwrap().remove("id");
    assert!(error(v).contains("missing field `id`"));
    let mut v = applied("nftables-loss");
    v["detail"]["namespace"] = json!("host");
    assert!(error(v).contains("expected struct NsRecord"));
    let e = error(json!({ "mechanism": "tc", "detail": { "id": "f-1" } }));
    assert!(
        e.contains("unknown variant `tc`") && e.contains("`netem`"),
        "{e}"
    );
    let e = error(json!({ "mechanism": "netem" }));
    assert!(e.contains("missing field `detail`"), "{e}");
}
