//! The sample service's durability setting, checked from outside with real kills: with
//! `sync` no acknowledged write is lost to SIGKILL; with `flush:DUR` the lost ones are
//! exactly those acknowledged since the last flush tick (the ticks run from the origin the
//! service records in `flush.origin`, so the test can kill mid-cycle and know the truth).

#![allow(clippy::unwrap_used)] // test helpers: a failed setup should panic loudly

mod kit;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use kit::process::{flush_origin, sample_service};
use kit::{free_port, Owned};
use nix::sys::signal::Signal;

/// The sample service on `port` keeping its data in `dir` with `durability`, once it
/// listens.
fn start(port: u16, dir: &Path, durability: &str) -> Owned {
    let mut service = Owned::spawn(
        sample_service(port)
            .args(["--durability", durability, "--data-dir"])
            .arg(dir)
            .stdout(Stdio::piped()),
    );
    let mut line = String::new();
    BufReader::new(service.stdout())
        .read_line(&mut line)
        .unwrap();
    assert!(line.contains("listening"), "{line}");
    service
}

/// One HTTP/1.1 request on its own connection; the status code.
fn request(port: u16, method: &str, path: &str, body: &str) -> Option<(u16, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    let req = format!("{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}", body.len());
    s.write_all(req.as_bytes()).ok()?;
    let mut resp = String::new();
    s.read_to_string(&mut resp).ok()?;
    let status = resp.split_whitespace().nth(1)?.parse().ok()?;
    let body = resp.split("\r\n\r\n").nth(1).unwrap_or("").to_owned();
    Some((status, body))
}

fn unix_ms() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis()
}

/// Write key 0, 1, 2... every `interval` until `kill_at` (unix ms), then SIGKILL; returns,
/// per acknowledged write, how long before the kill it was acknowledged.
fn write_then_kill(
    port: u16,
    service: &mut Owned,
    interval: Duration,
    kill_at: u128,
) -> Vec<Duration> {
    let start = Instant::now();
    let mut acked_at = Vec::new();
    let mut k = 0u32;
    while unix_ms() < kill_at {
        if let Some((200, _)) = request(port, "PUT", &format!("/kv/w-{k}"), &k.to_string()) {
            acked_at.push(start.elapsed());
        } else {
            panic!("write {k} was not acknowledged");
        }
        k += 1;
        let next = start + interval * k;
        if let Some(wait) = next.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
    }
    service.signal(Signal::SIGKILL);
    let killed = start.elapsed();
    service.wait();
    acked_at.iter().map(|t| killed.saturating_sub(*t)).collect()
}

fn surviving(port: u16, n: usize) -> Vec<bool> {
    (0..n)
        .map(|k| {
            matches!(
                request(port, "GET", &format!("/kv/w-{k}"), ""),
                Some((200, _))
            )
        })
        .collect()
}

#[test]
fn sync_loses_no_acknowledged_write() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut child = start(port, dir.path(), "sync");
    let acked = write_then_kill(port, &mut child, Duration::from_millis(5), unix_ms() + 800);
    let again = start(port, dir.path(), "sync");
    let present = surviving(port, acked.len());
    drop(again);
    assert!(
        present.iter().all(|p| *p),
        "lost: {:?}",
        present
            .iter()
            .enumerate()
            .filter(|(_, p)| !**p)
            .map(|(k, _)| k)
            .collect::<Vec<_>>()
    );
}

#[test]
fn flush_loses_exactly_what_was_acknowledged_since_the_last_tick() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let flush: u128 = 300;
    let interval = Duration::from_millis(5);
    let mut child = start(port, dir.path(), "flush:300ms");
    // The first line: the instance about to be killed (a restart appends its own).
    let origin = flush_origin(dir.path());
    // Kill half-way through a cycle, after at least a second of writes.
    let tick = (unix_ms() + 1000 - origin).div_ceil(flush);
    let kill_at = origin + tick * flush + flush / 2;
    let before_kill = write_then_kill(port, &mut child, interval, kill_at);
    let again = start(port, dir.path(), "flush:300ms");
    let present = surviving(port, before_kill.len());
    drop(again);
    let lost: Vec<usize> = present
        .iter()
        .enumerate()
        .filter(|(_, p)| !**p)
        .map(|(k, _)| k)
        .collect();
    // Losses are a suffix: everything before the first lost write survived.
    let first = *lost
        .first()
        .expect("a SIGKILL half-way through a 300 ms flush cycle lost nothing");
    assert_eq!(
        lost,
        (first..before_kill.len()).collect::<Vec<_>>(),
        "lost writes are not the last ones"
    );
    // The truth: acknowledged since the last tick, half a cycle (150 ms) before the kill.
    // Margin: a few writes, and the writer thread's wake-up on a loaded machine.
    let oldest_lost = before_kill[first].as_millis() as i128;
    let half = (flush / 2) as i128;
    assert!(
        (oldest_lost - half).abs() <= 40,
        "oldest lost write acknowledged {oldest_lost} ms before the kill, truth {half} ms"
    );
}
