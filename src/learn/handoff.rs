//! The listener handoff: an AF_UNIX socketpair made before the fork. The target sends the
//! seccomp listener over it (SCM_RIGHTS, unix(7)) right after installing the filter and
//! before exec; the supervisor polls its end next to its signals. A target that fails
//! before that closes nothing the supervisor waits on for ever: its exit arrives as
//! SIGCHLD on the same poll loop.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};

use nix::sys::socket::{socketpair, AddressFamily, SockFlag, SockType};

/// Both ends; the target's end is close-on-exec, so the target never keeps it.
#[derive(Debug)]
pub struct Handoff {
    pub supervisor: OwnedFd,
    pub target: OwnedFd,
}

impl Handoff {
    pub fn new() -> io::Result<Handoff> {
        let (a, b) = socketpair(
            AddressFamily::Unix,
            SockType::Stream,
            None,
            SockFlag::SOCK_CLOEXEC,
        )
        .map_err(io::Error::from)?;
        Ok(Handoff {
            supervisor: a,
            target: b,
        })
    }

    /// The target's end, by number (the learning filter allows sendmsg on it unobserved).
    pub fn target_fd(&self) -> i32 {
        self.target.as_raw_fd()
    }

    /// In the target, after install: send the listener, then close our copy of it.
    pub fn send_listener(&self, listener: OwnedFd) -> Result<(), (String, io::Error)> {
        crate::egress::netns::send_fds(self.target.as_raw_fd(), b'L', &[listener.as_raw_fd()])
            .map_err(|e| {
                (
                    "sendmsg(SCM_RIGHTS, seccomp listener)".to_string(),
                    io::Error::other(e.to_string()),
                )
            })?;
        drop(listener);
        Ok(())
    }
}

/// In the supervisor: the listener, once the target has sent it.
pub fn recv_listener(sock: &OwnedFd) -> io::Result<OwnedFd> {
    let (tag, mut fds) = crate::egress::netns::recv_fds(sock.as_raw_fd(), 1)
        .map_err(|e| io::Error::other(e.to_string()))?;
    match (tag, fds.pop()) {
        (b'L', Some(fd)) => Ok(fd),
        _ => Err(io::Error::other("no listener in the handoff message")),
    }
}
