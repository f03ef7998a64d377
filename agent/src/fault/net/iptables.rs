//! The iptables side of nfqueue faults: rules that hand matching packets to our queue.
//!
//! This kernel has no nftables `queue` statement, so the queueing rule is
//! `iptables -j NFQUEUE --queue-bypass` (the bypass is what makes it fail open when the
//! agent dies). Rules live in chains of our own, `SHAKEOUT-OUT` / `SHAKEOUT-IN`, entered
//! from OUTPUT / INPUT by a jump tagged `shakeout`; each rule carries
//! `shakeout:<id>`. Functions here run inside the target namespace.

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

/// Installs the rules (creating our chains and jumps as needed), then checks each is
/// listed. On any failure the ones already added are removed again.
pub(crate) fn apply(id: &str, rules: &[Rule]) -> Result<(), NetError> {
    let result = rules.iter().try_for_each(|r| {
        ensure_chain(&r.bin, &r.chain)?;
        let mut argv = vec!["-w", WAIT, "-A", &r.chain];
        argv.extend(r.args.iter().map(String::as_str));
        exec(&r.bin, &argv, None).map(|_| ())
    });
    let verified = result.and_then(|()| {
        for r in rules {
            let mut argv = vec!["-w", WAIT, "-C", &r.chain];
            argv.extend(r.args.iter().map(String::as_str));
            exec(&r.bin, &argv, None).map_err(|e| {
                NetError::Failed(format!(
                    "{} rule for {id} not listed after adding it: {e}",
                    r.bin
                ))
            })?;
        }
        Ok(())
    });
    if let Err(e) = verified {
        let _ = revert(id);
        return Err(e);
    }
    Ok(())
}

/// Deletes the fault's rules in both binaries; drops our chains when they are empty.
pub(crate) fn revert(id: &str) -> Result<Vec<String>, NetError> {
    let tag = format!("shakeout:{id}");
    let mut deleted = Vec::new();
    for bin in binaries() {
        for chain in [CHAIN_OUT, CHAIN_IN] {
            let Some(lines) = list(bin, chain)? else {
                continue;
            };
            for line in lines.iter().filter(|l| words(l).contains(&tag)) {
                delete_line(bin, line)?;
                deleted.push(format!("{bin} {line}"));
            }
            if list(bin, chain)?.is_some_and(|rest| rest.is_empty()) {
                remove_chain(bin, chain)?;
            }
        }
    }
    Ok(deleted)
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

fn ensure_chain(bin: &str, chain: &str) -> Result<(), NetError> {
    if list(bin, chain)?.is_none() {
        exec(bin, &["-w", WAIT, "-N", chain], None)?;
    }
    let mut check = vec!["-w", WAIT, "-C", parent(chain)];
    check.extend(jump_args(chain));
    if exec(bin, &check, None).is_err() {
        // First in the parent chain, so an earlier ACCEPT cannot skip the fault.
        let mut add = vec!["-w", WAIT, "-I", parent(chain), "1"];
        add.extend(jump_args(chain));
        exec(bin, &add, None)?;
    }
    Ok(())
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
