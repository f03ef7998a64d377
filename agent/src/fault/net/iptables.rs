//! The iptables side of nfqueue faults: rules that hand matching packets to our queue.
//!
//! This kernel has no nftables `queue` statement, so the queueing rule is
//! `iptables -j NFQUEUE --queue-bypass` (the bypass is what makes it fail open when the
//! agent dies). Rules live in chains of our own, `SHAKEOUT-OUT` / `SHAKEOUT-IN`, entered
//! from OUTPUT / INPUT by a jump tagged `shakeout`; each rule carries
//! `shakeout:<id>`. Apply and revert are one `iptables-restore --noflush` transaction per
//! binary, since process spawns are most of their latency. Functions here run inside the
//! target namespace.

use super::filter::{Family, Filter, Hook};
use super::{exec, NetError};

pub(crate) const CHAIN_OUT: &str = "SHAKEOUT-OUT";
pub(crate) const CHAIN_IN: &str = "SHAKEOUT-IN";
const JUMP_TAG: &str = "shakeout";
/// Wait this long (seconds) for the xtables lock instead of failing at once.
const WAIT: &str = "5";

/// One rule: which binary, which chain, and the match + target arguments.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct Rule {
    pub bin: String,
    pub chain: String,
    pub args: Vec<String>,
}

/// Rules for a fault (pure, so tests can read them).
pub(crate) fn rules(id: &str, filter: &Filter, queue: u16, with_v6: bool) -> Vec<Rule> {
    let mut out = Vec::new();
    for hook in filter.hooks() {
        let (chain, addr_flag, port_flag) = match hook {
            Hook::Out => (CHAIN_OUT, "-d", "--dports"),
            Hook::In => (CHAIN_IN, "-s", "--sports"),
        };
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
                        chain: chain.into(),
                        args,
                    });
                }
            }
        }
    }
    out
}

/// Installs the rules (creating our chains and jumps as needed) in one
/// `iptables-restore --noflush` transaction per binary, then checks in a fresh listing
/// that every rule is there. On any failure the ones already added are removed again.
/// Process spawns are most of an apply's latency, so this is one listing, one restore
/// and one verifying listing per binary, whatever the number of rules.
pub(crate) fn apply(id: &str, rules: &[Rule]) -> Result<(), NetError> {
    let bins = bins_of(rules);
    let result = bins.iter().try_for_each(|bin| {
        let listing = Listing::read(bin)?;
        let mine: Vec<&Rule> = rules.iter().filter(|r| &r.bin == bin).collect();
        let mut script = String::from("*filter\n");
        for chain in [CHAIN_OUT, CHAIN_IN] {
            if !mine.iter().any(|r| r.chain == chain) {
                continue;
            }
            // Declared only when missing: iptables-restore flushes a declared chain
            // that exists, even with --noflush, and other faults' rules live there.
            if listing.chain(chain).is_none() {
                script += &format!(":{chain} - [0:0]\n");
            }
            if !listing
                .rules(parent(chain))
                .iter()
                .any(|l| is_our_jump(l, chain))
            {
                // First in the parent chain, so an earlier ACCEPT cannot skip the fault.
                script += &format!("-I {} 1 {}\n", parent(chain), jump_args(chain).join(" "));
            }
        }
        for r in &mine {
            script += &format!("-A {} {}\n", r.chain, r.args.join(" "));
        }
        script += "COMMIT\n";
        exec(&restore(bin), &["-w", WAIT, "--noflush"], Some(&script)).map(|_| ())
    });
    let verified = result.and_then(|()| {
        let tag = format!("shakeout:{id}");
        for bin in &bins {
            let listing = Listing::read(bin)?;
            let want = rules.iter().filter(|r| &r.bin == bin).count();
            let got = [CHAIN_OUT, CHAIN_IN]
                .iter()
                .flat_map(|c| listing.rules(c))
                .filter(|l| words(l).contains(&tag))
                .count();
            if got != want {
                return Err(NetError::Failed(format!(
                    "{bin}: {want} rule(s) for {id} added but {got} listed"
                )));
            }
        }
        Ok(())
    });
    if let Err(e) = verified {
        let _ = revert(id, Some(&bins));
        return Err(e);
    }
    Ok(())
}

/// Deletes the fault's rules, and our chains (with their jumps) when nothing else is
/// left in them: one listing and one restore transaction per binary. `bins` are the
/// binaries the fault's record names; `None` (an old or partial record) means both.
pub(crate) fn revert(id: &str, bins: Option<&[String]>) -> Result<Vec<String>, NetError> {
    let tag = format!("shakeout:{id}");
    let mut deleted = Vec::new();
    let bins: Vec<String> = match bins {
        Some(b) => b
            .iter()
            .filter(|b| super::tool(b).is_some())
            .cloned()
            .collect(),
        None => binaries().map(String::from).collect(),
    };
    for bin in &bins {
        let listing = Listing::read(bin)?;
        let mut script = String::new();
        for chain in [CHAIN_OUT, CHAIN_IN] {
            let Some(lines) = listing.chain(chain) else {
                continue;
            };
            let mine: Vec<&String> = lines.iter().filter(|l| words(l).contains(&tag)).collect();
            for line in &mine {
                script += &format!("-D {}\n", line.trim_start_matches("-A "));
                deleted.push(format!("{bin} {line}"));
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
        if !script.is_empty() {
            let script = format!("*filter\n{script}COMMIT\n");
            exec(&restore(bin), &["-w", WAIT, "--noflush"], Some(&script))?;
        }
    }
    Ok(deleted)
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

fn restore(bin: &str) -> String {
    format!("{bin}-restore")
}

/// One `-S` listing of the filter table, read once and queried per chain.
struct Listing(String);

impl Listing {
    fn read(bin: &str) -> Result<Listing, NetError> {
        exec(bin, &["-w", WAIT, "-S"], None).map(Listing)
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

/// Deletes every rule in our chains, the tagged jumps to them, and the chains.
pub(crate) fn sweep() -> Result<Vec<String>, NetError> {
    let mut deleted = Vec::new();
    for bin in binaries() {
        for chain in [CHAIN_OUT, CHAIN_IN] {
            let Some(lines) = list(bin, chain)? else {
                continue;
            };
            for line in &lines {
                delete_line(bin, line)?;
                deleted.push(format!("{bin} {line}"));
            }
            deleted.extend(
                remove_chain(bin, chain)?
                    .into_iter()
                    .map(|l| format!("{bin} {l}")),
            );
            deleted.push(format!("{bin} chain {chain}"));
        }
    }
    Ok(deleted)
}

fn binaries() -> impl Iterator<Item = &'static str> {
    ["iptables", "ip6tables"]
        .into_iter()
        .filter(|b| super::tool(b).is_some())
}

fn parent(chain: &str) -> &'static str {
    if chain == CHAIN_OUT {
        "OUTPUT"
    } else {
        "INPUT"
    }
}

fn jump_args(chain: &str) -> Vec<&str> {
    vec!["-m", "comment", "--comment", JUMP_TAG, "-j", chain]
}

/// Removes the tagged jumps to `chain` and the chain itself (which must be empty).
fn remove_chain(bin: &str, chain: &str) -> Result<Vec<String>, NetError> {
    let mut deleted = Vec::new();
    let parent_rules = list(bin, parent(chain))?.unwrap_or_default();
    for line in parent_rules.iter().filter(|l| is_our_jump(l, chain)) {
        delete_line(bin, line)?;
        deleted.push(line.clone());
    }
    exec(bin, &["-w", WAIT, "-X", chain], None)?;
    Ok(deleted)
}

fn is_our_jump(line: &str, chain: &str) -> bool {
    let t = words(line);
    t.windows(2).any(|w| w == ["--comment", JUMP_TAG]) && t.windows(2).any(|w| w == ["-j", chain])
}

/// `-A` lines of a chain, from `iptables -S` of the whole filter table; `None` when the
/// chain does not exist. (Asking for one missing chain makes iptables-nft 1.8 claim the
/// chain is "incompatible" when the table is absent, so we never ask that way.)
fn list(bin: &str, chain: &str) -> Result<Option<Vec<String>>, NetError> {
    let out = exec(bin, &["-w", WAIT, "-S"], None)?;
    let builtin = matches!(chain, "INPUT" | "OUTPUT" | "FORWARD");
    if !builtin && !out.lines().any(|l| l.trim() == format!("-N {chain}")) {
        return Ok(None);
    }
    let prefix = format!("-A {chain} ");
    Ok(Some(
        out.lines()
            .filter(|l| l.starts_with(&prefix))
            .map(String::from)
            .collect(),
    ))
}

/// Deletes the rule an `-S` line describes.
fn delete_line(bin: &str, line: &str) -> Result<(), NetError> {
    let w = words(line);
    let mut argv = vec!["-w", WAIT, "-D"];
    argv.extend(w.iter().skip(1).map(String::as_str));
    exec(bin, &argv, None).map(|_| ())
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
        assert_eq!(r[0].chain, "SHAKEOUT-OUT");
        assert_eq!(
            r[0].args.join(" "),
            "-d 10.200.0.2/32 -p tcp -m multiport --dports 80,443 -m comment --comment shakeout:f1 -j NFQUEUE --queue-num 23463 --queue-bypass"
        );
    }

    #[test]
    fn unfiltered_both_ways_covers_both_families_and_chains() {
        let spec = NetworkFault {
            direction: Direction::Both,
            ..Default::default()
        };
        let r = rules("x", &Filter::parse(&spec).unwrap(), 7, true);
        let summary: Vec<String> = r.iter().map(|r| format!("{} {}", r.bin, r.chain)).collect();
        assert_eq!(
            summary,
            [
                "iptables SHAKEOUT-OUT",
                "ip6tables SHAKEOUT-OUT",
                "iptables SHAKEOUT-IN",
                "ip6tables SHAKEOUT-IN"
            ]
        );
        assert_eq!(
            rules("x", &Filter::parse(&spec).unwrap(), 7, false).len(),
            2
        );
        assert!(is_our_jump(
            "-A OUTPUT -m comment --comment shakeout -j SHAKEOUT-OUT",
            CHAIN_OUT
        ));
        assert!(!is_our_jump("-A OUTPUT -j SHAKEOUT-OUT", CHAIN_OUT));
        assert_eq!(
            words(r#"-A SHAKEOUT-OUT -d 10.0.0.2/32 -m comment --comment "shakeout:a" -j X"#)[7],
            "shakeout:a"
        );
        assert_eq!(
            words(r#"-A C -m comment --comment "a \"b\" c" -j X"#)[5],
            r#"a "b" c"#
        );
    }
}
