//! One experiment run by the real binary as a user runs it: a temporary directory, the
//! experiment written there, `shakeout run FILE --json report.json --quiet` (waited for
//! or spawned), and the report read back typed. Every run keeps the embedded agent's
//! state in the case's directory (`SHAKEOUT_STATE_DIR`), never the machine's.

use std::ffi::{OsStr, OsString};
use std::fmt::Display;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::process::{shakeout, Owned};
use super::report::Report;

/// A command's exit code and output, for an assertion's message.
pub fn explain(out: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

pub struct Case {
    dir: tempfile::TempDir,
    /// A free port on 127.0.0.1 for the case's service.
    pub port: u16,
    /// Environment of every run: a value to set, or `None` to remove the variable.
    env: Vec<(OsString, Option<OsString>)>,
    /// Arguments of every run after `--quiet`.
    args: Vec<OsString>,
}

/// A finished run: what it printed and the report it wrote.
pub struct Ran {
    pub output: Output,
    /// From the start of the run until its report was read back.
    pub elapsed: Duration,
    report: Option<Report>,
}

impl Case {
    pub fn new() -> Case {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        Case {
            dir,
            port: super::process::free_port(),
            env: vec![("SHAKEOUT_STATE_DIR".into(), Some(state.into()))],
            args: Vec::new(),
        }
    }

    /// Every run gets `key=value` in its environment.
    pub fn env(mut self, key: &str, value: impl AsRef<OsStr>) -> Case {
        self.env.push((key.into(), Some(value.as_ref().into())));
        self
    }

    /// Every run runs without `key` in its environment.
    pub fn env_remove(mut self, key: &str) -> Case {
        self.env.push((key.into(), None));
        self
    }

    /// Every run gets `arg` too.
    pub fn arg(mut self, arg: impl AsRef<OsStr>) -> Case {
        self.args.push(arg.as_ref().into());
        self
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// `name` in the case's directory.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Writes the experiment to `exp.yaml` in the case's directory.
    pub fn write(&self, experiment: impl Display) -> PathBuf {
        let file = self.path("exp.yaml");
        std::fs::write(&file, experiment.to_string()).unwrap();
        file
    }

    /// `shakeout run FILE --json report.json --quiet` with the case's arguments and
    /// environment, its output piped. A report left by an earlier run is removed.
    pub fn command(&self, file: &Path) -> Command {
        let json = self.path("report.json");
        let _ = std::fs::remove_file(&json);
        let mut cmd = shakeout();
        cmd.arg("run")
            .arg(file)
            .arg("--json")
            .arg(json)
            .arg("--quiet")
            .args(&self.args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (key, value) in &self.env {
            match value {
                Some(v) => cmd.env(key, v),
                None => cmd.env_remove(key),
            };
        }
        cmd
    }

    /// Runs `file` to the end.
    pub fn run(&self, file: &Path) -> Ran {
        self.run_with(file, &[])
    }

    /// Runs `file` to the end with `extra` arguments.
    pub fn run_with(&self, file: &Path, extra: &[&str]) -> Ran {
        let started = Instant::now();
        let output = self.command(file).args(extra).output().unwrap();
        let report = Report::read(&self.path("report.json"));
        Ran {
            output,
            elapsed: started.elapsed(),
            report,
        }
    }

    /// [`Case::run`], while another thread checks `seen` every `every`: also returns
    /// whether it was ever true during the run (what a fault does is only visible while
    /// it lasts).
    pub fn run_watching(
        &self,
        file: &Path,
        every: Duration,
        seen: impl Fn() -> bool + Sync,
    ) -> (Ran, bool) {
        let (done, hit) = (AtomicBool::new(false), AtomicBool::new(false));
        std::thread::scope(|s| {
            let watcher = s.spawn(|| {
                while !done.load(Ordering::SeqCst) {
                    if seen() {
                        hit.store(true, Ordering::SeqCst);
                    }
                    std::thread::sleep(every);
                }
            });
            let ran = self.run(file);
            done.store(true, Ordering::SeqCst);
            watcher.join().unwrap();
            (ran, hit.load(Ordering::SeqCst))
        })
    }

    /// Starts a run of `file` and returns at once; [`Case::report`] reads its report.
    pub fn spawn(&self, file: &Path) -> Owned {
        Owned::spawn(&mut self.command(file))
    }

    /// The report of the last run; panics when there is none.
    #[track_caller]
    pub fn report(&self) -> Report {
        Report::read(&self.path("report.json")).expect("the run wrote no JSON report")
    }
}

impl Ran {
    pub fn code(&self) -> Option<i32> {
        self.output.status.code()
    }

    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.output.stdout).into_owned()
    }

    /// Exit code, stdout and stderr, for an assertion's message.
    pub fn explain(&self) -> String {
        explain(&self.output)
    }

    /// The report; panics, showing the run's output, when it wrote none.
    #[track_caller]
    pub fn report(&self) -> &Report {
        self.report
            .as_ref()
            .unwrap_or_else(|| panic!("the run wrote no JSON report:\n{}", self.explain()))
    }

    /// The report as JSON text, empty when there is none.
    pub fn report_text(&self) -> String {
        self.report
            .as_ref()
            .map(|r| r.json().to_string())
            .unwrap_or_default()
    }
}
