//! Which packets a network fault matches, validated once and shared by the nftables,
//! iptables and netem back ends so they cannot disagree about a spec.

use std::net::IpAddr;

use shakeout_api::{Direction, NetworkFault, Protocol};

use super::error::NetError;

/// A hook a rule attaches to: `Out` matches the peer as destination, `In` as source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Hook {
    Out,
    In,
}

/// Address family of a rule; rules never mix v4 and v6 peers (they would never match).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Family {
    V4,
    V6,
}

/// A validated filter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Filter {
    pub direction: Direction,
    pub v4: Vec<String>,
    pub v6: Vec<String>,
    pub ports: Vec<u16>,
    pub protocol: Protocol,
}

impl Filter {
    /// Checks peers, ports and protocol, naming the field at fault.
    pub fn parse(spec: &NetworkFault) -> Result<Filter, NetError> {
        let mut filter = Filter {
            direction: spec.direction,
            v4: Vec::new(),
            v6: Vec::new(),
            ports: spec.ports.clone(),
            protocol: spec.protocol,
        };
        for (i, peer) in spec.peers.iter().enumerate() {
            let (net, fam) = parse_cidr(peer).map_err(|message| NetError::BadSpec {
                field: format!("spec.network.peers[{i}]"),
                message,
            })?;
            match fam {
                Family::V4 => filter.v4.push(net),
                Family::V6 => filter.v6.push(net),
            }
        }
        if filter.ports.contains(&0) {
            return Err(bad(
                "spec.network.ports",
                "port 0 matches nothing; use 1-65535",
            ));
        }
        if !filter.ports.is_empty() && filter.protocol == Protocol::Icmp {
            return Err(bad(
                "spec.network.ports",
                "ICMP has no ports; drop `ports` or use tcp/udp",
            ));
        }
        filter.ports.sort_unstable();
        filter.ports.dedup();
        Ok(filter)
    }

    /// True when the fault matches every packet in its direction (netem's only mode).
    pub fn is_unfiltered(&self) -> bool {
        self.v4.is_empty()
            && self.v6.is_empty()
            && self.ports.is_empty()
            && self.protocol == Protocol::All
    }

    /// Hooks to attach to, by direction.
    pub fn hooks(&self) -> &'static [Hook] {
        match self.direction {
            Direction::Egress => &[Hook::Out],
            Direction::Ingress => &[Hook::In],
            Direction::Both => &[Hook::Out, Hook::In],
        }
    }

    /// Families with the peers to match in each (empty list: any peer).
    pub fn families(&self) -> Vec<(Family, &[String])> {
        match (self.v4.is_empty(), self.v6.is_empty()) {
            (true, true) => vec![(Family::V4, &[][..]), (Family::V6, &[][..])],
            (false, true) => vec![(Family::V4, &self.v4[..])],
            (true, false) => vec![(Family::V6, &self.v6[..])],
            (false, false) => vec![(Family::V4, &self.v4[..]), (Family::V6, &self.v6[..])],
        }
    }

    /// Layer-4 protocol names to match (nft and iptables spell these alike); empty:
    /// any. Ports need a transport, so `all` with ports means tcp and udp.
    pub fn l4(&self, fam: Family) -> Vec<&'static str> {
        match (self.protocol, fam) {
            (Protocol::All, _) if self.ports.is_empty() => vec![],
            (Protocol::All, _) => vec!["tcp", "udp"],
            (Protocol::Tcp, _) => vec!["tcp"],
            (Protocol::Udp, _) => vec!["udp"],
            (Protocol::Icmp, Family::V4) => vec!["icmp"],
            (Protocol::Icmp, Family::V6) => vec!["ipv6-icmp"],
        }
    }
}

pub(crate) fn bad(field: &str, message: &str) -> NetError {
    NetError::BadSpec {
        field: field.into(),
        message: message.into(),
    }
}

/// `10.0.0.0/8`, `10.1.2.3`, `fd00::/64` → normalized text and family.
fn parse_cidr(text: &str) -> Result<(String, Family), String> {
    let hint = || {
        format!(
            "`{text}` is not an address or CIDR; expected e.g. 10.0.0.0/8, 10.1.2.3 or fd00::/64"
        )
    };
    let (addr, prefix) = match text.trim().split_once('/') {
        Some((a, p)) => (a, Some(p.parse::<u8>().map_err(|_| hint())?)),
        None => (text.trim(), None),
    };
    let ip: IpAddr = addr.parse().map_err(|_| hint())?;
    let (fam, max) = match ip {
        IpAddr::V4(_) => (Family::V4, 32),
        IpAddr::V6(_) => (Family::V6, 128),
    };
    let prefix = prefix.unwrap_or(max);
    if prefix > max {
        return Err(format!("`{text}`: prefix /{prefix} is longer than /{max}"));
    }
    Ok((format!("{ip}/{prefix}"), fam))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peers_split_by_family_and_bad_ones_name_their_index() {
        let spec = NetworkFault {
            peers: vec!["10.0.0.0/8".into(), "fd00::1".into(), "192.168.1.1".into()],
            ports: vec![443, 80, 443],
            ..Default::default()
        };
        let f = Filter::parse(&spec).unwrap();
        assert_eq!(f.v4, vec!["10.0.0.0/8", "192.168.1.1/32"]);
        assert_eq!(f.v6, vec!["fd00::1/128"]);
        assert_eq!(f.ports, vec![80, 443]);
        assert_eq!(f.l4(Family::V4), vec!["tcp", "udp"]);
        let spec = NetworkFault {
            peers: vec!["10.0.0.0/8".into(), "10.0.0.0/33".into()],
            ..Default::default()
        };
        match Filter::parse(&spec) {
            Err(NetError::BadSpec { field, .. }) => assert_eq!(field, "spec.network.peers[1]"),
            other => panic!("{other:?}"),
        }
        let spec = NetworkFault {
            ports: vec![1],
            protocol: Protocol::Icmp,
            ..Default::default()
        };
        assert!(matches!(
            Filter::parse(&spec),
            Err(NetError::BadSpec { .. })
        ));
    }
}
