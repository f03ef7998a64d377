//! `shakeout agents`: list the node agents of a Kubernetes cluster (the Helm chart's
//! DaemonSet) with what each can do; exit 0 when all answer, 3 otherwise. Flags override
//! the experiment file's `spec.kubernetes`; both default to what the chart installs.

use super::{block_on, AgentsArgs};
use crate::exit;
use crate::experiment::spec::{AgentReach, KubernetesSpec, TokenFrom};

pub(super) fn list(args: &AgentsArgs) -> i32 {
    let mut k8s = KubernetesSpec::default();
    let mut base = std::path::PathBuf::from(".");
    if let Some(file) = &args.file {
        match crate::experiment::load(file, &crate::experiment::Vars::new()) {
            Ok(exp) => {
                k8s = exp.file.spec.kubernetes.clone().unwrap_or_default();
                base = exp.dir();
            }
            Err(e) => {
                eprintln!("{e}");
                return exit::CANNOT_RUN;
            }
        }
    }
    if let Some(k) = &args.kubeconfig {
        // Absolute, so it does not move with the experiment file's directory.
        let k = std::path::absolute(k).unwrap_or_else(|_| k.clone());
        k8s.kubeconfig = Some(k.display().to_string());
    }
    if args.context.is_some() {
        k8s.context = args.context.clone();
    }
    let mut a = k8s.agents.clone().unwrap_or_default();
    a.namespace = args.namespace.clone().or(a.namespace);
    a.selector = args.selector.clone().or(a.selector);
    a.port = args.port.or(a.port);
    if let Some(var) = &args.token_env {
        a.token_from = Some(TokenFrom {
            env: Some(var.clone()),
            file: None,
        });
    }
    if let Some(ca) = &args.ca {
        a.ca = Some(
            std::path::absolute(ca)
                .unwrap_or_else(|_| ca.clone())
                .display()
                .to_string(),
        );
    }
    a.reach = match args.reach.as_deref() {
        Some("pod-ip") => Some(AgentReach::PodIp),
        Some(_) => Some(AgentReach::PortForward),
        None => a.reach,
    };
    k8s.agents = Some(a);
    block_on(async {
        let found = match crate::fault::cluster::survey(&k8s, &base).await {
            Ok(f) => f,
            Err(e) => {
                eprintln!("{e}");
                return exit::CANNOT_RUN;
            }
        };
        println!(
            "agents in namespace {} ({}), reached by {}",
            found.namespace,
            found.selector,
            match found.reach {
                Some(AgentReach::PodIp) => "pod IP",
                _ => "port-forward through the API server",
            }
        );
        let mut all_ok = true;
        for agent in &found.agents {
            match &agent.answer {
                Ok(caps) => {
                    let mechs: Vec<String> = caps
                        .mechanisms
                        .iter()
                        .map(|m| {
                            let name = format!("{:?}", m.mechanism).to_lowercase();
                            if m.available {
                                name
                            } else {
                                format!(
                                    "{name} (unavailable: {})",
                                    m.why_not.as_deref().unwrap_or("?")
                                )
                            }
                        })
                        .collect();
                    println!(
                        "  node {}: {} version {}, kernel {}, cgroup {}, faults {}, max {}; mechanisms: {}",
                        agent.node,
                        agent.pod,
                        caps.version,
                        caps.kernel,
                        caps.cgroup,
                        caps.fault_kinds.join("/"),
                        caps.max_duration,
                        mechs.join(", ")
                    );
                }
                Err(e) => {
                    all_ok = false;
                    println!("  node {}: {} NOT ANSWERING: {e}", agent.node, agent.pod);
                }
            }
        }
        for (node, why) in &found.not_ready {
            all_ok = false;
            println!("  node {}: {why}", if node.is_empty() { "-" } else { node });
        }
        if all_ok {
            exit::MET
        } else {
            exit::CANNOT_RUN
        }
    })
}
