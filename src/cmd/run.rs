//! `shakeout run FILE` and `shakeout demo`: run an experiment (or print its plan with
//! `--dry-run`), show the report in the terminal, write the report files, and exit with
//! the run's code. SIGINT and SIGTERM interrupt the run, which then reverts and reports.

use std::path::Path;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use super::progress;
use super::{DemoArgs, OutputArgs, RunArgs};
use crate::exit;
use crate::experiment::model::{Fault, FaultAction};
use crate::experiment::{self, Experiment};
use crate::progress::Progress;
use crate::report;
use crate::run::plan::{self, PodPlan};

/// The demo experiment, embedded so `shakeout demo` works from any directory.
pub const DEMO_YAML: &str = include_str!("../../experiments/demo.yaml");
/// Port the embedded demo file uses; `--port` replaces it.
const DEMO_PORT: &str = "18080";

/// `shakeout run FILE`.
pub(super) fn run_file(args: &RunArgs) -> i32 {
    let exp = match experiment::load(&args.file, &args.vars.vars()) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("{e}");
            return exit::CANNOT_RUN;
        }
    };
    // Bound before anything starts, so a taken port stops the run with nothing applied.
    let metrics = match &args.metrics_listen {
        None => None,
        Some(_) if args.dry_run => None,
        Some(addr) => match std::net::TcpListener::bind(addr) {
            Ok(l) => Some(l),
            Err(e) => {
                eprintln!("--metrics-listen {addr}: cannot listen: {e}; nothing was started");
                return exit::CANNOT_RUN;
            }
        },
    };
    run_loaded(&exp, &args.output, args.seed, args.dry_run, metrics)
}

/// `shakeout demo`: the embedded demo experiment on `--port`. It is named `demo.yaml`, with
/// no directory, so its services start in the current directory wherever it is run.
pub(super) fn run_demo(args: &DemoArgs) -> i32 {
    let text = DEMO_YAML.replace(DEMO_PORT, &args.port.to_string());
    let mut exp = match experiment::parse(&text, Path::new("demo.yaml"), &experiment::Vars::new()) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("{e}");
            return exit::CANNOT_RUN;
        }
    };
    if !nix::unistd::geteuid().is_root() {
        // Network faults need CAP_NET_ADMIN; the rest of the demo does not.
        let skipped = exp.skip_faults(
            |f: &Fault| matches!(f.action, FaultAction::Network(_)),
            "not root: adding latency needs CAP_NET_ADMIN for an iptables NFQUEUE rule; run the demo as root to see it",
        );
        if !skipped.is_empty() && !args.output.quiet {
            eprintln!(
                "note: not root, so the demo skips its network fault ({}): adding latency needs CAP_NET_ADMIN for an iptables NFQUEUE rule; run it as root to see it",
                skipped.join(", ")
            );
        }
    }
    run_loaded(&exp, &args.output, None, false, None)
}

fn run_loaded(
    exp: &Experiment,
    output: &OutputArgs,
    seed: Option<u64>,
    dry_run: bool,
    metrics: Option<std::net::TcpListener>,
) -> i32 {
    if let Err(e) = check_outputs(output) {
        eprintln!("{e}");
        return exit::CANNOT_RUN;
    }
    if dry_run {
        return dry_run_plan(exp, output, seed);
    }
    let runtime = match crate::probe::runtime() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cannot start the async runtime: {e}");
            return exit::CANNOT_RUN;
        }
    };
    let progress: Arc<dyn Progress> = Arc::from(progress::for_terminal(output.quiet));
    let report = runtime.block_on(crate::run::execute_serving(
        exp,
        seed,
        progress.clone(),
        interrupt_on_signals(),
        metrics,
    ));
    progress.finish();
    // Through anstream: colour on a terminal, plain text in a pipe or file.
    super::emit(&report::render_terminal(&report));
    let mut code = report.run.exit_code;
    let mut write = |what: &str,
                     path: &Option<std::path::PathBuf>,
                     f: &dyn Fn(&Path) -> std::io::Result<()>| {
        if let Some(path) = path {
            if let Err(e) = f(path) {
                eprintln!("cannot write the {what} report to {}: {e}", path.display());
                code = code.max(exit::CANNOT_RUN);
            }
        }
    };
    write("JSON", &output.json, &|p| report::write_json(&report, p));
    write("JUnit", &output.junit, &|p| report::write_junit(&report, p));
    // Appended, not replaced: CI step summaries ($GITHUB_STEP_SUMMARY) collect every step's.
    write("Markdown", &output.markdown, &|p| {
        append(p, &report::render_markdown(&report))
    });
    code
}

fn append(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?
        .write_all(text.as_bytes())
}

/// Refuse to start when a report could not be written afterwards.
fn check_outputs(output: &OutputArgs) -> Result<(), String> {
    for (flag, path) in [
        ("--json", &output.json),
        ("--junit", &output.junit),
        ("--markdown", &output.markdown),
    ] {
        let Some(path) = path else { continue };
        let dir = path
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        if !dir.is_dir() {
            return Err(format!(
                "{flag} {}: directory {} does not exist",
                path.display(),
                dir.display()
            ));
        }
        if path.is_dir() {
            return Err(format!(
                "{flag} {}: is a directory; give a file name",
                path.display()
            ));
        }
    }
    Ok(())
}

/// `--dry-run`: print the plan (and with a cluster, what the API server says of each
/// action), write it as JSON with `--json`; exit 0 when the run would go ahead, 3 when it
/// would refuse.
fn dry_run_plan(exp: &Experiment, output: &OutputArgs, seed: Option<u64>) -> i32 {
    super::emit(&plan::plan(exp));
    let cluster = if crate::fault::needs_cluster(exp) {
        match dry_run_cluster(exp, seed) {
            Ok(found) => found,
            Err(e) => {
                eprintln!("{e}");
                return exit::CANNOT_RUN;
            }
        }
    } else {
        None
    };
    let doc = plan::document(exp, seed, cluster.as_ref());
    if output.junit.is_some() || output.markdown.is_some() {
        eprintln!(
            "note: a dry run judges nothing, so it writes no JUnit or Markdown report; \
             --json writes the plan"
        );
    }
    if let Some(path) = &output.json {
        let written = serde_json::to_vec_pretty(&doc)
            .map_err(std::io::Error::other)
            .and_then(|mut bytes| {
                bytes.push(b'\n');
                report::write_atomic(path, &bytes)
            });
        if let Err(e) = written {
            eprintln!("cannot write the plan to {}: {e}", path.display());
            return exit::CANNOT_RUN;
        }
    }
    match cluster {
        Some(_) => println!("dry run: nothing was started, deleted, applied or probed"),
        None => println!("dry run: nothing was started, applied or probed"),
    }
    if doc.ok {
        exit::MET
    } else {
        exit::CANNOT_RUN
    }
}

/// The cluster side of `--dry-run`, printed: the pods chosen and the server's check of
/// each action. `Ok(None)` when no cluster is needed after all.
fn dry_run_cluster(
    exp: &Experiment,
    seed: Option<u64>,
) -> Result<Option<plan::ClusterPlan>, String> {
    let seed = seed
        .or(exp.file.spec.seed)
        .unwrap_or_else(crate::experiment::random_seed);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the async runtime: {e}"))?;
    let found = match runtime.block_on(plan::cluster(exp, seed)) {
        Ok(Some(p)) => p,
        Ok(None) => return Ok(None),
        Err(e) => return Err(e.to_string()),
    };
    println!("cluster: {} (seed {})", found.source, found.seed);
    for f in &found.faults {
        match &f.chosen {
            Err(e) => println!("  fault {}: {e}", f.fault),
            Ok((pods, matched)) => {
                println!(
                    "  fault {}: {} of {matched} matching pods",
                    f.fault,
                    pods.len()
                );
                for p in pods {
                    match p {
                        PodPlan::Delete { verb, pod, node, checked: Ok(()) } => println!(
                            "    would {verb} {pod} (node {node}): the API server accepted it (dryRun=All)"
                        ),
                        PodPlan::Delete { checked: Err(e), .. } => println!("    {e}"),
                        PodPlan::Agent { pod, node, agent: Ok((name, url)) } => {
                            println!("    {pod} (node {node}): agent {name} ({url})")
                        }
                        PodPlan::Agent { pod, agent: Err(e), .. } => println!("    {pod}: {e}"),
                    }
                }
            }
        }
        for b in &f.budgets {
            println!("    note: {b}; a plain delete ignores disruption budgets (`evict: true` honours them)");
        }
        for n in &f.notes {
            println!("    note: {n}");
        }
    }
    Ok(Some(found))
}

/// A token cancelled on the first SIGINT or SIGTERM.
fn interrupt_on_signals() -> CancellationToken {
    let token = CancellationToken::new();
    let t = token.clone();
    std::thread::spawn(move || {
        // A tiny runtime of its own, so signals are seen even if the main one is busy.
        let Ok(rt) = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        else {
            return;
        };
        rt.block_on(async move {
            use tokio::signal::unix::{signal, SignalKind};
            let (Ok(mut int), Ok(mut term)) = (
                signal(SignalKind::interrupt()),
                signal(SignalKind::terminate()),
            ) else {
                return;
            };
            tokio::select! {
                _ = int.recv() => {}
                _ = term.recv() => {}
            }
            t.cancel();
        });
    });
    token
}
