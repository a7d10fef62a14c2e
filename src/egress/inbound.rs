//! Inbound: the host's `ADDR:PORT` keeps serving, forwarded to `127.0.0.1:PORT` inside the
//! target's namespace, with the client's real address as the source.
//!
//! Why the source matters: OpenClaw auto-approves pairing for loopback clients, so a
//! forward that made every client look like 127.0.0.1 would hand remote clients the
//! local trust. Inside the namespace the AnyIP route makes every address local, so a
//! socket there can bind the client's own address as its source and connect to the
//! gateway's 127.0.0.1:PORT (research E3/E4): the gateway sees the real peer.
//!
//! Sockets must be created inside the namespace, and from outside an unprivileged process
//! cannot `setns` in (EPERM), so a small single-threaded **socket factory** stays inside
//! ([`serve_factory`], forked before confinement) and answers each request ("a TCP socket
//! bound to this address") with an fd over SCM_RIGHTS. It makes sockets only; the
//! broker connects them (a socket's namespace is fixed at creation, wherever its fd goes).

use std::io::{self, Read, Write};
use std::net::{IpAddr, SocketAddr};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream;

use nix::sys::socket::{
    bind, setsockopt, socket, sockopt, AddressFamily, SockFlag, SockType, SockaddrIn, SockaddrIn6,
};

use super::netns::{recv_fds, send_fds, NetnsError};
use super::rules::unmap;

/// A request is the address to bind, as text, at most this long (an IPv6 address).
const MAX_REQUEST: usize = 64;

/// A TCP socket in the calling thread's namespace, bound to `ip` port 0 (the client's
/// address, which AnyIP makes local here). IPv4-mapped addresses become IPv4.
pub fn socket_bound_to(ip: IpAddr) -> Result<OwnedFd, NetnsError> {
    let err = |call: &str, e: nix::Error| NetnsError {
        call: call.to_string(),
        source: io::Error::from(e),
    };
    let ip = unmap(ip);
    let family = match ip {
        IpAddr::V4(_) => AddressFamily::Inet,
        IpAddr::V6(_) => AddressFamily::Inet6,
    };
    let fd = socket(family, SockType::Stream, SockFlag::SOCK_CLOEXEC, None)
        .map_err(|e| err("socket", e))?;
    // The source port is the kernel's choice; reuse keeps TIME_WAIT pairs from a busy
    // client from exhausting it.
    setsockopt(&fd, sockopt::ReuseAddr, &true).map_err(|e| err("SO_REUSEADDR", e))?;
    match SocketAddr::new(ip, 0) {
        SocketAddr::V4(a) => bind(fd.as_raw_fd(), &SockaddrIn::from(a)),
        SocketAddr::V6(a) => bind(fd.as_raw_fd(), &SockaddrIn6::from(a)),
    }
    .map_err(|e| err(&format!("bind({ip}:0)"), e))?;
    Ok(fd)
}

/// The factory's loop, inside the namespace: read an address, answer with a socket bound
/// to it (tag 0) or with nothing (tag 1) when it cannot be made. Returns when the broker
/// closes its end. Blocking and single-threaded by design.
pub fn serve_factory(mut chan: UnixStream) -> io::Result<()> {
    loop {
        let mut len = [0u8; 1];
        match chan.read_exact(&mut len) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(()),
            Err(e) => return Err(e),
        }
        let n = usize::from(len[0]);
        if n > MAX_REQUEST {
            return Err(io::Error::other("socket factory: oversized request"));
        }
        let mut text = vec![0u8; n];
        chan.read_exact(&mut text)?;
        let ip = std::str::from_utf8(&text)
            .ok()
            .and_then(|t| t.parse::<IpAddr>().ok());
        match ip.map(socket_bound_to) {
            Some(Ok(fd)) => {
                send_fds(chan.as_raw_fd(), 0, &[fd.as_raw_fd()]).map_err(|e| e.source)?
            }
            _ => chan.write_all(&[1])?,
        }
    }
}

/// The broker's side: ask the factory for a socket bound to `ip`.
pub fn request_socket(chan: &mut UnixStream, ip: IpAddr) -> io::Result<OwnedFd> {
    let text = unmap(ip).to_string();
    let len = u8::try_from(text.len()).map_err(|_| io::Error::other("address too long"))?;
    chan.write_all(&[len])?;
    chan.write_all(text.as_bytes())?;
    let (tag, fds) = recv_fds(chan.as_raw_fd(), 1).map_err(|e| e.source)?;
    match (tag, fds.into_iter().next()) {
        (0, Some(fd)) => Ok(fd),
        _ => Err(io::Error::other(format!(
            "the socket factory could not bind {ip}"
        ))),
    }
}

/// Forward one accepted host connection into the namespace: a factory socket bound to the
/// client's address, connected to `inside` (127.0.0.1:PORT there), then bytes both ways.
pub async fn forward(
    client: tokio::net::TcpStream,
    peer: SocketAddr,
    inside: SocketAddr,
    factory: std::sync::Arc<std::sync::Mutex<UnixStream>>,
) -> io::Result<(u64, u64)> {
    let fd = tokio::task::spawn_blocking(move || {
        let mut chan = factory.lock().unwrap_or_else(|p| p.into_inner());
        request_socket(&mut chan, peer.ip())
    })
    .await
    .map_err(io::Error::other)??;
    let std_sock = std::net::TcpStream::from(fd);
    std_sock.set_nonblocking(true)?;
    let sock = tokio::net::TcpSocket::from_std_stream(std_sock);
    let upstream = sock.connect(inside).await?;
    Ok(super::relay::copy_both(client, upstream).await)
}
