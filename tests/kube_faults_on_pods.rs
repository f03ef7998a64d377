//! Faults on pods (as root): the real `shakeout` binary finds the pods through the fake
//! API server and sends each fault to the real `shakeout-agent` of the pod's node through
//! its port-forward; the agent finds the pod's processes by the pod cgroup the test makes
//! as the kubelet would. A pause freezes the pod's process and only while it lasts; a
//! network fault lands in the pod's network namespace, never the host's, and leaves
//! nothing.

#![allow(clippy::unwrap_used)] // test helpers: a failed setup should panic loudly

mod kit;

use std::path::{Path, PathBuf};
use std::time::Duration;

use kit::exp::{self, fault};
use kit::kube_case::{KubeCase, WITH_AGENTS};
use kit::netns::{host_has_shakeout_table, Netns};
use kit::process::{sample_service, wait_listening};
use kit::{root_or_skip, state, Owned};

/// A cgroup v1 (cgroupfs naming) or v2 directory named like a pod's, holding `pid`: what
/// the kubelet makes, so the agent finds the pod's processes by UID. Removed on drop.
struct PodCgroup(PathBuf);

impl PodCgroup {
    fn new(uid: &str, pid: u32) -> Option<PodCgroup> {
        let v1 = Path::new("/sys/fs/cgroup/pids");
        let base = if v1.join("cgroup.procs").exists() {
            v1.to_path_buf()
        } else {
            PathBuf::from("/sys/fs/cgroup")
        };
        let dir = base.join("kubepods/burstable").join(format!("pod{uid}"));
        std::fs::create_dir_all(&dir).ok()?;
        std::fs::write(dir.join("cgroup.procs"), pid.to_string()).ok()?;
        Some(PodCgroup(dir))
    }
}

impl Drop for PodCgroup {
    fn drop(&mut self) {
        // Move anything left back to the root, then remove the (now empty) directories.
        let root = self
            .0
            .parent()
            .and_then(Path::parent)
            .and_then(Path::parent);
        if let (Ok(procs), Some(root)) =
            (std::fs::read_to_string(self.0.join("cgroup.procs")), root)
        {
            for pid in procs.lines() {
                let _ = std::fs::write(root.join("cgroup.procs"), pid);
            }
        }
        let _ = std::fs::remove_dir(&self.0);
        if let Some(p) = self.0.parent() {
            let _ = std::fs::remove_dir(p);
            if let Some(pp) = p.parent() {
                let _ = std::fs::remove_dir(pp);
            }
        }
    }
}

#[test]
fn a_pause_on_pods_goes_to_the_agent_of_their_node_through_port_forward() {
    if !root_or_skip(
        "a_pause_on_pods_goes_to_the_agent_of_their_node_through_port_forward",
        "a pod cgroup and the agent acting in it",
    ) {
        return;
    }
    let case = KubeCase::new();
    let (agent, agent_port) = case.start_agent(&[]);
    case.agent_pods(&["node-1", "node-2"], &[agent_port, agent_port]);
    // The pod's container: the sample service, in a cgroup named after the pod's UID.
    let service = Owned::spawn(&mut sample_service(case.port));
    let pid = service.pid();
    let uid = case
        .fake
        .add_pod("shop", "checkout-0", &[("app", "checkout")], "node-2", true);
    let cgroup = PodCgroup::new(&uid, pid).expect("cannot make a pod cgroup as root");
    wait_listening(case.port);
    let file = case.write(
        case.experiment()
            .kubernetes(WITH_AGENTS)
            .fault(fault("freeze-checkout", "1s").with("duration", "2s").with(
                "process",
                "{ target: { pods: { namespace: shop, selector: app=checkout } }, pause: {} }",
            ))
            .objective("availability", "{ during: baseline, min: 99% }"),
    );
    let (ran, paused) =
        case.run_watching(&file, Duration::from_millis(10), || state(pid) == Some('T'));
    let state_after = state(pid);
    drop((service, agent, cgroup));
    assert!(
        paused,
        "the pod's process was never paused: {}",
        ran.explain()
    );
    assert_ne!(state_after, Some('T'), "the pod's process was left paused");
    assert_eq!(ran.code(), Some(0), "{}", ran.explain());
    let report = ran.report();
    let f = report.fault("freeze-checkout");
    assert_eq!(f.status, "reverted", "{f:#?}");
    let a = &f.agents[0];
    assert_eq!(
        a.agent, "shakeout-agent-node-2",
        "the agent of the pod's node: {f:#?}"
    );
    assert_eq!(a.pod.as_deref(), Some("shop/checkout-0"));
    assert!(
        a.url
            .starts_with("portforward://shakeout/shakeout-agent-node-2"),
        "{a:#?}"
    );
    assert!(a.targets[0].starts_with(&format!("{pid} ")), "{a:#?}");
    // The probe saw the freeze: a 2 s pause of the only server, probed with a 300 ms
    // timeout at 50/s, fails most of the fault's requests.
    let faults_phase = report.probe("health").phase("faults");
    assert!(
        faults_phase.availability_percent.unwrap() < 90.0,
        "{faults_phase:#?}"
    );
}

#[test]
fn a_network_fault_on_pods_lands_in_the_pods_namespace_and_leaves_nothing() {
    if !root_or_skip(
        "a_network_fault_on_pods_lands_in_the_pods_namespace_and_leaves_nothing",
        "a pod cgroup and the agent acting in it",
    ) {
        return;
    }
    let case = KubeCase::new();
    let (agent, agent_port) = case.start_agent(&[]);
    case.agent_pods(&["node-1"], &[agent_port]);
    // The pod: a process in its own network namespace and in the pod's cgroup (what the
    // kubelet makes of a pod's pause container).
    let netns = Netns::new("pod");
    let pause = netns.holder();
    let uid = case
        .fake
        .add_pod("shop", "db-0", &[("app", "db")], "node-1", true);
    let cgroup = PodCgroup::new(&uid, pause.pid()).expect("cannot make a pod cgroup as root");
    let file = case.write(
        case.experiment()
            .kubernetes(WITH_AGENTS)
            .service(exp::sample_service(case.port))
            .fault(fault("cut-db", "1s").with("duration", "2s").with(
                "network",
                "{ blackhole: true, pods: { namespace: shop, selector: app=db } }",
            )),
    );
    let (ran, seen) = case.run_watching(&file, Duration::from_millis(50), || {
        netns.nft_tables().contains("table inet shakeout")
    });
    let after = netns.nft_tables();
    let on_host = host_has_shakeout_table();
    drop((pause, agent, cgroup));
    assert!(
        seen,
        "the rule never appeared in the pod's namespace: {}",
        ran.explain()
    );
    assert!(
        !after.contains("shakeout"),
        "left in the pod's namespace: {after}"
    );
    assert!(!on_host, "the fault went to the host namespace");
    let f = ran.report().fault("cut-db");
    assert_eq!(f.status, "reverted", "{f:#?}");
    assert_eq!(f.agents[0].mechanism.as_deref(), Some("nftables"));
    assert_eq!(f.agents[0].pod.as_deref(), Some("shop/db-0"));
}
