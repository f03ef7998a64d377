//! The commands, at the edge of the library: everything that parses the command line,
//! prints, or turns an outcome into an exit code lives here and nowhere below. Scripts and
//! CI depend on these names and on the exit codes in [`crate::exit`].

mod agents;
mod preflight;
mod progress;
mod run;
mod sample;
mod validate;

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::exit;
use crate::experiment::vars::{self, Vars};

/// Chaos and availability testing: inject faults, probe the service, verify recovery.
#[derive(Debug, Parser)]
#[command(name = "shakeout", version, about, long_about = None)]
pub struct Cli {
    /// More log output on stderr (repeat for more); RUST_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run an experiment and verify its objectives (exit 0 met, 1 failed, 2 aborted, 3 cannot run, 4 revert unconfirmed).
    Run(RunArgs),
    /// Check experiment files without running them (exit 0 valid, 3 invalid).
    Validate {
        /// Experiment files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        #[command(flatten)]
        vars: VarArgs,
    },
    /// Print the JSON Schema of experiment files (for editors and yaml-language-server).
    Schema,
    /// Check that every agent the experiment uses is reachable, authorised and capable; applies nothing (exit 0 ready, 3 not).
    Preflight {
        /// Experiment file.
        file: PathBuf,
        #[command(flatten)]
        vars: VarArgs,
    },
    /// Run the built-in demo: a sample service, killed and restarted, with its measured RTO.
    Demo(DemoArgs),
    /// List the node agents of a Kubernetes cluster (the Helm chart's DaemonSet): node, pod, version and capabilities (exit 0 all answer, 3 otherwise).
    Agents(AgentsArgs),
    /// Run the sample HTTP service used by the demo and the tests.
    #[command(hide = true)]
    SampleService(sample::SampleArgs),
    /// The embedded agent's guardian process; `run` starts it (reads its token on stdin).
    #[command(hide = true)]
    Guardian {
        /// Directory of the guardians' state directories and audit log.
        #[arg(long)]
        state_root: PathBuf,
    },
}

/// Options of `shakeout run`.
#[derive(Debug, Args, Clone, Default)]
pub struct RunArgs {
    /// Experiment file.
    pub file: PathBuf,
    #[command(flatten)]
    pub output: OutputArgs,
    /// Seed for every random choice (default: the file's `spec.seed`, else random).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Validate and print the plan; apply nothing, probe nothing.
    #[arg(long)]
    pub dry_run: bool,
    #[command(flatten)]
    pub vars: VarArgs,
}

/// Values of the experiment's `${var.NAME}`, for the commands that read one.
#[derive(Debug, Args, Clone, Default)]
pub struct VarArgs {
    /// Set `${var.NAME}` in the experiment's string values (repeatable; overrides the
    /// file's `spec.vars`).
    #[arg(long = "var", value_name = "NAME=VALUE", value_parser = vars::assignment)]
    pub vars: Vec<(String, String)>,
}

impl VarArgs {
    /// The variables, as the loader takes them.
    pub fn vars(&self) -> Vars {
        self.vars.iter().cloned().collect()
    }
}

/// Report destinations and verbosity, shared by `run` and `demo`.
#[derive(Debug, Args, Clone, Default)]
pub struct OutputArgs {
    /// Write the JSON report here.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Write a JUnit XML report here (one testcase per verdict).
    #[arg(long, value_name = "FILE")]
    pub junit: Option<PathBuf>,
    /// Write a Markdown summary here (for CI step summaries).
    #[arg(long, value_name = "FILE")]
    pub markdown: Option<PathBuf>,
    /// No progress output; the summary still goes to stdout.
    #[arg(short, long)]
    pub quiet: bool,
}

/// Options of `shakeout agents`: where the cluster and its agents are. Flags override
/// the experiment file's `spec.kubernetes`; both default to what the Helm chart installs.
#[derive(Debug, Args, Clone, Default)]
pub struct AgentsArgs {
    /// Take `spec.kubernetes` from this experiment file.
    #[arg(short, long, value_name = "EXPERIMENT")]
    pub file: Option<PathBuf>,
    /// Kubeconfig file (default: KUBECONFIG, ~/.kube/config, in-cluster).
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
    /// Kubeconfig context (default: the current one).
    #[arg(long)]
    pub context: Option<String>,
    /// Namespace of the agent pods (default: shakeout).
    #[arg(short, long)]
    pub namespace: Option<String>,
    /// Label selector of the agent pods (default: app.kubernetes.io/name=shakeout-agent).
    #[arg(short = 'l', long)]
    pub selector: Option<String>,
    /// Agent port in the pod (default: 7433).
    #[arg(long)]
    pub port: Option<u16>,
    /// Environment variable with the agents' token (default: SHAKEOUT_TOKEN).
    #[arg(long, value_name = "VAR")]
    pub token_env: Option<String>,
    /// CA of the agents' certificates (the agents speak TLS).
    #[arg(long)]
    pub ca: Option<PathBuf>,
    /// How to reach the agents: port-forward (outside the cluster) or pod-ip (inside).
    #[arg(long, value_parser = ["port-forward", "pod-ip"])]
    pub reach: Option<String>,
}

/// Options of `shakeout demo`.
#[derive(Debug, Args, Clone, Default)]
pub struct DemoArgs {
    #[command(flatten)]
    pub output: OutputArgs,
    /// Port of the demo's sample service on 127.0.0.1 (default 18080).
    #[arg(long, default_value_t = 18080)]
    pub port: u16,
}

/// Set up `tracing` on stderr; RUST_LOG wins over `-v`.
pub fn init_tracing(verbose: u8) {
    let default = match verbose {
        0 => "warn",
        1 => "info",
        2 => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

/// Run a parsed command line and return the process exit code.
pub fn execute(cli: Cli) -> i32 {
    match cli.command {
        Command::Validate { files, vars } => validate::validate(&files, &vars.vars()),
        Command::Schema => validate::schema(),
        Command::Run(args) => run::run_file(&args),
        Command::Preflight { file, vars } => preflight::preflight_file(&file, &vars.vars()),
        Command::Demo(args) => run::run_demo(&args),
        Command::Agents(args) => agents::list(&args),
        Command::SampleService(args) => sample::main(args),
        Command::Guardian { state_root } => shakeout_agent::guardian::main(state_root),
    }
}

/// Run a one-shot command's future (preflight, `agents`, a cluster dry run) to its exit
/// code on a current-thread runtime; exit 3 if no runtime can be made.
fn block_on(f: impl std::future::Future<Output = i32>) -> i32 {
    match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime.block_on(f),
        Err(e) => {
            eprintln!("cannot start the async runtime: {e}");
            exit::CANNOT_RUN
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn cli_is_well_formed() {
        super::Cli::command().debug_assert();
    }
}
