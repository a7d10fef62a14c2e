//! Egress attempts for `verify` (issue 13): a TCP connection that must be answered, a UDP
//! datagram that must be answered, a name looked up with a plain DNS query. Confined, they
//! run under `clawjail run` inside the target's network namespace, where the broker
//! captures every destination; the CONTROL (`egress-control`) runs the same attempt in a
//! fresh network namespace holding only `lo` with AnyIP, where the probe itself listens
//! on the destination: it shows the attempt reaches a listener when nothing is in the way,
//! and nothing ever leaves the machine (the namespace has no other interface).
//!
//! Outcomes: `ok ...` when the peer answered; an errno when the attempt was refused. Two
//! refusals have no errno of their own and are spelled with the nearest one: a connection
//! accepted and then closed without a byte is ECONNRESET (the broker resets refused
//! connections), a DNS answer with a non-zero RCODE (NXDOMAIN) is ENXIO ("no such
//! device or address"). A datagram without answer is ETIMEDOUT.

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::time::Duration;

use super::Outcome;

const WAIT: Duration = Duration::from_secs(3);

/// What the control's listener says first, so the attempt sees an answer.
const HELLO: &[u8] = b"clawjail-verify-listener\n";

fn errno_of(e: &std::io::Error) -> Outcome {
    match e.raw_os_error() {
        Some(n) => Outcome::Errno(n),
        None if e.kind() == std::io::ErrorKind::WouldBlock
            || e.kind() == std::io::ErrorKind::TimedOut =>
        {
            Outcome::Errno(libc::ETIMEDOUT)
        }
        None => Outcome::Broken(e.to_string()),
    }
}

/// connect(2) to `dst` (waiting at most 3 s).
pub fn tcp_connect(dst: SocketAddr) -> Result<TcpStream, Outcome> {
    TcpStream::connect_timeout(&dst, WAIT).map_err(|e| errno_of(&e))
}

/// Send a request line on a connected stream and wait for the first bytes of an answer.
pub fn tcp_exchange(s: TcpStream) -> Outcome {
    exchange(s, b"GET / HTTP/1.0\r\n\r\n")
}

/// Send `first` (a request line, a ClientHello) and wait for the first bytes of an answer.
fn exchange(mut s: TcpStream, first: &[u8]) -> Outcome {
    if let Err(e) = s.set_read_timeout(Some(WAIT)) {
        return Outcome::Broken(format!("SO_RCVTIMEO: {e}"));
    }
    // A refused connection may already be reset: a failed write is the same refusal.
    if let Err(e) = s.write_all(first) {
        return errno_of(&e);
    }
    let mut buf = [0u8; 256];
    match s.read(&mut buf) {
        Ok(0) => Outcome::Errno(libc::ECONNRESET),
        Ok(n) => Outcome::Ok(format!("answered, {n} bytes")),
        Err(e) => errno_of(&e),
    }
}

/// `egress-tcp HOST PORT`.
pub fn tcp(dst: SocketAddr) -> Outcome {
    match tcp_connect(dst) {
        Ok(s) => tcp_exchange(s),
        Err(o) => o,
    }
}

/// A DNS query for `name`, type A, recursion desired (RFC 1035 4.1).
pub fn dns_query(id: u16, name: &str) -> Vec<u8> {
    let mut q = Vec::with_capacity(32 + name.len());
    q.extend_from_slice(&id.to_be_bytes());
    q.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
    for label in name.trim_end_matches('.').split('.') {
        q.push(label.len().min(63) as u8);
        q.extend_from_slice(&label.as_bytes()[..label.len().min(63)]);
    }
    q.extend_from_slice(&[0, 0, 1, 0, 1]);
    q
}

/// Send `payload` to `dst` over UDP and wait for one answer.
fn udp_exchange(dst: SocketAddr, payload: &[u8]) -> Result<Vec<u8>, Outcome> {
    let local: SocketAddr = match dst {
        SocketAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
        SocketAddr::V6(_) => (std::net::Ipv6Addr::UNSPECIFIED, 0).into(),
    };
    let u = UdpSocket::bind(local).map_err(|e| errno_of(&e))?;
    u.connect(dst).map_err(|e| errno_of(&e))?;
    u.set_read_timeout(Some(WAIT))
        .map_err(|e| Outcome::Broken(format!("SO_RCVTIMEO: {e}")))?;
    u.send(payload).map_err(|e| errno_of(&e))?;
    let mut buf = [0u8; 1500];
    // ECONNREFUSED here is the ICMP port unreachable of a destination nobody listens on.
    let n = u.recv(&mut buf).map_err(|e| errno_of(&e))?;
    Ok(buf[..n].to_vec())
}

/// `egress-udp HOST PORT`: a DNS query whose name carries data (a stand-in for a token),
/// the shape of DNS exfiltration and of a QUIC first flight (one datagram out, one back).
pub fn udp(dst: SocketAddr, name: &str) -> Outcome {
    match udp_exchange(dst, &dns_query(0x5eed, name)) {
        Ok(a) if a.len() >= 4 && a[3] & 0x0f != 0 => Outcome::Errno(libc::ENXIO),
        Ok(a) => Outcome::Ok(format!("answered, {} bytes", a.len())),
        Err(o) => o,
    }
}

/// The first `nameserver` of /etc/resolv.conf (the target's resolver), else 127.0.0.1.
fn nameserver() -> IpAddr {
    std::fs::read_to_string("/etc/resolv.conf")
        .ok()
        .and_then(|t| {
            t.lines()
                .filter_map(|l| l.trim().strip_prefix("nameserver"))
                .find_map(|a| a.trim().parse().ok())
        })
        .unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST))
}

/// The first A record of an answer to `dns_query` (no name compression is assumed beyond
/// the usual pointer to the question).
fn first_a(answer: &[u8]) -> Option<Ipv4Addr> {
    let ancount = u16::from_be_bytes([*answer.get(6)?, *answer.get(7)?]);
    if ancount == 0 {
        return None;
    }
    // Skip the header and the question (labels, type, class).
    let mut i = 12;
    while *answer.get(i)? != 0 {
        i += 1 + *answer.get(i)? as usize;
    }
    i += 5;
    // Answer: name (pointer or labels), type, class, ttl, rdlength, rdata.
    if answer.get(i)? & 0xc0 == 0xc0 {
        i += 2;
    } else {
        while *answer.get(i)? != 0 {
            i += 1 + *answer.get(i)? as usize;
        }
        i += 1;
    }
    i += 10;
    let a = answer.get(i..i + 4)?;
    Some(Ipv4Addr::new(a[0], a[1], a[2], a[3]))
}

/// `egress-name NAME PORT`: look NAME up with a plain DNS query to the resolver in
/// /etc/resolv.conf (not glibc: on a host with systemd-resolved, glibc may ask it over a
/// unix socket, which would make the control a real lookup), then connect as `tcp`.
pub fn name(name: &str, port: u16) -> Outcome {
    match lookup(name) {
        Ok(a) => tcp(SocketAddr::new(IpAddr::V4(a), port)),
        Err(o) => o,
    }
}

/// The first A record for `name` from the resolv.conf nameserver (ENXIO when none).
fn lookup(name: &str) -> Result<Ipv4Addr, Outcome> {
    let answer = udp_exchange(SocketAddr::new(nameserver(), 53), &dns_query(0x0a0a, name))?;
    if answer.len() < 4 || answer[3] & 0x0f != 0 {
        return Err(Outcome::Errno(libc::ENXIO));
    }
    first_a(&answer).ok_or(Outcome::Errno(libc::ENXIO))
}

/// `egress-sni NAME PORT SNI`: NAME looked up as [`name`] does, then a TLS ClientHello
/// naming SNI. Under the broker an allowed NAME with another SNI is reset before any dial
/// (docs/egress.md "Names bound to the bytes").
pub fn sni(name: &str, port: u16, sni: &str) -> Outcome {
    let a = match lookup(name) {
        Ok(a) => a,
        Err(o) => return o,
    };
    match tcp_connect(SocketAddr::new(IpAddr::V4(a), port)) {
        Ok(s) => exchange(s, &crate::egress::inspect::client_hello(Some(sni))),
        Err(o) => o,
    }
}

/// Enter a fresh network namespace (a user namespace too when not root) with `lo` up and
/// AnyIP routes: every address is local, nothing can leave.
fn fresh_namespace() -> Result<(), Outcome> {
    use crate::egress::netns;
    let entered = if nix::unistd::geteuid().is_root() {
        netns::unshare_net()
    } else {
        netns::unshare_user_and_net(
            nix::unistd::getuid().as_raw(),
            nix::unistd::getgid().as_raw(),
        )
    };
    entered.map_err(|e| Outcome::Broken(e.to_string()))?;
    netns::set_up_loopback().map_err(|e| Outcome::Broken(e.to_string()))?;
    Ok(())
}

/// Answer every A query on [::]:53 (AnyIP: whatever the resolv.conf nameserver is) with
/// `addr`, in a thread of this (fresh) namespace.
fn serve_dns(addr: Ipv4Addr) -> Result<(), Outcome> {
    let u = UdpSocket::bind((std::net::Ipv6Addr::UNSPECIFIED, 53)).map_err(|e| errno_of(&e))?;
    std::thread::spawn(move || {
        let mut buf = [0u8; 512];
        while let Ok((n, peer)) = u.recv_from(&mut buf) {
            if n < 12 {
                continue;
            }
            let mut r = buf[..n].to_vec();
            r[2] = 0x81;
            r[3] = 0x80;
            r[6] = 0;
            r[7] = 1;
            r.extend_from_slice(&[0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4]);
            r.extend_from_slice(&addr.octets());
            // A lost answer only makes the control fail (INCONCLUSIVE), never pass.
            if u.send_to(&r, peer).is_err() {
                break;
            }
        }
    });
    Ok(())
}

/// `egress-control tcp|udp|name HOST PORT [NAME]`: the same attempt, in a fresh namespace
/// where this process listens on HOST:PORT (for `name`: answers NAME with HOST).
pub fn control(
    kind: &str,
    host: IpAddr,
    port: u16,
    name_arg: Option<&str>,
    sni_arg: Option<&str>,
) -> Outcome {
    if let Err(o) = fresh_namespace() {
        return o;
    }
    let dst = SocketAddr::new(host, port);
    // The wildcard of the family, as the broker's listeners: with AnyIP it receives every
    // destination (binding fd00::1 itself would need IPV6_FREEBIND).
    let any = SocketAddr::new(
        match host {
            IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            IpAddr::V6(_) => IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED),
        },
        port,
    );
    match kind {
        "tcp" | "name" | "sni" => {
            let l = match TcpListener::bind(any) {
                Ok(l) => l,
                Err(e) => return Outcome::Broken(format!("listen {dst}: {e}")),
            };
            let client = if kind != "tcp" {
                let IpAddr::V4(a) = host else {
                    return Outcome::Broken("name control needs an IPv4 HOST".into());
                };
                if let Err(o) = serve_dns(a) {
                    return o;
                }
                // The lookup and connect, as `name` makes them; the listener answers.
                let ns = SocketAddr::new(nameserver(), 53);
                let n = name_arg.unwrap_or("clawjail-verify.example");
                match udp_exchange(ns, &dns_query(0x0a0a, n)) {
                    Ok(a) if first_a(&a) == Some(a_of(host)) => tcp_connect(dst),
                    Ok(_) => return Outcome::Broken("control resolver: no A record".into()),
                    Err(o) => return o,
                }
            } else {
                tcp_connect(dst)
            };
            let client = match client {
                Ok(c) => c,
                Err(o) => return o,
            };
            match l.accept() {
                Ok((mut s, _)) => {
                    if let Err(e) = s.write_all(HELLO) {
                        return Outcome::Broken(format!("listener write: {e}"));
                    }
                    match (kind, sni_arg) {
                        ("sni", Some(sni)) => {
                            exchange(client, &crate::egress::inspect::client_hello(Some(sni)))
                        }
                        _ => tcp_exchange(client),
                    }
                }
                Err(e) => Outcome::Broken(format!("accept: {e}")),
            }
        }
        "udp" => {
            let server = match UdpSocket::bind(any) {
                Ok(s) => s,
                Err(e) => return Outcome::Broken(format!("bind {dst}: {e}")),
            };
            // Echo one datagram back, in a thread (the attempt blocks in recv).
            std::thread::spawn(move || {
                let mut buf = [0u8; 1500];
                if let Ok((n, peer)) = server.recv_from(&mut buf) {
                    // Unanswered, the control times out: INCONCLUSIVE, never PASS.
                    server.send_to(&buf[..n], peer).ok();
                }
            });
            udp(dst, name_arg.unwrap_or("clawjail-verify.example"))
        }
        _ => {
            Outcome::Broken("usage: egress-control tcp|udp|name|sni HOST PORT [NAME [SNI]]".into())
        }
    }
}

fn a_of(host: IpAddr) -> Ipv4Addr {
    match host {
        IpAddr::V4(a) => a,
        IpAddr::V6(_) => Ipv4Addr::UNSPECIFIED,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_and_answers_round_trip() {
        let q = dns_query(7, "a.example.");
        assert_eq!(&q[12..23], b"\x01a\x07example\x00");
        let mut r = q.clone();
        r[3] = 0x80;
        r[7] = 1;
        r.extend_from_slice(&[0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 192, 0, 2, 1]);
        assert_eq!(first_a(&r), Some(Ipv4Addr::new(192, 0, 2, 1)));
        assert_eq!(first_a(&q), None);
    }
}
