//! After the run: read every write back at a bounded rate within a bounded time,
//! classify what was found ([`super::verify`]), then delete the run's keys unless told
//! to keep them. A backend that does not answer in time makes the result "not measured",
//! never a guess.

use std::time::{Duration, Instant};

use super::http::{key_present, Read};
use super::redis::PAGE;
use super::seqset::SeqSet;
use super::verify::{classify, Scan};
use super::{Backend, Conn, WriteTarget};
use super::{LossWindowReport, ReadBackReport, WriteReport};
use crate::experiment::template::seq_of;
use crate::text::ms;

/// Pause before retrying a read the backend failed (it may still be restarting).
const RETRY_PAUSE: Duration = Duration::from_millis(100);

/// Requests at most `rate` per second, none after the deadline.
struct Pacer {
    start: Instant,
    rate: f64,
    sent: u64,
    deadline: Instant,
}

impl Pacer {
    fn new(rate: f64, budget: Duration) -> Self {
        let start = Instant::now();
        Pacer {
            start,
            rate: rate.max(1e-3),
            sent: 0,
            deadline: start + budget,
        }
    }

    /// Wait for the next request's turn; false when it would fall past the deadline.
    async fn next(&mut self) -> bool {
        let due = self.start + Duration::from_secs_f64(self.sent as f64 / self.rate);
        if due >= self.deadline || Instant::now() >= self.deadline {
            return false;
        }
        tokio::time::sleep_until(due.into()).await;
        self.sent += 1;
        true
    }

    /// Deadline of one request: the write timeout (at least 1s), within the budget.
    fn request_deadline(&self, timeout: Duration) -> Instant {
        (Instant::now() + timeout.max(Duration::from_secs(1))).min(self.deadline)
    }

    async fn pause(&self) {
        let until = (Instant::now() + RETRY_PAUSE).min(self.deadline);
        tokio::time::sleep_until(until.into()).await;
    }
}

/// Read writes `0..scheduled` back. `Err` says why the scan is incomplete.
async fn scan(target: &WriteTarget, scheduled: u64, pacer: &mut Pacer) -> Result<Scan, String> {
    let run = &*target.run;
    let mut scan = Scan::new(scheduled);
    let mut conn = target.backend.conn();
    let mut last_error: Option<String> = None;
    let timed_out = |pacer: &Pacer, done: String, last: &Option<String>| {
        let cause = last
            .as_deref()
            .map_or("the backend did not answer in time".to_owned(), |e| {
                format!("last error: {e}")
            });
        format!(
            "read-back timed out after {:?}: {done}; {cause}",
            pacer.deadline - pacer.start
        )
    };
    if !target.reads_a_log() {
        for seq in 0..scheduled {
            loop {
                if !pacer.next().await {
                    let done = format!("{seq} of {scheduled} keys read");
                    return Err(timed_out(pacer, done, &last_error));
                }
                let deadline = pacer.request_deadline(target.timeout);
                let found = match (&*target.backend, &mut conn) {
                    (Backend::Http(h), Conn::Http(c)) => match &h.read {
                        Read::Key(t) => match c.send(t, run, seq, deadline).await {
                            Ok((status, body)) => key_present(seq, status, &body),
                            Err(outcome) => Err(outcome.as_str().to_owned()),
                        },
                        Read::List(_) => Err("not a per-key read".into()),
                    },
                    (Backend::Redis(r), Conn::Redis(slot)) => {
                        r.read_key(slot, run, seq, deadline).await
                    }
                    _ => Err("connection of another backend".into()),
                };
                match found {
                    Ok(present) => {
                        if present {
                            scan.found(seq);
                        }
                        break;
                    }
                    Err(e) => {
                        last_error = Some(e);
                        pacer.pause().await;
                    }
                }
            }
        }
        return Ok(scan);
    }
    let mut cursor = match &*target.backend {
        Backend::Redis(r) => Some(r.first_page()),
        Backend::Http(_) => None,
    };
    let mut pages = 0u64;
    loop {
        if !pacer.next().await {
            let done = format!("{pages} pages read");
            return Err(timed_out(pacer, done, &last_error));
        }
        let deadline = pacer.request_deadline(target.timeout);
        let page: Result<Option<Vec<String>>, String> = match (&*target.backend, &mut conn) {
            (Backend::Http(h), Conn::Http(c)) => match &h.read {
                Read::List(t) => match c.send(t, run, 0, deadline).await {
                    Ok((status, body)) if status.is_success() => {
                        let text = String::from_utf8_lossy(&body);
                        Ok(Some(text.lines().map(str::to_owned).collect()))
                    }
                    Ok((status, _)) => Err(format!("status {status}")),
                    Err(outcome) => Err(outcome.as_str().to_owned()),
                },
                Read::Key(_) => Err("not a list read".into()),
            },
            (Backend::Redis(r), Conn::Redis(slot)) => match cursor.as_mut() {
                Some(c) => r.read_page(slot, run, c, deadline).await,
                None => Ok(None),
            },
            _ => Err("connection of another backend".into()),
        };
        match page {
            Ok(Some(entries)) => {
                pages += 1;
                for e in &entries {
                    if let Some(seq) = seq_of(e, run) {
                        scan.stored(seq);
                    }
                }
                // HTTP lists come in one response; Redis pages until a short one.
                let more = cursor.is_some() && entries.len() as u64 >= PAGE;
                if !more {
                    return Ok(scan);
                }
            }
            Ok(None) => return Ok(scan),
            Err(e) => {
                last_error = Some(e);
                pacer.pause().await;
            }
        }
    }
}

/// Delete the run's keys within the same bounds as the read-back.
async fn cleanup(target: &WriteTarget, scheduled: u64) -> Result<(), String> {
    let run = &*target.run;
    let mut pacer = Pacer::new(target.read_rate, target.read_timeout);
    let mut conn = target.backend.conn();
    let mut failed = 0u64;
    let mut last_error = None;
    match (&*target.backend, &mut conn) {
        (Backend::Http(h), Conn::Http(c)) => {
            let Some(delete) = &h.delete else {
                return Ok(());
            };
            let seqs = if h.delete_per_key { scheduled } else { 1 };
            for seq in 0..seqs {
                if !pacer.next().await {
                    return Err(format!(
                        "cleanup timed out after {:?}: {seq} of {seqs} deletes sent",
                        target.read_timeout
                    ));
                }
                let deadline = pacer.request_deadline(target.timeout);
                match c.send(delete, run, seq, deadline).await {
                    Ok((status, _)) if status.is_success() || status.as_u16() == 404 => {}
                    Ok((status, _)) => {
                        failed += 1;
                        last_error = Some(format!("status {status}"));
                    }
                    Err(outcome) => {
                        failed += 1;
                        last_error = Some(outcome.as_str().to_owned());
                    }
                }
            }
        }
        (Backend::Redis(r), Conn::Redis(slot)) => {
            let pages = if target.reads_a_log() {
                1
            } else {
                scheduled.div_ceil(PAGE)
            };
            for page in 0..pages {
                if !pacer.next().await {
                    return Err(format!(
                        "cleanup timed out after {:?}: {page} of {pages} deletes sent",
                        target.read_timeout
                    ));
                }
                let deadline = pacer.request_deadline(target.timeout);
                let (from, to) = (page * PAGE, ((page + 1) * PAGE).min(scheduled));
                if let Err(e) = r.delete(slot, run, from, to, deadline).await {
                    failed += 1;
                    last_error = Some(e);
                }
            }
        }
        _ => return Err("connection of another backend".into()),
    }
    match last_error {
        None => Ok(()),
        Some(e) => Err(format!("{failed} deletes failed; last error: {e}")),
    }
}

/// Read back, classify, clean up: the write probe's part of the report. `skip` says why
/// the read-back does not run at all (an interrupted run); the cleanup still does.
pub async fn verify(
    target: &WriteTarget,
    acks: &SeqSet,
    scheduled: u64,
    rate: f64,
    skip: Option<String>,
) -> WriteReport {
    let mut pacer = Pacer::new(target.read_rate, target.read_timeout);
    let result = match skip {
        Some(why) => Err(why),
        None => scan(target, scheduled, &mut pacer).await,
    };
    let read_back = ReadBackReport {
        duration_ms: ms(pacer.start.elapsed()),
        reads: pacer.sent,
        error: result.as_ref().err().cloned(),
    };
    let no_delete = matches!(&*target.backend, Backend::Http(h) if h.delete.is_none());
    let keys_kept = target.keep || no_delete;
    let cleanup_error = if keys_kept {
        None
    } else {
        cleanup(target, scheduled).await.err()
    };
    let mut report = WriteReport {
        run_id: target.run.to_string(),
        backend: target.backend_kind().into(),
        mode: target.mode().into(),
        scheduled,
        acknowledged: acks.iter().filter(|k| *k < scheduled).count() as u64,
        lost: None,
        unacknowledged_present: None,
        duplicated: None,
        out_of_order: None,
        loss_window: None,
        read_back,
        keys_kept,
        cleanup_error,
    };
    if let Ok(scan) = result {
        let f = classify(acks, &scan);
        report.lost = Some(f.lost);
        report.unacknowledged_present = Some(f.unacknowledged_present);
        if target.reads_a_log() {
            report.duplicated = Some(f.duplicated);
            report.out_of_order = Some(f.out_of_order);
        }
        report.loss_window = f.loss_window.map(|w| LossWindowReport {
            start_ms: ms(w.start(rate)),
            end_ms: ms(w.end(rate)),
            duration_ms: ms(w.duration(rate)),
        });
    }
    report
}
