//! Running the tools network faults use (`nft`, `iptables-restore`, `tc`, `ip`), found on
//! PATH or in the sbin directories a service's PATH may lack, in the calling thread's
//! network namespace.

use std::path::PathBuf;
use std::process::{Command, Stdio};

use super::error::NetError;

/// Path of a binary: PATH first, then the sbin directories a service's PATH may lack.
pub(crate) fn tool(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin", "/usr/bin", "/bin"].map(PathBuf::from))
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// Runs a tool to completion in the calling thread's namespace; stdout, or an error
/// carrying the command and its stderr.
pub(crate) fn exec(name: &str, args: &[&str], stdin: Option<&str>) -> Result<String, NetError> {
    Running::spawn(name, args, stdin)?.wait()
}

/// A started tool: several can run at once (one per binary), each awaited with `wait`.
pub(crate) struct Running {
    name: String,
    args: String,
    child: std::process::Child,
}

impl Running {
    /// Starts the tool in the calling thread's namespace and hands it all of `stdin`.
    pub(crate) fn spawn(
        name: &str,
        args: &[&str],
        stdin: Option<&str>,
    ) -> Result<Running, NetError> {
        let bin = tool(name).ok_or_else(|| NetError::Unavailable(format!("`{name}` not found")))?;
        let child = Command::new(&bin)
            .args(args)
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| NetError::Failed(format!("{name}: {e}")))?;
        let mut running = Running {
            name: name.to_string(),
            args: args.join(" "),
            child,
        };
        // Written in full and closed here (dropping the pipe), so the tool sees the end of
        // its input before anyone waits for it; our scripts are far below a pipe buffer.
        if let (Some(text), Some(mut pipe)) = (stdin, running.child.stdin.take()) {
            use std::io::Write;
            if let Err(e) = pipe.write_all(text.as_bytes()) {
                let _ = running.child.kill();
                let _ = running.child.wait();
                return Err(NetError::Failed(format!("{name} stdin: {e}")));
            }
        }
        Ok(running)
    }

    /// Waits for the tool: stdout, or an error carrying the command and its stderr.
    pub(crate) fn wait(self) -> Result<String, NetError> {
        let name = self.name;
        let out = self
            .child
            .wait_with_output()
            .map_err(|e| NetError::Failed(format!("{name}: {e}")))?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(NetError::Failed(format!(
                "{name} {} exited {}: {}",
                self.args,
                out.status.code().unwrap_or(-1),
                String::from_utf8_lossy(&out.stderr).trim()
            )))
        }
    }
}
