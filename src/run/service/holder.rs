//! Who holds a listening TCP port, best effort, for the message that refuses to start a
//! service whose address already answers: `/proc/net/tcp{,6}` give the listening
//! socket's inode, `/proc/PID/fd` links name the process that has it open. Seeing other
//! users' descriptors needs root; without it the holder is simply not named.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::Path;

/// `TCP_LISTEN` in the kernel's socket states.
const LISTEN: u8 = 0x0A;

/// A process holding a listening socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    pub pid: u32,
    /// Its command name (`/proc/PID/comm`).
    pub name: String,
}

impl std::fmt::Display for Holder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "pid {} `{}`", self.pid, self.name)
    }
}

/// The process listening where a connection to `addr` lands (its exact address, or a
/// wildcard on its port), if it can be seen. Reads `/proc`: call it off the runtime.
pub fn holder(addr: SocketAddr) -> Option<Holder> {
    let mut inodes = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(table) else {
            continue;
        };
        inodes.extend(
            text.lines()
                .skip(1)
                .filter_map(parse_line)
                .filter(|(local, state, _)| *state == LISTEN && reaches(*local, addr))
                .map(|(_, _, inode)| inode),
        );
    }
    inodes.retain(|i| *i != 0);
    if inodes.is_empty() {
        return None;
    }
    owner(Path::new("/proc"), &inodes)
}

/// Whether a connection to `to` is accepted by a socket listening on `local`.
fn reaches(local: SocketAddr, to: SocketAddr) -> bool {
    local.port() == to.port()
        && (local.ip().is_unspecified() || local.ip().to_canonical() == to.ip().to_canonical())
}

/// One row of `/proc/net/tcp` or `tcp6`: local address, state, socket inode.
fn parse_line(line: &str) -> Option<(SocketAddr, u8, u64)> {
    let fields: Vec<&str> = line.split_whitespace().collect();
    let (local, state, inode) = (fields.get(1)?, fields.get(3)?, fields.get(9)?);
    let (ip, port) = local.split_once(':')?;
    let port = u16::from_str_radix(port, 16).ok()?;
    // The kernel prints the address as 32-bit words in host byte order.
    let words: Vec<u32> = (0..ip.len() / 8)
        .map(|i| u32::from_str_radix(ip.get(i * 8..i * 8 + 8)?, 16).ok())
        .collect::<Option<_>>()?;
    let bytes: Vec<u8> = words.iter().flat_map(|w| w.to_ne_bytes()).collect();
    let ip = match bytes.len() {
        4 => IpAddr::V4(Ipv4Addr::from(<[u8; 4]>::try_from(bytes).ok()?)),
        16 => IpAddr::V6(Ipv6Addr::from(<[u8; 16]>::try_from(bytes).ok()?)),
        _ => return None,
    };
    Some((
        SocketAddr::new(ip, port),
        u8::from_str_radix(state, 16).ok()?,
        inode.parse().ok()?,
    ))
}

/// The first process (lowest pid, usually the parent of forked workers) with one of the
/// sockets open.
fn owner(proc: &Path, inodes: &[u64]) -> Option<Holder> {
    let wanted: Vec<String> = inodes.iter().map(|i| format!("socket:[{i}]")).collect();
    let mut pids: Vec<u32> = std::fs::read_dir(proc)
        .ok()?
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .collect();
    pids.sort_unstable();
    pids.into_iter().find_map(|pid| {
        let dir = proc.join(pid.to_string());
        let holds = std::fs::read_dir(dir.join("fd"))
            .ok()?
            .flatten()
            .filter_map(|fd| std::fs::read_link(fd.path()).ok())
            .any(|link| wanted.iter().any(|w| link.as_os_str() == w.as_str()));
        holds.then(|| Holder {
            pid,
            name: std::fs::read_to_string(dir.join("comm"))
                .map(|c| c.trim_end().to_owned())
                .unwrap_or_else(|_| "?".into()),
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_both_tables() {
        // 127.0.0.1:8080 listening, as x86 prints it; and [::]:443.
        let v4 = "   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 4242 1 0000000000000000 100 0 0 10 0";
        let (addr, state, inode) = parse_line(v4).unwrap();
        if cfg!(target_endian = "little") {
            assert_eq!(addr, "127.0.0.1:8080".parse().unwrap());
        }
        assert_eq!((state, inode), (LISTEN, 4242));
        let v6 = "   1: 00000000000000000000000000000000:01BB 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 77 1 0000000000000000 100 0 0 10 0";
        let (addr, _, inode) = parse_line(v6).unwrap();
        assert_eq!(addr, "[::]:443".parse().unwrap());
        assert_eq!(inode, 77);
        assert_eq!(parse_line("  sl  local_address rem_address   st"), None);
    }

    #[test]
    fn wildcards_and_mapped_addresses_reach() {
        let to: SocketAddr = "127.0.0.1:80".parse().unwrap();
        for local in [
            "127.0.0.1:80",
            "0.0.0.0:80",
            "[::]:80",
            "[::ffff:127.0.0.1]:80",
        ] {
            assert!(reaches(local.parse().unwrap(), to), "{local}");
        }
        for local in ["127.0.0.2:80", "127.0.0.1:81", "[::1]:80"] {
            assert!(!reaches(local.parse().unwrap(), to), "{local}");
        }
    }

    #[test]
    fn names_this_process_as_the_holder_of_its_listener() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let found = holder(listener.local_addr().unwrap()).unwrap();
        assert_eq!(found.pid, std::process::id());
        let comm = std::fs::read_to_string("/proc/self/comm").unwrap();
        assert_eq!(found.name, comm.trim_end());
        drop(listener);
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = closed.local_addr().unwrap();
        drop(closed);
        assert_eq!(holder(addr), None);
    }
}
