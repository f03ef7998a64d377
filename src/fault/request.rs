//! Turns an experiment's `network:` / `process:` fault into the agent's `ApplyRequest`,
//! resolving what only the controller knows (a supervised service's current pid).

use std::time::Duration;

use shakeout_api::{
    ApplyRequest, Dur, NetNamespace, NetworkFault, ProcessAction, ProcessFault, ProcessTarget,
};

use crate::experiment::model::{Fault, FaultAction};
use crate::experiment::spec::{NetworkFaultSpec, ProcessFaultSpec};

/// Default lease the controller asks for; it renews at a third of it.
pub const LEASE: Duration = Duration::from_secs(10);

/// Why an agent request cannot be built now.
#[derive(Debug, Clone, thiserror::Error)]
pub enum RequestError {
    /// The fault is not one an agent applies (an exec fault, a pod deletion).
    #[error("fault `{0}` is not an agent fault")]
    NotAgentFault(String),
    /// A `service:` target or namespace names a service that is not running now.
    #[error("service `{0}` is not running")]
    ServiceNotRunning(String),
}

/// The agent request for an agent-backed fault, or why it cannot be built now.
pub fn apply_request(
    experiment: &str,
    fault: &Fault,
    seed: u64,
    lease: Duration,
    pid_of: &dyn Fn(&str) -> Option<u32>,
    dry_run: bool,
) -> Result<ApplyRequest, RequestError> {
    let service_pid =
        |s: &str| pid_of(s).ok_or_else(|| RequestError::ServiceNotRunning(s.to_owned()));
    let spec = match &fault.action {
        FaultAction::Network(n) => {
            shakeout_api::FaultSpec::Network(network(n, seed, &service_pid)?)
        }
        FaultAction::Process(p) => {
            shakeout_api::FaultSpec::Process(process(p, seed, &service_pid)?)
        }
        FaultAction::Exec(_) | FaultAction::PodDelete(_) => {
            return Err(RequestError::NotAgentFault(fault.name.clone()))
        }
    };
    Ok(ApplyRequest {
        experiment: experiment.into(),
        fault: fault.name.clone(),
        duration: fault.duration.unwrap_or(Dur::ZERO),
        lease: Some(Dur(lease)),
        dry_run,
        spec,
    })
}

fn network(
    n: &NetworkFaultSpec,
    seed: u64,
    service_pid: &dyn Fn(&str) -> Result<u32, RequestError>,
) -> Result<NetworkFault, RequestError> {
    let namespace = match &n.namespace {
        None => NetNamespace::Host,
        Some(ns) => match (ns.pid, &ns.service, &ns.pod_uid) {
            (Some(pid), _, _) => NetNamespace::Pid(pid),
            (None, Some(s), _) => NetNamespace::Pid(service_pid(s)?),
            (None, None, Some(uid)) => NetNamespace::PodUid(uid.clone()),
            (None, None, None) => NetNamespace::Host,
        },
    };
    let to = n.to.clone().unwrap_or_default();
    Ok(NetworkFault {
        latency: n.latency.clone(),
        loss: n.loss,
        blackhole: n.blackhole.unwrap_or(false),
        direction: n.direction.unwrap_or_default(),
        peers: to.peers,
        ports: to.ports,
        protocol: to.protocol.unwrap_or_default(),
        namespace,
        interface: n.interface.clone(),
        mechanism: n.mechanism,
        seed: Some(seed),
    })
}

fn process(
    p: &ProcessFaultSpec,
    seed: u64,
    service_pid: &dyn Fn(&str) -> Result<u32, RequestError>,
) -> Result<ProcessFault, RequestError> {
    let t = &p.target;
    let target = ProcessTarget {
        pid: match (&t.pid, &t.service) {
            (Some(pid), _) => Some(*pid),
            (None, Some(s)) => Some(service_pid(s)?),
            _ => None,
        },
        name: t.name.clone(),
        pattern: t.pattern.clone(),
        pod_uid: t.pod_uid.clone(),
    };
    // The rules let exactly one of `kill` and `pause` through.
    let action = match &p.kill {
        Some(k) => ProcessAction::Kill {
            signal: k.signal.clone().unwrap_or_else(|| "KILL".into()),
        },
        None => ProcessAction::Pause,
    };
    Ok(ProcessFault {
        target,
        action,
        select: p.select.clone(),
        seed: Some(seed),
    })
}

/// `fault` aimed at one pod: its agent is the one on the pod's node, found by the
/// controller, and the agent finds the pod's processes or namespace by its UID.
pub fn for_pod(fault: &Fault, pod: &crate::kube::pods::PodRef) -> Fault {
    let mut f = fault.clone();
    f.name = format!("{}@{}", fault.name, pod.name);
    match &mut f.action {
        FaultAction::Network(n) => {
            n.pods = None;
            n.agent = None;
            n.namespace = Some(crate::experiment::spec::NamespaceSpec {
                pod_uid: Some(pod.uid.clone()),
                ..Default::default()
            });
        }
        FaultAction::Process(p) => {
            p.agent = None;
            p.target = crate::experiment::spec::ProcessTargetSpec {
                pod_uid: Some(pod.uid.clone()),
                ..Default::default()
            };
        }
        FaultAction::Exec(_) | FaultAction::PodDelete(_) => {}
    }
    f
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::experiment::spec::{KillSpec, PauseSpec, ProcessTargetSpec};

    fn fault(process: ProcessFaultSpec, duration: Option<Dur>) -> Fault {
        Fault {
            name: "f".into(),
            at: Dur::from_secs(1),
            duration,
            action: FaultAction::Process(process),
            skip: None,
        }
    }

    #[test]
    fn a_service_target_becomes_its_current_pid() {
        let p = ProcessFaultSpec {
            agent: None,
            target: ProcessTargetSpec {
                service: Some("db".into()),
                ..Default::default()
            },
            kill: None,
            pause: Some(PauseSpec {}),
            select: None,
        };
        let f = fault(p, Some(Dur::from_secs(5)));
        let req =
            apply_request("e", &f, 7, LEASE, &|s| (s == "db").then_some(4242), false).unwrap();
        let shakeout_api::FaultSpec::Process(pf) = &req.spec else {
            panic!("{req:?}")
        };
        assert_eq!(pf.target.pid, Some(4242));
        assert_eq!(pf.action, ProcessAction::Pause);
        assert_eq!(req.duration, Dur::from_secs(5));
        let err = apply_request("e", &f, 7, LEASE, &|_| None, false).unwrap_err();
        assert!(err.to_string().contains("service `db` is not running"));
    }

    #[test]
    fn kill_defaults_to_sigkill_and_is_one_shot() {
        let p = ProcessFaultSpec {
            agent: None,
            target: ProcessTargetSpec {
                name: Some("postgres".into()),
                ..Default::default()
            },
            kill: Some(KillSpec { signal: None }),
            pause: None,
            select: None,
        };
        let f = fault(p, None);
        assert!(!f.holds_state());
        let req = apply_request("e", &f, 7, LEASE, &|_| None, false).unwrap();
        let shakeout_api::FaultSpec::Process(pf) = &req.spec else {
            panic!()
        };
        assert_eq!(
            pf.action,
            ProcessAction::Kill {
                signal: "KILL".into()
            }
        );
    }
}
