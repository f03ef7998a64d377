//! The iptables side of nfqueue faults: rules that hand matching packets to our queue.
//!
//! This kernel has no nftables `queue` statement, so the queueing rule is
//! `iptables -j NFQUEUE --queue-bypass` (the bypass is what makes it fail open when the
//! agent dies). Each fault has chains of its own, `SHAKEOUT-OUT-<h>` / `SHAKEOUT-IN-<h>`
//! (`h`: 12 hex digits of a hash of the fault id), entered from OUTPUT / INPUT by a jump
//! tagged `shakeout`; each rule also carries `shakeout:<id>`.
//!
//! Nothing is shared, between faults or between agents (the controller's embedded agent
//! and the node agent may both work in the host namespace), so apply needs no listing:
//! one `iptables-restore --noflush` transaction per binary creates the chain with `-N`,
//! fills it and inserts the jump. The transaction is atomic per table and its exit status
//! is authoritative, so there is no verifying listing either; and `-N` fails if the chain
//! exists, so a conflict is refused with nothing changed, never clobbered. Revert is the
//! mirror transaction; only when that fails (already reverted, or a record from before
//! per-fault chains, whose rules sit in the shared `SHAKEOUT-OUT` / `SHAKEOUT-IN`) does
//! it read a listing and delete by tag. The IPv4 and IPv6 transactions run at once:
//! process spawns are most of the latency. Functions here run inside the target
//! namespace.

use super::command::{exec, tool, Running};
use super::error::NetError;
use super::filter::{Family, Filter, Hook};
use super::record::Rule;

/// The chains every fault shared before per-fault chains; still reverted and swept.
pub(crate) const CHAIN_OUT: &str = "SHAKEOUT-OUT";
pub(crate) const CHAIN_IN: &str = "SHAKEOUT-IN";
const JUMP_TAG: &str = "shakeout";
/// Wait this long (seconds) for the xtables lock instead of failing at once.
const WAIT: &str = "5";

/// The fault's own chain for a hook: `SHAKEOUT-OUT-` + 12 hex digits (25 characters;
/// iptables allows 28). The hash is FNV-1a: stable, and not secret. Two ids that share
/// one (1 in 2^48) meet `-N`'s refusal, never each other's rules.
pub(crate) fn chain(hook: Hook, id: &str) -> String {
    let h = id.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    let base = match hook {
        Hook::Out => CHAIN_OUT,
        Hook::In => CHAIN_IN,
    };
    format!("{base}-{:012x}", h & 0xffff_ffff_ffff)
}

/// Rules for a fault (pure, so tests can read them).
pub(crate) fn rules(id: &str, filter: &Filter, queue: u16, with_v6: bool) -> Vec<Rule> {
    let mut out = Vec::new();
    for hook in filter.hooks() {
        let (addr_flag, port_flag) = match hook {
            Hook::Out => ("-d", "--dports"),
            Hook::In => ("-s", "--sports"),
        };
        let chain = chain(*hook, id);
        for (fam, peers) in filter.families() {
            if fam == Family::V6 && !with_v6 {
                continue;
            }
            let bin = if fam == Family::V4 {
                "iptables"
            } else {
                "ip6tables"
            };
            let peer_list: Vec<Option<&String>> = if peers.is_empty() {
                vec![None]
            } else {
                peers.iter().map(Some).collect()
            };
            let l4 = filter.l4(fam);
            let l4_list: Vec<Option<&str>> = if l4.is_empty() {
                vec![None]
            } else {
                l4.into_iter().map(Some).collect()
            };
            for peer in &peer_list {
                for proto in &l4_list {
                    let mut args: Vec<String> = Vec::new();
                    if let Some(p) = peer {
                        args.extend([addr_flag.to_string(), p.to_string()]);
                    }
                    if let Some(p) = proto {
                        args.extend(["-p".to_string(), p.to_string()]);
                    }
                    if !filter.ports.is_empty() {
                        let ports: Vec<String> = filter.ports.iter().map(u16::to_string).collect();
                        args.extend(["-m", "multiport", port_flag].map(String::from));
                        args.push(ports.join(","));
                    }
                    args.extend(["-m", "comment", "--comment"].map(String::from));
                    args.push(format!("shakeout:{id}"));
                    args.extend(["-j", "NFQUEUE", "--queue-num"].map(String::from));
                    args.push(queue.to_string());
                    args.push("--queue-bypass".into());
                    out.push(Rule {
                        bin: bin.into(),
                        chain: chain.clone(),
                        args,
                    });
                }
            }
        }
    }
    out
}

/// Installs the rules: one transaction per binary, all started at once. If one binary's
/// fails, the others' (each all or nothing) are taken out again.
pub(crate) fn apply(id: &str, rules: &[Rule]) -> Result<(), NetError> {
    let bins = bins_of(rules);
    let started: Vec<(&String, Result<Running, NetError>)> = bins
        .iter()
        .map(|bin| {
            let script = install_script(bin, rules);
            (
                bin,
                Running::spawn(&restore(bin), &restore_args(), Some(&script)),
            )
        })
        .collect();
    let mut installed = Vec::new();
    let mut failure = None;
    for (bin, run) in started {
        match run.and_then(Running::wait) {
            Ok(_) => installed.push(bin.clone()),
            Err(e) => failure = failure.or(Some(explain(id, bin, rules, e))),
        }
    }
    match failure {
        None => Ok(()),
        Some(e) => {
            let mine: Vec<Rule> = rules
                .iter()
                .filter(|r| installed.contains(&r.bin))
                .cloned()
                .collect();
            if !mine.is_empty() {
                let _ = revert(id, Some(&mine));
            }
            Err(e)
        }
    }
}

/// `-N` each of the binary's chains, append its rules, then jump to each chain first
/// thing in its parent (so an earlier ACCEPT cannot skip the fault).
fn install_script(bin: &str, rules: &[Rule]) -> String {
    let mine: Vec<&Rule> = rules.iter().filter(|r| r.bin == bin).collect();
    let chains = chains_of(mine.iter().copied());
    let mut script = String::from("*filter\n");
    for chain in &chains {
        script += &format!("-N {chain}\n");
    }
    for r in &mine {
        script += &format!("-A {} {}\n", r.chain, r.args.join(" "));
    }
    for chain in &chains {
        script += &format!("-I {} 1 {}\n", parent(chain), jump_args(chain).join(" "));
    }
    script + "COMMIT\n"
}

/// A refused transaction, saying so plainly when the cause is a chain that exists.
fn explain(id: &str, bin: &str, rules: &[Rule], e: NetError) -> NetError {
    match e {
        NetError::Failed(m) if m.contains("Chain already exists") => {
            let chains = chains_of(rules.iter().filter(|r| r.bin == bin)).join(", ");
            NetError::Failed(format!(
                "{bin}: chain {chains} for fault {id} already exists in this namespace (a fault \
                 with the same id from another agent, or a leftover of this one); nothing was \
                 changed: {m}"
            ))
        }
        other => other,
    }
}

/// Deletes the fault's jumps, rules and chains, and is Ok when they are already gone.
/// `recorded` are the rules its record names; `None` (an old or partial record) means
/// both binaries and the chains derived from `id`. Fast path: one transaction per binary
/// (jump, flush, delete the chain), all at once; a binary whose transaction fails, or
/// whose rules sit in the old shared chains, is done from a listing instead.
pub(crate) fn revert(id: &str, recorded: Option<&[Rule]>) -> Result<(), NetError> {
    let derived: Vec<String> = [Hook::Out, Hook::In].map(|h| chain(h, id)).to_vec();
    let bins: Vec<String> = match recorded {
        Some(r) => bins_of(r)
            .into_iter()
            .filter(|b| tool(b).is_some())
            .collect(),
        None => binaries().map(String::from).collect(),
    };
    let chains_for = |bin: &str| -> Vec<String> {
        match recorded {
            Some(r) => chains_of(r.iter().filter(|r| r.bin == bin)),
            None => derived.clone(),
        }
    };
    let started: Vec<(&String, Option<Result<Running, NetError>>)> = bins
        .iter()
        .map(|bin| {
            let chains = chains_for(bin);
            let own = chains.iter().all(|c| c != CHAIN_OUT && c != CHAIN_IN);
            let fast = own.then(|| {
                let mut script = String::from("*filter\n");
                for chain in &chains {
                    script += &format!("-D {} {}\n", parent(chain), jump_args(chain).join(" "));
                    script += &format!("-F {chain}\n-X {chain}\n");
                }
                Running::spawn(&restore(bin), &restore_args(), Some(&(script + "COMMIT\n")))
            });
            (bin, fast)
        })
        .collect();
    let mut result = Ok(());
    for (bin, fast) in started {
        if let Some(Ok(())) = fast.map(|r| r.and_then(Running::wait).map(|_| ())) {
            continue;
        }
        let mut chains = chains_for(bin);
        chains.extend([CHAIN_OUT, CHAIN_IN].map(String::from));
        if let Err(e) = revert_listed(bin, id, &chains) {
            result = result.and(Err(e));
        }
    }
    result
}

/// Deletes the rules tagged `shakeout:<id>` from `chains`, and each chain (with our jumps
/// to it) that nothing else is left in: one listing and at most one transaction.
fn revert_listed(bin: &str, id: &str, chains: &[String]) -> Result<(), NetError> {
    let tag = format!("shakeout:{id}");
    let listing = Listing::read(bin)?;
    let mut script = String::new();
    let mut seen: Vec<&String> = Vec::new();
    for chain in chains {
        if seen.contains(&chain) {
            continue;
        }
        seen.push(chain);
        let Some(lines) = listing.chain(chain) else {
            continue;
        };
        let mine: Vec<&String> = lines.iter().filter(|l| words(l).contains(&tag)).collect();
        for line in &mine {
            script += &format!("-D {}\n", line.trim_start_matches("-A "));
        }
        if mine.len() == lines.len() {
            for jump in listing
                .rules(parent(chain))
                .iter()
                .filter(|l| is_our_jump(l, chain))
            {
                script += &format!("-D {}\n", jump.trim_start_matches("-A "));
            }
            script += &format!("-X {chain}\n");
        }
    }
    if script.is_empty() {
        return Ok(());
    }
    exec(
        &restore(bin),
        &restore_args(),
        Some(&format!("*filter\n{script}COMMIT\n")),
    )
    .map(|_| ())
}

/// Deletes every chain of ours (per-fault and the old shared ones) with the tagged jumps
/// to it: one listing per binary, then one transaction per chain, so one chain that
/// cannot go (someone else jumps to it) does not keep the others.
pub(crate) fn sweep() -> Result<Vec<String>, NetError> {
    let mut deleted = Vec::new();
    let mut errors = Vec::new();
    for bin in binaries() {
        let listing = match Listing::read(bin) {
            Ok(l) => l,
            Err(e) => {
                errors.push(e.to_string());
                continue;
            }
        };
        for chain in listing.chains().into_iter().filter(|c| is_ours(c)) {
            let lines = listing.rules(&chain);
            let jumps: Vec<String> = listing
                .rules(parent(&chain))
                .into_iter()
                .filter(|l| is_our_jump(l, &chain))
                .collect();
            let mut script = String::from("*filter\n");
            for jump in &jumps {
                script += &format!("-D {}\n", jump.trim_start_matches("-A "));
            }
            script += &format!("-F {chain}\n-X {chain}\nCOMMIT\n");
            match exec(&restore(bin), &restore_args(), Some(&script)) {
                Ok(_) => {
                    deleted.extend(lines.iter().chain(&jumps).map(|l| format!("{bin} {l}")));
                    deleted.push(format!("{bin} chain {chain}"));
                }
                Err(e) => errors.push(e.to_string()),
            }
        }
    }
    match errors.is_empty() {
        true => Ok(deleted),
        false => Err(NetError::Failed(errors.join("; "))),
    }
}

/// The distinct binaries of a rule set, in first-use order.
pub(crate) fn bins_of(rules: &[Rule]) -> Vec<String> {
    let mut bins: Vec<String> = Vec::new();
    for r in rules {
        if !bins.contains(&r.bin) {
            bins.push(r.bin.clone());
        }
    }
    bins
}

/// The distinct chains of some rules, in first-use order.
fn chains_of<'a>(rules: impl Iterator<Item = &'a Rule>) -> Vec<String> {
    let mut chains: Vec<String> = Vec::new();
    for r in rules {
        if !chains.contains(&r.chain) {
            chains.push(r.chain.clone());
        }
    }
    chains
}

fn restore(bin: &str) -> String {
    format!("{bin}-restore")
}

fn restore_args() -> [&'static str; 3] {
    ["-w", WAIT, "--noflush"]
}

/// One `-S` listing of the filter table, read once and queried per chain. (Asking for
/// one missing chain makes iptables-nft 1.8 claim the chain is "incompatible" when the
/// table is absent, so we never ask that way.)
struct Listing(String);

impl Listing {
    fn read(bin: &str) -> Result<Listing, NetError> {
        exec(bin, &["-w", WAIT, "-S"], None).map(Listing)
    }

    /// User chains declared in the table.
    fn chains(&self) -> Vec<String> {
        self.0
            .lines()
            .filter_map(|l| l.trim().strip_prefix("-N "))
            .map(String::from)
            .collect()
    }

    /// `-A` lines of a user chain, `None` when it does not exist.
    fn chain(&self, chain: &str) -> Option<Vec<String>> {
        let declared = format!("-N {chain}");
        self.0
            .lines()
            .any(|l| l.trim() == declared)
            .then(|| self.rules(chain))
    }

    /// `-A` lines of any chain (empty when it does not exist).
    fn rules(&self, chain: &str) -> Vec<String> {
        let prefix = format!("-A {chain} ");
        self.0
            .lines()
            .filter(|l| l.starts_with(&prefix))
            .map(String::from)
            .collect()
    }
}

fn binaries() -> impl Iterator<Item = &'static str> {
    ["iptables", "ip6tables"]
        .into_iter()
        .filter(|b| tool(b).is_some())
}

/// A chain of ours: a fault's own, or one of the old shared ones.
fn is_ours(chain: &str) -> bool {
    [CHAIN_OUT, CHAIN_IN].iter().any(|base| {
        chain == *base
            || chain
                .strip_prefix(base)
                .and_then(|rest| rest.strip_prefix('-'))
                .is_some_and(|h| !h.is_empty() && h.bytes().all(|b| b.is_ascii_hexdigit()))
    })
}

fn parent(chain: &str) -> &'static str {
    if chain.starts_with(CHAIN_OUT) {
        "OUTPUT"
    } else {
        "INPUT"
    }
}

fn jump_args(chain: &str) -> Vec<&str> {
    vec!["-m", "comment", "--comment", JUMP_TAG, "-j", chain]
}

fn is_our_jump(line: &str, chain: &str) -> bool {
    let t = words(line);
    t.windows(2).any(|w| w == ["--comment", JUMP_TAG]) && t.windows(2).any(|w| w == ["-j", chain])
}

/// Splits an `iptables -S` line back into argv: it double-quotes words with special
/// characters (our `shakeout:<id>` comments) and backslash-escapes inside quotes.
fn words(line: &str) -> Vec<String> {
    let (mut out, mut cur, mut quoted, mut escaped, mut any) =
        (Vec::new(), String::new(), false, false, false);
    for c in line.chars() {
        match c {
            _ if escaped => {
                cur.push(c);
                escaped = false;
            }
            '\\' if quoted => escaped = true,
            '"' => {
                quoted = !quoted;
                any = true;
            }
            c if c.is_whitespace() && !quoted => {
                if any || !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                }
                any = false;
            }
            c => cur.push(c),
        }
    }
    if any || !cur.is_empty() {
        out.push(cur);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use shakeout_api::{Direction, NetworkFault, Protocol};

    #[test]
    fn rules_for_filtered_fault_are_exact() {
        let spec = NetworkFault {
            peers: vec!["10.200.0.2".into()],
            ports: vec![80, 443],
            protocol: Protocol::Tcp,
            direction: Direction::Egress,
            ..Default::default()
        };
        let r = rules("f1", &Filter::parse(&spec).unwrap(), 23463, true);
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].bin, "iptables");
        // Pinned: a record names its chains, but the fallback revert derives them.
        assert_eq!(r[0].chain, "SHAKEOUT-OUT-8b07b5422838");
        assert_eq!(
            r[0].args.join(" "),
            "-d 10.200.0.2/32 -p tcp -m multiport --dports 80,443 -m comment --comment shakeout:f1 -j NFQUEUE --queue-num 23463 --queue-bypass"
        );
        // One transaction: a chain that exists (a conflict) fails `-N` and so all of it.
        assert_eq!(
            install_script("iptables", &r),
            format!(
                "*filter\n-N {c}\n-A {c} {}\n-I OUTPUT 1 -m comment --comment shakeout -j {c}\nCOMMIT\n",
                r[0].args.join(" "),
                c = r[0].chain
            )
        );
        assert_eq!(install_script("ip6tables", &r), "*filter\nCOMMIT\n");
    }

    #[test]
    fn unfiltered_both_ways_covers_both_families_and_chains() {
        let spec = NetworkFault {
            direction: Direction::Both,
            ..Default::default()
        };
        let r = rules("x", &Filter::parse(&spec).unwrap(), 7, true);
        let (out, inn) = (chain(Hook::Out, "x"), chain(Hook::In, "x"));
        let summary: Vec<String> = r.iter().map(|r| format!("{} {}", r.bin, r.chain)).collect();
        assert_eq!(
            summary,
            [
                format!("iptables {out}"),
                format!("ip6tables {out}"),
                format!("iptables {inn}"),
                format!("ip6tables {inn}"),
            ]
        );
        assert_eq!(bins_of(&r), ["iptables", "ip6tables"]);
        assert_eq!(chains_of(r.iter()), [out.clone(), inn.clone()]);
        assert_eq!(
            rules("x", &Filter::parse(&spec).unwrap(), 7, false).len(),
            2
        );
        assert_eq!((parent(&out), parent(&inn)), ("OUTPUT", "INPUT"));
        let jump = format!("-A OUTPUT -m comment --comment shakeout -j {out}");
        assert!(is_our_jump(&jump, &out));
        assert!(!is_our_jump(&format!("-A OUTPUT -j {out}"), &out));
        assert!(is_our_jump(
            "-A OUTPUT -m comment --comment shakeout -j SHAKEOUT-OUT",
            CHAIN_OUT
        ));
        assert_eq!(
            words(r#"-A SHAKEOUT-OUT -d 10.0.0.2/32 -m comment --comment "shakeout:a" -j X"#)[7],
            "shakeout:a"
        );
        assert_eq!(
            words(r#"-A C -m comment --comment "a \"b\" c" -j X"#)[5],
            r#"a "b" c"#
        );
    }

    #[test]
    fn chains_are_per_fault_short_enough_and_recognised_as_ours() {
        let (a, b) = (
            chain(Hook::Out, "f-0123456789abcdef"),
            chain(Hook::Out, "f-0123456789abcdee"),
        );
        assert_ne!(a, b);
        // iptables refuses chain names of 29 characters or more.
        assert!(a.len() <= 28 && chain(Hook::In, "f-0").len() <= 28, "{a}");
        for ours in [a.as_str(), CHAIN_OUT, CHAIN_IN, &chain(Hook::In, "y")] {
            assert!(is_ours(ours), "{ours}");
        }
        for theirs in [
            "SHAKEOUT",
            "SHAKEOUT-OUTPUT",
            "SHAKEOUT-IN-",
            "DOCKER",
            "SHAKEOUT-IN-xyz",
        ] {
            assert!(!is_ours(theirs), "{theirs}");
        }
        let listing = Listing(
            "-P OUTPUT ACCEPT\n-N DOCKER\n-N SHAKEOUT-OUT-00000000abcd\n-A SHAKEOUT-OUT-00000000abcd -j ACCEPT\n"
                .into(),
        );
        assert_eq!(listing.chains(), ["DOCKER", "SHAKEOUT-OUT-00000000abcd"]);
        assert_eq!(listing.chain("SHAKEOUT-IN"), None);
        assert_eq!(
            listing.chain("SHAKEOUT-OUT-00000000abcd").unwrap(),
            ["-A SHAKEOUT-OUT-00000000abcd -j ACCEPT"]
        );
    }
}
