//! Which mechanisms this node really has, and why not when it lacks one.
//!
//! Each mechanism is probed by doing the real thing inside a throwaway network namespace
//! (a thread that `unshare`s one; it vanishes with the thread): `/proc/modules` and
//! `modinfo` would miss built-ins, miss modules that autoload on first use, and say
//! nothing about whether the userspace tool and kernel agree (the iptables-legacy vs nft
//! mismatch users hit). A probe never touches the host's rules.

use std::collections::BTreeMap;

use shakeout_api::{Mechanism, MechanismInfo};

use super::command::{exec, tool};

/// Binaries the network faults use.
pub(crate) const BINARIES: [&str; 5] = ["nft", "iptables", "ip6tables", "tc", "ip"];

/// What detection found.
#[derive(Debug, Clone)]
pub(crate) struct Detected {
    pub mechanisms: Vec<MechanismInfo>,
    pub binaries: BTreeMap<String, bool>,
    /// nftables' own `queue ... bypass` statement works here: nfqueue rules go into the
    /// agent's nft table instead of iptables (one tool, one transaction).
    pub nft_queue: bool,
    /// `iptables -V` (which backend rules land in), read once: it cannot change while
    /// the agent runs, and a process spawn per apply costs milliseconds.
    pub iptables_version: Option<String>,
}

impl Detected {
    pub fn get(&self, m: Mechanism) -> Option<&MechanismInfo> {
        self.mechanisms.iter().find(|i| i.mechanism == m)
    }
    pub fn available(&self, m: Mechanism) -> bool {
        self.get(m).is_some_and(|i| i.available)
    }
}

pub(crate) fn detect() -> Detected {
    let binaries: BTreeMap<String, bool> = BINARIES
        .iter()
        .map(|b| (b.to_string(), tool(b).is_some()))
        .collect();
    let probed = super::netns::run_fresh(|| {
        let nft_queue = probe_nft_queue();
        let nfqueue = match (&nft_queue, probe_nfqueue()) {
            (_, Ok(())) | (Ok(()), _) => Ok(()),
            (Err(nft), Err(ipt)) => Err(format!("{ipt}; nft queue: {nft}")),
        };
        (
            [probe_netem(), probe_nftables(), nfqueue],
            nft_queue.is_ok(),
        )
    });
    let (results, nft_queue) = match probed {
        Ok(r) => r,
        Err(e) => {
            let why = format!("cannot probe in a scratch network namespace ({e}); the agent needs root (CAP_SYS_ADMIN and CAP_NET_ADMIN)");
            ([Err(why.clone()), Err(why.clone()), Err(why)], false)
        }
    };
    let mechanisms = [Mechanism::Netem, Mechanism::Nftables, Mechanism::Nfqueue]
        .into_iter()
        .zip(results)
        .map(|(mechanism, r)| MechanismInfo {
            mechanism,
            available: r.is_ok(),
            why_not: r.err(),
        })
        .collect();
    Detected {
        mechanisms,
        binaries,
        nft_queue,
        iptables_version: iptables_version(),
    }
}

/// nftables' `queue` statement with `bypass`, and a netlink queue bound behind it.
fn probe_nft_queue() -> Result<(), String> {
    need("nft", "nftables")?;
    let script = "add table inet shakeout\n\
        add chain inet shakeout egress { type filter hook output priority -10 ; policy accept ; }\n\
        add rule inet shakeout egress meta l4proto { tcp, udp } th dport { 9 } counter queue num 23464 bypass comment \"shakeout:probe\"\n";
    exec("nft", &["-f", "-"], Some(script))
        .map_err(|e| format!("nft queue statement unusable: {e}"))?;
    Ok(())
}

fn need(bin: &str, what: &str) -> Result<(), String> {
    tool(bin)
        .map(|_| ())
        .ok_or_else(|| format!("`{bin}` not found in PATH or /usr/sbin, /sbin ({what})"))
}

/// netem: add one on `lo` of the scratch namespace. On kernels without sch_netem tc
/// says "Specified qdisc kind is unknown", which we pass on verbatim.
fn probe_netem() -> Result<(), String> {
    need("tc", "iproute2")?;
    exec(
        "tc",
        &[
            "qdisc", "add", "dev", "lo", "root", "handle", "5ba7:", "netem", "delay", "1ms",
        ],
        None,
    )
    .map(|_| ())
    .map_err(|e| format!("sch_netem missing or unusable: {e}"))
}

/// nftables: our table, a hooked chain, and the very expressions we use (numgen, th,
/// meta l4proto, counter), in one transaction.
fn probe_nftables() -> Result<(), String> {
    need("nft", "nftables")?;
    let script = "add table inet shakeout\n\
        add chain inet shakeout egress { type filter hook output priority -10 ; policy accept ; }\n\
        add rule inet shakeout egress meta l4proto { tcp, udp } th dport { 9 } numgen random mod 10000 < 1 counter drop comment \"shakeout:probe\"\n";
    exec("nft", &["-f", "-"], Some(script))
        .map(|_| ())
        .map_err(|e| format!("nftables unusable: {e}"))
}

/// nfqueue: the iptables NFQUEUE target with bypass, and a netlink queue we can bind.
fn probe_nfqueue() -> Result<(), String> {
    need("iptables", "iptables")?;
    let args = [
        "-w",
        "5",
        "-A",
        "OUTPUT",
        "-m",
        "comment",
        "--comment",
        "shakeout:probe",
        "-j",
        "NFQUEUE",
        "--queue-num",
        "23463",
        "--queue-bypass",
    ];
    exec("iptables", &args, None).map_err(|e| format!("iptables NFQUEUE target unusable: {e}"))?;
    let mut q =
        nfq::Queue::open().map_err(|e| format!("nfnetlink_queue: open netlink socket: {e}"))?;
    q.bind(23463).map_err(|e| {
        format!("nfnetlink_queue: bind queue: {e} (module nfnetlink_queue missing?)")
    })?;
    Ok(())
}

/// `iptables -V`, e.g. `iptables v1.8.9 (nf_tables)`: which backend the rules land in.
pub(crate) fn iptables_version() -> Option<String> {
    exec("iptables", &["-V"], None)
        .ok()
        .map(|s| s.trim().to_string())
}
