//! The runner: preflight (services up) -> baseline -> fault timeline -> recovery (until
//! steady state holds again) -> final steady-state window -> report. It owns the clock:
//! one origin instant for probes, faults and events, plus one wall-clock anchor.

mod assemble;
mod embedded;
pub mod events;
pub mod exec;
mod faults;
mod rpo;
pub mod service;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use tokio_util::sync::CancellationToken;

use crate::cli::{DemoArgs, OutputArgs, RunArgs};
use crate::exit;
use crate::experiment::{self, Experiment};
use crate::kube::agents::ClusterAgents;
use crate::kube::Cluster;
use crate::probe::{self, Phase, ProbeConfig, Recorder};
use crate::progress::{self, LiveStatus, Progress};
use crate::report::{self, Report, RunStatus};
use crate::verdict::{self, RtoWindow};
use events::Events;
use faults::FaultSet;
use service::Services;

/// The demo experiment, embedded so `shakeout demo` works from any directory.
pub const DEMO_YAML: &str = include_str!("../experiments/demo.yaml");
/// Port the embedded demo file uses; `--port` replaces it.
const DEMO_PORT: &str = "18080";

/// Default bucket width (the RTO resolution unless the rate is lower).
pub const DEFAULT_BUCKET: Duration = Duration::from_millis(100);
/// How often the runner looks at the clock, the buckets and the stop conditions.
const TICK: Duration = Duration::from_millis(20);
/// Extra wait past a probe's deadline before its bucket is considered complete.
const CLOSE_MARGIN: Duration = Duration::from_millis(100);

/// `shakeout run FILE`.
pub fn run_file(args: &RunArgs) -> i32 {
    let exp = match experiment::load(&args.file) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("{e}");
            return exit::CANNOT_RUN;
        }
    };
    run_loaded(&exp, &args.output, args.seed, args.dry_run)
}

/// `shakeout demo`: the embedded demo experiment on `--port`. It is named `demo.yaml`, with
/// no directory, so its services start in the current directory wherever it is run.
pub fn run_demo(args: &DemoArgs) -> i32 {
    let text = DEMO_YAML.replace(DEMO_PORT, &args.port.to_string());
    let mut exp = match experiment::parse(&text, Path::new("demo.yaml")) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("{e}");
            return exit::CANNOT_RUN;
        }
    };
    if !nix::unistd::geteuid().is_root() {
        // Network faults need CAP_NET_ADMIN; the rest of the demo does not.
        let skipped: Vec<String> = exp
            .file
            .spec
            .faults
            .iter()
            .filter(|f| f.network.is_some())
            .map(|f| f.name.clone())
            .collect();
        exp.file.spec.faults.retain(|f| f.network.is_none());
        if !skipped.is_empty() && !args.output.quiet {
            eprintln!(
                "note: not root, so the demo skips its network fault ({}): adding latency needs CAP_NET_ADMIN for an iptables NFQUEUE rule; run it as root to see it",
                skipped.join(", ")
            );
        }
    }
    run_loaded(&exp, &args.output, None, false)
}

fn run_loaded(exp: &Experiment, output: &OutputArgs, seed: Option<u64>, dry_run: bool) -> i32 {
    if let Err(e) = check_outputs(output) {
        eprintln!("{e}");
        return exit::CANNOT_RUN;
    }
    if dry_run {
        print!("{}", plan(exp));
        if crate::fault::needs_cluster(exp) {
            return dry_run_cluster(exp, seed);
        }
        println!("dry run: nothing was started, applied or probed");
        return exit::MET;
    }
    let runtime = match probe::runtime() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cannot start the async runtime: {e}");
            return exit::CANNOT_RUN;
        }
    };
    let progress: Arc<dyn Progress> = Arc::from(progress::for_terminal(output.quiet));
    let report = runtime.block_on(execute(exp, seed, progress.clone(), interrupt_on_signals()));
    progress.finish();
    print!("{}", report::render_terminal(&report));
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

/// The plan `--dry-run` prints: what would run, when.
pub fn plan(exp: &Experiment) -> String {
    let spec = &exp.file.spec;
    let mut out = format!(
        "experiment {} ({}), at most {}\n",
        exp.file.metadata.name,
        exp.source.display(),
        spec.duration
    );
    for s in &spec.services {
        out.push_str(&format!("  service {}: {}\n", s.name, s.command.join(" ")));
    }
    for p in &spec.probes {
        match ProbeConfig::from_spec(p, "{run}") {
            Ok(c) => out.push_str(&format!(
                "  probe {}: {} at {}/s\n",
                p.name,
                c.target.describe(),
                p.rate.per_second
            )),
            Err(e) => out.push_str(&format!("  probe {}: {e}\n", p.name)),
        }
    }
    if let Some(ss) = &spec.steady_state {
        out.push_str(&format!(
            "  steady state checked over {} before the first fault and after recovery\n",
            ss.window
        ));
    }
    for f in &spec.faults {
        let dur = f.duration.map(|d| format!(" for {d}")).unwrap_or_default();
        if let Some(e) = &f.exec {
            out.push_str(&format!(
                "  at {} fault {}{dur}: exec {}\n",
                f.at,
                f.name,
                e.command.join(" ")
            ));
            if let Some(r) = &e.revert {
                out.push_str(&format!("      revert: {}\n", r.join(" ")));
            }
        }
        let on = |agent: &Option<String>| match (crate::fault::request::pod_targets(f), agent) {
            (Some(sel), _) => format!(
                "on pods in namespace {} ({}, mode {}) through the agent on each pod's node",
                sel.namespace,
                crate::kube::pods::describe_selector(sel),
                sel.mode
                    .map(|m| format!("{m:?}").to_lowercase())
                    .unwrap_or_else(|| "one".into())
            ),
            (None, Some(a)) => format!("through agent {a}"),
            (None, None) => "through the embedded agent".into(),
        };
        if let Some(n) = &f.network {
            let what = [
                n.latency.as_ref().map(|l| format!("latency {}", l.delay)),
                n.loss.map(|l| format!("loss {l}")),
                n.blackhole.filter(|b| *b).map(|_| "blackhole".to_owned()),
            ]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join(", ");
            out.push_str(&format!(
                "  at {} fault {}{dur}: network {what} {}\n",
                f.at,
                f.name,
                on(&n.agent)
            ));
        }
        if let Some(p) = &f.process {
            let what = if p.pause.is_some() { "pause" } else { "kill" };
            out.push_str(&format!(
                "  at {} fault {}{dur}: process {what} {}\n",
                f.at,
                f.name,
                on(&p.agent)
            ));
        }
        if let Some(d) = f.pod.as_ref().and_then(|p| p.delete.as_ref()) {
            out.push_str(&format!(
                "  at {} fault {}: delete pods in namespace {} ({}, mode {}){}\n",
                f.at,
                f.name,
                d.pods.namespace,
                crate::kube::pods::describe_selector(&d.pods),
                d.pods
                    .mode
                    .map(|m| format!("{m:?}").to_lowercase())
                    .unwrap_or_else(|| "one".into()),
                if d.dry_run {
                    ", server-side dry run"
                } else {
                    ""
                }
            ));
        }
    }
    out
}

/// `--dry-run` with a cluster: choose the pods as the run would (same seed), and have the
/// API server check each deletion (`dryRun=All`); nothing is deleted or applied.
/// Exit 0 when the server accepts everything, 3 otherwise.
fn dry_run_cluster(exp: &Experiment, seed: Option<u64>) -> i32 {
    use crate::kube::pods;
    let seed = seed.or(exp.file.spec.seed).unwrap_or_else(rand::random);
    block_on_command(async {
        let (cluster, agents) = match connect_cluster(exp).await {
            Ok(Some(c)) => c,
            Ok(None) => return exit::MET,
            Err(e) => {
                eprintln!("{e}");
                return exit::CANNOT_RUN;
            }
        };
        println!("cluster: {} (seed {seed})", cluster.source);
        let mut ok = true;
        for f in &exp.file.spec.faults {
            let delete = f.pod.as_ref().and_then(|p| p.delete.as_ref());
            let Some(sel) = delete
                .map(|d| &d.pods)
                .or_else(|| crate::fault::request::pod_targets(f))
            else {
                continue;
            };
            let found = match pods::matching(&cluster, sel).await {
                Ok(found) => found,
                Err(e) => {
                    println!("  fault {}: {e}", f.name);
                    ok = false;
                    continue;
                }
            };
            let chosen = pods::choose(&found, sel, pods::fault_seed(seed, &f.name));
            if chosen.is_empty() {
                println!(
                    "  fault {}: no pod in namespace {} matches {}",
                    f.name,
                    sel.namespace,
                    pods::describe_selector(sel)
                );
                ok = false;
                continue;
            }
            println!(
                "  fault {}: {} of {} matching pods",
                f.name,
                chosen.len(),
                found.len()
            );
            if let Some(d) = delete {
                let grace = d.grace_period.map(|g| g.0);
                for r in pods::delete(&cluster, &chosen, grace, true).await {
                    match r.error {
                        None => println!(
                            "    would delete {} (node {}): the API server accepted it (dryRun=All)",
                            r.pod.key(),
                            r.pod.node
                        ),
                        Some(e) => {
                            println!("    {e}");
                            ok = false;
                        }
                    }
                }
            } else {
                for pod in &chosen {
                    match agents.as_ref().map(|a| a.on_node(&pod.node)) {
                        Some(Ok(c)) => println!(
                            "    {} (node {}): agent {} ({})",
                            pod.key(),
                            pod.node,
                            c.name,
                            c.url
                        ),
                        Some(Err(e)) => {
                            println!("    {}: {e}", pod.key());
                            ok = false;
                        }
                        None => ok = false,
                    }
                }
            }
        }
        println!("dry run: nothing was started, deleted, applied or probed");
        if ok {
            exit::MET
        } else {
            exit::CANNOT_RUN
        }
    })
}

/// Run a one-shot command's future (preflight, `agents`, a cluster dry run) to its exit
/// code on a current-thread runtime; exit 3 if no runtime can be made.
pub fn block_on_command(f: impl std::future::Future<Output = i32>) -> i32 {
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

/// A token cancelled on the first SIGINT or SIGTERM.
pub fn interrupt_on_signals() -> CancellationToken {
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

/// Why the main loop stopped.
#[derive(Debug, Clone, PartialEq)]
enum Stop {
    /// The final steady-state window (or the plan) completed.
    Done,
    /// The hard `duration` was reached.
    Duration,
    /// The steady state did not hold before the first fault: nothing was injected.
    SteadyStateBefore(String),
    /// A stop condition fired.
    Aborted(String),
    /// SIGINT or SIGTERM.
    Interrupted,
}

/// Run a validated experiment to its report. Never panics on bad targets: failures are data.
pub async fn execute(
    exp: &Experiment,
    seed: Option<u64>,
    progress: Arc<dyn Progress>,
    interrupt: CancellationToken,
) -> Report {
    let spec = &exp.file.spec;
    let seed = seed.or(spec.seed).unwrap_or_else(rand::random);
    let events = Events::new(progress.clone());
    let bucket = spec
        .recording
        .as_ref()
        .and_then(|r| r.bucket)
        .map(|d| d.0)
        .unwrap_or(DEFAULT_BUCKET);
    let run_id = probe::write::run_id();
    let configs: Result<Vec<ProbeConfig>, String> = spec
        .probes
        .iter()
        .map(|p| ProbeConfig::from_spec(p, &run_id))
        .collect();
    let configs = match configs {
        Ok(c) => c,
        Err(e) => return assemble::error_report(exp, seed, e),
    };
    let (agents, local_agent, cluster) = match prepare_agents(exp, &events).await {
        Ok(a) => a,
        Err(e) => return assemble::error_report(exp, seed, e),
    };
    let base_dir = exp
        .source
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .to_path_buf();
    let services = match Services::start(&spec.services, &base_dir, &events).await {
        Ok(s) => s,
        Err(e) => {
            if let Some(a) = local_agent {
                a.stop().await;
            }
            return assemble::error_report(exp, seed, e);
        }
    };
    if let Err(e) = rpo::preflight(&configs).await {
        services.stop_all().await;
        if let Some(a) = local_agent {
            a.stop().await;
        }
        return assemble::error_report(exp, seed, e);
    }

    let origin = Instant::now();
    let started_at = SystemTime::now();
    events.set_origin(origin);
    let stop_probes = CancellationToken::new();
    let recorders: Vec<Arc<Recorder>> = configs
        .iter()
        .map(|c| Arc::new(Recorder::new(&c.name, bucket)))
        .collect();
    let running: Vec<_> = configs
        .iter()
        .zip(&recorders)
        .map(|(c, r)| probe::start(c.clone(), origin, r.clone(), stop_probes.child_token()))
        .collect();

    let (cluster, cluster_agents) = match cluster {
        Some((c, a)) => (Some(c), a.map(Arc::new)),
        None => (None, None),
    };
    let ctx = faults::AgentContext {
        agents,
        experiment: exp.file.metadata.name.clone(),
        seed,
        cluster,
        cluster_agents,
    };
    let mut faults = FaultSet::new(&spec.faults, origin, services.pids(), events.clone(), ctx);
    let mut run = LiveRun {
        exp,
        configs: &configs,
        recorders: &recorders,
        origin,
        bucket,
        progress: progress.as_ref(),
    };
    let (stop, timeline) = run.main_loop(&mut faults, &interrupt, &events).await;

    // Stop injecting and revert whatever is still applied before anything else.
    let fault_reports = faults.finish().await;
    stop_probes.cancel();
    for p in running {
        p.stop().await;
    }
    let end = origin.elapsed();
    let recordings: Vec<_> = recorders.iter().map(|r| r.finish(end)).collect();
    // Before the services stop: the backend under test is often one of them.
    let writes = rpo::verify(&configs, &recordings, &stop).await;
    services.stop_all().await;
    if let Some(a) = local_agent {
        for failed in a.stop().await {
            events.push(
                "agent",
                format!("embedded agent could not revert: {failed}"),
            );
        }
    }
    assemble::report(assemble::Finished {
        exp,
        seed,
        started_at,
        end,
        bucket,
        configs: &configs,
        recordings: &recordings,
        writes,
        timeline,
        stop,
        faults: fault_reports,
        events: events.drain(origin),
    })
}

/// Connect to every agent the experiment uses and run the preflight checks: nothing is
/// started or applied unless every agent is reachable, authorised and capable.
async fn prepare_agents(
    exp: &Experiment,
    events: &Events,
) -> Result<
    (
        crate::fault::Agents,
        Option<embedded::Embedded>,
        Option<(Cluster, Option<ClusterAgents>)>,
    ),
    String,
> {
    let mut agents = crate::fault::connect(exp).map_err(|e| e.to_string())?;
    let cluster = connect_cluster(exp).await?;
    let mut local = None;
    if crate::fault::needs_embedded(exp) {
        let (e, swept) = embedded::Embedded::start(Some(events.clone())).await?;
        for line in swept {
            events.push(
                "agent",
                format!("embedded agent swept what a dead controller left: {line}"),
            );
        }
        agents.embedded = Some(e.client.clone());
        agents.embedded_swept = e.swept.clone();
        local = Some(e);
    }
    let mut checks = crate::fault::preflight::check(exp, &agents).await;
    if let Some((c, a)) = &cluster {
        checks.extend(crate::fault::preflight::check_cluster(exp, c, a.as_ref()).await);
        events.push(
            "kubernetes",
            format!("connected to the cluster ({})", c.source),
        );
    }
    if checks.iter().any(|c| !c.ok()) {
        if let Some(e) = local {
            e.stop().await;
        }
        return Err(format!(
            "preflight failed:\n{}",
            crate::fault::preflight::render(&checks)
        ));
    }
    Ok((agents, local, cluster))
}

/// The cluster and its node agents, when the experiment has pod faults or faults on pods.
async fn connect_cluster(
    exp: &Experiment,
) -> Result<Option<(Cluster, Option<ClusterAgents>)>, String> {
    if !crate::fault::needs_cluster(exp) {
        return Ok(None);
    }
    let base = exp
        .source
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let spec = exp.file.spec.kubernetes.as_ref();
    let cluster = Cluster::connect(spec, base).await?;
    let agents = if crate::fault::needs_cluster_agents(exp) {
        let a = spec.and_then(|k| k.agents.clone()).unwrap_or_default();
        Some(crate::kube::agents::discover(&cluster, &a, base).await?)
    } else {
        None
    };
    Ok(Some((cluster, agents)))
}

/// `shakeout preflight FILE`: exit 0 when every agent is ready, 3 otherwise.
pub fn preflight_file(file: &Path) -> i32 {
    let exp = match experiment::load(file) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("{e}");
            return exit::CANNOT_RUN;
        }
    };
    block_on_command(async {
        let mut agents = match crate::fault::connect(&exp) {
            Ok(a) => a,
            Err(e) => {
                eprintln!("{e}");
                return exit::CANNOT_RUN;
            }
        };
        // The embedded agent is checked as `run` will use it: its guardian started,
        // asked what it can do, and stopped (it applies nothing; it does sweep what a
        // dead controller left, as a run's start would).
        let mut local = None;
        if crate::fault::needs_embedded(&exp) {
            match embedded::Embedded::start(None).await {
                Ok((e, swept)) => {
                    for line in swept {
                        println!("embedded agent swept what a dead controller left: {line}");
                    }
                    agents.embedded = Some(e.client.clone());
                    local = Some(e);
                }
                Err(e) => eprintln!("{e}"),
            }
        }
        let mut checks = crate::fault::preflight::check(&exp, &agents).await;
        if let Some(e) = local {
            for failed in e.stop().await {
                eprintln!("embedded agent: {failed}");
            }
        }
        match connect_cluster(&exp).await {
            Ok(None) => {}
            Ok(Some((c, a))) => {
                checks.extend(crate::fault::preflight::check_cluster(&exp, &c, a.as_ref()).await)
            }
            Err(e) => checks.push(crate::fault::preflight::AgentCheck {
                agent: "kubernetes".into(),
                url: "-".into(),
                problems: vec![e],
                notes: vec![],
            }),
        }
        print!("{}", crate::fault::preflight::render(&checks));
        if checks.iter().all(|c| c.ok()) {
            exit::MET
        } else {
            exit::CANNOT_RUN
        }
    })
}

/// Phase boundaries as they happened, from origin.
#[derive(Debug, Clone, Default)]
pub struct Timeline {
    pub faults_start: Option<Duration>,
    pub faults_end: Option<Duration>,
    pub steady_start: Option<Duration>,
    pub steady_end: Option<Duration>,
    /// Buckets up to here were used to decide recovery.
    pub recovery_horizon: Option<Duration>,
}

struct LiveRun<'a> {
    exp: &'a Experiment,
    configs: &'a [ProbeConfig],
    recorders: &'a [Arc<Recorder>],
    origin: Instant,
    bucket: Duration,
    progress: &'a dyn Progress,
}

impl LiveRun<'_> {
    fn set_phase(&self, at: Duration, phase: Phase) {
        for r in self.recorders {
            r.set_phase(at, phase);
        }
    }

    /// Close every bucket whose sends have all reached their deadline; returns the horizon.
    fn close_buckets(&self, now: Duration) -> Duration {
        let mut horizon = now;
        for (c, r) in self.configs.iter().zip(self.recorders) {
            let h = now.saturating_sub(c.target.timeout() + CLOSE_MARGIN);
            r.close_until(h);
            horizon = horizon.min(h);
        }
        horizon
    }

    fn all_recovered(&self, fault_start: Duration, fault_end: Duration, horizon: Duration) -> bool {
        self.configs.iter().zip(self.recorders).all(|(c, r)| {
            let buckets = r.closed_since(0);
            let w = RtoWindow {
                fault_start,
                fault_end,
                until: horizon,
                level: verdict::recovery_level(self.exp),
                stable_for: verdict::stable_for(self.exp),
                rate_per_second: rate_of(c),
            };
            // Judge only once a whole stability window after the faults' end is closed:
            // before that, a failure the fault caused may not have reached the buckets yet.
            horizon >= fault_end + w.stable_for && verdict::recovered(&buckets, self.bucket, w)
        })
    }

    /// The abort condition, if it fired: which probe and what it saw.
    fn abort_check(&self) -> Option<String> {
        let a = self.exp.file.spec.abort.as_ref()?.availability.as_ref()?;
        let n = (a.for_.0.as_nanos() / self.bucket.as_nanos().max(1)).max(1) as usize;
        for r in self.recorders {
            if a.probe.as_deref().is_some_and(|p| p != r.name()) {
                continue;
            }
            let closed = r.closed_len();
            if closed < n {
                continue;
            }
            let mut counts = probe::Counts::default();
            for b in r.closed_since(closed - n) {
                counts.merge(&b.counts);
            }
            if let Some(av) = counts.availability() {
                if av < a.below.ratio() {
                    return Some(format!(
                        "probe `{}` availability {:.2}% over the last {} is below {}",
                        r.name(),
                        av * 100.0,
                        a.for_,
                        a.below
                    ));
                }
            }
        }
        None
    }

    /// Check the steady state on what the baseline recorded so far.
    fn steady_state_holds(&self) -> Result<(), String> {
        let Some(ss) = &self.exp.file.spec.steady_state else {
            return Ok(());
        };
        for r in self.recorders {
            let stats = r.phase_snapshot(Phase::Baseline);
            if let (Some(min), Some(av)) = (ss.availability.as_ref(), stats.counts.availability()) {
                if av < min.min.ratio() {
                    return Err(format!(
                        "probe `{}` availability {:.3}% is below {}",
                        r.name(),
                        av * 100.0,
                        min.min
                    ));
                }
            }
            if let Some(l) = &ss.latency {
                for (label, q, max) in l.bounds() {
                    if !stats.latency.is_empty() {
                        let v = Duration::from_micros(stats.latency.value_at_quantile(q));
                        if v > max.0 {
                            return Err(format!(
                                "probe `{}` {label} {} is above {}",
                                r.name(),
                                verdict::human(v),
                                max
                            ));
                        }
                    }
                }
            }
        }
        Ok(())
    }

    fn live_status(&self, phase: &str, now: Duration, faults: &FaultSet) -> LiveStatus {
        LiveStatus {
            phase: phase.into(),
            elapsed: now,
            total: self.exp.file.spec.duration.0,
            probes: self
                .recorders
                .iter()
                .map(|r| {
                    let (counts, p99) = r.live_totals();
                    (r.name().to_owned(), counts.availability(), p99)
                })
                .collect(),
            active_faults: faults.active_names(),
        }
    }

    async fn main_loop(
        &mut self,
        faults: &mut FaultSet,
        interrupt: &CancellationToken,
        events: &Events,
    ) -> (Stop, Timeline) {
        let spec = &self.exp.file.spec;
        let hard_end = spec.duration.0;
        let window = spec
            .steady_state
            .as_ref()
            .map(|s| s.window.0)
            .unwrap_or_default();
        let first_fault = spec.faults.iter().map(|f| f.at.0).min();
        let mut tl = Timeline::default();
        let mut phase = "baseline";
        let mut boundary_declared = false;
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let stop = loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = interrupt.cancelled() => {}
            }
            let now = self.origin.elapsed();
            if interrupt.is_cancelled() {
                events.push(
                    "signal",
                    "interrupted: stopping faults and reverting".into(),
                );
                break Stop::Interrupted;
            }
            let horizon = self.close_buckets(now);
            self.progress.update(&self.live_status(phase, now, faults));
            if now >= hard_end {
                events.push(
                    "run",
                    format!("reached the experiment's duration of {}", spec.duration),
                );
                break Stop::Duration;
            }
            if let Some(why) = self.abort_check() {
                events.push("abort", format!("stop condition: {why}"));
                break Stop::Aborted(why);
            }
            match phase {
                "baseline" => match first_fault {
                    None => {
                        // Nothing to inject: the baseline is the whole experiment.
                        if now >= window.max(TICK) && spec.steady_state.is_some() {
                            break Stop::Done;
                        }
                    }
                    Some(at) => {
                        // Declare the boundary ahead: samples are assigned by intended time.
                        if !boundary_declared && now + 2 * TICK >= at {
                            self.set_phase(at, Phase::Faults);
                            boundary_declared = true;
                        }
                        if now >= at {
                            if let Err(why) = self.steady_state_holds() {
                                self.set_phase(at, Phase::Baseline);
                                events.push("run", format!("steady state did not hold before the first fault ({why}); no fault was injected"));
                                break Stop::SteadyStateBefore(why);
                            }
                            tl.faults_start = Some(at);
                            faults.start_all();
                            phase = "faults";
                        }
                    }
                },
                "faults" => {
                    if faults.all_done() {
                        tl.faults_end = Some(now);
                        self.set_phase(now, Phase::Recovery);
                        events.push("run", "all faults ended; waiting for recovery".into());
                        phase = "recovery";
                    }
                }
                "recovery" => {
                    let (start, end) = (
                        tl.faults_start.unwrap_or_default(),
                        tl.faults_end.unwrap_or_default(),
                    );
                    // Pod deletions are watched until their replacements are Ready (or
                    // their recoveryTimeout): recovery is judged after that.
                    if faults.watching() == 0 && self.all_recovered(start, end, horizon) {
                        tl.recovery_horizon = Some(horizon);
                        tl.steady_start = Some(now);
                        self.set_phase(now, Phase::Steady);
                        events.push(
                            "run",
                            "steady state restored; final steady-state window".into(),
                        );
                        phase = "steady";
                    }
                }
                _ => {
                    if now >= tl.steady_start.unwrap_or_default() + window {
                        break Stop::Done;
                    }
                }
            }
        };
        let now = self.origin.elapsed();
        if tl.steady_start.is_some() {
            tl.steady_end = Some(now);
        }
        if tl.faults_start.is_some() && tl.faults_end.is_none() {
            tl.faults_end = Some(now);
        }
        (stop, tl)
    }
}

fn rate_of(c: &ProbeConfig) -> f64 {
    match c.pace {
        probe::Pace::Rate(r) => r,
        probe::Pace::Max => f64::INFINITY,
    }
}

/// Map the way a run stopped (and its fault outcomes) to the overall status.
fn status_of(stop: &Stop, revert_failed: bool, any_fail: bool) -> RunStatus {
    if revert_failed {
        return RunStatus::RevertUnconfirmed;
    }
    match stop {
        Stop::Interrupted => RunStatus::Interrupted,
        Stop::Aborted(_) => RunStatus::Aborted,
        Stop::SteadyStateBefore(_) => RunStatus::Failed,
        Stop::Done | Stop::Duration if any_fail => RunStatus::Failed,
        Stop::Done | Stop::Duration => RunStatus::Met,
    }
}
