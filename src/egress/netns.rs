//! The target's network namespace: only `lo`, AnyIP routes, and the capture sockets made
//! inside it and handed out.
//!
//! Measured on this kind of machine (shared/research/egress-and-learning.md §1.3, E1, E4):
//! - A new network namespace holds only `lo`, and `lo` starts down: bind works, connect
//!   gives ENETUNREACH. Setting it up needs CAP_NET_ADMIN in the namespace's user
//!   namespace, so it happens before the capability drop.
//! - With `local 0.0.0.0/0 dev lo` and `local ::/0 dev lo` (AnyIP), every destination is
//!   local: a listener on `[::]:443` (IPV6_V6ONLY off) accepts connections to any IPv4 or
//!   IPv6 address on 443, and `getsockname()` on the accepted socket is the destination the
//!   client dialed. Ports without a listener get ECONNREFUSED; UDP to any address but the
//!   DNS socket finds no one.
//! - Sockets created inside stay in that namespace wherever their fd goes: passed to a
//!   process outside (SCM_RIGHTS), a listener still accepts the inside connections.
//! - Unprivileged: `CLONE_NEWUSER|CLONE_NEWNET`, mapping the caller's one uid and gid
//!   (user_namespaces(7); `setgroups` must be denied before an unprivileged gid_map).
//!   `setns(net)` from outside gives EPERM and `setns(user)` from a multithreaded process
//!   gives EINVAL, so sockets needed later (inbound forwarding) come from a single-threaded
//!   helper that stays inside and hands them out.
//!
//! No netfilter, no veth, no routes to anywhere: nothing in the namespace can reach the
//! host's network; only the broker, outside, can.
//!
//! Netlink is two fixed messages, built here by hand (rtnetlink(7)); no crate needed.

use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};

use nix::sched::CloneFlags;
use nix::sys::socket::{
    self, bind, setsockopt, socket, sockopt, AddressFamily, ControlMessage, ControlMessageOwned,
    MsgFlags, NetlinkAddr, SockFlag, SockProtocol, SockType, SockaddrIn6,
};

use super::broker::BrokerSockets;

/// `lo` is always interface 1 in a new network namespace (LOOPBACK_IFINDEX,
/// include/net/flow.h; loopback_net_init registers it first).
pub const LOOPBACK_IFINDEX: u32 = 1;

/// The DNS port the broker answers inside.
pub const DNS_PORT: u16 = 53;

/// Backlog of capture listeners: bursts of parallel connects (a browser-like client
/// opening many at once) must not see ECONNREFUSED.
pub const CAPTURE_BACKLOG: i32 = 1024;

/// A namespace step that failed: the call and the kernel's answer (errno kept).
#[derive(Debug, thiserror::Error)]
#[error("{call}: {source}")]
pub struct NetnsError {
    pub call: String,
    #[source]
    pub source: io::Error,
}

impl NetnsError {
    fn new(call: impl Into<String>, source: io::Error) -> Self {
        NetnsError {
            call: call.into(),
            source,
        }
    }
}

fn errno(call: &str, e: nix::Error) -> NetnsError {
    NetnsError::new(call, io::Error::from(e))
}

/// `unshare(CLONE_NEWNET)`: a root start (CAP_SYS_ADMIN). Affects the calling thread;
/// clawjail calls it in the single-threaded child before confinement.
pub fn unshare_net() -> Result<(), NetnsError> {
    nix::sched::unshare(CloneFlags::CLONE_NEWNET).map_err(|e| errno("unshare(CLONE_NEWNET)", e))
}

/// `unshare(CLONE_NEWUSER|CLONE_NEWNET)` and map `uid`/`gid` to themselves: an
/// unprivileged start. The caller gets every capability inside the new user namespace
/// (and none outside), enough to set `lo` up and bind ports below 1024 there.
/// Must be single-threaded (unshare(2): CLONE_NEWUSER, EINVAL).
pub fn unshare_user_and_net(uid: u32, gid: u32) -> Result<(), NetnsError> {
    nix::sched::unshare(CloneFlags::CLONE_NEWUSER | CloneFlags::CLONE_NEWNET)
        .map_err(|e| errno("unshare(CLONE_NEWUSER|CLONE_NEWNET)", e))?;
    // user_namespaces(7): an unprivileged process must write "deny" to setgroups before
    // it may write gid_map.
    write_proc("/proc/self/setgroups", "deny")?;
    write_proc("/proc/self/uid_map", &format!("{uid} {uid} 1\n"))?;
    write_proc("/proc/self/gid_map", &format!("{gid} {gid} 1\n"))
}

/// A root start without CAP_SYS_ADMIN: inside a container (the default capability sets of
/// Docker, podman and Kubernetes lack it), `unshare(CLONE_NEWNET)` alone is EPERM
/// (network_namespaces(7): CAP_SYS_ADMIN in the owning user namespace). Measured in podman:
/// `unshare(CLONE_NEWUSER|CLONE_NEWNET)` works there, as root and as any uid.
pub fn root_needs_user_namespace() -> bool {
    !caps::has_cap(
        None,
        caps::CapSet::Effective,
        caps::Capability::CAP_SYS_ADMIN,
    )
    .unwrap_or(false)
}

/// The root start's namespace: `CLONE_NEWNET`, or with [`root_needs_user_namespace`]
/// `CLONE_NEWUSER|CLONE_NEWNET` with every id this process can see mapped to itself
/// ([`unshare_user_and_net_identity`]).
pub fn unshare_for_root() -> Result<(), NetnsError> {
    if root_needs_user_namespace() {
        unshare_user_and_net_identity()
    } else {
        unshare_net()
    }
}

/// `CLONE_NEWUSER|CLONE_NEWNET` for a root start that lacks CAP_SYS_ADMIN, keeping every
/// id: the later uid switch (setresuid to the policy's user), setgroups and chown need the
/// target's ids mapped, and a one-id map (the unprivileged path) would map root alone.
/// user_namespaces(7): a map of more than the writer's own id needs CAP_SETUID/CAP_SETGID
/// in the PARENT user namespace (and mapping uid 0 needs CAP_SETFCAP there, Linux >= 5.12:
/// measured, EPERM without it), which this process loses by entering the new one; so a
/// helper forked before the unshare (same ids and capabilities, still outside) writes the
/// identity maps of this process, copied from its own /proc/self/{uid,gid}_map (every id
/// valid here, nothing more). The caller must be single-threaded.
pub fn unshare_user_and_net_identity() -> Result<(), NetnsError> {
    let read = |path: &str| {
        std::fs::read_to_string(path).map_err(|e| NetnsError::new(format!("read {path}"), e))
    };
    let uid_map = identity_map(&read("/proc/self/uid_map")?);
    let gid_map = identity_map(&read("/proc/self/gid_map")?);
    let (r, w) = nix::unistd::pipe().map_err(|e| errno("pipe(id maps)", e))?;
    let helper = crate::sys::fork().map_err(|e| NetnsError::new("fork(id maps)", e))?;
    if helper == 0 {
        drop(w);
        let mut go = [0u8; 1];
        let code = match nix::unistd::read(&r, &mut go) {
            Ok(1) => {
                let pid = nix::unistd::getppid();
                let res = std::fs::write(format!("/proc/{pid}/uid_map"), &uid_map)
                    .and_then(|()| std::fs::write(format!("/proc/{pid}/gid_map"), &gid_map));
                // The errno as exit status, so the caller can name it.
                res.err()
                    .map_or(0, |e| e.raw_os_error().unwrap_or(255).min(255))
            }
            _ => 0, // the unshare failed; the caller reports it
        };
        crate::sys::exit_now(code);
    }
    drop(r);
    let unshared = nix::sched::unshare(CloneFlags::CLONE_NEWUSER | CloneFlags::CLONE_NEWNET)
        .map_err(|e| errno("unshare(CLONE_NEWUSER|CLONE_NEWNET)", e));
    if unshared.is_ok() {
        nix::unistd::write(&w, b"1").ok();
    }
    drop(w);
    let status = crate::sys::waitpid(helper, 0);
    unshared?;
    match status {
        Ok((_, st)) if libc::WIFEXITED(st) && libc::WEXITSTATUS(st) == 0 => Ok(()),
        Ok((_, st)) if libc::WIFEXITED(st) => Err(NetnsError::new(
            "write /proc/<pid>/{uid,gid}_map (identity maps, by a helper outside)",
            io::Error::from_raw_os_error(libc::WEXITSTATUS(st)),
        )),
        r => Err(NetnsError::new(
            "write /proc/<pid>/{uid,gid}_map (identity maps, by a helper outside)",
            io::Error::other(format!("the helper failed: {r:?}")),
        )),
    }
}

/// `inside outside count` lines of this process's map, as a map of each visible id to
/// itself (`inside inside count`): the new namespace sees exactly the ids this one does.
fn identity_map(map: &str) -> String {
    map.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.len() == 3).then(|| format!("{} {} {}\n", f[0], f[0], f[2]))
        })
        .collect()
}

fn write_proc(path: &str, text: &str) -> Result<(), NetnsError> {
    std::fs::write(path, text).map_err(|e| NetnsError::new(format!("write {path}"), e))
}

/// One netlink request, as bytes: header, fixed part, attributes (rtnetlink(7)).
fn nl_message(kind: u16, flags: u16, seq: u32, body: &[u8]) -> Vec<u8> {
    let len = 16 + body.len();
    let mut m = Vec::with_capacity(len);
    m.extend_from_slice(&(len as u32).to_ne_bytes());
    m.extend_from_slice(&kind.to_ne_bytes());
    m.extend_from_slice(&flags.to_ne_bytes());
    m.extend_from_slice(&seq.to_ne_bytes());
    m.extend_from_slice(&0u32.to_ne_bytes()); // nlmsg_pid: 0 = the kernel
    m.extend_from_slice(body);
    m
}

/// `RTM_NEWLINK` with IFF_UP set in ifi_flags and ifi_change: `ip link set lo up`.
pub fn link_up_message(ifindex: u32, seq: u32) -> Vec<u8> {
    let mut b = Vec::with_capacity(16);
    b.push(libc::AF_UNSPEC as u8); // ifi_family
    b.push(0); // pad
    b.extend_from_slice(&0u16.to_ne_bytes()); // ifi_type
    b.extend_from_slice(&(ifindex as i32).to_ne_bytes());
    b.extend_from_slice(&(libc::IFF_UP as u32).to_ne_bytes()); // ifi_flags
    b.extend_from_slice(&(libc::IFF_UP as u32).to_ne_bytes()); // ifi_change
    nl_message(
        libc::RTM_NEWLINK,
        (libc::NLM_F_REQUEST | libc::NLM_F_ACK) as u16,
        seq,
        &b,
    )
}

/// `RTM_NEWROUTE` type RTN_LOCAL, 0.0.0.0/0 or ::/0, table local, dev `ifindex`:
/// `ip route add local 0.0.0.0/0 dev lo` (AnyIP: every address is this host's).
pub fn anyip_route_message(family: u8, ifindex: u32, seq: u32) -> Vec<u8> {
    let mut b = Vec::with_capacity(12 + 16);
    b.push(family); // rtm_family
    b.push(0); // rtm_dst_len: /0
    b.push(0); // rtm_src_len
    b.push(0); // rtm_tos
    b.push(libc::RT_TABLE_LOCAL); // rtm_table
    b.push(libc::RTPROT_STATIC); // rtm_protocol
    b.push(libc::RT_SCOPE_HOST); // rtm_scope
    b.push(libc::RTN_LOCAL); // rtm_type
    b.extend_from_slice(&0u32.to_ne_bytes()); // rtm_flags
                                              // RTA_OIF (u32): the output device.
    b.extend_from_slice(&8u16.to_ne_bytes());
    b.extend_from_slice(&libc::RTA_OIF.to_ne_bytes());
    b.extend_from_slice(&ifindex.to_ne_bytes());
    let flags = libc::NLM_F_REQUEST | libc::NLM_F_ACK | libc::NLM_F_CREATE | libc::NLM_F_EXCL;
    nl_message(libc::RTM_NEWROUTE, flags as u16, seq, &b)
}

/// The errno in an NLMSG_ERROR reply (0 = ACK), for the request `seq`.
pub fn parse_ack(reply: &[u8], seq: u32) -> io::Result<i32> {
    let bad = || io::Error::other("netlink: malformed reply");
    if reply.len() < 20 {
        return Err(bad());
    }
    let u32_at =
        |i: usize| u32::from_ne_bytes([reply[i], reply[i + 1], reply[i + 2], reply[i + 3]]);
    let kind = u16::from_ne_bytes([reply[4], reply[5]]);
    if kind != libc::NLMSG_ERROR as u16 {
        return Err(io::Error::other(format!(
            "netlink: expected NLMSG_ERROR, got type {kind}"
        )));
    }
    if u32_at(8) != seq {
        return Err(io::Error::other("netlink: reply to another request"));
    }
    Ok(-(u32_at(16) as i32))
}

/// Send one request on a fresh NETLINK_ROUTE socket and wait for its ACK.
fn netlink_request(what: &str, msg: &[u8], seq: u32) -> Result<(), NetnsError> {
    let fd = socket(
        AddressFamily::Netlink,
        SockType::Raw,
        SockFlag::SOCK_CLOEXEC,
        SockProtocol::NetlinkRoute,
    )
    .map_err(|e| errno("socket(AF_NETLINK, NETLINK_ROUTE)", e))?;
    let kernel = NetlinkAddr::new(0, 0);
    // Bound to the kernel's port id 0: replies come only from the kernel (netlink(7)).
    bind(fd.as_raw_fd(), &kernel).map_err(|e| errno("bind(netlink)", e))?;
    socket::sendto(fd.as_raw_fd(), msg, &kernel, MsgFlags::empty()).map_err(|e| errno(what, e))?;
    let mut buf = [0u8; 1024];
    let n =
        socket::recv(fd.as_raw_fd(), &mut buf, MsgFlags::empty()).map_err(|e| errno(what, e))?;
    match parse_ack(&buf[..n], seq).map_err(|e| NetnsError::new(what, e))? {
        0 => Ok(()),
        e => Err(NetnsError::new(what, io::Error::from_raw_os_error(e))),
    }
}

/// What the namespace's network looks like after [`set_up_loopback`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoopbackOutcome {
    /// IPv6 AnyIP route installed (false when the kernel has no IPv6: then the target has
    /// none either).
    pub ipv6: bool,
}

/// `lo` up, then AnyIP routes for IPv4 and IPv6. Needs CAP_NET_ADMIN in the namespace.
pub fn set_up_loopback() -> Result<LoopbackOutcome, NetnsError> {
    netlink_request(
        "RTM_NEWLINK lo up",
        &link_up_message(LOOPBACK_IFINDEX, 1),
        1,
    )?;
    netlink_request(
        "RTM_NEWROUTE local 0.0.0.0/0 dev lo",
        &anyip_route_message(libc::AF_INET as u8, LOOPBACK_IFINDEX, 2),
        2,
    )?;
    match netlink_request(
        "RTM_NEWROUTE local ::/0 dev lo",
        &anyip_route_message(libc::AF_INET6 as u8, LOOPBACK_IFINDEX, 3),
        3,
    ) {
        Ok(()) => Ok(LoopbackOutcome { ipv6: true }),
        // No IPv6 in this kernel (EAFNOSUPPORT) or disabled on lo: nothing to capture.
        Err(e)
            if matches!(e.source.raw_os_error(), Some(libc::EAFNOSUPPORT)) || ipv6_disabled() =>
        {
            Ok(LoopbackOutcome { ipv6: false })
        }
        Err(e) => Err(e),
    }
}

fn ipv6_disabled() -> bool {
    std::fs::read_to_string("/proc/sys/net/ipv6/conf/lo/disable_ipv6")
        .map_or(true, |s| s.trim() == "1")
}

/// Can this start make the target's namespace? Tried for real in a throwaway child
/// (unshare, and for an unprivileged start the id maps, then lo up and the AnyIP routes),
/// so `check` and `run` know before the first irreversible step. Ubuntu >= 23.10's AppArmor
/// lets the unshare succeed but leaves no capability in the namespace: there the lo step
/// fails, which is why the whole setup is tried, not just unshare. The caller must be
/// single-threaded (plan::prepare is).
pub fn probe_in_child(privileged: bool, uid: u32, gid: u32) -> Result<LoopbackOutcome, String> {
    let (r, w) = nix::unistd::pipe().map_err(|e| format!("pipe: {e}"))?;
    let pid = crate::sys::fork().map_err(|e| format!("fork: {e}"))?;
    if pid == 0 {
        drop(r);
        let result = if privileged {
            unshare_for_root()
        } else {
            unshare_user_and_net(uid, gid)
        }
        .and_then(|()| set_up_loopback());
        let msg = match result {
            Ok(lo) => format!("ok {}", lo.ipv6),
            Err(e) => e.to_string(),
        };
        let code = i32::from(nix::unistd::write(&w, msg.as_bytes()).is_err());
        crate::sys::exit_now(code);
    }
    drop(w);
    let mut text = String::new();
    let read = std::io::Read::read_to_string(&mut std::fs::File::from(r), &mut text);
    let status = crate::sys::waitpid(pid, 0);
    if let Err(e) = read {
        return Err(format!("reading the probe child: {e}"));
    }
    match (status, text.strip_prefix("ok ")) {
        (Ok((_, st)), Some(v6)) if libc::WIFEXITED(st) && libc::WEXITSTATUS(st) == 0 => {
            Ok(LoopbackOutcome { ipv6: v6 == "true" })
        }
        (_, _) if !text.is_empty() => Err(text),
        (s, _) => Err(format!("the probe child failed: {s:?}")),
    }
}

/// The seccomp profile shipped for Docker, containerd and Kubernetes: their default
/// profiles allow `unshare` only with CAP_SYS_ADMIN; this one adds exactly the call above.
pub const CONTAINER_PROFILE: &str = "examples/docker/seccomp-clawjail.json";

/// What to do about a namespace that cannot be made, by the failing call.
pub fn fix_for(privileged: bool, failure: &str) -> String {
    let seccomp = format!(
        "in a container, the runtime's default seccomp profile (Docker, containerd, Kubernetes RuntimeDefault) refuses unshare without CAP_SYS_ADMIN: run it with clawjail's profile {CONTAINER_PROFILE} (docker run --security-opt seccomp=seccomp-clawjail.json; compose security_opt; Kubernetes seccompProfile Localhost), never seccomp=unconfined"
    );
    if failure.starts_with("write /proc/<pid>") {
        "a root start without CAP_SYS_ADMIN maps every id, root included, into a user namespace: that needs CAP_SETUID, CAP_SETGID and CAP_SETFCAP (mapping uid 0 needs CAP_SETFCAP since Linux 5.12, user_namespaces(7)); add them to the container (examples/docker/compose.yaml's cap_add has them; docs/egress.md)".to_string()
    } else if failure.starts_with("unshare(CLONE_NEWUSER") {
        let or_root = if privileged {
            ""
        } else {
            ", or start clawjail as root"
        };
        format!("{seccomp}; otherwise user namespaces are disabled (sysctl kernel.unprivileged_userns_clone=0 or user.max_user_namespaces=0): enable them{or_root} (docs/egress.md)")
    } else if privileged && (failure.starts_with("unshare") || !root_needs_user_namespace()) {
        "a root start with CAP_SYS_ADMIN uses CLONE_NEWNET and needs CAP_SYS_ADMIN (unshare), CAP_NET_ADMIN (lo up, AnyIP routes) and CAP_NET_BIND_SERVICE (the broker's ports 53 and 443 inside): under systemd, keep them in CapabilityBoundingSet= and allow RestrictNamespaces=ipc mnt net pid (with CAP_SYS_ADMIN clawjail also makes the PID and IPC namespaces); in a container, do not add them: without CAP_SYS_ADMIN clawjail makes a user+network namespace instead (CAP_SETFCAP and the seccomp profile examples/docker/seccomp-clawjail.json, docs/egress.md)".to_string()
    } else {
        "the user namespace was made but grants no capability inside it (Ubuntu >= 23.10: kernel.apparmor_restrict_unprivileged_userns=1): install the AppArmor profile shipped in examples/apparmor/clawjail (`userns,`; sudo install -m 0644 examples/apparmor/clawjail /etc/apparmor.d/clawjail && sudo apparmor_parser -r /etc/apparmor.d/clawjail, docs/egress.md), or start clawjail as root".to_string()
    }
}

/// `kernel.apparmor_restrict_unprivileged_userns` (Ubuntu >= 23.10), when the kernel has
/// it: `Some(true)` means an unconfined process gets no capability in a user namespace it
/// makes, which an unprivileged start with `[egress]` needs (lo up).
pub fn apparmor_restricts_userns() -> Option<bool> {
    std::fs::read_to_string("/proc/sys/kernel/apparmor_restrict_unprivileged_userns")
        .ok()
        .map(|s| s.trim() == "1")
}

/// A dual-stack socket on `[::]:port` (IPV6_V6ONLY off: IPv4 destinations arrive as
/// ::ffff:a.b.c.d, which the relay unwraps).
fn dual_stack(kind: SockType, port: u16) -> Result<OwnedFd, NetnsError> {
    let fd = socket(AddressFamily::Inet6, kind, SockFlag::SOCK_CLOEXEC, None)
        .map_err(|e| errno("socket(AF_INET6)", e))?;
    setsockopt(&fd, sockopt::ReuseAddr, &true).map_err(|e| errno("SO_REUSEADDR", e))?;
    setsockopt(&fd, sockopt::Ipv6V6Only, &false).map_err(|e| errno("IPV6_V6ONLY 0", e))?;
    let any = SockaddrIn6::from(std::net::SocketAddrV6::new(
        std::net::Ipv6Addr::UNSPECIFIED,
        port,
        0,
        0,
    ));
    bind(fd.as_raw_fd(), &any).map_err(|e| errno(&format!("bind([::]:{port})"), e))?;
    Ok(fd)
}

/// The broker's sockets, made in the calling thread's network namespace: UDP and TCP on
/// 53 for DNS, one TCP listener per capture port.
pub fn make_broker_sockets(capture_ports: &[u16]) -> Result<BrokerSockets, NetnsError> {
    let udp = dual_stack(SockType::Datagram, DNS_PORT)?;
    let tcp53 = dual_stack(SockType::Stream, DNS_PORT)?;
    crate::sys::listen(tcp53.as_fd(), 64).map_err(|e| NetnsError::new("listen(53)", e))?;
    let mut capture = Vec::new();
    for &p in capture_ports {
        let fd = dual_stack(SockType::Stream, p)?;
        crate::sys::listen(fd.as_fd(), CAPTURE_BACKLOG)
            .map_err(|e| NetnsError::new(format!("listen({p})"), e))?;
        capture.push(std::net::TcpListener::from(fd));
    }
    Ok(BrokerSockets {
        dns_udp: vec![std::net::UdpSocket::from(udp)],
        dns_tcp: vec![std::net::TcpListener::from(tcp53)],
        capture,
        proxy: vec![],
    })
}

/// The CONNECT proxy's listener (`egress.proxy_port`), made in the calling thread's
/// network namespace on 127.0.0.1 only: under AnyIP a wildcard bind would also capture
/// every destination on that port; bound to loopback it answers only the address the
/// proxy variables name. Goes into [`BrokerSockets::proxy`].
pub fn make_proxy_listener(port: u16) -> Result<std::net::TcpListener, NetnsError> {
    let fd = socket(
        AddressFamily::Inet,
        SockType::Stream,
        SockFlag::SOCK_CLOEXEC,
        None,
    )
    .map_err(|e| errno("socket(AF_INET)", e))?;
    setsockopt(&fd, sockopt::ReuseAddr, &true).map_err(|e| errno("SO_REUSEADDR", e))?;
    let lo = nix::sys::socket::SockaddrIn::from(std::net::SocketAddrV4::new(
        std::net::Ipv4Addr::LOCALHOST,
        port,
    ));
    bind(fd.as_raw_fd(), &lo).map_err(|e| errno(&format!("bind(127.0.0.1:{port})"), e))?;
    crate::sys::listen(fd.as_fd(), CAPTURE_BACKLOG)
        .map_err(|e| NetnsError::new(format!("listen(127.0.0.1:{port})"), e))?;
    Ok(std::net::TcpListener::from(fd))
}

/// Send fds with a one-byte tag over a unix socket (SCM_RIGHTS, unix(7)).
pub fn send_fds(sock: RawFd, tag: u8, fds: &[RawFd]) -> Result<(), NetnsError> {
    let iov = [std::io::IoSlice::new(std::slice::from_ref(&tag))];
    let cmsg = [ControlMessage::ScmRights(fds)];
    socket::sendmsg::<()>(sock, &iov, &cmsg, MsgFlags::empty(), None)
        .map_err(|e| errno("sendmsg(SCM_RIGHTS)", e))?;
    Ok(())
}

/// Receive up to `max` fds and the tag sent by [`send_fds`]. The fds arrive CLOEXEC.
pub fn recv_fds(sock: RawFd, max: usize) -> Result<(u8, Vec<OwnedFd>), NetnsError> {
    let mut tag = [0u8; 1];
    let mut iov = [std::io::IoSliceMut::new(&mut tag)];
    let mut space = nix::cmsg_space!([RawFd; 64]);
    let msg = socket::recvmsg::<()>(sock, &mut iov, Some(&mut space), MsgFlags::MSG_CMSG_CLOEXEC)
        .map_err(|e| errno("recvmsg(SCM_RIGHTS)", e))?;
    if msg.flags.contains(MsgFlags::MSG_CTRUNC) {
        return Err(NetnsError::new(
            "recvmsg(SCM_RIGHTS)",
            io::Error::other("control data truncated (fds lost)"),
        ));
    }
    if msg.bytes == 0 {
        return Err(NetnsError::new(
            "recvmsg(SCM_RIGHTS)",
            io::Error::from(io::ErrorKind::UnexpectedEof),
        ));
    }
    let mut fds = Vec::new();
    for c in msg.cmsgs().map_err(|e| errno("recvmsg cmsgs", e))? {
        if let ControlMessageOwned::ScmRights(list) = c {
            for fd in list {
                fds.push(crate::sys::own_received_fd(fd));
            }
        }
    }
    if fds.len() > max {
        return Err(NetnsError::new(
            "recvmsg(SCM_RIGHTS)",
            io::Error::other(format!(
                "received {} fds, expected at most {max}",
                fds.len()
            )),
        ));
    }
    Ok((tag[0], fds))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn netlink_messages_have_the_kernel_layout() {
        let m = link_up_message(1, 7);
        assert_eq!(m.len(), 32, "nlmsghdr 16 + ifinfomsg 16");
        assert_eq!(u32::from_ne_bytes(m[0..4].try_into().unwrap()), 32);
        assert_eq!(
            u16::from_ne_bytes(m[4..6].try_into().unwrap()),
            libc::RTM_NEWLINK
        );
        assert_eq!(u32::from_ne_bytes(m[8..12].try_into().unwrap()), 7);
        assert_eq!(
            i32::from_ne_bytes(m[20..24].try_into().unwrap()),
            1,
            "ifi_index"
        );
        assert_eq!(
            u32::from_ne_bytes(m[24..28].try_into().unwrap()),
            libc::IFF_UP as u32
        );

        let r = anyip_route_message(libc::AF_INET6 as u8, 1, 9);
        assert_eq!(r.len(), 16 + 12 + 8, "nlmsghdr + rtmsg + RTA_OIF");
        assert_eq!(
            u16::from_ne_bytes(r[4..6].try_into().unwrap()),
            libc::RTM_NEWROUTE
        );
        assert_eq!(r[16], libc::AF_INET6 as u8);
        assert_eq!(r[17], 0, "dst_len /0");
        assert_eq!(
            (r[20], r[22], r[23]),
            (libc::RT_TABLE_LOCAL, libc::RT_SCOPE_HOST, libc::RTN_LOCAL)
        );
        assert_eq!(
            u16::from_ne_bytes(r[30..32].try_into().unwrap()),
            libc::RTA_OIF
        );
    }

    #[test]
    fn identity_maps_keep_exactly_the_visible_ids() {
        // The init namespace, and a container with a userns-remap style map.
        assert_eq!(
            identity_map("         0          0 4294967295\n"),
            "0 0 4294967295\n"
        );
        assert_eq!(
            identity_map("0 100000 65536\n70000 300000 10\n"),
            "0 0 65536\n70000 70000 10\n"
        );
    }

    #[test]
    fn acks_and_errors_are_read() {
        let mut ack = nl_message(libc::NLMSG_ERROR as u16, 0, 5, &0i32.to_ne_bytes());
        ack.extend_from_slice(&[0; 16]);
        assert_eq!(parse_ack(&ack, 5).unwrap(), 0);
        let eperm = nl_message(
            libc::NLMSG_ERROR as u16,
            0,
            5,
            &(-libc::EPERM).to_ne_bytes(),
        );
        assert_eq!(parse_ack(&eperm, 5).unwrap(), libc::EPERM);
        assert!(parse_ack(&eperm, 6).is_err());
        assert!(parse_ack(&[0; 8], 5).is_err());
    }

    #[test]
    fn fds_cross_a_socketpair_with_their_tag() {
        let (a, b) = socket::socketpair(
            AddressFamily::Unix,
            SockType::Stream,
            None,
            SockFlag::SOCK_CLOEXEC,
        )
        .unwrap();
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        send_fds(a.as_raw_fd(), 42, &[l.as_raw_fd()]).unwrap();
        let (tag, fds) = recv_fds(b.as_raw_fd(), 4).unwrap();
        assert_eq!(tag, 42);
        let got = std::net::TcpListener::from(fds.into_iter().next().unwrap());
        assert_eq!(got.local_addr().unwrap().port(), port);
    }
}
