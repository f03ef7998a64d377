//! Using shakeout as a library, e.g. from a cargo test of your own service: parse an
//! experiment, run it in-process, and act on its verdicts. Here the "service" is a TCP
//! listener this program opens itself and closes half-way, so the report shows an outage.
//!
//! `cargo run --example embed`

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use shakeout::progress::Quiet;
use shakeout::report::{RunStatus, VerdictStatus};
use tokio_util::sync::CancellationToken;

fn main() -> anyhow::Result<()> {
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        // Accept for 1.5 s, then close the listener: connects are refused from then on.
        let service = tokio::spawn(async move {
            let deadline = tokio::time::sleep(Duration::from_millis(1500));
            tokio::pin!(deadline);
            loop {
                tokio::select! {
                    _ = &mut deadline => break,
                    accepted = listener.accept() => drop(accepted),
                }
            }
        });
        let yaml = format!(
            r#"
apiVersion: shakeout/v1
kind: Experiment
metadata: {{ name: embedded }}
spec:
  duration: 3s
  probes:
    - name: port
      tcp: {{ address: "{addr}", timeout: 200ms }}
      rate: 100/s
  objectives:
    availability: {{ during: run, min: 90% }}
"#
        );
        let exp = shakeout::experiment::parse(
            &yaml,
            Path::new("embedded.yaml"),
            &shakeout::experiment::Vars::new(),
        )?;
        let report =
            shakeout::run::execute(&exp, Some(7), Arc::new(Quiet), CancellationToken::new()).await;
        service.await?;
        for v in &report.verdicts {
            println!(
                "{:<12} {}: measured {:?}, required {}",
                v.status.as_str(),
                v.id,
                v.measured,
                v.required
            );
        }
        // About half the run had nothing listening, so the 90 % objective fails.
        assert_eq!(report.run.status, RunStatus::Failed);
        assert!(report
            .verdicts
            .iter()
            .any(|v| v.status == VerdictStatus::Fail));
        println!(
            "status: {} (exit {})",
            report.run.status.as_str(),
            report.run.exit_code
        );
        Ok(())
    })
}
