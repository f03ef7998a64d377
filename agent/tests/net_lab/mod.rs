//! A two-namespace lab for the privileged network tests: client ns ↔ veth ↔ server ns,
//! 10.200.N.1/30 ↔ 10.200.N.2/30, echo and counting servers, all deleted on drop.
//! Traffic never leaves these namespaces.
#![allow(dead_code, clippy::unwrap_used)]

use std::fs::File;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::sched::{setns, CloneFlags};
use shakeout_api::NetNamespace;

static NEXT: AtomicU32 = AtomicU32::new(0);

pub struct Lab {
    pub client: String,
    pub server: String,
    pub client_ip: Ipv4Addr,
    pub server_ip: Ipv4Addr,
    sleeper: Child,
    stop: Arc<AtomicBool>,
}

/// Root or skip; but in CI a privileged test never skips silently.
pub fn root_or_skip(test: &str) -> bool {
    use std::os::unix::fs::MetadataExt;
    // /proc/self belongs to the effective uid.
    if std::fs::metadata("/proc/self").map(|m| m.uid()).ok() == Some(0) {
        return true;
    }
    if std::env::var_os("CI").is_some() {
        panic!("{test}: needs root (network namespaces), and CI is set: privileged tests must run in CI");
    }
    eprintln!("skipping {test}: needs root (network namespaces)");
    false
}

fn ip(args: &[&str]) -> String {
    let out = Command::new("ip").args(args).output().expect("run ip");
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

impl Lab {
    pub fn new(test: &str) -> Option<Lab> {
        if !root_or_skip(test) {
            return None;
        }
        let n = NEXT.fetch_add(1, Ordering::SeqCst);
        let tag = format!("so-{}-{n}", std::process::id());
        let (client, server) = (format!("{tag}-c"), format!("{tag}-s"));
        let octet = (std::process::id() + n) % 250;
        let client_ip = Ipv4Addr::new(10, 200, octet as u8, 1);
        let server_ip = Ipv4Addr::new(10, 200, octet as u8, 2);
        ip(&["netns", "add", &client]);
        ip(&["netns", "add", &server]);
        // From here on, Drop cleans up even if a later step panics.
        let mut lab = Lab {
            client: client.clone(),
            server: server.clone(),
            client_ip,
            server_ip,
            sleeper: Command::new("true").spawn().unwrap(),
            stop: Arc::new(AtomicBool::new(false)),
        };
        let (vc, vs) = (
            format!("v{n}c{}", std::process::id() % 100000),
            format!("v{n}s{}", std::process::id() % 100000),
        );
        ip(&[
            "link", "add", &vc, "netns", &client, "type", "veth", "peer", "name", &vs, "netns",
            &server,
        ]);
        for (ns, dev, addr) in [(&client, &vc, client_ip), (&server, &vs, server_ip)] {
            ip(&["-n", ns, "addr", "add", &format!("{addr}/30"), "dev", dev]);
            ip(&["-n", ns, "link", "set", dev, "up"]);
            ip(&["-n", ns, "link", "set", "lo", "up"]);
        }
        let _ = lab.sleeper.wait();
        // A process in the client namespace: faults target it as `Pid`. `ip netns exec`
        // execs `sleep` itself, so the child's pid is the sleeper's.
        lab.sleeper = Command::new("ip")
            .args(["netns", "exec", &client, "sleep", "300"])
            .stdin(Stdio::null())
            .spawn()
            .unwrap();
        let path = format!("/proc/{}/ns/net", lab.sleeper.id());
        let want = std::fs::metadata(format!("/run/netns/{client}")).unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        use std::os::unix::fs::MetadataExt;
        while std::fs::metadata(&path).map(|m| m.ino()).ok() != Some(want.ino()) {
            assert!(Instant::now() < deadline, "sleeper never entered {client}");
            std::thread::sleep(Duration::from_millis(2));
        }
        Some(lab)
    }

    /// The client namespace, as a fault spec names it.
    pub fn ns(&self) -> NetNamespace {
        NetNamespace::Pid(self.sleeper.id())
    }

    /// Runs `f` on a thread inside namespace `ns` (sockets made there stay there).
    pub fn in_ns<R: Send + 'static>(&self, ns: &str, f: impl FnOnce() -> R + Send + 'static) -> R {
        let file = File::open(format!("/run/netns/{ns}")).unwrap();
        std::thread::spawn(move || {
            setns(&file, CloneFlags::CLONE_NEWNET).unwrap();
            f()
        })
        .join()
        .unwrap()
    }

    /// A command's stdout, run inside the namespace.
    pub fn sh(&self, ns: &str, args: &[&str]) -> String {
        let mut all = vec!["netns", "exec", ns];
        all.extend(args);
        ip(&all)
    }

    /// TCP echo server in the server namespace.
    pub fn tcp_echo(&self) -> SocketAddr {
        let ip = self.server_ip;
        let listener = self.in_ns(&self.server, move || TcpListener::bind((ip, 0)).unwrap());
        let addr = listener.local_addr().unwrap();
        listener.set_nonblocking(true).unwrap();
        let stop = self.stop.clone();
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((mut conn, _)) => {
                        let stop = stop.clone();
                        std::thread::spawn(move || {
                            conn.set_nodelay(true).unwrap();
                            conn.set_read_timeout(Some(Duration::from_millis(50)))
                                .unwrap();
                            let mut buf = [0u8; 512];
                            while !stop.load(Ordering::Relaxed) {
                                match conn.read(&mut buf) {
                                    Ok(0) => break,
                                    Ok(k) => {
                                        if conn.write_all(&buf[..k]).is_err() {
                                            break;
                                        }
                                    }
                                    Err(e)
                                        if e.kind() == std::io::ErrorKind::WouldBlock
                                            || e.kind() == std::io::ErrorKind::TimedOut => {}
                                    Err(_) => break,
                                }
                            }
                        });
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        addr
    }

    /// A TCP connection from the client namespace.
    pub fn connect(&self, to: SocketAddr) -> TcpStream {
        let s = self.in_ns(&self.client, move || {
            TcpStream::connect_timeout(&to, Duration::from_secs(2)).unwrap()
        });
        s.set_nodelay(true).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        s
    }

    /// UDP sink in the server namespace that counts datagrams.
    pub fn udp_sink(&self) -> (SocketAddr, Arc<AtomicU64>) {
        let ip = self.server_ip;
        let sock = self.in_ns(&self.server, move || UdpSocket::bind((ip, 0)).unwrap());
        sock.set_read_timeout(Some(Duration::from_millis(20)))
            .unwrap();
        let addr = sock.local_addr().unwrap();
        let count = Arc::new(AtomicU64::new(0));
        let (c, stop) = (count.clone(), self.stop.clone());
        std::thread::spawn(move || {
            let mut buf = [0u8; 64];
            while !stop.load(Ordering::Relaxed) {
                if sock.recv(&mut buf).is_ok() {
                    c.fetch_add(1, Ordering::Relaxed);
                }
            }
        });
        (addr, count)
    }

    /// Sends `n` datagrams from the client namespace, paced so the sink keeps up, and
    /// returns how many arrived (waiting until the count is quiet for 200 ms).
    pub fn udp_burst(&self, to: SocketAddr, counter: &AtomicU64, n: u64) -> u64 {
        let before = counter.load(Ordering::SeqCst);
        let sock = self.in_ns(&self.client, || UdpSocket::bind("0.0.0.0:0").unwrap());
        for i in 0..n {
            // A local drop in OUTPUT fails the send with EPERM: that is the fault working.
            let _ = sock.send_to(&i.to_be_bytes(), to);
            if i % 32 == 31 {
                std::thread::sleep(Duration::from_micros(500));
            }
        }
        let mut last = (counter.load(Ordering::SeqCst), Instant::now());
        let deadline = Instant::now() + Duration::from_secs(5);
        while last.1.elapsed() < Duration::from_millis(200) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
            let now = counter.load(Ordering::SeqCst);
            if now != last.0 {
                last = (now, Instant::now());
            }
        }
        counter.load(Ordering::SeqCst) - before
    }
}

/// Median round trip (ms) of `n` one-byte echoes.
pub fn rtt_median_ms(s: &mut TcpStream, n: usize) -> f64 {
    let mut v: Vec<f64> = (0..n)
        .map(|_| {
            let t = Instant::now();
            s.write_all(b"x").unwrap();
            let mut b = [0u8; 1];
            s.read_exact(&mut b).unwrap();
            t.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    v.sort_by(f64::total_cmp);
    v[n / 2]
}

impl Drop for Lab {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = self.sleeper.kill();
        let _ = self.sleeper.wait();
        for ns in [&self.client, &self.server] {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}
