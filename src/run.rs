//! The runner: preflight (services up) -> baseline -> fault timeline -> recovery (until
//! steady state holds again) -> final steady-state window -> report. It owns the clock:
//! one origin instant for probes, faults and events, plus one wall-clock anchor.

mod assemble;
pub mod events;
pub mod exec;
mod faults;
pub mod plan;
mod rpo;
pub mod service;
pub mod setup;

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use tokio_util::sync::CancellationToken;

use crate::experiment::Experiment;
use crate::probe::{self, Phase, ProbeConfig, Recorder};
use crate::progress::{LiveStatus, Progress};
use crate::report::{Report, RunStatus};
use crate::verdict::{self, RtoWindow};
use events::Events;
use faults::FaultSet;
use service::Services;

/// Default bucket width (the RTO resolution unless the rate is lower).
pub const DEFAULT_BUCKET: Duration = Duration::from_millis(100);
/// How often the runner looks at the clock, the buckets and the stop conditions.
const TICK: Duration = Duration::from_millis(20);
/// Extra wait past a probe's deadline before its bucket is considered complete.
const CLOSE_MARGIN: Duration = Duration::from_millis(100);

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
    let (agents, local_agent, cluster) = match setup::prepare_agents(exp, &events).await {
        Ok(a) => a,
        Err(e) => return assemble::error_report(exp, seed, e),
    };
    let base_dir = exp.dir();
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
