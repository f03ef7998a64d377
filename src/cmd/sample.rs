//! `shakeout sample-service` (hidden): the sample HTTP service the demo and the tests
//! run. It prints `sample-service listening on ADDR` once ready (tests read that line).

use std::net::SocketAddr;

use shakeout_api::Dur;

use crate::exit;
use crate::sample::{self, Durability};

/// Options of the sample service.
#[derive(Debug, clap::Args, Clone)]
pub struct SampleArgs {
    /// Address to listen on (port 0 picks a free one; the chosen address is printed).
    #[arg(long, default_value = "127.0.0.1:18080")]
    pub listen: SocketAddr,
    /// Delay added to every response (a known service time, for accuracy checks).
    #[arg(long, default_value = "0s")]
    pub delay: Dur,
    /// Keep the key-value store in this directory (`kv.log`); without it, memory only.
    #[arg(long)]
    pub data_dir: Option<std::path::PathBuf>,
    /// `sync`: a write is acknowledged once it is on disk; `flush:DUR` (e.g. flush:100ms):
    /// acknowledged from memory and written every DUR, so a crash loses up to DUR.
    #[arg(long, default_value = "sync")]
    pub durability: Durability,
    /// Serve https:// with this PEM certificate chain (needs --tls-key).
    #[arg(long, requires = "tls_key")]
    pub tls_cert: Option<std::path::PathBuf>,
    /// PEM private key of --tls-cert.
    #[arg(long, requires = "tls_cert")]
    pub tls_key: Option<std::path::PathBuf>,
    /// Also serve the gRPC health service (grpc.health.v1) on this address: the whole
    /// server and `sample` SERVING, flipped by POST /admin/grpc-health?status=NOT_SERVING
    /// on the HTTP port. TLS with --tls-cert/--tls-key when given.
    #[arg(long)]
    pub grpc_listen: Option<SocketAddr>,
    /// Require client certificates issued by a CA of this PEM file (mTLS; needs --tls-cert).
    #[arg(long, requires = "tls_cert")]
    pub tls_client_ca: Option<std::path::PathBuf>,
}

/// Run the service until SIGTERM/SIGINT; exit 0, or 3 when it cannot start.
pub(super) fn main(args: SampleArgs) -> i32 {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("sample-service: cannot start runtime: {e}");
            return exit::CANNOT_RUN;
        }
    };
    let config = sample::Config {
        listen: args.listen,
        delay: args.delay.0,
        data_dir: args.data_dir,
        durability: args.durability,
        tls: args
            .tls_cert
            .zip(args.tls_key)
            .map(|(cert, key)| sample::TlsFiles {
                cert,
                key,
                client_ca: args.tls_client_ca,
            }),
        grpc_listen: args.grpc_listen,
    };
    let listening = |addr: SocketAddr| println!("sample-service listening on {addr}");
    let grpc_listening = |addr: SocketAddr| println!("sample-service grpc listening on {addr}");
    match runtime.block_on(sample::run(config, grpc_listening, listening)) {
        Ok(()) => exit::MET,
        Err(e) => {
            eprintln!("sample-service: {e}");
            exit::CANNOT_RUN
        }
    }
}
