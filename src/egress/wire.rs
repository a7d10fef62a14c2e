//! `[egress]` wired into `run`: the target's side (network namespace, capture sockets) and
//! the supervisor's side (receive them, serve the broker).
//!
//! One path for both starts (docs/egress.md "Mechanism"): the child forked at the session
//! step, before the target exists and while still single-threaded, makes the namespace
//! (root: `CLONE_NEWNET`; unprivileged: `CLONE_NEWUSER|CLONE_NEWNET` mapping its one uid
//! and gid), sets `lo` up with AnyIP routes, makes the capture and DNS sockets there and
//! sends them to the supervisor over a socketpair made before the fork (SCM_RIGHTS,
//! unix(7)). The supervisor never enters the namespace, so it needs no `setns` back (which
//! an unprivileged start could not do: research E1, EPERM), and both starts share one
//! code path. The child then closes its copies: only the broker holds the listeners, so if
//! the broker dies they close with it and every connection inside is refused (fail
//! closed: no network, never an open one).

use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::sync::Arc;

use super::broker::{self, BrokerSockets};
use super::netns;
use super::relay::SystemUpstream;
use super::rules::EgressRules;
use nix::sched::CloneFlags;

/// Tag of the one message child -> supervisor.
const SOCKETS_TAG: u8 = 0xE5;

/// Prefix of every error the child-side step reports, so `launch` names the step.
pub const CALL_PREFIX: &str = "egress namespace: ";

/// What the session fork needs for egress, resolved in `plan::prepare`.
#[derive(Debug, Clone)]
pub struct EgressJob {
    pub rules: EgressRules,
    /// Root start: `CLONE_NEWNET` alone; otherwise a user namespace too.
    pub privileged: bool,
    /// The target's namespace comes with a user namespace: an unprivileged start, or a root
    /// start without CAP_SYS_ADMIN (a container: [`netns::root_needs_user_namespace`]).
    /// Decided once in `plan::prepare`, so the child, the supervisor and the socket factory
    /// agree.
    pub user_namespace: bool,
    /// The caller's ids, mapped to themselves in the user namespace (unprivileged start).
    pub uid: u32,
    pub gid: u32,
    /// Root start: the ids the socket factory switches to (the supervisor's, the target's).
    pub factory_ids: Option<crate::identity::Ids>,
    /// `inbound`: host listeners, bound in `plan::prepare` (a taken port refuses the
    /// launch there, exit 125), forwarded to 127.0.0.1:PORT inside.
    pub inbound: Vec<(SocketAddr, Arc<std::net::TcpListener>)>,
}

impl EgressJob {
    /// Capture listeners, in the order they are sent: `ports` and host-service ports.
    pub fn capture_ports(&self) -> Vec<u16> {
        self.rules.capture_ports().into_iter().collect()
    }

    /// The CONNECT proxy's port (`egress.proxy_port`), sent after the capture listeners.
    pub fn proxy_ports(&self) -> Vec<u16> {
        self.rules.proxy_port.into_iter().collect()
    }

    /// The ports the target may connect to under Landlock: the capture ports, the CONNECT
    /// proxy's and 53 (DNS over TCP to the broker). Nothing else is reachable inside the
    /// namespace anyway; Landlock makes the same promise a second time, in a different
    /// kernel mechanism.
    pub fn landlock_connect_ports(&self) -> Vec<u16> {
        let mut p = self.capture_ports();
        p.extend(self.proxy_ports());
        p.push(netns::DNS_PORT);
        p.sort_unstable();
        p.dedup();
        p
    }
}

/// The socketpair made before the session fork: the child's end and the supervisor's.
pub fn channel() -> Result<(OwnedFd, OwnedFd), (String, io::Error)> {
    nix::sys::socket::socketpair(
        nix::sys::socket::AddressFamily::Unix,
        nix::sys::socket::SockType::Stream,
        None,
        nix::sys::socket::SockFlag::SOCK_CLOEXEC,
    )
    .map_err(|e| ("socketpair(egress)".to_string(), io::Error::from(e)))
}

fn child_err(e: netns::NetnsError, fix: Option<&str>) -> (String, io::Error) {
    let source = match fix {
        Some(f) => io::Error::new(e.source.kind(), format!("{}; fix: {f}", e.source)),
        None => e.source,
    };
    (format!("{CALL_PREFIX}{}", e.call), source)
}

/// Child side, in the forked child before the target exists: enter the namespace, make
/// the sockets, hand them to the supervisor, keep none. The caller is single-threaded
/// (unshare(2): CLONE_NEWUSER needs it).
pub fn enter_namespace(job: &EgressJob, chan: OwnedFd) -> Result<(), (String, io::Error)> {
    let fix = |e: &netns::NetnsError| netns::fix_for(job.privileged, &e.to_string());
    if job.privileged && job.user_namespace {
        netns::unshare_user_and_net_identity()
    } else if job.privileged {
        netns::unshare_net()
    } else {
        netns::unshare_user_and_net(job.uid, job.gid)
    }
    .map_err(|e| {
        let f = fix(&e);
        child_err(e, Some(&f))
    })?;
    if !job.privileged {
        // A new user namespace starts with a FULL bounding set (user_namespaces(7)), and an
        // unprivileged start has no later bounding-set drop: without this the target would
        // show CapBnd 000001ffffffffff inside it (measured in podman --user; harmless under
        // no_new_privs, but a non-empty bounding set is one step less). CAP_SETPCAP is ours
        // in the new namespace; the capabilities still needed here (lo up, ports below 1024)
        // are in the permitted and effective sets, which this does not touch.
        let last = crate::caps::read_cap_last_cap()
            .map_err(|e| (format!("{CALL_PREFIX}read cap_last_cap"), e))?;
        crate::caps::drop_bounding_set(&mut crate::kernel::Real, last, &[])
            .map_err(|(call, e)| (format!("{CALL_PREFIX}{call}"), e))?;
    }
    netns::set_up_loopback().map_err(|e| {
        let f = fix(&e);
        child_err(e, Some(&f))
    })?;
    let s = netns::make_broker_sockets(&job.capture_ports()).map_err(|e| child_err(e, None))?;
    let mut fds = vec![s.dns_udp[0].as_raw_fd(), s.dns_tcp[0].as_raw_fd()];
    fds.extend(s.capture.iter().map(AsRawFd::as_raw_fd));
    // The CONNECT proxy listens on the namespace's 127.0.0.1 only (see make_proxy_listener).
    let proxy = job
        .proxy_ports()
        .into_iter()
        .map(netns::make_proxy_listener)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| child_err(e, None))?;
    fds.extend(proxy.iter().map(AsRawFd::as_raw_fd));
    // Inbound: the supervisor forks a socket factory into this namespace
    // ([`fork_socket_factory`]); it needs the namespace fds to get in.
    let ns = if job.inbound.is_empty() {
        Vec::new()
    } else {
        namespace_fds(job.user_namespace)?
    };
    fds.extend(ns.iter().map(AsRawFd::as_raw_fd));
    netns::send_fds(chan.as_raw_fd(), SOCKETS_TAG, &fds).map_err(|e| child_err(e, None))?;
    // `s`, `proxy`, `ns` and `chan` close here: the broker holds the only listeners.
    Ok(())
}

/// This process's network namespace (and with a user namespace, that first: setns into the
/// network namespace needs CAP_SYS_ADMIN in its owning user namespace and in the caller's).
fn namespace_fds(user_namespace: bool) -> Result<Vec<OwnedFd>, (String, io::Error)> {
    let open = |p: &str| {
        std::fs::File::open(p)
            .map(OwnedFd::from)
            .map_err(|e| (format!("{CALL_PREFIX}open({p})"), e))
    };
    let mut v = Vec::new();
    if user_namespace {
        v.push(open("/proc/self/ns/user")?);
    }
    v.push(open("/proc/self/ns/net")?);
    Ok(v)
}

/// Inbound: a single-threaded socket factory in the target's network namespace that
/// answers the broker's requests for sockets bound to a client's address
/// ([`super::inbound::serve_factory`]). Forked by the supervisor, not by the target's
/// tree: it is not in the target's PID namespace and not the target's child. It enters
/// the namespaces with setns(2) (single-threaded, as CLONE_NEWUSER requires; unprivileged,
/// the caller owns the user namespace and so holds CAP_SYS_ADMIN in it, user_namespaces(7)),
/// then keeps no capability, is not dumpable, dies with the supervisor, and exits when the
/// broker closes its end. Returns the broker's end. Called before the supervisor drops
/// its privileges (a root start needs CAP_SYS_ADMIN for setns) and before any thread.
pub fn fork_socket_factory(job: &EgressJob, ns: Vec<OwnedFd>) -> io::Result<UnixStream> {
    let (broker_end, factory_end) = UnixStream::pair()?;
    let supervisor = nix::unistd::getpid();
    let pid = crate::sys::fork()?;
    if pid == 0 {
        drop(broker_end);
        // Explicit namespace types (user first): setns(fd, 0) would be refused by
        // systemd's RestrictNamespaces= filter, which cannot tell what 0 enters.
        let kinds = if ns.len() == 2 {
            [CloneFlags::CLONE_NEWUSER, CloneFlags::CLONE_NEWNET].as_slice()
        } else {
            [CloneFlags::CLONE_NEWNET].as_slice()
        };
        let r = ns
            .into_iter()
            .zip(kinds)
            .try_for_each(|(fd, k)| {
                nix::sched::setns(fd, *k).map_err(|e| (format!("setns({k:?})"), io::Error::from(e)))
            })
            .and_then(|()| drop_factory_privileges(job))
            .and_then(|()| {
                crate::sys::set_pdeathsig(libc::SIGKILL)
                    .map_err(|e| ("prctl(PR_SET_PDEATHSIG)".to_string(), e))
            })
            .and_then(|()| match nix::unistd::getppid() == supervisor {
                true => Ok(()),
                false => Err((
                    "getppid()".to_string(),
                    io::Error::other("the supervisor exited"),
                )),
            })
            .and_then(|()| {
                super::inbound::serve_factory(factory_end).map_err(|e| ("serve".to_string(), e))
            });
        if let Err((call, e)) = &r {
            // Inbound stops working (each forward then logs a failure); destinations stay
            // controlled: the factory only makes sockets inside the namespace.
            eprintln!("clawjail: egress socket factory: {call}: {e}");
        }
        crate::sys::exit_now(i32::from(r.is_err()));
    }
    drop(factory_end);
    Ok(broker_end)
}

/// The factory makes sockets only: no capability (binding a client's address over AnyIP
/// with port 0 needs none), the supervisor's ids on a root start, not dumpable.
fn drop_factory_privileges(job: &EgressJob) -> Result<(), (String, io::Error)> {
    if let Some(ids) = &job.factory_ids {
        crate::identity::set_res_ids(&mut crate::kernel::Real, ids)?;
    }
    crate::caps::set_process_sets(&mut crate::kernel::Real, &[])?;
    crate::nnp::set_no_new_privs(&mut crate::kernel::Real)?;
    nix::sys::prctl::set_dumpable(false)
        .map_err(|e| ("prctl(PR_SET_DUMPABLE, 0)".to_string(), io::Error::from(e)))
}

/// Supervisor side: the sockets the child made, in the order [`enter_namespace`] sent them,
/// and with `inbound` the socket factory forked into the namespace. EOF (the child failed
/// before sending) is an error: the launch is aborted. Before the privilege drop.
pub fn receive(job: &EgressJob, chan: &OwnedFd) -> io::Result<Received> {
    let ns = match (job.inbound.is_empty(), job.user_namespace) {
        (true, _) => 0,
        (false, false) => 1,
        (false, true) => 2,
    };
    let want = 2 + job.capture_ports().len() + job.proxy_ports().len() + ns;
    let (tag, fds) = netns::recv_fds(chan.as_raw_fd(), want).map_err(|e| {
        io::Error::new(
            e.source.kind(),
            format!("{}: {} (the child failed before sending)", e.call, e.source),
        )
    })?;
    if tag != SOCKETS_TAG || fds.len() != want {
        return Err(io::Error::other(format!(
            "expected {want} sockets with tag {SOCKETS_TAG:#x}, got {} with {tag:#x}",
            fds.len()
        )));
    }
    let mut it = fds.into_iter();
    let mut s = BrokerSockets::default();
    s.dns_udp.extend(it.next().map(std::net::UdpSocket::from));
    s.dns_tcp.extend(it.next().map(std::net::TcpListener::from));
    s.capture.extend(
        (&mut it)
            .take(job.capture_ports().len())
            .map(std::net::TcpListener::from),
    );
    s.proxy.extend(
        (&mut it)
            .take(job.proxy_ports().len())
            .map(std::net::TcpListener::from),
    );
    let ns: Vec<OwnedFd> = it.collect();
    let factory = match ns.is_empty() {
        true => None,
        false => Some(fork_socket_factory(job, ns)?),
    };
    Ok(Received {
        sockets: s,
        factory,
    })
}

/// What the supervisor receives from the child (and the socket factory it forked).
#[derive(Debug)]
pub struct Received {
    pub sockets: BrokerSockets,
    /// The socket factory's channel, when `inbound` is set.
    pub factory: Option<UnixStream>,
}

/// Accept on one host listener and forward each connection to `127.0.0.1:PORT` inside,
/// from the client's own address (src/egress/inbound.rs). One line per connection.
/// Each forward holds two descriptors (the host client's and the namespace socket's), so
/// it takes a slot from the relay's fd-sized bound; beyond it, and at EMFILE, new clients
/// are reset and logged while the held ones keep going (src/egress/shed.rs).
async fn serve_inbound(
    l: std::net::TcpListener,
    factory: Arc<std::sync::Mutex<UnixStream>>,
    slots: Arc<tokio::sync::Semaphore>,
    reserve: Arc<std::sync::Mutex<super::shed::Reserve>>,
) -> io::Result<()> {
    l.set_nonblocking(true)?;
    let host = l.local_addr()?;
    let inside = SocketAddr::from((Ipv4Addr::LOCALHOST, host.port()));
    let l = tokio::net::TcpListener::from_std(l)?;
    loop {
        let (c, peer) = match broker::accept(&l, &reserve, "inbound").await {
            Ok(Some(x)) => x,
            Ok(None) => continue,
            Err(e) => {
                // Not per-connection, but the host side must not go away with one error.
                tracing::warn!(error = %e, "egress inbound: accept failed; retrying");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            tracing::warn!(event = "egress-inbound", verdict = "refused", peer = %peer,
                listener = %host, why = "connection limit reached (sized to the file descriptor limit; connections held are kept)",
                "egress inbound: refused {peer} -> {host}: connection limit reached");
            super::relay::reset(c);
            continue;
        };
        let factory = factory.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let t = std::time::Instant::now();
            match super::inbound::forward(c, peer, inside, factory).await {
                Ok((o, i)) => tracing::info!(event = "egress-inbound", verdict = "forwarded",
                    peer = %peer, listener = %host, inside = %inside, bytes_in = o, bytes_out = i,
                    duration_ms = t.elapsed().as_millis() as u64,
                    "egress inbound: {peer} -> {host} -> {inside} inside"),
                Err(e) => tracing::warn!(event = "egress-inbound", verdict = "failed",
                    peer = %peer, listener = %host, inside = %inside, why = %e,
                    "egress inbound: {peer} -> {host}: {e}"),
            }
        });
    }
}

/// The broker and the inbound forwards on one single-threaded runtime, until one fails.
/// (Public for the probe's fd-exhaustion broker.)
pub fn serve_all<U: super::relay::Upstream>(
    b: &broker::Broker<U>,
    got: Received,
    inbound: Vec<std::net::TcpListener>,
) -> io::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let mut set = tokio::task::JoinSet::new();
        if let Some(f) = got.factory {
            let f = Arc::new(std::sync::Mutex::new(f));
            for l in inbound {
                let (slots, reserve) = (b.relay.slots.clone(), b.reserve.clone());
                set.spawn(serve_inbound(l, f.clone(), slots, reserve));
            }
        }
        tokio::select! {
            r = b.serve(got.sockets) => r,
            Some(r) = set.join_next() => r.map_err(io::Error::other)?,
        }
    })
}

/// The supervisor that made the target's PID namespace (`unshare(CLONE_NEWPID)` in step
/// new-namespaces) cannot create threads: clone(2) gives EINVAL for CLONE_THREAD once the
/// caller's namespace for children differs from its own. Pointing it back at its own PID
/// namespace (setns(2) CLONE_NEWPID to an ancestor-or-self namespace; needs CAP_SYS_ADMIN,
/// so before the drop) lifts that; the namespace's init and the target are already forked
/// and stay inside. A no-op when no PID namespace was made.
pub fn allow_threads() -> io::Result<()> {
    let own = std::fs::read_link("/proc/self/ns/pid")?;
    let children = std::fs::read_link("/proc/self/ns/pid_for_children")?;
    if own == children {
        return Ok(());
    }
    let fd = std::fs::File::open("/proc/self/ns/pid")?;
    nix::sched::setns(fd, nix::sched::CloneFlags::CLONE_NEWPID).map_err(io::Error::from)
}

/// Serve the broker on its own thread (the supervisor's poll loop keeps the main one).
/// Started after the supervisor dropped its privileges, so the thread inherits none.
/// If the broker stops for any reason the target is killed and the supervisor exits 125:
/// the policy asked for a control that is no longer there (fail closed).
pub fn start_broker(job: &EgressJob, got: Received, child: libc::pid_t) -> io::Result<()> {
    raise_fd_limit_for_the_broker();
    let rules = job.rules.clone();
    let mut inbound = Vec::new();
    for (_, l) in &job.inbound {
        inbound.push(l.try_clone()?);
    }
    std::thread::Builder::new()
        .name("egress-broker".into())
        .spawn(move || {
            let b = broker::Broker::new(rules, SystemUpstream);
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                serve_all(&b, got, inbound)
            }));
            let why = match r {
                Ok(Ok(())) => "stopped".to_string(),
                Ok(Err(e)) => e.to_string(),
                Err(_) => "panicked".to_string(),
            };
            tracing::error!(event = "egress-broker", verdict = "failed", why = %why,
                "egress broker {why}: stopping the target (fail closed)");
            if nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(child),
                nix::sys::signal::Signal::SIGKILL,
            )
            .is_err()
            {
                tracing::debug!("target already gone");
            }
            std::process::exit(125);
        })
        .map(drop)
}

/// The broker holds two descriptors per relayed connection (shed.rs), so a supervisor
/// started with the common soft RLIMIT_NOFILE of 1024 would refuse new connections at
/// about 450. The target is already forked and nothing is forked from here later, so
/// raising this process's soft limit changes nothing the target has; an unprivileged
/// process may raise its soft limit up to its hard limit (setrlimit(2)). Capped at what the
/// broker can use. A failure only leaves the smaller budget the broker measures anyway.
fn raise_fd_limit_for_the_broker() {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    let want = (broker::MAX_CONNECTIONS * 2 + broker::MAX_DNS_TCP + 1024) as u64;
    match getrlimit(Resource::RLIMIT_NOFILE) {
        Ok((soft, hard)) if soft < want => {
            let to = want.min(hard);
            if to > soft {
                if let Err(e) = setrlimit(Resource::RLIMIT_NOFILE, to, hard) {
                    tracing::debug!(error = %e, "egress broker: soft RLIMIT_NOFILE stays {soft}");
                }
            }
        }
        Ok(_) => {}
        Err(e) => tracing::debug!(error = %e, "egress broker: getrlimit(RLIMIT_NOFILE)"),
    }
}

/// Bind the host side of every `inbound` entry now, before the first irreversible step.
/// A taken port refuses the launch (exit 125): with the gateway in its own namespace, its
/// own bind no longer fails when another instance holds the host port, so this bind is
/// the lock between instances.
pub fn bind_inbound(
    addrs: &[SocketAddr],
) -> Result<Vec<(SocketAddr, Arc<std::net::TcpListener>)>, String> {
    addrs
        .iter()
        .map(|a| {
            std::net::TcpListener::bind(a)
                .map(|l| (*a, Arc::new(l)))
                .map_err(|e| {
                    format!("egress.inbound: cannot listen on {a} on the host: {e} (another instance or service holds it; stop it or change the port)")
                })
        })
        .collect()
}
