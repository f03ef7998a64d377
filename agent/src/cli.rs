//! The agent's command line and its whole life as a daemon: load tokens, policy and TLS,
//! start the core (which sweeps first), serve, and on SIGTERM/SIGINT revert everything
//! within the grace before exiting. `main.rs` only parses, sets up logging and maps errors.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, ValueEnum};
use tokio::net::{TcpListener, TcpSocket};
use tokio::signal::unix::{signal, SignalKind};
use tokio_util::sync::CancellationToken;

use crate::agent::{Agent, AgentConfig};
use crate::audit::Rotation;
use crate::policy::{Policy, PolicyError};
use crate::server::auth::{TokenError, Tokens};
use crate::server::tls::{self, TlsError};
use crate::server::{self, Limits, ServerConfig};

/// shakeout node agent: applies faults under leases and reverts them, whatever happens.
#[derive(Debug, Parser)]
#[command(name = "shakeout-agent", version, about)]
pub struct Args {
    /// Address to listen on (`127.0.0.1:0` picks a free port; the bound address is
    /// printed on stdout as `listening ADDR`).
    #[arg(long, env = "SHAKEOUT_AGENT_LISTEN", default_value = "127.0.0.1:7070")]
    pub listen: SocketAddr,
    /// File of `name:secret` lines, one per accepted bearer token.
    #[arg(long, env = "SHAKEOUT_AGENT_TOKENS")]
    pub tokens: PathBuf,
    /// Directory for the ledger (must survive restarts; the start-up sweep reads it).
    #[arg(long, env = "SHAKEOUT_AGENT_STATE_DIR")]
    pub state_dir: PathBuf,
    /// Policy file (YAML or JSON). Default: every kind, max duration 10m.
    #[arg(long, env = "SHAKEOUT_AGENT_POLICY")]
    pub policy: Option<PathBuf>,
    /// TLS certificate chain (PEM); needs --tls-key.
    #[arg(long, env = "SHAKEOUT_AGENT_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// TLS private key (PEM); needs --tls-cert.
    #[arg(long, env = "SHAKEOUT_AGENT_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Audit log (JSON lines, mode 0600). Default: STATE_DIR/audit.jsonl.
    #[arg(long, env = "SHAKEOUT_AGENT_AUDIT_LOG")]
    pub audit_log: Option<PathBuf>,
    /// Size at which the audit log is renamed FILE.1 (FILE.2 … for older ones) and a
    /// fresh one started (`64MiB`, `500k`, bytes).
    #[arg(long, env = "SHAKEOUT_AGENT_AUDIT_MAX_SIZE", default_value = "64MiB", value_parser = parse_size)]
    pub audit_max_size: u64,
    /// Rotated audit logs kept (FILE.1 … FILE.N); older ones are deleted.
    #[arg(long, env = "SHAKEOUT_AGENT_AUDIT_KEEP", default_value_t = 5,
          value_parser = clap::value_parser!(u16).range(1..=1000))]
    pub audit_keep: u16,
    /// Most connections open at once. At the cap a new connection closes the oldest one
    /// that has not authenticated yet; if all have, it gets 503. Lowered (with a
    /// warning) to fit the open-files limit, which the agent raises to its hard limit.
    #[arg(long, env = "SHAKEOUT_AGENT_MAX_CONNECTIONS", default_value_t = 512,
          value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub max_connections: u32,
    /// Colour in text logs: `auto` (only when stderr is a terminal, and not with NO_COLOR
    /// set; never in the journal or a file), `always`, `never`.
    #[command(flatten)]
    pub color: colorchoice_clap::Color,
    /// Log format on stderr.
    #[arg(long, env = "SHAKEOUT_AGENT_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// Longest time the agent spends reverting faults on SIGTERM/SIGINT.
    #[arg(long, env = "SHAKEOUT_AGENT_SHUTDOWN_GRACE", default_value = "10s")]
    pub shutdown_grace: shakeout_api::Dur,
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// Why the agent could not run.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Tokens(#[from] TokenError),
    #[error(transparent)]
    Policy(#[from] PolicyError),
    #[error(transparent)]
    Tls(#[from] TlsError),
    #[error("listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("start: {0}")]
    Start(#[from] crate::error::AgentError),
    #[error("signal handler: {0}")]
    Signal(std::io::Error),
    #[error("shutdown left faults behind (they stay in the ledger for the next start): {0}")]
    Unreverted(String),
}

/// A size in bytes: a number with an optional unit, `k`/`M`/`G` (powers of 1000) or
/// `KiB`/`MiB`/`GiB` (powers of 1024), `B` optional (`64MiB`, `500k`, `4096`).
fn parse_size(text: &str) -> Result<u64, String> {
    let bytes = text
        .trim()
        .parse::<bytesize::ByteSize>()
        .map_err(|e| {
            format!("size {text:?}: {e}; use bytes or k, M, G, KiB, MiB, GiB (e.g. 64MiB)")
        })?
        .as_u64();
    if bytes < 4096 {
        return Err(format!(
            "size {text:?}: at least 4KiB, so a rotated file holds more than a few lines"
        ));
    }
    if bytes > 1 << 40 {
        return Err(format!("size {text:?}: at most 1TiB"));
    }
    Ok(bytes)
}

/// Connections the kernel queues for `accept`: a burst of connections (a flood, or many
/// callers at once) waits here instead of having its SYNs dropped (a 1 s retransmit).
/// Tokio's `bind` asks for 128; the kernel caps this at `net.core.somaxconn`.
const LISTEN_BACKLOG: u32 = 1024;

fn listen(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = match addr {
        SocketAddr::V4(_) => TcpSocket::new_v4()?,
        SocketAddr::V6(_) => TcpSocket::new_v6()?,
    };
    // As `TcpListener::bind` does: a restarted agent rebinds its port at once.
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

/// Run the agent until SIGTERM or SIGINT.
pub async fn run(args: Args) -> Result<(), RunError> {
    let tokens = Tokens::load(&args.tokens)?;
    // Room for --max-connections: the soft limit (often 1024) up to the hard one.
    match server::conns::raise_fd_limit() {
        Ok(limit) => tracing::debug!(limit, "open-files limit"),
        Err(error) => tracing::warn!(%error, "cannot raise the open-files limit"),
    }
    let policy = match &args.policy {
        Some(p) => Policy::load(p)?,
        None => Policy::default(),
    };
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(c), Some(k)) => Some(tls::server_config(c, k)?),
        _ => None,
    };
    let mut config = AgentConfig::new(&args.state_dir);
    config.policy = policy;
    config.audit_log = args.audit_log.clone();
    config.audit_rotation = Rotation {
        max_size: args.audit_max_size,
        keep: usize::from(args.audit_keep),
    };
    config.shutdown_grace = args.shutdown_grace.0;
    let listener = listen(args.listen).map_err(|source| RunError::Listen {
        addr: args.listen,
        source,
    })?;
    let addr = listener.local_addr().map_err(|source| RunError::Listen {
        addr: args.listen,
        source,
    })?;
    let mut term = signal(SignalKind::terminate()).map_err(RunError::Signal)?;
    let mut int = signal(SignalKind::interrupt()).map_err(RunError::Signal)?;
    let agent = Agent::start(config).await?;
    let stop = CancellationToken::new();
    let server_config = ServerConfig {
        tokens,
        tls: tls.clone(),
        limits: Limits {
            shutdown_grace: Duration::from_secs(2),
            max_connections: args.max_connections as usize,
            ..Limits::default()
        },
    };
    let server = tokio::spawn(server::serve(
        listener,
        agent.clone(),
        server_config,
        stop.clone(),
    ));
    // Tests and wrappers read this line to find a port chosen by the kernel.
    println!("listening {addr}");
    tracing::info!(%addr, tls = tls.is_some(), "agent serving");
    let which = tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
    };
    tracing::info!(signal = which, "stopping: reverting every fault");
    let report = agent.shutdown().await;
    stop.cancel();
    if let Err(error) = server.await {
        tracing::warn!(%error, "server task ended badly");
    }
    if report.failed.is_empty() {
        Ok(())
    } else {
        Err(RunError::Unreverted(report.failed.join("; ")))
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn sizes_in_human_units() {
        assert_eq!(parse_size("64MiB"), Ok(64 << 20));
        assert_eq!(parse_size("500k"), Ok(500_000));
        assert_eq!(parse_size("1 GB"), Ok(1_000_000_000));
        assert_eq!(parse_size("8192"), Ok(8192));
        assert_eq!(parse_size("4KiB"), Ok(4096));
        for bad in ["", "MiB", "64XB", "100", "99999999999999999999GiB"] {
            let e = parse_size(bad).unwrap_err();
            assert!(e.contains(&format!("{bad:?}")), "{e}");
        }
    }

    #[test]
    fn cli_is_consistent_and_reads_env() {
        Args::command().debug_assert();
        let args = Args::try_parse_from([
            "shakeout-agent",
            "--tokens",
            "/t",
            "--state-dir",
            "/s",
            "--log-format",
            "json",
        ])
        .unwrap();
        assert_eq!(args.log_format, LogFormat::Json);
        assert_eq!(args.shutdown_grace.0, Duration::from_secs(10));
        assert_eq!(args.audit_max_size, 64 << 20);
        assert_eq!((args.audit_keep, args.max_connections), (5, 512));
        for bad in [["--audit-keep", "0"], ["--max-connections", "0"]] {
            assert!(
                Args::try_parse_from(
                    ["shakeout-agent", "--tokens", "/t", "--state-dir", "/s"]
                        .into_iter()
                        .chain(bad)
                )
                .is_err(),
                "{bad:?}"
            );
        }
        assert!(Args::try_parse_from([
            "shakeout-agent",
            "--tokens",
            "/t",
            "--state-dir",
            "/s",
            "--tls-cert",
            "/c"
        ])
        .is_err());
    }
}
