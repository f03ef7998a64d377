//! `exec` faults: run a command as the fault and another as its revert (the Chaos Toolkit
//! action/rollback idea), with exit status and the tail of its output kept for the report.

use std::collections::BTreeMap;
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::process::Command;

use crate::record::ActionRecord as ActionReport;
use crate::text::ms;

/// How much of each output stream a report keeps (the tail).
pub const OUTPUT_TAIL: usize = 4096;

/// Run `argv` to completion (or until `timeout`, then kill it) and describe what happened.
/// Never fails: a command that cannot start is a report with `error` set.
pub async fn run_command(
    argv: &[String],
    env: &BTreeMap<String, String>,
    timeout: Duration,
    origin: Instant,
) -> ActionReport {
    let started = origin.elapsed();
    let mut report = ActionReport {
        command: argv.to_vec(),
        started_ms: ms(started),
        ended_ms: ms(started),
        exit_code: None,
        signal: None,
        success: false,
        stdout: String::new(),
        stderr: String::new(),
        error: None,
    };
    let Some((program, args)) = argv.split_first() else {
        report.error = Some("empty command".into());
        return report;
    };
    let mut cmd = Command::new(program);
    cmd.args(args)
        .envs(env)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Own process group: a Ctrl-C at the terminal must not kill a revert half-way.
        .process_group(0)
        .kill_on_drop(true);
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            report.error = Some(format!("cannot start `{program}`: {e}"));
            report.ended_ms = ms(origin.elapsed());
            return report;
        }
    };
    let out = tokio::spawn(read_tail(child.stdout.take()));
    let err = tokio::spawn(read_tail(child.stderr.take()));
    let status = match tokio::time::timeout(timeout, child.wait()).await {
        Ok(Ok(status)) => Some(status),
        Ok(Err(e)) => {
            report.error = Some(format!("waiting for `{program}`: {e}"));
            None
        }
        Err(_) => {
            let _ = child.kill().await;
            report.error = Some(format!(
                "`{program}` did not finish within {}; killed",
                shakeout_api::Dur(timeout)
            ));
            None
        }
    };
    report.stdout = out.await.unwrap_or_default();
    report.stderr = err.await.unwrap_or_default();
    report.ended_ms = ms(origin.elapsed());
    if let Some(status) = status {
        use std::os::unix::process::ExitStatusExt;
        report.exit_code = status.code();
        report.signal = status.signal();
        report.success = status.success();
    }
    report
}

/// Read a stream to its end, keeping only the last [`OUTPUT_TAIL`] bytes.
async fn read_tail<R: AsyncRead + Unpin>(stream: Option<R>) -> String {
    let Some(mut stream) = stream else {
        return String::new();
    };
    let mut tail: Vec<u8> = Vec::with_capacity(OUTPUT_TAIL);
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                tail.extend_from_slice(&buf[..n]);
                if tail.len() > OUTPUT_TAIL {
                    let cut = tail.len() - OUTPUT_TAIL;
                    tail.drain(..cut);
                }
            }
        }
    }
    String::from_utf8_lossy(&tail).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn captures_status_and_output() {
        let argv: Vec<String> = ["sh", "-c", "echo out; echo err >&2; exit 3"]
            .map(String::from)
            .to_vec();
        let r = run_command(
            &argv,
            &BTreeMap::new(),
            Duration::from_secs(5),
            Instant::now(),
        )
        .await;
        assert_eq!(r.exit_code, Some(3));
        assert!(!r.success);
        assert_eq!(r.stdout, "out\n");
        assert_eq!(r.stderr, "err\n");
    }

    #[tokio::test]
    async fn missing_program_and_timeout_are_reported() {
        let r = run_command(
            &["/nonexistent/prog".into()],
            &BTreeMap::new(),
            Duration::from_secs(5),
            Instant::now(),
        )
        .await;
        assert!(r
            .error
            .as_deref()
            .unwrap_or("")
            .contains("cannot start `/nonexistent/prog`"));
        let argv: Vec<String> = ["sleep", "10"].map(String::from).to_vec();
        let r = run_command(
            &argv,
            &BTreeMap::new(),
            Duration::from_millis(200),
            Instant::now(),
        )
        .await;
        assert!(
            r.error
                .as_deref()
                .unwrap_or("")
                .contains("did not finish within 200ms"),
            "{r:?}"
        );
        assert!(r.ended_ms - r.started_ms < 5_000.0);
    }

    #[tokio::test]
    async fn keeps_only_the_tail_of_long_output() {
        let argv: Vec<String> = ["sh", "-c", "yes x | head -c 100000; echo END"]
            .map(String::from)
            .to_vec();
        let r = run_command(
            &argv,
            &BTreeMap::new(),
            Duration::from_secs(5),
            Instant::now(),
        )
        .await;
        assert_eq!(r.stdout.len(), OUTPUT_TAIL);
        assert!(r.stdout.ends_with("END\n"));
    }
}
