//! A realistic report for renderer tests: a database failover seen by two probes, with
//! one passing, one failing and one unmeasured objective. Tests change what they need.

use std::collections::BTreeMap;

use super::*;

impl Report {
    /// Failover of a primary database: checkout recovers too slowly, so the run failed.
    pub(crate) fn test() -> Report {
        Report {
            schema_version: SCHEMA_VERSION.to_string(),
            experiment: ExperimentInfo {
                name: "checkout-failover".to_string(),
                file: "experiments/checkout-failover.yaml".to_string(),
                labels: BTreeMap::from([("team".to_string(), "payments".to_string())]),
            },
            warnings: Vec::new(),
            run: RunInfo {
                status: RunStatus::Failed,
                exit_code: RunStatus::Failed.exit_code(),
                reason: None,
                seed: 424242,
                started_at: "2025-06-01T12:00:00.000Z".to_string(),
                duration_ms: 90_000.0,
                bucket_ms: 100.0,
                shakeout_version: "0.1.0".to_string(),
            },
            phases: [
                ("baseline", 0.0, 20_000.0),
                ("faults", 20_000.0, 50_000.0),
                ("recovery", 50_000.0, 70_000.0),
                ("steady", 70_000.0, 90_000.0),
            ]
            .map(|(phase, start_ms, end_ms)| PhaseSpan {
                phase: phase.to_string(),
                start_ms,
                end_ms,
            })
            .to_vec(),
            probes: vec![checkout_probe(), db_probe()],
            faults: vec![kill_primary()],
            services: Vec::new(),
            events: vec![
                event(20_010.0, "fault", "kill-primary applied"),
                event(20_050.0, "service", "postgres primary exited (signal 15)"),
                event(50_020.0, "fault", "kill-primary reverted"),
                event(50_400.0, "service", "postgres primary started"),
            ],
            verdicts: vec![
                verdict(
                    "availability/checkout/baseline",
                    VerdictStatus::Pass,
                    Some("100%"),
                    ">= 99.9%",
                    None,
                ),
                verdict(
                    "rto/checkout",
                    VerdictStatus::Fail,
                    Some("38.1s"),
                    "<= 30s",
                    Some("first failure at 20.3s, recovered at 58.4s"),
                ),
                verdict(
                    "latency/db/recovery",
                    VerdictStatus::NotMeasured,
                    None,
                    "p99 <= 50ms",
                    Some("no ok responses during recovery"),
                ),
            ],
            promql: Vec::new(),
            alerts: Vec::new(),
        }
    }

    /// Ends the run with `status` (and its exit code), e.g. an interrupted run.
    pub(crate) fn with_status(mut self, status: RunStatus, reason: Option<&str>) -> Report {
        self.run.status = status;
        self.run.exit_code = status.exit_code();
        self.run.reason = reason.map(str::to_string);
        self
    }

    pub(crate) fn with_verdict(mut self, v: Verdict) -> Report {
        self.verdicts.push(v);
        self
    }

    /// Adds the supervised service `web`: killed by a fault once and restarted (healthy),
    /// or, `crash_looping`, restarted five times and then given up on.
    pub(crate) fn with_service(mut self, crash_looping: bool) -> Report {
        let start = |at_ms: f64, pid: u32| ServiceStart {
            at_ms,
            pid,
            ready_ms: Some(at_ms + 50.0),
        };
        let exit =
            |at_ms: f64, pid: u32, exit_code: Option<i32>, signal: Option<i32>| ServiceExit {
                at_ms,
                pid,
                exit_code,
                signal,
                stopped: false,
            };
        let mut web = ServiceReport {
            name: "web".to_string(),
            command: vec![
                "./web".to_string(),
                "--port".to_string(),
                "8080".to_string(),
            ],
            starts: vec![start(-300.0, 100), start(22_000.0, 101)],
            exits: vec![exit(20_050.0, 100, None, Some(9))],
            restarts: 1,
            failed: None,
            stdout: vec!["web: listening on 127.0.0.1:8080".to_string()],
            stderr: Vec::new(),
            log: None,
        };
        if crash_looping {
            // The kill's restart, then four more: each exits at once.
            for (i, at) in [22_100.0, 22_400.0, 22_900.0, 23_800.0, 25_500.0]
                .into_iter()
                .enumerate()
            {
                let pid = 101 + i as u32;
                web.exits.push(exit(at, pid, Some(1), None));
                if i < 4 {
                    web.starts.push(start(at + 100.0, pid + 1));
                }
            }
            web.restarts = 5;
            web.stderr = vec!["web: config /etc/web.toml: permission denied".to_string()];
            web.failed = Some(ServiceFailure {
                at_ms: 25_500.0,
                reason: "service `web` is crash-looping: 5 restarts in 5.45s, none up for 10.0s; \
                         not restarted again; last output: web: config /etc/web.toml: permission denied"
                    .to_string(),
            });
        }
        self.services.push(web);
        self
    }

    pub(crate) fn with_experiment_name(mut self, name: &str) -> Report {
        self.experiment.name = name.to_string();
        self
    }

    /// Marks a probe as limited by the prober's own scheduling lag.
    pub(crate) fn with_prober_limited(mut self, probe: &str) -> Report {
        for p in self.probes.iter_mut().filter(|p| p.name == probe) {
            p.prober_limited = true;
            p.scheduling_lag.p99_ms = Some(180.0);
            p.scheduling_lag.max_ms = Some(640.0);
        }
        self
    }
}

pub(crate) fn verdict(
    id: &str,
    status: VerdictStatus,
    measured: Option<&str>,
    required: &str,
    note: Option<&str>,
) -> Verdict {
    let mut parts = id.split('/');
    Verdict {
        id: id.to_string(),
        kind: parts.next().unwrap_or("availability").to_string(),
        probe: parts.next().map(str::to_string),
        during: parts.next().map(str::to_string),
        status,
        measured: measured.map(str::to_string),
        required: required.to_string(),
        note: note.map(str::to_string),
    }
}

fn event(at_ms: f64, source: &str, message: &str) -> Event {
    Event {
        at_ms,
        source: source.to_string(),
        message: message.to_string(),
    }
}

fn latency(p50: f64, p90: f64, p99: f64, max: f64, count: u64) -> LatencySummary {
    LatencySummary {
        count,
        min_ms: Some(p50 / 3.0),
        mean_ms: Some(p50 * 1.1),
        p50_ms: Some(p50),
        p90_ms: Some(p90),
        p99_ms: Some(p99),
        p999_ms: Some((p99 + max) / 2.0),
        max_ms: Some(max),
    }
}

fn phase(name: &str, scheduled: u64, errors: &[(&str, u64)], lat: LatencySummary) -> PhaseReport {
    let errors: BTreeMap<String, u64> = errors.iter().map(|(k, n)| (k.to_string(), *n)).collect();
    let ok = scheduled - errors.values().sum::<u64>();
    PhaseReport {
        phase: name.to_string(),
        scheduled,
        ok,
        availability_percent: (scheduled > 0).then(|| ok as f64 * 100.0 / scheduled as f64),
        errors,
        latency: LatencySummary { count: ok, ..lat },
    }
}

fn checkout_probe() -> ProbeReport {
    ProbeReport {
        name: "checkout".to_string(),
        kind: "http".to_string(),
        target: "http://127.0.0.1:8080/checkout".to_string(),
        rate_per_second: 50.0,
        connection: Some("keepAlive".to_string()),
        version: None,
        connection_setup: None,
        tls: None,
        grpc: None,
        max_in_flight: 64,
        prober_limited: false,
        scheduling_lag: latency(0.05, 0.12, 0.41, 2.3, 4500),
        phases: vec![
            phase("baseline", 1000, &[], latency(4.1, 7.9, 12.3, 31.0, 0)),
            phase(
                "faults",
                1500,
                &[("timeout", 1210), ("refused", 88)],
                latency(210.0, 1800.0, 4900.0, 5000.0, 0),
            ),
            phase(
                "recovery",
                1000,
                &[("status", 61)],
                latency(9.8, 40.0, 412.0, 1240.0, 0),
            ),
            phase("steady", 1000, &[], latency(4.3, 8.1, 13.0, 29.0, 0)),
            phase(
                "run",
                4500,
                &[("timeout", 1210), ("refused", 88), ("status", 61)],
                latency(5.0, 60.0, 4100.0, 5000.0, 0),
            ),
        ],
        rto: Some(RtoReport {
            fault_start_ms: 20_000.0,
            fault_end_ms: 50_000.0,
            first_failure_ms: Some(20_300.0),
            recovered_ms: Some(58_400.0),
            time_to_detect_ms: Some(300.0),
            time_to_recover_ms: Some(38_100.0),
            fault_end_to_recovery_ms: Some(8_400.0),
            resolution_ms: 100.0,
            level_percent: 99.0,
            stable_for_ms: 5_000.0,
            note: None,
        }),
        timeline: vec![
            bucket(20_200.0, 5, &[], 4.0),
            bucket(20_300.0, 5, &[("timeout", 5)], 5000.0),
            bucket(58_400.0, 5, &[], 9.0),
        ],
        write: None,
    }
}

fn db_probe() -> ProbeReport {
    ProbeReport {
        name: "db".to_string(),
        kind: "tcp".to_string(),
        target: "127.0.0.1:5432".to_string(),
        rate_per_second: 20.0,
        connection: None,
        version: None,
        connection_setup: None,
        tls: None,
        grpc: None,
        max_in_flight: 16,
        prober_limited: false,
        scheduling_lag: latency(0.04, 0.09, 0.3, 1.1, 1800),
        phases: vec![
            phase("baseline", 400, &[], latency(0.2, 0.4, 0.9, 3.0, 0)),
            phase(
                "faults",
                600,
                &[("refused", 600)],
                LatencySummary::default(),
            ),
            phase("recovery", 0, &[], LatencySummary::default()),
            phase(
                "run",
                1000,
                &[("refused", 600)],
                latency(0.2, 0.4, 0.9, 3.0, 0),
            ),
        ],
        rto: None,
        timeline: vec![bucket(20_100.0, 2, &[("refused", 2)], 0.0)],
        write: None,
    }
}

fn bucket(start_ms: f64, scheduled: u64, errors: &[(&str, u64)], max: f64) -> BucketReport {
    let errors: BTreeMap<String, u64> = errors.iter().map(|(k, n)| (k.to_string(), *n)).collect();
    let ok = scheduled - errors.values().sum::<u64>();
    BucketReport {
        start_ms,
        scheduled,
        ok,
        errors,
        p99_ms: (ok > 0).then_some(max),
        max_ms: (ok > 0).then_some(max),
    }
}

fn kill_primary() -> FaultReport {
    let action = |verb: &str, started_ms: f64, stdout: &str| ActionReport {
        command: ["systemctl", verb, "postgresql@16-main"]
            .map(String::from)
            .to_vec(),
        started_ms,
        ended_ms: started_ms + 12.0,
        exit_code: Some(0),
        signal: None,
        success: true,
        stdout: stdout.to_string(),
        stderr: String::new(),
        error: None,
    };
    FaultReport {
        agent: None,
        agents: Vec::new(),
        pods: None,
        name: "kill-primary".to_string(),
        kind: "exec".to_string(),
        at_ms: 20_000.0,
        planned_duration_ms: Some(30_000.0),
        status: FaultStatus::Reverted,
        apply: Some(action("stop", 20_000.0, "")),
        revert: Some(action("start", 50_000.0, "started postgresql@16-main\n")),
        error: None,
        reason: None,
    }
}
