//! A bad experiment file is refused before anything runs: for each error class in
//! `tests/bad_input/`, the real binary (`validate` and `run`) exits 3, prints
//! `FILE:LINE:COL: message` at the exact position, and leaves no trace of the fault or
//! service commands the file holds (they would `touch` a marker in the test's directory).

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Where the corpus files write their markers; replaced by the test's own directory.
const DIR_PLACEHOLDER: &str = "@DIR@";
/// The name the experiment is written under; the only file allowed in the directory.
const EXPERIMENT: &str = "experiment.yaml";
/// Exit code for "the experiment could not run" (DESIGN.md §5).
const CANNOT_RUN: i32 = 3;

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/bad_input")
}

/// Run `shakeout ARGS` in `dir`; a hang is a failure, not a stuck test suite.
fn shakeout(dir: &Path, args: &[&str]) -> anyhow::Result<Output> {
    let mut child = Command::new(env!("CARGO_BIN_EXE_shakeout"))
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let deadline = Instant::now() + Duration::from_secs(60);
    while child.try_wait()?.is_none() {
        if Instant::now() > deadline {
            child.kill()?;
            anyhow::bail!("shakeout {args:?} still running after 60s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(child.wait_with_output()?)
}

/// Write corpus file `case` into a fresh directory, run `shakeout COMMAND FILE`, and check
/// the refusal: exit 3, the diagnostic at `line:column` containing `message`, no marker.
fn assert_refused(command: &str, case: &str, line: usize, column: usize, message: &str) {
    let result = (|| -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let text = std::fs::read_to_string(corpus_dir().join(format!("{case}.yaml")))?;
        let dir_text = dir.path().display().to_string();
        let file = dir.path().join(EXPERIMENT);
        std::fs::write(&file, text.replace(DIR_PLACEHOLDER, &dir_text))?;
        let file_text = file.display().to_string();

        let out = shakeout(dir.path(), &[command, &file_text])?;
        let stderr = String::from_utf8_lossy(&out.stderr);
        let prefix = format!("{file_text}:{line}:{column}: ");
        let diagnostic = stderr.lines().find(|l| l.starts_with(&prefix));
        anyhow::ensure!(
            diagnostic.is_some_and(|d| d.contains(message)),
            "expected a line `{prefix}...{message}...` on stderr, got:\n{stderr}"
        );
        anyhow::ensure!(
            out.status.code() == Some(CANNOT_RUN),
            "expected exit code {CANNOT_RUN}, got {:?}; stderr:\n{stderr}",
            out.status.code()
        );
        let left: Vec<String> = std::fs::read_dir(dir.path())?
            .map(|e| e.map(|e| e.file_name().to_string_lossy().into_owned()))
            .collect::<Result<_, _>>()?;
        anyhow::ensure!(
            left == [EXPERIMENT],
            "something ran: the directory holds {left:?}"
        );
        Ok(())
    })();
    if let Err(e) = result {
        panic!("shakeout {command} {case}.yaml: {e:#}");
    }
}

/// One test per corpus file for `validate`, and the same for `run`.
macro_rules! bad_input {
    ($($case:ident => $line:literal : $column:literal $message:literal;)*) => {
        /// Every corpus file has a case here, so none is silently unused.
        const CASES: &[&str] = &[$(stringify!($case)),*];

        mod validate {
            $(
                #[test]
                fn $case() {
                    super::assert_refused("validate", stringify!($case), $line, $column, $message);
                }
            )*
        }

        mod run {
            $(
                #[test]

                fn $case() {
                    super::assert_refused("run", stringify!($case), $line, $column, $message);
                }
            )*
        }
    };
}

bad_input! {
    syntax_error => 12:6 "invalid YAML: did not find expected '-' indicator";
    unknown_field => 14:7 "spec.probes[0]: unknown field `timeout`, expected one of `name`, `rate`, `maxInFlight`, `http`, `tcp`";
    wrong_type => 7:9 "spec.seed: invalid type: string \"lucky\", expected u64";
    missing_field => 11:7 "spec.probes[0]: missing field `rate`";
    bad_duration_unit => 16:11 "spec.faults[0].at: invalid duration `10 sec`: expected a duration with a unit, like 250ms";
    bad_percent => 20:26 "spec.objectives.availability.min: invalid percentage `95`: expected a number from 0 to 100 followed by %";
    bad_rate => 12:13 "spec.probes[0].rate: invalid rate `10`: expected a count per unit of time, like 200/s";
    bad_status => 13:67 "spec.probes[0].http.expect.status: invalid status list `200-700`";
    duplicate_probe_name => 14:13 "probe name `web` is already used by spec.probes[0] at line 11, column 13";
    duplicate_fault_name => 19:13 "fault name `marker-fault` is already used by spec.faults[0] at line 15, column 13";
    duplicate_service_name => 10:13 "service name `marker-service` is already used by spec.services[0] at line 8, column 13";
    fault_starts_after_duration => 16:11 "fault `marker-fault` starts at 90s, not before the end of the run (spec.duration: 1m): `at` must be less than 1m";
    fault_ends_after_duration => 17:17 "fault `marker-fault` ends at 70s, after the experiment's duration of 1m: its duration can be at most 10s here";
    fault_without_action => 19:7 "fault `nothing` has no action";
    revert_without_duration => 19:17 "fault `marker-fault` has a revert but no `duration`";
    network_without_duration => 19:7 "network fault `slow` needs a `duration`";
    unknown_agent => 22:25 "no agent named `node-b` in spec.agents";
    kill_with_duration => 21:17 "kill in fault `kill` is one-shot: remove `duration`";
    kill_stop_signal => 21:62 "`STOP` stops the process, and a one-shot kill would leave it stopped";
    bad_peer_cidr => 22:43 "`10.0.0.0/40` is not an address or CIDR";
    two_actions => 15:7 "fault `marker-fault` has more than one action";
    fault_before_steady_state_window => 16:11 "the baseline window must fit before the first fault, so `at` must be at least 10s";
    objective_missing_probe => 20:29 "spec.objectives.rto.probe: no probe named `checkout`; probes: `web`";
    abort_missing_probe => 20:49 "spec.abort.availability.probe: no probe named `api`; probes: `web`";
    latency_without_percentile => 20:14 "spec.objectives.latency: set at least one percentile";
    probe_http_and_tcp => 14:7 "probe `web` has both `http` and `tcp`";
    probe_without_target => 11:7 "probe `web` has neither `http` nor `tcp` nor `write`";
    write_without_sequence_placeholder => 15:38 "neither the URL nor the body holds the sequence placeholder: put `{seq}` or `{key}` in one";
    write_http_and_redis => 17:9 "write probe `orders-write` has both `http` and `redis`";
    write_bad_redis_url => 14:23 "`127.0.0.1:6379` is not a Redis URL";
    rpo_on_probe_without_writes => 20:28 "probe `web` is not a write probe";
    https_url => 13:20 "https is not supported yet; use an http:// URL";
    tcp_address_without_port => 13:23 "`localhost` has no port: expected host:port";
    no_probes => 10:11 "spec.probes: needs at least one probe";
    pod_protected_namespace => 21:35 "`kube-system` is protected (kube-system, kube-public and the agents' own `shakeout`): name it in `allowProtected: [kube-system]`";
    pod_fixed_without_count => 21:22 "spec.faults[1].pod.delete.count: `mode: fixed` needs `count: N`";
    pod_bad_selector => 21:51 "`env in prod` in `env in prod`: `in` needs a set in parentheses";
    pod_delete_with_duration => 21:17 "deleting pods in fault `lose-one` is one-shot: remove `duration`";
    network_pods_with_agent => 22:66 "spec.faults[1].network.pods: chooses the agent and the namespace itself";
    pod_grace_not_whole_seconds => 21:78 "`1500ms` is not a whole number of seconds";
    pod_recovery_without_deletion => 20:18 "spec.objectives.podRecovery: there is no pod deletion to time";
    wrong_api_version => 1:13 "apiVersion: `shakeout.io/v1alpha1` is not supported: use `shakeout/v1`";
    wrong_kind => 2:7 "kind: `Chaos` is not supported: use `Experiment`";
    bad_metadata_name => 4:9 "metadata.name: `bad input!` contains ` `";
    zero_duration => 6:13 "spec.duration: must be greater than 0s";
    bucket_out_of_range => 7:24 "spec.recording.bucket: `1m` is out of range: use 1ms to 10s";
    service_ready_http_and_tcp => 10:45 "service `marker-service` has both `ready.http` and `ready.tcp`";
    two_documents => 19:1 "a second YAML document starts here";
    empty_file => 1:1 "the file is empty";
    several_problems => 20:38 "no probe named `api`";
}

#[test]
fn every_semantic_problem_is_reported_at_once() {
    // `several_problems` breaks three rules; the case above checks the last, these the rest.
    assert_refused("validate", "several_problems", 2, 7, "kind: `Chaos`");
    assert_refused("validate", "several_problems", 16, 11, "starts at 90s");
}

#[test]
fn every_corpus_file_has_a_case() -> anyhow::Result<()> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(corpus_dir())? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "yaml") {
            if let Some(stem) = path.file_stem() {
                files.push(stem.to_string_lossy().into_owned());
            }
        }
    }
    files.sort();
    let mut cases: Vec<String> = CASES.iter().map(ToString::to_string).collect();
    cases.sort();
    assert_eq!(files, cases);
    Ok(())
}

#[test]
fn corpus_files_hold_a_marker_command() -> anyhow::Result<()> {
    // A file without one could not show that nothing ran; only the empty file is exempt.
    for case in CASES.iter().filter(|c| **c != "empty_file") {
        let text = std::fs::read_to_string(corpus_dir().join(format!("{case}.yaml")))?;
        assert!(
            text.contains(DIR_PLACEHOLDER),
            "{case}.yaml has no marker command"
        );
    }
    Ok(())
}
