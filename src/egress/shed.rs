//! Refusing new connections when the broker is out of file descriptors, while the
//! connections it holds keep going.
//!
//! Two layers, because the second alone is not deterministic:
//!
//! 1. **A budget** ([`FdBudget`]): at start the broker counts the descriptors it may still
//!    open and sizes its connection bound from them (two per relayed connection: the
//!    client and the upstream), keeping [`HEADROOM`] for what it opens outside the bound
//!    (the accept of a connection it is about to refuse, the resolver's files and sockets,
//!    the supervisor's own). A connection beyond the bound is accepted into the headroom
//!    and reset at once with a logged refusal, so the broker's own work never reaches
//!    EMFILE.
//! 2. **A spare fd** ([`Reserve`], libev's and nginx's remedy) for EMFILE/ENFILE that
//!    something outside the budget caused (another thread of the supervisor, the system
//!    table): close the spare, accept the pending connection into its slot, reset it, log,
//!    take the spare back. Done synchronously, with no `.await` between the close and the
//!    accept, and only when a connection is really pending.
//!
//! Why the old spare-only design left clients waiting (strace of the probe under the test
//! harness): accept(2) takes a descriptor *before* it looks at the backlog
//! (`__sys_accept4_file` calls `get_unused_fd_flags` first, net/socket.c), so EMFILE says
//! nothing about a pending connection. After the broker accepted a client into its last
//! free fd, the accept loop's next try got EMFILE with an empty backlog; the spare was
//! closed, the accept found nothing and awaited, and the relay task for that client ran
//! in between and took the freed number for its upstream socket(2) (a new fd is the lowest
//! free number: open(2)). The spare could never be reopened and the next client sat in
//! the backlog until it timed out.

use std::fs::File;
use std::io;
use std::os::fd::AsFd;
use std::task::{Context, Poll, Waker};

use tokio::net::TcpListener;

/// Descriptors a relayed connection holds: the client's and the upstream's (an inbound
/// forward: the host client's and the namespace socket's).
pub const FDS_PER_CONNECTION: usize = 2;

/// Concurrent lookups on the host's resolver ([`super::relay::SystemUpstream`]); each
/// opens its own files and sockets (resolv.conf, hosts, a UDP and maybe a TCP socket)
/// while its connection's upstream slot is still unused.
pub const MAX_LOOKUPS: usize = 8;

/// Descriptors kept outside the connection bound: one accept to refuse a connection, the
/// spare's reopening, up to three per concurrent lookup, and a few for the supervisor's own
/// work on other threads (its run record, /proc reads, signal and pid fds).
pub const HEADROOM: usize = 2 + 3 * MAX_LOOKUPS + 8;

/// How the broker splits the descriptors it may open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FdBudget {
    /// Descriptors this process could still open when the broker started.
    pub free: usize,
    /// Concurrent relayed (and inbound) connections.
    pub connections: usize,
    /// Concurrent DNS-over-TCP clients (one fd each).
    pub dns_tcp: usize,
}

impl FdBudget {
    /// Split `free` descriptors: [`HEADROOM`] first, then up to `max_dns_tcp` DNS-over-TCP
    /// clients (at most an eighth of the rest), then connections at
    /// [`FDS_PER_CONNECTION`] each, at most `max_connections`.
    pub fn split(free: usize, max_connections: usize, max_dns_tcp: usize) -> Self {
        let usable = free.saturating_sub(HEADROOM);
        let dns_tcp = max_dns_tcp.min(usable / 8);
        let connections = max_connections.min((usable - dns_tcp) / FDS_PER_CONNECTION);
        FdBudget {
            free,
            connections,
            dns_tcp,
        }
    }

    /// The budget of this process now.
    pub fn measure(max_connections: usize, max_dns_tcp: usize) -> io::Result<Self> {
        Ok(Self::split(free_fds()?, max_connections, max_dns_tcp))
    }
}

/// Descriptors this process can still open. RLIMIT_NOFILE limits descriptor *numbers*
/// (getrlimit(2): "a value one greater than the maximum file descriptor number that can
/// be opened"), and a new one takes the lowest free number, so the free ones are the
/// numbers below the soft limit that /proc/self/fd does not list. Descriptors at or above
/// the limit (inherited, or opened before it was lowered) use none of them.
pub fn free_fds() -> io::Result<usize> {
    let (soft, _) = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
        .map_err(io::Error::from)?;
    let soft = usize::try_from(soft).unwrap_or(usize::MAX);
    let mut below = 0usize;
    for e in std::fs::read_dir("/proc/self/fd")? {
        let n = e?
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<usize>().ok());
        if n.is_some_and(|n| n < soft) {
            below += 1;
        }
    }
    // read_dir's own descriptor is in the listing and free again now.
    Ok(soft.saturating_sub(below.saturating_sub(1)))
}

/// What [`Reserve::shed`] did about an accept error.
#[derive(Debug)]
pub enum Shed {
    /// Not fd exhaustion: the caller handles the error.
    NotExhaustion,
    /// A pending connection was accepted into the spare's slot, reset and logged.
    Refused,
    /// Exhaustion, but nothing could be refused now (the backlog is empty: accept(2)
    /// fails with EMFILE before looking at it; or no spare; or the freed slot was taken
    /// by another thread). The caller backs off briefly and accepts again.
    Waiting(&'static str),
}

/// One spare descriptor kept for refusing a connection at the fd limit, shared by every
/// accept loop of the broker (they run on one thread; refusals are one at a time).
#[derive(Debug, Default)]
pub struct Reserve(Option<File>);

impl Reserve {
    pub fn new() -> Self {
        Reserve(spare())
    }

    /// Whether the spare is held.
    pub fn armed(&self) -> bool {
        self.0.is_some()
    }

    /// After `l`'s accept failed with `e`: if it was fd exhaustion and a connection is
    /// pending, refuse that one with the spare's slot and log it. Synchronous on purpose:
    /// an `.await` between closing the spare and the accept would let another task (a
    /// relay opening its upstream socket) take the freed number.
    pub fn shed(&mut self, l: &TcpListener, e: &io::Error, what: &str) -> Shed {
        if !matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE)) {
            return Shed::NotExhaustion;
        }
        if self.0.is_none() {
            // Lost earlier (another thread took the slot): try again while we wait.
            self.0 = spare();
            return Shed::Waiting("no spare descriptor");
        }
        if !pending(l) {
            return Shed::Waiting("no connection pending");
        }
        drop(self.0.take());
        // The listener's readiness is still set (the failed accept did not clear it), so
        // this accepts at once; with a no-op waker a Pending is simply "nothing to take".
        let got = l.poll_accept(&mut Context::from_waker(Waker::noop()));
        let out = match got {
            Poll::Ready(Ok((s, peer))) => {
                let dst = s.local_addr().map_or("-".to_string(), |a| a.to_string());
                if s.set_zero_linger().is_err() {
                    tracing::debug!("SO_LINGER 0 failed; closing normally");
                }
                // Closed before the spare is reopened: at the limit, the spare needs the
                // number this connection holds.
                drop(s);
                tracing::warn!(
                    event = "egress-connect", verdict = "refused", name = "-", dst = %dst,
                    peer = %peer, why = "file descriptor limit reached (connections held are kept)",
                    "egress: refused a new {what} connection to {dst}: file descriptor limit reached"
                );
                Shed::Refused
            }
            Poll::Ready(Err(_)) => Shed::Waiting("the freed descriptor was taken"),
            Poll::Pending => Shed::Waiting("no connection pending"),
        };
        self.0 = spare();
        out
    }
}

fn spare() -> Option<File> {
    File::open("/dev/null").ok()
}

/// Whether `l` has a connection in its backlog: poll(2) needs no new descriptor.
fn pending(l: &TcpListener) -> bool {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    let mut fds = [PollFd::new(l.as_fd(), PollFlags::POLLIN)];
    matches!(poll(&mut fds, PollTimeout::ZERO), Ok(n) if n > 0)
}

/// The shared reserve's lock, recovered if a holder panicked (it holds no invariant a
/// panic could break: at worst the spare is missing and is reopened).
pub fn lock(r: &std::sync::Mutex<Reserve>) -> std::sync::MutexGuard<'_, Reserve> {
    r.lock().unwrap_or_else(|p| p.into_inner())
}

/// Back-off after an accept failure that [`Reserve::shed`] could not turn into a refusal:
/// short, so a connection that arrives meanwhile is refused within it.
pub const RETRY: std::time::Duration = std::time::Duration::from_millis(10);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budget_keeps_headroom_and_counts_two_per_connection() {
        let b = FdBudget::split(64 - 8, 4096, 64);
        assert_eq!(b.dns_tcp, (56 - HEADROOM) / 8);
        assert_eq!(b.connections, (56 - HEADROOM - b.dns_tcp) / 2);
        assert!(b.connections >= 5, "{b:?}");
        // Plenty of fds: the fixed bounds apply.
        let b = FdBudget::split(1 << 20, 4096, 64);
        assert_eq!((b.connections, b.dns_tcp), (4096, 64));
        // Fewer than the headroom: nothing is accepted for relaying.
        let b = FdBudget::split(HEADROOM - 1, 4096, 64);
        assert_eq!((b.connections, b.dns_tcp), (0, 0));
    }

    /// Not exhaustion: left to the caller, spare untouched.
    #[tokio::test]
    async fn other_errors_are_not_shed() {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut r = Reserve::new();
        let e = io::Error::from_raw_os_error(libc::ECONNABORTED);
        assert!(matches!(r.shed(&l, &e, "test"), Shed::NotExhaustion));
        assert!(r.armed());
        // EMFILE with an empty backlog: nothing refused, the spare kept.
        let e = io::Error::from_raw_os_error(libc::EMFILE);
        assert!(matches!(r.shed(&l, &e, "test"), Shed::Waiting(_)));
        assert!(r.armed());
    }
}
