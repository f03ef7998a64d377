//! The commands, at the edge of the library: everything that parses the command line,
//! prints, or turns an outcome into an exit code lives here and nowhere below. Scripts and
//! CI depend on these names and on the exit codes in [`crate::exit`].

mod agents;
mod help;
mod init;
mod kinds;
mod preflight;
mod progress;
mod run;
mod sample;
mod validate;

use std::path::PathBuf;

use clap::{Args, CommandFactory, Parser, Subcommand};

use crate::exit;
use crate::experiment::vars::{self, Vars};

/// Chaos and availability testing: inject faults, probe the service, verify recovery.
#[derive(Debug, Parser)]
#[command(
    name = "shakeout",
    version,
    about,
    long_about = None,
    // Our own `help`, so that `shakeout help --help` answers too.
    disable_help_subcommand = true
)]
pub struct Cli {
    /// More log output on stderr (repeat for more); RUST_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Colour on stdout and stderr: `auto` (only on a terminal, and not with NO_COLOR set),
    /// `always`, `never`.
    #[command(flatten)]
    pub color: colorchoice_clap::Color,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run an experiment and verify its objectives (exit 0 met, 1 failed, 2 aborted, 3 cannot run, 4 revert unconfirmed).
    Run(RunArgs),
    /// Check experiment files without running them (exit 0 valid, 3 invalid).
    Validate {
        /// Experiment files; `-` reads one from standard input.
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
    /// Write a commented starter experiment that runs as it is (default: experiment.yaml; `-`: stdout).
    Init {
        /// Where to write it.
        #[arg(default_value = "experiment.yaml")]
        file: PathBuf,
        /// Replace the file if it exists.
        #[arg(long)]
        force: bool,
    },
    /// List the fault kinds: what each does, what it needs, an example entry.
    Faults,
    /// List the probe kinds: what each measures, what it needs, an example entry.
    Probes,
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Print the help of shakeout or of a command (`shakeout help run`).
    Help {
        /// The command (and subcommand) to explain.
        command: Vec<String>,
    },
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
    /// Seed for every random choice (default: the file's `spec.seed`, else random); at most
    /// 9007199254740991 (2^53 - 1), so every JSON reader of the report keeps every digit.
    #[arg(long, value_parser = clap::value_parser!(u64).range(..=crate::experiment::MAX_SEED))]
    pub seed: Option<u64>,
    /// Validate and print the plan; apply nothing, probe nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Serve the run's metrics (Prometheus/OpenMetrics text) on http://ADDR/metrics while
    /// it runs, like 127.0.0.1:9464; a port already taken stops the run before it starts.
    #[arg(long, value_name = "ADDR")]
    pub metrics_listen: Option<std::net::SocketAddr>,
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
    /// Port of the demo's sample service on 127.0.0.1.
    #[arg(long, default_value_t = 18080)]
    pub port: u16,
}

/// Set up `tracing` on stderr; RUST_LOG wins over `-v`. Without `-v`, kube's client
/// does not log the failures of its requests (an ERROR line per failed call): each one
/// reaches the person anyway, with the server and the cause, in shakeout's own words.
pub fn init_tracing(verbose: u8) {
    let default = match verbose {
        0 => "warn,kube_client=off",
        1 => "info",
        2 => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(colour_on_stderr())
        .with_writer(progress::LogWriter)
        .try_init();
}

/// Whether stderr gets colour: `--color`, then NO_COLOR / CLICOLOR_FORCE, then whether it
/// is a terminal (the choice `--color` wrote globally is read here).
pub fn colour_on_stderr() -> bool {
    anstream::AutoStream::choice(&std::io::stderr()) != anstream::ColorChoice::Never
}

/// Write `text` to stdout; a reader that went away (`| head`) is not an error worth a
/// panic. (SIGPIPE stays ignored: a run piped into `head` must still revert its faults.)
pub(crate) fn emit(text: &str) {
    use std::io::Write;
    let mut out = anstream::stdout();
    let _ = out.write_all(text.as_bytes()).and_then(|()| out.flush());
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
        Command::Init { file, force } => init::init(&file, force),
        Command::Faults => kinds::faults(),
        Command::Probes => kinds::probes(),
        Command::Completions { shell } => {
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "shakeout", &mut script);
            emit(&String::from_utf8_lossy(&script));
            exit::MET
        }
        Command::Help { command } => help::help(&command),
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
