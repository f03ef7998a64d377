//! Latency and loss with `tc ... netem`, where the kernel has `sch_netem`.
//!
//! Supported: unfiltered egress faults, as the root qdisc of each chosen interface,
//! handle `5ba7:` (our tag: a sweep deletes only qdiscs with it). Filtered or ingress
//! faults go to nfqueue instead (auto-selection does this); prio + u32 filters and ifb
//! for ingress would add two more ways to leave state behind for no gain here.
//! `add`, not `replace`: if someone else owns the root qdisc we fail rather than clobber
//! it. Functions here run inside the target namespace. Loss and jitter are drawn by
//! the kernel, which the agent passes no seed: the run's seed does not replay them.

use std::time::Duration;

use shakeout_api::{Latency, Percent};

use super::command::{exec, tool};
use super::error::NetError;

/// Our qdisc handle.
pub(crate) const HANDLE: &str = "5ba7:";

/// `tc` argv (without the binary) for one device (pure, so tests can read it).
pub(crate) fn argv(dev: &str, latency: Option<&Latency>, loss: Option<Percent>) -> Vec<String> {
    let mut a: Vec<String> = [
        "qdisc", "add", "dev", dev, "root", "handle", HANDLE, "netem",
    ]
    .map(String::from)
    .to_vec();
    if let Some(l) = latency {
        a.extend(["delay".into(), time(l.delay.as_duration())]);
        if let Some(j) = l.jitter.filter(|j| !j.as_duration().is_zero()) {
            a.push(time(j.as_duration()));
        }
    }
    if let Some(p) = loss {
        a.extend(["loss".into(), format!("{}%", p.0)]);
    }
    a
}

/// tc's time syntax; microseconds when the value is not a whole number of milliseconds.
fn time(d: Duration) -> String {
    let us = d.as_micros();
    if us % 1000 == 0 {
        format!("{}ms", us / 1000)
    } else {
        format!("{us}us")
    }
}

/// Non-loopback interfaces of the current namespace, from `ip -o link show` (not
/// `/sys/class/net`, which shows the namespace sysfs was mounted in, not ours).
pub(crate) fn interfaces() -> Result<Vec<String>, NetError> {
    let out = exec("ip", &["-o", "link", "show"], None)?;
    Ok(parse_links(&out))
}

fn parse_links(out: &str) -> Vec<String> {
    out.lines()
        .filter_map(|l| l.split(": ").nth(1))
        .map(|name| name.split('@').next().unwrap_or(name).to_string())
        .filter(|n| n != "lo")
        .collect()
}

/// Adds the qdisc on every device, undoing the ones done if one fails.
pub(crate) fn apply(
    devs: &[String],
    latency: Option<&Latency>,
    loss: Option<Percent>,
) -> Result<(), NetError> {
    for (i, dev) in devs.iter().enumerate() {
        let a = argv(dev, latency, loss);
        let args: Vec<&str> = a.iter().map(String::as_str).collect();
        if let Err(e) = exec("tc", &args, None) {
            let _ = revert(&devs[..i]);
            return Err(e);
        }
    }
    Ok(())
}

/// Deletes our qdisc from each device that still has it.
pub(crate) fn revert(devs: &[String]) -> Result<Vec<String>, NetError> {
    let mut deleted = Vec::new();
    for (dev, line) in ours()? {
        if devs.contains(&dev) {
            exec(
                "tc",
                &["qdisc", "del", "dev", &dev, "root", "handle", HANDLE],
                None,
            )?;
            deleted.push(format!("tc {line}"));
        }
    }
    Ok(deleted)
}

/// Deletes every qdisc with our handle.
pub(crate) fn sweep() -> Result<Vec<String>, NetError> {
    let devs: Vec<String> = ours()?.into_iter().map(|(d, _)| d).collect();
    revert(&devs)
}

/// (device, line) of each root qdisc with our handle.
fn ours() -> Result<Vec<(String, String)>, NetError> {
    if tool("tc").is_none() {
        return Ok(Vec::new());
    }
    let out = exec("tc", &["qdisc", "show"], None)?;
    Ok(parse_qdiscs(&out))
}

fn parse_qdiscs(out: &str) -> Vec<(String, String)> {
    out.lines()
        .filter_map(|l| {
            let t: Vec<&str> = l.split_whitespace().collect();
            // qdisc netem 5ba7: dev eth0 root refcnt 2 limit 1000 delay 50ms
            (t.len() > 4 && t[0] == "qdisc" && t[2] == HANDLE && t[3] == "dev")
                .then(|| (t[4].to_string(), l.to_string()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use shakeout_api::Dur;

    #[test]
    fn argv_is_exact() {
        let l = Latency {
            delay: Dur::from_millis(50),
            jitter: Some(Dur::from_millis(5)),
        };
        assert_eq!(
            argv("eth0", Some(&l), Some(Percent(0.5))).join(" "),
            "qdisc add dev eth0 root handle 5ba7: netem delay 50ms 5ms loss 0.5%"
        );
        let l = Latency {
            delay: Dur(Duration::from_micros(1500)),
            jitter: None,
        };
        assert_eq!(
            argv("veth1", Some(&l), None).join(" "),
            "qdisc add dev veth1 root handle 5ba7: netem delay 1500us"
        );
        assert_eq!(
            argv("eth0", None, Some(Percent(20.0))).join(" "),
            "qdisc add dev eth0 root handle 5ba7: netem loss 20%"
        );
    }

    #[test]
    fn parses_links_and_finds_only_our_qdiscs() {
        let links = "1: lo: <LOOPBACK,UP> mtu 65536\n2: veth0@if3: <BROADCAST> mtu 1500\n3: eth0: <UP> mtu 1500\n";
        assert_eq!(parse_links(links), ["veth0", "eth0"]);
        let q = "qdisc noqueue 0: dev lo root refcnt 2\nqdisc netem 5ba7: dev eth0 root refcnt 2 limit 1000 delay 50ms\nqdisc netem 1: dev eth1 root refcnt 2 limit 1000\n";
        let ours = parse_qdiscs(q);
        assert_eq!(ours.len(), 1);
        assert_eq!(ours[0].0, "eth0");
    }
}
