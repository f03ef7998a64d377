//! The runner: preflight (services up) -> baseline -> fault timeline -> recovery (until
//! steady state holds again) -> final steady-state window -> report. It owns the clock:
//! one origin instant for probes, faults and events, plus one wall-clock anchor.

pub mod events;
pub mod exec;
mod faults;
pub mod metrics;
pub mod plan;
mod rpo;
pub mod service;
pub mod setup;

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use tokio_util::sync::CancellationToken;

use crate::experiment::Experiment;
use crate::monitor;
use crate::probe::{self, Phase, ProbeConfig, Recorder};
use crate::progress::{LiveProbe, LiveStatus, Progress};
use crate::record::{RunRecord, Stop, Timeline};
use crate::report::{self, Report};
use crate::verdict;
use events::Events;
use faults::FaultSet;
use service::Services;

/// Default bucket width (the RTO resolution unless the rate is lower).
pub const DEFAULT_BUCKET: Duration = Duration::from_millis(100);
/// How often the runner looks at the clock, the buckets and the stop conditions.
const TICK: Duration = Duration::from_millis(20);
/// Extra wait past a probe's deadline before its bucket is considered complete.
const CLOSE_MARGIN: Duration = Duration::from_millis(100);

/// Run a validated experiment to its report. Never panics on bad targets: failures are data.
pub async fn execute(
    exp: &Experiment,
    seed: Option<u64>,
    progress: Arc<dyn Progress>,
    interrupt: CancellationToken,
) -> Report {
    execute_serving(exp, seed, progress, interrupt, None).await
}

/// [`execute`], serving the run's metrics on `metrics` (`--metrics-listen`: a socket
/// bound before anything started, so a taken port never leaves anything applied).
pub async fn execute_serving(
    exp: &Experiment,
    seed: Option<u64>,
    progress: Arc<dyn Progress>,
    interrupt: CancellationToken,
    metrics: Option<std::net::TcpListener>,
) -> Report {
    let spec = &exp.file.spec;
    let seed = seed
        .or(spec.seed)
        .unwrap_or_else(crate::experiment::random_seed);
    tracing::info!(experiment = %exp.file.metadata.name, seed, "run starting");
    let events = Events::new(progress.clone());
    let bucket = spec
        .recording
        .as_ref()
        .and_then(|r| r.bucket)
        .map(|d| d.0)
        .unwrap_or(DEFAULT_BUCKET);
    let run_id = probe::write::run_id();
    let configs: Result<Vec<ProbeConfig>, probe::ProbeError> = exp
        .probes
        .iter()
        .map(|p| ProbeConfig::from_model(p, &run_id))
        .collect();
    let configs = match configs {
        Ok(c) => c,
        Err(e) => return report::error_report(exp, seed, e.to_string()),
    };
    // The monitoring servers answer and every query parses before anything is applied.
    let servers = if monitor::wanted(exp) {
        match monitor::prepare(exp).await {
            Ok(s) => Some(s),
            Err(e) => return report::error_report(exp, seed, e.to_string()),
        }
    } else {
        None
    };
    let (agents, local_agent, cluster) = match setup::prepare_agents(exp, &events).await {
        Ok(a) => a,
        Err(e) => return report::error_report(exp, seed, e.to_string()),
    };
    let base_dir = exp.dir();
    let mut services = Services::new(&events);
    let ready = match services.start(&spec.services, &base_dir).await {
        Ok(()) => rpo::preflight(&configs).await.map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    };
    if let Err(reason) = ready {
        // Times in a report of a run that never started are from now (negative).
        let records = services.stop_all(Instant::now()).await;
        if let Some(a) = local_agent {
            a.stop().await;
        }
        let mut report = report::error_report(exp, seed, reason);
        report.services = records;
        return report;
    }

    let origin = Instant::now();
    let started_at = SystemTime::now();
    events.set_origin(origin);
    let stop_metrics = CancellationToken::new();
    let _stop_metrics = stop_metrics.clone().drop_guard();
    let live = metrics.map(|listener| {
        let live = metrics::Live::default();
        metrics::serve(listener, live.clone(), stop_metrics.clone());
        live
    });
    let phase_cell = monitor::PhaseCell::default();
    let monitor = servers.map(|s| {
        let events = events.clone();
        let note: monitor::Note =
            Arc::new(move |source: &str, message: String| events.push(source, message));
        monitor::start(exp, s, origin, started_at, phase_cell.clone(), note)
    });
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
    let mut faults = FaultSet::new(&exp.faults, origin, services.pids(), events.clone(), ctx);
    let mut run = LiveRun {
        exp,
        configs: &configs,
        recorders: &recorders,
        services: &services,
        origin,
        bucket,
        progress: progress.as_ref(),
        certificates_seen: vec![0; recorders.len()],
        monitor: monitor.as_ref(),
        phase_cell,
        live,
    };
    let (stop, timeline) = run.main_loop(&mut faults, &interrupt, &events).await;

    // Stop injecting and revert whatever is still applied before anything else.
    let fault_reports = faults.finish().await;
    stop_probes.cancel();
    for p in running {
        p.stop().await;
    }
    // Changes seen after the loop's last tick, before the probes stopped.
    run.certificate_events(&events);
    let end = origin.elapsed();
    let monitor_record = match monitor {
        Some(m) => m.finish(&timeline.spans(end), end).await,
        None => monitor::MonitorRecord::default(),
    };
    let recordings: Vec<_> = recorders.iter().map(|r| r.finish(end)).collect();
    // Before the services stop: the backend under test is often one of them.
    let writes = rpo::verify(&configs, &recordings, &stop).await;
    let service_records = services.stop_all(origin).await;
    if let Some(a) = local_agent {
        for failed in a.stop().await {
            events.push(
                "agent",
                format!("embedded agent could not revert: {failed}"),
            );
        }
    }
    let mut events = events.drain(origin);
    // Certificate changes are pushed when learnt of, stamped when they were seen.
    events.sort_by(|a, b| a.at_ms.total_cmp(&b.at_ms));
    let record = RunRecord {
        seed,
        started_at,
        end,
        bucket,
        configs,
        recordings,
        writes,
        timeline,
        stop,
        faults: fault_reports,
        services: service_records,
        events,
        monitor: monitor_record,
    };
    let judgment = verdict::judge::judge(exp, &record);
    report::build(exp, record, judgment)
}

struct LiveRun<'a> {
    exp: &'a Experiment,
    configs: &'a [ProbeConfig],
    recorders: &'a [Arc<Recorder>],
    services: &'a Services,
    origin: Instant,
    bucket: Duration,
    progress: &'a dyn Progress,
    /// Per probe, the served-certificate changes already made events.
    certificates_seen: Vec<usize>,
    monitor: Option<&'a monitor::Monitor>,
    /// The phase as the monitors see it: set when it changes, not ahead.
    phase_cell: monitor::PhaseCell,
    /// What `--metrics-listen` serves, refreshed every [`METRICS_EVERY`].
    live: Option<metrics::Live>,
}

/// How often the `--metrics-listen` snapshot is refreshed.
const METRICS_EVERY: Duration = Duration::from_millis(250);

impl LiveRun<'_> {
    fn set_phase(&self, at: Duration, phase: Phase) {
        for r in self.recorders {
            r.set_phase(at, phase);
        }
    }

    /// Close every bucket whose sends have all reached their deadline; returns the horizon.
    /// An event for each change of a served certificate a probe saw since the last call,
    /// at the handshake that first saw the new one.
    fn certificate_events(&mut self, events: &Events) {
        for (recorder, seen) in self.recorders.iter().zip(&mut self.certificates_seen) {
            for c in recorder.setup.changes_since(*seen) {
                *seen += 1;
                events.push_at(
                    self.origin + c.at,
                    "probe",
                    format!(
                        "probe {}: the server's certificate changed: now {} (issuer {}, \
                         serial {}, valid until {}), was {} (serial {}, valid until {})",
                        recorder.name(),
                        c.to.subject,
                        c.to.issuer,
                        c.to.serial,
                        crate::text::rfc3339_unix(c.to.not_after_unix),
                        c.from.subject,
                        c.from.serial,
                        crate::text::rfc3339_unix(c.from.not_after_unix),
                    ),
                );
            }
        }
    }

    fn close_buckets(&self, now: Duration) -> Duration {
        let mut horizon = now;
        for (c, r) in self.configs.iter().zip(self.recorders) {
            let h = now.saturating_sub(c.target.timeout() + CLOSE_MARGIN);
            r.close_until(h);
            horizon = horizon.min(h);
        }
        horizon
    }

    /// Whether every probe is back at its steady-state level, judged on closed buckets.
    fn all_recovered(&self, fault_start: Duration, fault_end: Duration, horizon: Duration) -> bool {
        verdict::live::all_recovered(
            self.exp,
            self.configs,
            self.recorders,
            self.bucket,
            (fault_start, fault_end, horizon),
        )
    }

    fn live_status(
        &self,
        phase: &str,
        now: Duration,
        steady_start: Option<Duration>,
        faults: &FaultSet,
    ) -> LiveStatus {
        let current = match phase {
            "baseline" => Phase::Baseline,
            "faults" => Phase::Faults,
            "recovery" => Phase::Recovery,
            _ => Phase::Steady,
        };
        LiveStatus {
            phase: phase.into(),
            elapsed: now,
            expected_end: expected_end(self.exp, phase, now, steady_start),
            total: self.exp.file.spec.duration.0,
            probes: self
                .recorders
                .iter()
                .map(|r| {
                    let (availability, p99_us) = r.live_phase(current);
                    LiveProbe {
                        name: r.name().to_owned(),
                        availability,
                        p99_us,
                    }
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
        let mut next_metrics = Duration::ZERO;
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
            self.certificate_events(events);
            if let Some(live) = &self.live {
                if now >= next_metrics {
                    next_metrics = now + METRICS_EVERY;
                    let all: Vec<String> = self.exp.faults.iter().map(|f| f.name.clone()).collect();
                    live.update(phase, self.recorders, &all, &faults.active_names());
                }
            }
            self.progress
                .update(&self.live_status(phase, now, tl.steady_start, faults));
            if now >= hard_end {
                events.push(
                    "run",
                    format!("reached the experiment's duration of {}", spec.duration),
                );
                break Stop::Duration;
            }
            if let Some(why) = verdict::live::abort_fired(self.exp, self.recorders, self.bucket) {
                events.push("abort", format!("stop condition: {why}"));
                break Stop::Aborted(why);
            }
            if let Some(why) = self.monitor.and_then(|m| m.abort_fired()) {
                events.push("abort", format!("stop condition: {why}"));
                break Stop::Aborted(why);
            }
            // A service given up on (crash loop) cannot come back: the steady state has
            // failed whatever the probes see (they may be answered by something else).
            if let Some(why) = self.services.failure() {
                if phase == "baseline" {
                    if boundary_declared {
                        self.set_phase(first_fault.unwrap_or_default(), Phase::Baseline);
                    }
                    events.push("run", format!("steady state did not hold before the first fault ({why}); no fault was injected"));
                    break Stop::SteadyStateBefore(why);
                }
                events.push(
                    "run",
                    format!("steady state cannot return ({why}); stopping"),
                );
                break Stop::ServiceFailed(why);
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
                            if let Err(why) =
                                verdict::live::steady_state_holds(self.exp, self.recorders)
                            {
                                self.set_phase(at, Phase::Baseline);
                                events.push("run", format!("steady state did not hold before the first fault ({why}); no fault was injected"));
                                break Stop::SteadyStateBefore(why);
                            }
                            tl.faults_start = Some(at);
                            self.phase_cell.set(Phase::Faults);
                            faults.start_all();
                            phase = "faults";
                        }
                    }
                },
                "faults" => {
                    if faults.all_done() {
                        tl.faults_end = Some(now);
                        self.set_phase(now, Phase::Recovery);
                        self.phase_cell.set(Phase::Recovery);
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
                        self.phase_cell.set(Phase::Steady);
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

/// The earliest the run can end from where it is: the planned faults' end, then the
/// recovery's stable stretch and the final steady-state window; never past the hard
/// `duration`. Recovery can take longer, so the display marks it as an estimate.
fn expected_end(
    exp: &Experiment,
    phase: &str,
    now: Duration,
    steady_start: Option<Duration>,
) -> Duration {
    let spec = &exp.file.spec;
    let window = spec
        .steady_state
        .as_ref()
        .map(|s| s.window.0)
        .unwrap_or_default();
    let stable = verdict::stable_for(exp);
    let end = match phase {
        // Nothing to inject: a steady-state window ends the run, else its duration.
        "baseline" | "faults" if spec.faults.is_empty() => match spec.steady_state {
            Some(_) => window.max(TICK),
            None => spec.duration.0,
        },
        "baseline" | "faults" => {
            let faults_end = spec
                .faults
                .iter()
                .map(|f| f.at.0 + f.duration.map(|d| d.0).unwrap_or_default())
                .max()
                .unwrap_or_default();
            faults_end.max(now) + stable + window
        }
        "recovery" => now + stable + window,
        _ => steady_start.unwrap_or(now) + window,
    };
    end.min(spec.duration.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn demo() -> Experiment {
        let text = include_str!("../experiments/demo.yaml");
        crate::experiment::parse(
            text,
            std::path::Path::new("demo.yaml"),
            &crate::experiment::Vars::new(),
        )
        .unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn the_expected_end_follows_the_plan_then_the_recovery() {
        let exp = demo();
        let s = Duration::from_secs_f64;
        // Faults end at 10 s (the kill; the latency ends at 9 s), then 1 s stable, 5 s window.
        assert_eq!(expected_end(&exp, "baseline", s(0.0), None), s(16.0));
        assert_eq!(expected_end(&exp, "faults", s(10.5), None), s(16.5));
        // Recovery takes what it takes: at least the stable stretch and the window from now.
        assert_eq!(expected_end(&exp, "recovery", s(12.0), None), s(18.0));
        assert_eq!(
            expected_end(&exp, "steady", s(14.0), Some(s(13.7))),
            s(18.7)
        );
        // Never past the hard limit (50 s).
        assert_eq!(expected_end(&exp, "recovery", s(49.0), None), s(50.0));
    }
}
