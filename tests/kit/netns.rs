//! A network namespace of the test's own (`ip netns add`), deleted on drop: traffic and
//! rules stay inside it, so privileged tests never touch the host's network.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::process::{as_sample_service, Owned, BIN};

/// A named network namespace with its loopback up.
pub struct Netns(pub String);

impl Netns {
    /// `so-TAG-PID`, made fresh (a leftover of the same name is deleted first).
    pub fn new(tag: &str) -> Self {
        let name = format!("so-{tag}-{}", std::process::id());
        let _ = Command::new("ip")
            .args(["netns", "del", &name])
            .stderr(Stdio::null())
            .status();
        assert!(Command::new("ip")
            .args(["netns", "add", &name])
            .status()
            .unwrap()
            .success());
        assert!(Command::new("ip")
            .args(["netns", "exec", &name, "ip", "link", "set", "lo", "up"])
            .status()
            .unwrap()
            .success());
        Netns(name)
    }

    /// A command that runs `program` inside the namespace.
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.0]).arg(program);
        c
    }

    /// A process living in the namespace: it names the namespace for an agent (`pid`).
    pub fn holder(&self) -> Owned {
        Owned::spawn(self.command("sleep").arg("600"))
    }

    /// The sample service on 127.0.0.1:`port` inside the namespace.
    pub fn sample_service(&self, port: u16) -> Command {
        as_sample_service(self.command(BIN), port)
    }

    /// Whether our nft table exists in the namespace.
    pub fn has_shakeout_table(&self) -> bool {
        has_shakeout_table(self.command("nft"))
    }

    /// `nft list tables` in the namespace.
    pub fn nft_tables(&self) -> String {
        let out = self
            .command("nft")
            .args(["list", "tables"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Whether any iptables rule or chain of ours exists in the namespace (v4 and v6).
    pub fn has_shakeout_iptables_rule(&self) -> bool {
        ["iptables", "ip6tables"].iter().any(|tool| {
            let out = self.command(tool).arg("-S").output().unwrap();
            let text = String::from_utf8_lossy(&out.stdout);
            text.contains("shakeout") || text.contains("SHAKEOUT")
        })
    }

    /// Anything of ours in the namespace: the nft table or an iptables rule.
    pub fn has_any_fault(&self) -> bool {
        self.has_shakeout_table() || self.has_shakeout_iptables_rule()
    }

    /// Whether a TCP connect to 127.0.0.1:port inside the namespace succeeds.
    pub fn connects(&self, port: u16) -> bool {
        self.command("bash")
            .args(["-c", &format!("exec 3<>/dev/tcp/127.0.0.1/{port}")])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }

    /// How long a TCP connect to 127.0.0.1:port inside the namespace takes (bash's /dev/tcp).
    pub fn connect_time(&self, port: u16) -> Duration {
        let started = Instant::now();
        let status = self
            .command("timeout")
            .args(["10", "bash", "-c"])
            .arg(format!("exec 3<>/dev/tcp/127.0.0.1/{port}"))
            .status()
            .unwrap();
        assert!(status.success(), "connect to {port} in {} failed", self.0);
        started.elapsed()
    }
}

/// Whether `nft` (here or inside a namespace) lists our table.
fn has_shakeout_table(mut nft: Command) -> bool {
    nft.args(["list", "table", "inet", "shakeout"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Whether our nft table exists in the test's own (host) namespace.
pub fn host_has_shakeout_table() -> bool {
    has_shakeout_table(Command::new("nft"))
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}
