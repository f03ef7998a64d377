//! Helpers shared by the integration tests that drive the real `shakeout` binary.

#![allow(clippy::unwrap_used, dead_code)] // each test file uses a subset

use std::process::Command;

pub mod netns;

/// True as root. Otherwise the test is skipped with `needs` said, except under CI, where
/// a privileged test must never skip silently: there it fails.
pub fn root_or_skip(test: &str, needs: &str) -> bool {
    if nix::unistd::geteuid().is_root() {
        return true;
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "{test}: privileged tests must run as root in CI"
    );
    eprintln!("skipping {test}: needs root ({needs})");
    false
}

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

/// The real agent binary, built beside the controller by `cargo test --workspace`.
pub fn agent_binary() -> std::path::PathBuf {
    let bin = std::path::Path::new(env!("CARGO_BIN_EXE_shakeout")).with_file_name("shakeout-agent");
    assert!(
        bin.exists(),
        "{} is missing: run the workspace tests (cargo test --workspace)",
        bin.display()
    );
    bin
}

/// A real `shakeout-agent` on 127.0.0.1 (a free port): it accepts the token line
/// `name:secret`, keeps its ledger in `dir/state` (a restart on the same `dir` sweeps
/// it), and gets `extra` arguments. Returns the process and the address it printed.
pub fn start_agent(
    dir: &std::path::Path,
    token_line: &str,
    extra: &[&std::ffi::OsStr],
) -> (std::process::Child, std::net::SocketAddr) {
    use std::io::BufRead;
    use std::process::Stdio;
    // 0600: the agent refuses a tokens file that group or others may read.
    {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(dir.join("tokens"))
            .unwrap()
            .write_all(format!("{token_line}\n").as_bytes())
            .unwrap();
        // `mode` applies only when the file is created; one already there is narrowed too.
        std::fs::set_permissions(
            dir.join("tokens"),
            std::os::unix::fs::PermissionsExt::from_mode(0o600),
        )
        .unwrap();
    }
    let mut agent = Command::new(agent_binary())
        .args(["--listen", "127.0.0.1:0", "--tokens"])
        .arg(dir.join("tokens"))
        .arg("--state-dir")
        .arg(dir.join("state"))
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(agent.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line
        .trim()
        .strip_prefix("listening ")
        .unwrap_or_else(|| panic!("the agent printed {line:?}, not `listening ADDR`"))
        .parse()
        .unwrap();
    (agent, addr)
}

/// A self-signed certificate (its own CA) from the openssl CLI, valid for `san`
/// (`IP:127.0.0.1`, `DNS:shakeout-agent`), as `dir/STEM.pem` and `dir/STEM.key`; `None`
/// when openssl is missing (callers skip, or fail under CI).
pub fn self_signed(
    dir: &std::path::Path,
    stem: &str,
    san: &str,
) -> Option<(std::path::PathBuf, std::path::PathBuf)> {
    let (cert, key) = (
        dir.join(format!("{stem}.pem")),
        dir.join(format!("{stem}.key")),
    );
    let made = Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
        ])
        .args(["-subj", &format!("/CN={stem}")])
        .args(["-addext", &format!("subjectAltName={san}")])
        .args(["-addext", "basicConstraints=critical,CA:FALSE"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stderr(std::process::Stdio::null())
        .status();
    made.is_ok_and(|s| s.success()).then_some((cert, key))
}
