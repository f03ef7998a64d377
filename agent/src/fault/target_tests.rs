//! Target resolution against fixture proc trees: one per cgroup layout the agent must read.

use shakeout_api::{Percent, ProcessTarget, Selection};

use super::*;

const UID: &str = "3f2c1a9e-7b4d-4e21-9c3a-0d5e6f7a8b9c";

/// A fake `/proc` with chosen processes.
struct Fixture(tempfile::TempDir);

impl Fixture {
    fn new() -> Self {
        Fixture(tempfile::tempdir().unwrap())
    }
    fn proc(self, pid: u32, comm: &str, cmdline: &str, cgroup: &str) -> Self {
        let dir = self.0.path().join(pid.to_string());
        std::fs::create_dir_all(&dir).unwrap();
        // Real stat layout: 52 fields; start time (field 22) = pid * 100.
        let mut fields = vec!["0".to_string(); 49];
        fields[0] = "S".into();
        fields[1] = "1".into();
        fields[19] = (pid as u64 * 100).to_string();
        let stat = format!("{pid} ({comm}) {}\n", fields.join(" "));
        std::fs::write(dir.join("stat"), stat).unwrap();
        std::fs::write(dir.join("comm"), format!("{comm}\n")).unwrap();
        let cmd: String = cmdline.split(' ').map(|a| format!("{a}\0")).collect();
        std::fs::write(dir.join("cmdline"), cmd).unwrap();
        std::fs::write(dir.join("cgroup"), cgroup).unwrap();
        self
    }
    fn root(&self) -> ProcRoot {
        ProcRoot::new(self.0.path())
    }
}

fn by_pod() -> ProcessTarget {
    ProcessTarget {
        pod_uid: Some(UID.to_string()),
        ..Default::default()
    }
}

fn pids(procs: &[Proc]) -> Vec<u32> {
    procs.iter().map(|p| p.pid).collect()
}

#[test]
fn pod_uid_cgroup_v2_systemd() {
    let underscored = UID.replace('-', "_");
    let cg = format!("0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{underscored}.slice/cri-containerd-abc.scope\n");
    let f = Fixture::new().proc(10, "app", "/app --serve", &cg).proc(
        11,
        "other",
        "/other",
        "0::/system.slice/ssh.service\n",
    );
    assert_eq!(pids(&resolve(&f.root(), &by_pod()).unwrap()), vec![10]);
}

#[test]
fn pod_uid_cgroup_v2_guaranteed_systemd_slice() {
    let underscored = UID.replace('-', "_");
    let cg = format!("0::/kubepods.slice/kubepods-pod{underscored}.slice/crio-1.scope\n");
    assert_eq!(pod_uid_in_cgroup(&cg).as_deref(), Some(UID));
}

#[test]
fn pod_uid_cgroup_v1_cgroupfs() {
    let cg = format!(
        "12:memory:/kubepods/besteffort/pod{UID}/0123abcd\n11:cpu,cpuacct:/kubepods/besteffort/pod{UID}/0123abcd\n1:name=systemd:/kubepods/besteffort/pod{UID}/0123abcd\n"
    );
    let f = Fixture::new()
        .proc(20, "pause", "/pause", &cg)
        .proc(21, "nginx", "nginx -g daemon off;", &cg)
        .proc(22, "bash", "bash", "12:memory:/user.slice\n");
    assert_eq!(pids(&resolve(&f.root(), &by_pod()).unwrap()), vec![20, 21]);
}

#[test]
fn pod_uid_cgroup_v1_systemd() {
    let underscored = UID.replace('-', "_");
    let cg = format!("4:pids:/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{underscored}.slice/docker-1.scope\n");
    assert_eq!(pod_uid_in_cgroup(&cg).as_deref(), Some(UID));
}

#[test]
fn pod_uid_cgroup_v2_cgroupfs_upper_case_request() {
    let cg = format!("0::/kubepods/burstable/pod{UID}/abc\n");
    let f = Fixture::new().proc(30, "app", "app", &cg);
    let target = ProcessTarget {
        pod_uid: Some(UID.to_ascii_uppercase()),
        ..Default::default()
    };
    assert_eq!(pids(&resolve(&f.root(), &target).unwrap()), vec![30]);
}

#[test]
fn not_a_pod() {
    assert_eq!(
        pod_uid_in_cgroup("0::/user.slice/user-0.slice/session-1.scope\n"),
        None
    );
    assert_eq!(pod_uid_in_cgroup("0::/podman-123.scope\n"), None);
}

#[test]
fn name_and_pattern_and_stat_fields() {
    let f = Fixture::new()
        .proc(40, "sleep", "sleep 60", "0::/\n")
        .proc(41, "my (odd) name", "python3 worker.py --queue=a", "0::/\n")
        .proc(42, "kworker/0:1", "", "0::/\n");
    let root = f.root();
    let p = root.proc(41).unwrap();
    assert_eq!(
        (p.comm.as_str(), p.state, p.ppid, p.start_time),
        ("my (odd) name", 'S', 1, 4100)
    );
    let name = ProcessTarget {
        name: Some("sleep".into()),
        ..Default::default()
    };
    assert_eq!(pids(&resolve(&root, &name).unwrap()), vec![40]);
    let pattern = ProcessTarget {
        pattern: Some("worker\\.py.*queue=a".into()),
        ..Default::default()
    };
    assert_eq!(pids(&resolve(&root, &pattern).unwrap()), vec![41]);
    // Kernel threads have no command line and are never matched by a pattern.
    let all = ProcessTarget {
        pattern: Some(".*".into()),
        ..Default::default()
    };
    assert_eq!(pids(&resolve(&root, &all).unwrap()), vec![40, 41]);
}

#[test]
fn exactly_one_target_field_and_valid_regex() {
    let root = Fixture::new().root();
    let two = ProcessTarget {
        pid: Some(1),
        name: Some("x".into()),
        ..Default::default()
    };
    let err = resolve(&root, &two).unwrap_err();
    assert!(matches!(err, AgentError::BadSpec { ref field, .. } if field == "spec.process.target"));
    let bad = ProcessTarget {
        pattern: Some("(".into()),
        ..Default::default()
    };
    let err = resolve(&root, &bad).unwrap_err();
    assert!(
        matches!(err, AgentError::BadSpec { ref field, .. } if field == "spec.process.target.pattern")
    );
}

#[test]
fn selection_is_seeded_and_bounded() {
    let mut f = Fixture::new();
    for pid in 100..110 {
        f = f.proc(pid, "w", "w", "0::/\n");
    }
    let all = resolve(
        &f.root(),
        &ProcessTarget {
            name: Some("w".into()),
            ..Default::default()
        },
    )
    .unwrap();
    let three = Selection {
        count: Some(3),
        percent: None,
    };
    let a = select(all.clone(), Some(&three), 7).unwrap();
    let b = select(all.clone(), Some(&three), 7).unwrap();
    assert_eq!(a.len(), 3);
    assert_eq!(a, b, "same seed, same choice");
    let half = Selection {
        count: None,
        percent: Some(Percent(25.0)),
    };
    assert_eq!(
        select(all.clone(), Some(&half), 1).unwrap().len(),
        3,
        "25% of 10 rounds up to 3"
    );
    let over = Selection {
        count: Some(50),
        percent: None,
    };
    assert_eq!(select(all.clone(), Some(&over), 1).unwrap().len(), 10);
    let zero = Selection {
        count: Some(0),
        percent: None,
    };
    assert!(select(all, Some(&zero), 1).is_err());
}

#[test]
fn lineage_walks_to_init() {
    let f = Fixture::new()
        .proc(1, "init", "init", "0::/\n")
        .proc(50, "a", "a", "0::/\n");
    // Fixture parents are all pid 1; pid 1's own parent is 1 too, and the walk stops.
    assert_eq!(f.root().lineage(50), vec![50, 1]);
}
