//! The real binaries under test and the processes a test starts: each one a test owns is
//! continued, killed and reaped when the test ends, whatever the outcome.

use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Output, Stdio};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

/// The `shakeout` binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_shakeout");

/// A command running the `shakeout` binary under test.
pub fn shakeout() -> Command {
    Command::new(BIN)
}

/// The real agent binary, built beside the controller by `cargo test --workspace`.
pub fn agent_binary() -> PathBuf {
    let bin = std::path::Path::new(BIN).with_file_name("shakeout-agent");
    assert!(
        bin.exists(),
        "{} is missing: run the workspace tests (cargo test --workspace)",
        bin.display()
    );
    bin
}

/// A free port on 127.0.0.1 (bound then released; the service binds it right after).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Whether something accepts TCP connections on 127.0.0.1:`port`.
pub fn listening(port: u16) -> bool {
    std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
}

/// Waits until a service started by the test accepts connections on 127.0.0.1:`port`
/// (10 s at most).
pub fn wait_listening(port: u16) {
    super::wait::wait_for(
        &format!("a service to listen on 127.0.0.1:{port}"),
        std::time::Duration::from_secs(10),
        || listening(port),
    );
}

/// `cmd` (the `shakeout` binary, here or inside a namespace) made the sample service on
/// 127.0.0.1:`port`, its output discarded.
pub fn as_sample_service(mut cmd: Command, port: u16) -> Command {
    cmd.args(["sample-service", "--listen", &format!("127.0.0.1:{port}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    cmd
}

/// `shakeout sample-service` on 127.0.0.1:`port`.
pub fn sample_service(port: u16) -> Command {
    as_sample_service(shakeout(), port)
}

/// The flush origin (unix ms) of the first sample service started on `data_dir` with
/// `--durability flush:DUR`: its flush ticks run from there (each start appends a line
/// to `flush.origin`).
pub fn flush_origin(data_dir: &std::path::Path) -> u128 {
    let text = std::fs::read_to_string(data_dir.join("flush.origin")).unwrap();
    text.lines().next().unwrap().parse().unwrap()
}

/// Process state letter from /proc/PID/stat (`S`, `T`, `Z`...); `None` when it is gone.
pub fn state(pid: u32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name in parentheses may hold anything, `)` included: the state follows
    // the last `)`.
    stat.rfind(')')
        .and_then(|i| stat.get(i + 2..))
        .and_then(|rest| rest.chars().next())
}

/// A child process the test owns. On drop, unless already reaped, it is continued (it
/// may be paused), killed and reaped, so a failed assertion leaves nothing running.
pub struct Owned(Option<Child>);

impl Owned {
    pub fn spawn(cmd: &mut Command) -> Owned {
        Owned(Some(
            cmd.spawn().unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}")),
        ))
    }

    /// A process with nothing to do: something to pause, or to name a namespace by.
    pub fn sleeper() -> Owned {
        Owned::spawn(Command::new("sleep").arg("600"))
    }

    fn child(&mut self) -> &mut Child {
        self.0
            .as_mut()
            .expect("the child is only taken by consuming methods")
    }

    pub fn pid(&self) -> u32 {
        self.0
            .as_ref()
            .expect("the child is only taken by consuming methods")
            .id()
    }

    /// The child's standard output, when it was piped (taken once).
    pub fn stdout(&mut self) -> std::process::ChildStdout {
        self.child().stdout.take().expect("stdout piped, once")
    }

    /// Sends `signal`; the process must still be there.
    pub fn signal(&self, signal: Signal) {
        kill(Pid::from_raw(self.pid() as i32), signal)
            .unwrap_or_else(|e| panic!("{signal} to {}: {e}", self.pid()));
    }

    /// SIGKILL and reap: it dies without a chance to clean up.
    pub fn kill(&mut self) {
        let child = self.child();
        child.kill().unwrap();
        child.wait().unwrap();
    }

    /// Waits for it to end by itself.
    pub fn wait(&mut self) -> ExitStatus {
        self.child().wait().unwrap()
    }

    /// Its exit status if it has ended (reaping it), without waiting.
    pub fn try_wait(&mut self) -> Option<ExitStatus> {
        self.child().try_wait().unwrap()
    }

    /// Waits for it to end by itself and collects what it printed (when piped).
    pub fn wait_with_output(mut self) -> Output {
        let child = self.0.take().expect("taken once");
        child.wait_with_output().unwrap()
    }
}

impl Drop for Owned {
    fn drop(&mut self) {
        let Some(mut child) = self.0.take() else {
            return;
        };
        // A reaped child's pid may belong to someone else by now: signal only a live one.
        if matches!(child.try_wait(), Ok(None)) {
            let _ = kill(Pid::from_raw(child.id() as i32), Signal::SIGCONT);
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// `command`'s output, where its program is a file the test has just written (a copy of
/// a binary, to run it from a directory another user can reach). While the copy was being
/// written, a thread of this test binary may have forked a child that still holds the
/// write descriptor until it calls exec; running the copy then fails with "text file
/// busy" (ETXTBSY). That lasts only until the child's exec, so it is retried.
pub fn output_of_fresh_copy(command: &mut Command) -> Output {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        match command.output() {
            Err(e)
                if e.kind() == std::io::ErrorKind::ExecutableFileBusy
                    && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            result => {
                return result.unwrap_or_else(|e| panic!("running {command:?}: {e}"));
            }
        }
    }
}
