//! Node agents for the controller to drive: the real `shakeout-agent` binary on
//! 127.0.0.1, an agent served in-process from the test's own runtime, and the TLS
//! material an agent serves with.

#[path = "../../agent/tests/common/private_file.rs"]
mod private_file;

use private_file::write_private;
use std::io::BufRead;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use shakeout_agent::server::{serve, Limits, ServerConfig, Tokens};
use shakeout_agent::{Agent, AgentConfig};
use tokio_util::sync::CancellationToken;

use super::process::{agent_binary, Owned};

/// The secret of every token the test agents accept.
pub const SECRET: &str = "test-secret-0123456789abcdef";

/// A real `shakeout-agent` on 127.0.0.1 (a free port): it accepts the token
/// `token_name:SECRET`, keeps its ledger in `dir/state` (a restart on the same `dir`
/// sweeps it; `dir` is made if missing), and gets `extra` arguments. Returns the process and the address it
/// printed once its start-up sweep was done.
pub fn start_agent(
    dir: &Path,
    token_name: &str,
    extra: &[&std::ffi::OsStr],
) -> (Owned, SocketAddr) {
    std::fs::create_dir_all(dir).unwrap();
    write_private(&dir.join("tokens"), &format!("{token_name}:{SECRET}\n"));
    let mut agent = Owned::spawn(
        Command::new(agent_binary())
            .args(["--listen", "127.0.0.1:0", "--tokens"])
            .arg(dir.join("tokens"))
            .arg("--state-dir")
            .arg(dir.join("state"))
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::null()),
    );
    let mut line = String::new();
    std::io::BufReader::new(agent.stdout())
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

/// A node agent served in-process from the test's own runtime; it accepts `ci:SECRET`.
pub struct LocalAgent {
    runtime: tokio::runtime::Runtime,
    /// `http://127.0.0.1:PORT`
    pub url: String,
    stop: CancellationToken,
    _dir: tempfile::TempDir,
}

impl LocalAgent {
    pub fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let stop = CancellationToken::new();
        let url = runtime.block_on(async {
            let agent = Agent::start(AgentConfig::new(dir.path().join("state")))
                .await
                .unwrap();
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let tokens = Tokens::parse(&format!("ci:{SECRET}")).unwrap();
            let config = ServerConfig {
                tokens,
                tls: None,
                limits: Limits::default(),
            };
            tokio::spawn(serve(listener, agent, config, stop.clone()));
            format!("http://{addr}")
        });
        LocalAgent {
            runtime,
            url,
            stop,
            _dir: dir,
        }
    }

    /// `127.0.0.1:PORT`
    pub fn address(&self) -> &str {
        self.url.trim_start_matches("http://")
    }
}

impl Drop for LocalAgent {
    fn drop(&mut self) {
        self.stop.cancel();
        // Give the server a moment to close its listener before the runtime goes.
        self.runtime
            .block_on(async { tokio::time::sleep(Duration::from_millis(50)).await });
    }
}

/// A self-signed certificate (its own CA), made in process, valid for `san`
/// (`IP:127.0.0.1`, `DNS:shakeout-agent`), as `dir/STEM.pem` and `dir/STEM.key`.
pub fn self_signed(dir: &Path, stem: &str, san: &str) -> (PathBuf, PathBuf) {
    super::certs::self_signed(stem, san).write(dir, stem)
}

/// The `--tls-cert CERT --tls-key KEY` arguments of an agent serving TLS.
pub fn tls_args<'a>(cert: &'a Path, key: &'a Path) -> [&'a std::ffi::OsStr; 4] {
    [
        "--tls-cert".as_ref(),
        cert.as_os_str(),
        "--tls-key".as_ref(),
        key.as_os_str(),
    ]
}
