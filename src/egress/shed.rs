//! Refusing new connections when the broker is out of file descriptors, while the
//! connections it holds keep going.
//!
//! At EMFILE/ENFILE, accept(2) cannot hand over the pending connection: it stays in the
//! listener's backlog and the client waits, unanswered, until an fd frees up (accept(2):
//! the connection is not dequeued on error). The classic remedy (libev's and nginx's
//! "reserve fd"): hold one spare descriptor; when accept fails for want of fds, close
//! the spare, accept the pending connection, reset it (SO_LINGER 0: the client fails at
//! once with ECONNRESET), log the refusal, and take the spare back.

use std::fs::File;
use std::io;

use tokio::net::TcpListener;

/// One spare fd kept for refusing a connection at the fd limit.
#[derive(Debug, Default)]
pub struct Reserve(Option<File>);

impl Reserve {
    pub fn new() -> Self {
        Reserve(File::open("/dev/null").ok())
    }

    /// After an accept failed with `e`: if it was fd exhaustion, refuse one pending
    /// connection with the spare fd and log it. Returns whether one was refused.
    pub async fn refuse_one(&mut self, l: &TcpListener, e: &io::Error, what: &str) -> bool {
        if !matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE)) {
            return false;
        }
        let Some(spare) = self.0.take() else {
            return false;
        };
        drop(spare);
        // Ready at once: the pending connection is what made accept fail.
        let refused = match tokio::time::timeout(std::time::Duration::from_millis(10), l.accept())
            .await
        {
            Ok(Ok((s, peer))) => {
                let dst = s.local_addr().map_or("-".to_string(), |a| a.to_string());
                if s.set_zero_linger().is_err() {
                    tracing::debug!("SO_LINGER 0 failed; closing normally");
                }
                drop(s);
                tracing::warn!(
                    event = "egress-connect", verdict = "refused", name = "-", dst = %dst,
                    peer = %peer, why = "file descriptor limit reached (connections held are kept)",
                    "egress: refused a new {what} connection to {dst}: file descriptor limit reached"
                );
                true
            }
            _ => false,
        };
        self.0 = File::open("/dev/null").ok();
        refused
    }
}
