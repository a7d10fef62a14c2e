//! Listening TCP sockets of a gateway process: its socket inodes (from /proc/<pid>/fd)
//! joined with the LISTEN rows of /proc/<pid>/net/tcp and tcp6 (the process's own network
//! namespace). Bound to 0.0.0.0 or :: is a finding; loopback is fine.

use std::fs;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use serde::Serialize;

use super::procs::ProcInfo;
use super::{Finding, Severity};

/// One listening socket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Listener {
    pub addr: IpAddr,
    pub port: u16,
    pub inode: u64,
}

/// TCP_LISTEN in include/net/tcp_states.h.
const TCP_LISTEN: &str = "0A";

/// An address as /proc/net/tcp{,6} prints it: the in-memory (network order) bytes of each
/// 32-bit word printed as a host-order integer, `%08X` per word.
fn parse_hex_addr(hex: &str) -> Option<IpAddr> {
    let word = |i: usize| -> Option<[u8; 4]> {
        let w = u32::from_str_radix(hex.get(i * 8..i * 8 + 8)?, 16).ok()?;
        Some(w.to_ne_bytes())
    };
    match hex.len() {
        8 => Some(IpAddr::V4(Ipv4Addr::from(word(0)?))),
        32 => {
            let mut b = [0u8; 16];
            for i in 0..4 {
                b[i * 4..i * 4 + 4].copy_from_slice(&word(i)?);
            }
            let v6 = Ipv6Addr::from(b);
            Some(IpAddr::V6(v6))
        }
        _ => None,
    }
}

/// The LISTEN rows of a /proc/net/tcp or tcp6 table (proc_net_tcp(5)).
pub fn parse_proc_net_tcp(text: &str) -> Vec<Listener> {
    text.lines()
        .skip(1)
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.get(3) != Some(&TCP_LISTEN) {
                return None;
            }
            let (addr, port) = f.get(1)?.split_once(':')?;
            Some(Listener {
                addr: parse_hex_addr(addr)?,
                port: u16::from_str_radix(port, 16).ok()?,
                inode: f.get(9)?.parse().ok()?,
            })
        })
        .collect()
}

/// Socket inodes held by a process (`socket:[N]` links under /proc/<pid>/fd).
pub fn socket_inodes(pid: i32) -> Vec<u64> {
    let Ok(dir) = fs::read_dir(format!("/proc/{pid}/fd")) else {
        return Vec::new();
    };
    dir.filter_map(|e| {
        let link = fs::read_link(e.ok()?.path()).ok()?;
        let s = link.to_str()?;
        s.strip_prefix("socket:[")?.strip_suffix(']')?.parse().ok()
    })
    .collect()
}

/// The process's listening TCP sockets.
pub fn listeners_of(pid: i32) -> Vec<Listener> {
    let inodes = socket_inodes(pid);
    ["tcp", "tcp6"]
        .iter()
        .filter_map(|t| fs::read_to_string(format!("/proc/{pid}/net/{t}")).ok())
        .flat_map(|text| parse_proc_net_tcp(&text))
        .filter(|l| inodes.contains(&l.inode))
        .collect()
}

/// How exposed a bound address is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exposure {
    Loopback,
    AllInterfaces,
    Specific,
}

pub fn classify(addr: &IpAddr) -> Exposure {
    let addr = match addr {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(*v6), IpAddr::V4),
        v4 => *v4,
    };
    if addr.is_unspecified() {
        Exposure::AllInterfaces
    } else if addr.is_loopback() {
        Exposure::Loopback
    } else {
        Exposure::Specific
    }
}

/// One finding per listening socket.
pub fn check_listeners(p: &ProcInfo) -> Vec<Finding> {
    listeners_of(p.pid)
        .into_iter()
        .map(|l| listener_finding(p, &l))
        .collect()
}

fn listener_finding(p: &ProcInfo, l: &Listener) -> Finding {
    let subject = format!("pid {} ({}) tcp {}", p.pid, p.comm, fmt_addr(l));
    match classify(&l.addr) {
        Exposure::AllInterfaces => Finding::new(
            "listen-all-interfaces",
            Severity::High,
            subject,
            "listens on every interface: anyone who can reach this host can talk to the gateway",
            "bind to 127.0.0.1 (OpenClaw: gateway.bind = \"loopback\") and reach it through an SSH tunnel or a reverse proxy with authentication",
        ),
        Exposure::Specific => Finding::new(
            "listen-specific-address",
            Severity::Low,
            subject,
            "listens on a non-loopback address: reachable from that network",
            "bind to 127.0.0.1 unless this address is a private, firewalled interface",
        ),
        Exposure::Loopback => Finding::new(
            "listen-loopback",
            Severity::Info,
            subject,
            "listens on loopback only",
            "none",
        ),
    }
}

fn fmt_addr(l: &Listener) -> String {
    match l.addr {
        IpAddr::V6(a) => format!("[{a}]:{}", l.port),
        IpAddr::V4(a) => format!("{a}:{}", l.port),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TCP: &str = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:4965 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 12345 1 0000000000000000 100 0 0 10 0
   1: 00000000:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 12346 1 0000000000000000 100 0 0 10 0
   2: 0100007F:4965 0100007F:D2F0 01 00000000:00000000 00:00000000 00000000     0        0 12347 1 0000000000000000 20 4 30 10 -1
";

    const TCP6: &str = "  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000000000000000000000000000:0050 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 222 1 0000000000000000 100 0 0 10 0
   1: 00000000000000000000000001000000:0051 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 223 1 0000000000000000 100 0 0 10 0
";

    #[test]
    fn ipv4_listeners_are_parsed_and_connections_skipped() {
        let v = parse_proc_net_tcp(TCP);
        assert_eq!(v.len(), 2);
        assert_eq!(v[0].addr, IpAddr::V4(Ipv4Addr::LOCALHOST));
        assert_eq!(v[0].port, 18789);
        assert_eq!(v[0].inode, 12345);
        assert_eq!(v[1].addr, IpAddr::V4(Ipv4Addr::UNSPECIFIED));
        assert_eq!(v[1].port, 8080);
    }

    #[test]
    fn ipv6_listeners_are_parsed() {
        let v = parse_proc_net_tcp(TCP6);
        assert_eq!(v[0].addr, IpAddr::V6(Ipv6Addr::UNSPECIFIED));
        assert_eq!(v[0].port, 80);
        assert_eq!(v[1].addr, IpAddr::V6(Ipv6Addr::LOCALHOST));
    }

    #[test]
    fn exposure_classes() {
        assert_eq!(
            classify(&"0.0.0.0".parse().unwrap()),
            Exposure::AllInterfaces
        );
        assert_eq!(classify(&"::".parse().unwrap()), Exposure::AllInterfaces);
        assert_eq!(classify(&"127.0.0.1".parse().unwrap()), Exposure::Loopback);
        assert_eq!(
            classify(&"::ffff:127.0.0.1".parse().unwrap()),
            Exposure::Loopback
        );
        assert_eq!(classify(&"10.0.0.5".parse().unwrap()), Exposure::Specific);
    }
}
