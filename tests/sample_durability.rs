//! The sample service's durability setting, checked from outside with real kills: with
//! `sync` no acknowledged write is lost to SIGKILL; with `flush:DUR` the lost ones are
//! exactly the last ones acknowledged, within one flush interval (plus one write interval).

#![allow(clippy::unwrap_used)] // test helpers: a failed setup should panic loudly

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::free_port;

fn start(port: u16, dir: &Path, durability: &str) -> Child {
    let mut child = Command::new(env!("CARGO_BIN_EXE_shakeout"))
        .args([
            "sample-service",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--durability",
            durability,
            "--data-dir",
        ])
        .arg(dir)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert!(line.contains("listening"), "{line}");
    child
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

/// Write key 0, 1, 2... every `interval` for `for_`, then SIGKILL; returns (acknowledged
/// count, time of each acknowledgement relative to the kill).
fn write_then_kill(
    port: u16,
    child: &mut Child,
    interval: Duration,
    for_: Duration,
) -> Vec<Duration> {
    let start = Instant::now();
    let mut acked_at = Vec::new();
    let mut k = 0u32;
    while start.elapsed() < for_ {
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
    child.kill().unwrap();
    let killed = start.elapsed();
    child.wait().unwrap();
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
    let acked = write_then_kill(
        port,
        &mut child,
        Duration::from_millis(5),
        Duration::from_millis(800),
    );
    let mut again = start(port, dir.path(), "sync");
    let present = surviving(port, acked.len());
    again.kill().unwrap();
    again.wait().unwrap();
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
fn flush_loses_only_the_last_interval() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let flush = Duration::from_millis(300);
    let interval = Duration::from_millis(5);
    let mut child = start(port, dir.path(), "flush:300ms");
    let before_kill = write_then_kill(port, &mut child, interval, Duration::from_millis(1500));
    let mut again = start(port, dir.path(), "flush:300ms");
    let present = surviving(port, before_kill.len());
    again.kill().unwrap();
    again.wait().unwrap();
    let lost: Vec<usize> = present
        .iter()
        .enumerate()
        .filter(|(_, p)| !**p)
        .map(|(k, _)| k)
        .collect();
    assert!(
        !lost.is_empty(),
        "a SIGKILL with a 300 ms flush lost nothing: the setting does nothing"
    );
    // Losses are a suffix: everything before the first lost write survived.
    let first = lost[0];
    assert_eq!(
        lost,
        (first..before_kill.len()).collect::<Vec<_>>(),
        "lost writes are not the last ones"
    );
    // And they were acknowledged within one flush interval before the kill (plus a few
    // writes and the writer thread's wake-up on a loaded machine).
    let oldest_lost = before_kill[first];
    let margin = (interval * 4).max(Duration::from_millis(50));
    assert!(
        oldest_lost <= flush + margin,
        "lost a write acknowledged {oldest_lost:?} before the kill"
    );
}
