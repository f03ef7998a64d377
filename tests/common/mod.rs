//! Helpers shared by the integration tests that drive the real `shakeout` binary.

#![allow(clippy::unwrap_used, dead_code)] // each test file uses a subset

use std::process::Command;

/// The `shakeout` binary under test.
pub fn shakeout() -> Command {
    Command::new(env!("CARGO_BIN_EXE_shakeout"))
}

/// A free port on 127.0.0.1 (bound then released; the service binds it right after).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
