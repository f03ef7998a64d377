//! From a spec to a plan: validate it, then pick the mechanism (or check the forced one).
//! Pure, so auto-selection is unit-tested against any mix of available mechanisms.

use std::time::Duration;

use shakeout_api::{Direction, Latency, Mechanism, NetworkFault, Percent};

use super::detect::Detected;
use super::error::NetError;
use super::filter::{bad, Filter};
use super::nfqueue::Shape;
use super::nft::Action;

/// Longest delay we hold packets for: the kernel queue holds them meanwhile.
const MAX_DELAY: Duration = Duration::from_secs(10);

/// What to do, by mechanism.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Work {
    Nft(Action),
    Queue(Shape),
    Netem {
        latency: Option<Latency>,
        loss: Option<Percent>,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Plan {
    pub mechanism: Mechanism,
    pub filter: Filter,
    pub work: Work,
}

pub(crate) fn plan(
    id: &str,
    spec: &NetworkFault,
    seed: u64,
    detected: &Detected,
) -> Result<Plan, NetError> {
    if id.is_empty()
        || id.len() > 64
        || !id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
    {
        return Err(bad(
            "id",
            "fault ids are 1-64 characters of A-Z a-z 0-9 . _ -",
        ));
    }
    let filter = Filter::parse(spec)?;
    if let Some(l) = &spec.latency {
        let (d, j) = (
            l.delay.as_duration(),
            l.jitter.map(|j| j.as_duration()).unwrap_or_default(),
        );
        if d.is_zero() || d > MAX_DELAY {
            return Err(bad(
                "spec.network.latency.delay",
                "must be more than 0 and at most 10s",
            ));
        }
        if j > d {
            return Err(bad(
                "spec.network.latency.jitter",
                "must not exceed the delay (a packet cannot leave before it arrives)",
            ));
        }
    }
    if let Some(p) = spec.loss {
        if !(p.0 > 0.0 && p.0 <= 100.0) {
            return Err(bad(
                "spec.network.loss",
                "must be more than 0% and at most 100%",
            ));
        }
    }
    if spec.blackhole && (spec.latency.is_some() || spec.loss.is_some()) {
        return Err(bad(
            "spec.network.blackhole",
            "drops every packet; latency or loss beside it would have no effect",
        ));
    }
    if !spec.blackhole && spec.latency.is_none() && spec.loss.is_none() {
        return Err(bad("spec.network", "needs latency, loss or blackhole"));
    }
    let netem_fits = filter.is_unfiltered() && filter.direction == Direction::Egress;
    let mechanism = match spec.mechanism {
        Some(m) => {
            match m {
                Mechanism::Nftables if spec.latency.is_some() => {
                    return Err(bad(
                        "spec.network.mechanism",
                        "nftables cannot delay packets; use nfqueue or netem",
                    ));
                }
                Mechanism::Netem if spec.blackhole => {
                    return Err(bad(
                        "spec.network.mechanism",
                        "netem does not blackhole; use nftables",
                    ));
                }
                Mechanism::Netem if !netem_fits => {
                    return Err(bad("spec.network.mechanism", "netem here serves unfiltered egress faults only; use nfqueue for peers, ports, protocol or ingress"));
                }
                _ => {}
            }
            m
        }
        None if spec.blackhole => Mechanism::Nftables,
        None if spec.latency.is_some() && netem_fits && detected.available(Mechanism::Netem) => {
            Mechanism::Netem
        }
        None if spec.latency.is_some() => Mechanism::Nfqueue,
        None => Mechanism::Nftables,
    };
    if let Some(info) = detected.get(mechanism).filter(|i| !i.available) {
        return Err(NetError::Unavailable(format!(
            "mechanism {mechanism:?} is unavailable on this node: {}",
            info.why_not.as_deref().unwrap_or("unknown reason")
        )));
    }
    let work = match mechanism {
        Mechanism::Nftables if spec.blackhole => Work::Nft(Action::Drop),
        Mechanism::Nftables => Work::Nft(Action::Loss(
            spec.loss.map_or(0, |p| (p.0 * 100.0).round() as u32),
        )),
        Mechanism::Netem => Work::Netem {
            latency: spec.latency.clone(),
            loss: spec.loss,
        },
        Mechanism::Nfqueue => Work::Queue(Shape {
            delay: spec
                .latency
                .as_ref()
                .map(|l| l.delay.as_duration())
                .unwrap_or_default(),
            jitter: spec
                .latency
                .as_ref()
                .and_then(|l| l.jitter)
                .map(|j| j.as_duration())
                .unwrap_or_default(),
            loss: if spec.blackhole {
                1.0
            } else {
                spec.loss.map_or(0.0, Percent::ratio)
            },
            seed,
        }),
    };
    Ok(Plan {
        mechanism,
        filter,
        work,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use shakeout_api::{Dur, MechanismInfo};

    fn node(netem: bool) -> Detected {
        let info = |mechanism, available: bool| MechanismInfo {
            mechanism,
            available,
            why_not: (!available).then(|| "Error: Specified qdisc kind is unknown.".to_string()),
        };
        Detected {
            mechanisms: vec![
                info(Mechanism::Netem, netem),
                info(Mechanism::Nftables, true),
                info(Mechanism::Nfqueue, true),
            ],
            binaries: Default::default(),
            nft_queue: false,
            iptables_version: None,
        }
    }

    fn latency(ms: u64) -> Option<Latency> {
        Some(Latency {
            delay: Dur::from_millis(ms),
            jitter: None,
        })
    }

    #[test]
    fn auto_selection_follows_the_node() {
        let lat = NetworkFault {
            latency: latency(50),
            ..Default::default()
        };
        assert_eq!(
            plan("a", &lat, 1, &node(true)).unwrap().mechanism,
            Mechanism::Netem
        );
        assert_eq!(
            plan("a", &lat, 1, &node(false)).unwrap().mechanism,
            Mechanism::Nfqueue
        );
        let filtered = NetworkFault {
            ports: vec![80],
            ..lat.clone()
        };
        assert_eq!(
            plan("a", &filtered, 1, &node(true)).unwrap().mechanism,
            Mechanism::Nfqueue
        );
        let loss = NetworkFault {
            loss: Some(Percent(0.5)),
            ..Default::default()
        };
        let p = plan("a", &loss, 1, &node(true)).unwrap();
        assert_eq!(p.work, Work::Nft(Action::Loss(50)));
        let both = NetworkFault {
            loss: Some(Percent(10.0)),
            ..lat.clone()
        };
        assert_eq!(
            plan("a", &both, 1, &node(true)).unwrap().mechanism,
            Mechanism::Netem
        );
        let p = plan("a", &both, 7, &node(false)).unwrap();
        assert!(
            matches!(p.work, Work::Queue(Shape { loss, seed: 7, .. }) if (loss - 0.1).abs() < 1e-12)
        );
        let hole = NetworkFault {
            blackhole: true,
            ..Default::default()
        };
        assert_eq!(
            plan("a", &hole, 1, &node(true)).unwrap().work,
            Work::Nft(Action::Drop)
        );
    }

    #[test]
    fn forced_and_invalid_specs_say_why() {
        let forced = NetworkFault {
            latency: latency(50),
            mechanism: Some(Mechanism::Netem),
            ..Default::default()
        };
        match plan("a", &forced, 1, &node(false)) {
            Err(NetError::Unavailable(m)) => {
                assert!(m.contains("Specified qdisc kind is unknown"), "{m}")
            }
            other => panic!("{other:?}"),
        }
        let field = |spec: &NetworkFault, id: &str| match plan(id, spec, 1, &node(true)) {
            Err(NetError::BadSpec { field, .. }) => field,
            other => panic!("{other:?}"),
        };
        let nft_delay = NetworkFault {
            mechanism: Some(Mechanism::Nftables),
            ..forced.clone()
        };
        assert_eq!(field(&nft_delay, "a"), "spec.network.mechanism");
        assert_eq!(field(&NetworkFault::default(), "a"), "spec.network");
        assert_eq!(
            field(
                &NetworkFault {
                    loss: Some(Percent(0.0)),
                    ..Default::default()
                },
                "a"
            ),
            "spec.network.loss"
        );
        let jitter = NetworkFault {
            latency: Some(Latency {
                delay: Dur::from_millis(5),
                jitter: Some(Dur::from_millis(6)),
            }),
            ..Default::default()
        };
        assert_eq!(field(&jitter, "a"), "spec.network.latency.jitter");
        assert_eq!(
            field(
                &NetworkFault {
                    blackhole: true,
                    ..Default::default()
                },
                "a b\""
            ),
            "id"
        );
    }
}
