//! Loss and blackhole as rules in the agent's own nftables table, `inet shakeout`.
//!
//! One `nft -f -` transaction adds the table, both base chains and the fault's rules, so
//! a fault is either fully in place or not at all. Every rule carries the comment
//! `shakeout:<id>`; revert deletes the rules carrying it (looked up by comment, not by a
//! remembered handle: handles restart if the table was deleted and recreated), and the
//! table once it is empty. The functions here run inside the target namespace.

use serde_json::Value;

use super::command::exec;
use super::error::NetError;
use super::filter::{Family, Filter, Hook};

pub(crate) const TABLE: &str = "shakeout";
/// Before the usual filter chains (priority 0, where iptables-nft also lives), so a
/// drop here happens even when a later chain would accept.
const PRIORITY: i32 = -10;

/// What matching packets suffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Action {
    Drop,
    /// Drop this many out of every 10,000 (basis points, so 0.5% is 50). Which ones is
    /// `numgen random`'s choice: the kernel's generator, which cannot be seeded, so the
    /// run's seed does not replay it (nfqueue loss does).
    Loss(u32),
    /// Hand to userspace queue N; `bypass` lets packets through when no reader is bound
    /// (the agent died), like iptables' `--queue-bypass`. Needs the kernel's nft queue
    /// statement (`nft_queue`), which not every kernel has.
    Queue(u16),
}

/// A rule we installed: chain and handle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Installed {
    pub chain: String,
    pub handle: u64,
    pub comment: String,
    /// Packets the rule has matched (its `counter`).
    pub packets: u64,
}

pub(crate) fn comment(id: &str) -> String {
    format!("shakeout:{id}")
}

/// The whole transaction for one fault (pure, so tests can read it).
pub(crate) fn script(id: &str, filter: &Filter, action: Action) -> String {
    let mut s = format!("add table inet {TABLE}\n");
    for (chain, hook) in [("egress", "output"), ("ingress", "input")] {
        s += &format!(
            "add chain inet {TABLE} {chain} {{ type filter hook {hook} priority {PRIORITY} ; policy accept ; }}\n"
        );
    }
    let verdict = match action {
        Action::Drop => "counter drop".to_string(),
        Action::Loss(bp) => format!("numgen random mod 10000 < {bp} counter drop"),
        Action::Queue(q) => format!("counter queue num {q} bypass"),
    };
    for hook in filter.hooks() {
        let (chain, addr, port) = match hook {
            Hook::Out => ("egress", "daddr", "dport"),
            Hook::In => ("ingress", "saddr", "sport"),
        };
        for (addr_match, l4) in matches(filter, addr) {
            let mut m: Vec<String> = addr_match.into_iter().collect();
            if !l4.is_empty() {
                m.push(format!("meta l4proto {{ {} }}", l4.join(", ")));
            }
            if !filter.ports.is_empty() {
                let ports: Vec<String> = filter.ports.iter().map(u16::to_string).collect();
                m.push(format!("th {port} {{ {} }}", ports.join(", ")));
            }
            m.push(verdict.clone());
            s += &format!(
                "add rule inet {TABLE} {chain} {} comment \"{}\"\n",
                m.join(" "),
                comment(id)
            );
        }
    }
    s
}

/// Address match and protocols per rule. Without peers one family-less rule serves
/// both families (`meta l4proto { icmp, ipv6-icmp }` is fine in `inet`); with peers, one
/// rule per family, since `ip daddr` and `ip6 daddr` in one rule would never match.
fn matches(filter: &Filter, addr: &str) -> Vec<(Option<String>, Vec<&'static str>)> {
    let families = filter.families();
    if filter.v4.is_empty() && filter.v6.is_empty() {
        let mut l4: Vec<&'static str> = Vec::new();
        for p in families.iter().flat_map(|(f, _)| filter.l4(*f)) {
            if !l4.contains(&p) {
                l4.push(p);
            }
        }
        return vec![(None, l4)];
    }
    families
        .into_iter()
        .map(|(fam, peers)| {
            let ipf = if fam == Family::V4 { "ip" } else { "ip6" };
            (
                Some(format!("{ipf} {addr} {{ {} }}", peers.join(", "))),
                filter.l4(fam),
            )
        })
        .collect()
}

/// Applies the transaction, then reads the table back: "rules accepted but no effect"
/// is a known failure of other tools, so we only report success for rules we can see.
pub(crate) fn apply(id: &str, script: &str) -> Result<Vec<Installed>, NetError> {
    exec("nft", &["-f", "-"], Some(script))?;
    let expected = script.lines().filter(|l| l.starts_with("add rule")).count();
    let ours: Vec<Installed> = list()?
        .into_iter()
        .filter(|r| r.comment == comment(id))
        .collect();
    if ours.len() != expected {
        let _ = revert(id);
        return Err(NetError::Failed(format!(
            "nft accepted {expected} rule(s) for {id} but the table shows {}",
            ours.len()
        )));
    }
    Ok(ours)
}

/// Deletes the fault's rules (and the table when nothing else is left in it).
pub(crate) fn revert(id: &str) -> Result<Vec<String>, NetError> {
    let rules = list()?;
    let mine: Vec<&Installed> = rules.iter().filter(|r| r.comment == comment(id)).collect();
    let deleted: Vec<String> = mine
        .iter()
        .map(|r| {
            format!(
                "nft inet {TABLE} {} handle {} ({})",
                r.chain, r.handle, r.comment
            )
        })
        .collect();
    if !mine.is_empty() && rules.len() == mine.len() {
        // Ours were the last rules: dropping the table removes them in the same step.
        exec("nft", &["delete", "table", "inet", TABLE], None)?;
    } else if !mine.is_empty() {
        let s: String = mine
            .iter()
            .map(|r| format!("delete rule inet {TABLE} {} handle {}\n", r.chain, r.handle))
            .collect();
        exec("nft", &["-f", "-"], Some(&s))?;
    } else if rules.is_empty() && table_exists()? {
        exec("nft", &["delete", "table", "inet", TABLE], None)?;
    }
    Ok(deleted)
}

/// Deletes the whole table, reporting each tagged rule it held.
pub(crate) fn sweep() -> Result<Vec<String>, NetError> {
    if !table_exists()? {
        return Ok(Vec::new());
    }
    let mut deleted: Vec<String> = list()?
        .into_iter()
        .map(|r| {
            format!(
                "nft inet {TABLE} {} handle {} ({})",
                r.chain, r.handle, r.comment
            )
        })
        .collect();
    exec("nft", &["delete", "table", "inet", TABLE], None)?;
    deleted.push(format!("nft table inet {TABLE}"));
    Ok(deleted)
}

fn table_exists() -> Result<bool, NetError> {
    let out = exec("nft", &["list", "tables", "inet"], None)?;
    Ok(out
        .lines()
        .any(|l| l.trim() == format!("table inet {TABLE}")))
}

/// Rules in our table, from `nft -j -a list table`.
pub(crate) fn list() -> Result<Vec<Installed>, NetError> {
    // One exec, not "exists?" then "list": apply and revert latency is mostly execs.
    match exec("nft", &["-j", "-a", "list", "table", "inet", TABLE], None) {
        Ok(out) => parse_list(&out),
        Err(NetError::Failed(m)) if m.contains("No such file or directory") => Ok(Vec::new()),
        Err(e) => Err(e),
    }
}

fn parse_list(json: &str) -> Result<Vec<Installed>, NetError> {
    let v: Value =
        serde_json::from_str(json).map_err(|e| NetError::Failed(format!("nft -j output: {e}")))?;
    let items = v
        .get("nftables")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    Ok(items
        .iter()
        .filter_map(|item| item.get("rule"))
        .map(|rule| {
            let packets = rule
                .get("expr")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .find_map(|e| e.get("counter")?.get("packets")?.as_u64())
                .unwrap_or(0);
            Installed {
                chain: rule
                    .get("chain")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string(),
                handle: rule
                    .get("handle")
                    .and_then(Value::as_u64)
                    .unwrap_or_default(),
                comment: rule
                    .get("comment")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string(),
                packets,
            }
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use shakeout_api::{Direction, NetworkFault, Protocol};

    #[test]
    fn script_for_filtered_loss_is_exact() {
        let spec = NetworkFault {
            peers: vec!["10.200.0.2".into()],
            ports: vec![5000, 80],
            protocol: Protocol::Udp,
            direction: Direction::Both,
            ..Default::default()
        };
        let s = script("f1", &Filter::parse(&spec).unwrap(), Action::Loss(50));
        let rules: Vec<&str> = s.lines().filter(|l| l.starts_with("add rule")).collect();
        assert_eq!(rules, vec![
            "add rule inet shakeout egress ip daddr { 10.200.0.2/32 } meta l4proto { udp } th dport { 80, 5000 } numgen random mod 10000 < 50 counter drop comment \"shakeout:f1\"",
            "add rule inet shakeout ingress ip saddr { 10.200.0.2/32 } meta l4proto { udp } th sport { 80, 5000 } numgen random mod 10000 < 50 counter drop comment \"shakeout:f1\"",
        ]);
        assert!(s.contains("add chain inet shakeout egress { type filter hook output priority -10 ; policy accept ; }"));
    }

    #[test]
    fn queue_rule_is_exact_and_fails_open() {
        let spec = NetworkFault {
            ports: vec![5432],
            protocol: Protocol::Tcp,
            ..Default::default()
        };
        let s = script("q1", &Filter::parse(&spec).unwrap(), Action::Queue(23463));
        let rules: Vec<&str> = s.lines().filter(|l| l.starts_with("add rule")).collect();
        // `bypass`: with no reader bound (the agent died), packets pass instead of dropping.
        assert_eq!(rules, vec![
            "add rule inet shakeout egress meta l4proto { tcp } th dport { 5432 } counter queue num 23463 bypass comment \"shakeout:q1\"",
        ]);
    }

    #[test]
    fn unfiltered_blackhole_is_one_rule_and_icmp_splits_families() {
        let f = Filter::parse(&NetworkFault::default()).unwrap();
        let s = script("b", &f, Action::Drop);
        assert_eq!(
            s.lines()
                .filter(|l| l.starts_with("add rule"))
                .collect::<Vec<_>>(),
            vec!["add rule inet shakeout egress counter drop comment \"shakeout:b\""]
        );
        let f = Filter::parse(&NetworkFault {
            protocol: Protocol::Icmp,
            ..Default::default()
        })
        .unwrap();
        let s = script("i", &f, Action::Drop);
        assert!(s.contains(
            "add rule inet shakeout egress meta l4proto { icmp, ipv6-icmp } counter drop"
        ));
    }

    #[test]
    fn listing_parses_handles_comments_and_counters() {
        let json = r#"{"nftables":[{"metainfo":{}},{"table":{"family":"inet","name":"shakeout","handle":1}},
            {"rule":{"family":"inet","table":"shakeout","chain":"egress","handle":4,"comment":"shakeout:x",
             "expr":[{"counter":{"packets":7,"bytes":420}},{"drop":null}]}}]}"#;
        assert_eq!(
            parse_list(json).unwrap(),
            vec![Installed {
                chain: "egress".into(),
                handle: 4,
                comment: "shakeout:x".into(),
                packets: 7
            }]
        );
    }
}
