//! The test kit every integration test includes (`mod kit;`): the real binaries and the
//! processes tests start ([`process`]), waiting with a deadline ([`wait`]), when a test may
//! skip ([`skip`]), experiment files ([`exp`]), a run of `shakeout run` and its typed
//! report ([`case`], [`report`]), test certificates ([`certs`]), agents ([`agent`]), network
//! namespaces ([`netns`]), the fake Kubernetes API server ([`fake_kube`], [`kube_case`]),
//! real Prometheus and Alertmanager ([`prometheus`]).
//!
//! A module tree rather than a crate: the Docker build context holds no `tests/`, and
//! `cargo build --locked` there must load every workspace member and path dependency.

// Each test binary uses a subset of the kit; a failed setup should panic loudly.
#![allow(dead_code, clippy::unwrap_used)]

pub mod agent;
pub mod case;
pub mod certs;
pub mod exp;
pub mod fake_kube;
pub mod kube_case;
pub mod netns;
pub mod process;
pub mod prometheus;
pub mod report;
pub mod skip;
pub mod wait;

#[allow(unused_imports)]
pub use case::{explain, Case, Ran};
#[allow(unused_imports)]
pub use process::{free_port, shakeout, state, Owned};
#[allow(unused_imports)]
pub use skip::root_or_skip;
#[allow(unused_imports)]
pub use wait::wait_for;
