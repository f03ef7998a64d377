//! Targets are processes, not ids (issue 9): a thread id resolves to its process before
//! any protection check (a signal to a thread acts on its whole thread group), `kill`
//! never sends a stop signal, and a token's policy can restrict the signals it sends.
//! Every refusal leaves nothing stopped and nothing in the ledger.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::*;
use serde_json::{json, Value};
use shakeout_agent::policy::Policy;

/// A multi-threaded process under a unique name (a symlink to python3, so `comm` is
/// that name): its pid and the id of one of its other threads.
struct Threaded {
    kid: Kid,
    name: String,
    _dir: tempfile::TempDir,
}

impl Threaded {
    fn start() -> Threaded {
        let dir = tempfile::tempdir().unwrap();
        let name = format!("thr{:08x}", rand_u32());
        // Debian's python3 (a real binary: a pyenv shim would exec python3 under its own name).
        let python = "/usr/bin/python3";
        assert!(
            Path::new(python).exists(),
            "{python} is needed for a multi-threaded target (Debian package python3; .ci/run installs it)"
        );
        let link = dir.path().join(&name);
        std::os::unix::fs::symlink(python, &link).unwrap();
        let kid = Kid(Command::new(&link)
            .args([
                "-c",
                // Each thread renames itself (PR_SET_NAME): a check that looked at the
                // thread instead of its process would see `worker`, not a protected name.
                "import ctypes, threading, time\n\
                 def work():\n    ctypes.CDLL(None).prctl(15, b'worker', 0, 0, 0)\n    time.sleep(60)\n\
                 for _ in range(3):\n    threading.Thread(target=work, daemon=True).start()\n\
                 time.sleep(60)",
            ])
            .spawn()
            .unwrap());
        let t = Threaded {
            kid,
            name,
            _dir: dir,
        };
        wait_until(
            Duration::from_secs(10),
            || {
                t.threads()
                    .iter()
                    .filter(|tid| {
                        std::fs::read_to_string(format!("/proc/{}/task/{tid}/comm", t.pid()))
                            .is_ok_and(|c| c.trim() == "worker")
                    })
                    .count()
                    >= 3
            },
            "python's threads, renamed",
        );
        t
    }

    fn pid(&self) -> u32 {
        self.kid.pid()
    }

    fn threads(&self) -> Vec<u32> {
        threads_of(self.pid())
    }

    /// A thread that is not the leader.
    fn tid(&self) -> u32 {
        *self.threads().iter().find(|t| **t != self.pid()).unwrap()
    }
}

fn threads_of(pid: u32) -> Vec<u32> {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .map(|d| {
            d.flatten()
                .filter_map(|e| e.file_name().to_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

async fn pause(agent: &InProcess, pid: u32) -> (u16, Value) {
    post(
        agent.addr,
        "/v1/faults",
        apply_body(json!({ "pid": pid }), json!("pause"), "5s", "5s"),
    )
    .await
}

async fn kill_with(agent: &InProcess, pid: u32, signal: &str) -> (u16, Value) {
    post(
        agent.addr,
        "/v1/faults",
        apply_body(
            json!({ "pid": pid }),
            json!({ "kill": { "signal": signal } }),
            "0s",
            "5s",
        ),
    )
    .await
}

async fn nothing_held(agent: &InProcess) {
    let (status, list) = get(agent.addr, "/v1/faults").await;
    assert_eq!(status, 200);
    assert_eq!(list, json!([]), "a refused request left a fault");
    assert_eq!(agent.ledger_files(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thread_of_a_protected_process_is_403_and_nothing_stops() {
    let target = Threaded::start();
    let name = target.name.clone();
    let agent = InProcess::start_with(move |c| {
        c.policy = Policy {
            protected_names: vec![name],
            ..Policy::default()
        };
    })
    .await;
    let tid = target.tid();
    assert_ne!(tid, target.pid());
    for (status, err) in [
        pause(&agent, tid).await,
        kill_with(&agent, tid, "TERM").await,
    ] {
        assert_eq!(status, 403, "{err}");
        assert_eq!(err["code"], "protectedTarget");
        let msg = err["message"].as_str().unwrap();
        assert!(
            msg.contains(&format!("{tid} is a thread of process {}", target.pid()))
                && msg.contains(&target.name),
            "{msg}"
        );
        eprintln!("thread {tid} of protected {}: {status} {msg}", target.pid());
    }
    assert_eq!(
        state(target.pid()),
        Some('S'),
        "the protected process stopped"
    );
    nothing_held(&agent).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thread_of_the_agent_itself_is_403() {
    let agent = InProcess::start().await;
    // Threads of this process that live until the test ends (other tests' threads may
    // exit between listing them and the request, and a gone thread is not a 403).
    let (done, parked) = std::sync::mpsc::channel::<()>();
    let parked = std::sync::Arc::new(std::sync::Mutex::new(parked));
    let (tx, rx) = std::sync::mpsc::channel();
    let holders: Vec<_> = (0..2)
        .map(|_| {
            let (tx, parked) = (tx.clone(), parked.clone());
            std::thread::spawn(move || {
                tx.send(nix::unistd::gettid().as_raw() as u32).unwrap();
                let _ = parked.lock().map(|p| p.recv());
            })
        })
        .collect();
    let tids: Vec<u32> = (0..2).map(|_| rx.recv().unwrap()).collect();
    for tid in &tids {
        let (status, err) = pause(&agent, *tid).await;
        assert_eq!(status, 403, "thread {tid} of the agent: {err}");
        assert!(
            err["message"]
                .as_str()
                .unwrap()
                .contains("the agent itself"),
            "{err}"
        );
    }
    // And of its ancestors: the process that started the test (cargo), if it has threads.
    let parent = std::os::unix::process::parent_id();
    if let Some(tid) = threads_of(parent).into_iter().find(|t| *t != parent) {
        let (status, err) = pause(&agent, tid).await;
        assert_eq!(status, 403, "thread {tid} of an ancestor: {err}");
        assert!(
            err["message"].as_str().unwrap().contains("ancestor"),
            "{err}"
        );
    }
    nothing_held(&agent).await;
    drop(done);
    for h in holders {
        h.join().unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thread_of_an_unprotected_process_pauses_the_process_and_reverts() {
    let target = Threaded::start();
    let agent = InProcess::start().await;
    let (status, resp) = pause(&agent, target.tid()).await;
    assert_eq!(status, 201, "{resp}");
    assert_eq!(resp["targets"][0]["pid"], target.pid(), "{resp}");
    wait_state(&target.kid, 'T');
    let id = resp["id"].as_str().unwrap().to_string();
    let (status, _) = delete(agent.addr, &format!("/v1/faults/{id}")).await;
    assert_eq!(status, 200);
    wait_state(&target.kid, 'S');
    nothing_held(&agent).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_refuses_stop_signals_and_points_to_pause() {
    let agent = InProcess::start().await;
    let (_d, _name, kids) = sleepers(1);
    for signal in ["STOP", "SIGTSTP", "ttin", "22", "SIGTTOU", "19"] {
        let (status, err) = kill_with(&agent, kids[0].pid(), signal).await;
        assert_eq!(status, 400, "{signal}: {err}");
        assert_eq!(err["code"], "badSpec");
        assert!(
            err["message"].as_str().unwrap().contains("`pause`"),
            "{signal}: {err}"
        );
        assert_eq!(state(kids[0].pid()), Some('S'), "{signal} stopped it");
    }
    nothing_held(&agent).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_policy_restricts_kill_signals() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("policy.yaml");
    std::fs::write(&path, "tokens:\n  ci:\n    signals: [TERM]\n").unwrap();
    let policy = Policy::load(&path).unwrap();
    let agent = InProcess::start_with(move |c| c.policy = policy).await;
    let (_d, _name, kids) = sleepers(2);
    let (status, err) = kill_with(&agent, kids[0].pid(), "HUP").await;
    assert_eq!(status, 403, "{err}");
    assert_eq!(err["code"], "forbidden");
    assert!(err["message"].as_str().unwrap().contains("SIGHUP"), "{err}");
    assert_eq!(state(kids[0].pid()), Some('S'));
    let (status, resp) = kill_with(&agent, kids[1].pid(), "TERM").await;
    assert_eq!(status, 201, "{resp}");
    let pid = kids[1].pid();
    wait_until(
        Duration::from_secs(10),
        || state(pid).is_none_or(|s| s == 'Z'),
        "the TERMed sleeper to exit",
    );
}
