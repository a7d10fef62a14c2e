//! Session: the target must not share the caller's controlling terminal, or it could
//! push keystrokes into the caller's shell with TIOCSTI (CVE-2017-5226, bubblewrap#142).
//!
//! - Already a session leader (systemd and runc start services that way): nothing to do.
//! - Otherwise setsid(2). It fails with EPERM for a process-group leader — an interactive
//!   shell job — so then clawjail forks once: the child continues the launch in a session
//!   of its own and the parent becomes the small [`crate::supervisor`].
//! - `--init` always forks, so the parent can be PID 1 (reaper) for a container.
//!
//! The seccomp filter also refuses TIOCSTI/TIOCLINUX whatever happens here.

use std::io;

use nix::unistd::{getpid, getsid, setsid};

use crate::supervisor::{self, SupervisorPlan};

/// What the session step did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum SessionOutcome {
    /// `process.new_session = false`: the target keeps the caller's session (degraded).
    NotRequested,
    /// clawjail already led its session.
    AlreadyLeader,
    /// setsid() succeeded in place.
    NewSession,
    /// Forked: this process is the child in a new session; `supervisor` relays signals.
    Forked { supervisor: i32 },
}

/// How the session step should behave.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionMode {
    Keep,
    New,
    Init,
}

/// Run the session step. In the fork case the parent never returns: it supervises the
/// child and exits with the child's status.
pub fn enter_new_session(
    mode: SessionMode,
    sup: &SupervisorPlan,
) -> Result<SessionOutcome, (String, io::Error)> {
    match mode {
        SessionMode::Keep => return Ok(SessionOutcome::NotRequested),
        SessionMode::Init => return fork_with_supervisor(sup),
        SessionMode::New => {}
    }
    let me = getpid();
    if getsid(None).map(|s| s == me).unwrap_or(false) {
        return Ok(SessionOutcome::AlreadyLeader);
    }
    match setsid() {
        Ok(_) => Ok(SessionOutcome::NewSession),
        // setsid(2): EPERM when the caller is a process-group leader.
        Err(nix::errno::Errno::EPERM) => fork_with_supervisor(sup),
        Err(e) => Err(("setsid()".to_string(), e.into())),
    }
}

fn fork_with_supervisor(sup: &SupervisorPlan) -> Result<SessionOutcome, (String, io::Error)> {
    if sup.subreaper {
        // Without it, orphaned grandchildren are re-parented to the real PID 1 (or the
        // nearest subreaper), not to clawjail — prctl(2) PR_SET_CHILD_SUBREAPER.
        nix::sys::prctl::set_child_subreaper(true).map_err(|e| {
            (
                "prctl(PR_SET_CHILD_SUBREAPER, 1)".to_string(),
                io::Error::from(e),
            )
        })?;
    }
    // Block the relayed signals before fork so none is lost between fork and sigwaitinfo;
    // the child clears its mask at the signals step.
    supervisor::block_relayed_signals()
        .map_err(|e| ("sigprocmask(SIG_BLOCK, relayed)".to_string(), e))?;
    let parent = getpid().as_raw();
    let pid = crate::sys::fork().map_err(|e| ("fork()".to_string(), e))?;
    if pid == 0 {
        setsid().map_err(|e| {
            (
                "setsid() in the forked child".to_string(),
                io::Error::from(e),
            )
        })?;
        Ok(SessionOutcome::Forked { supervisor: parent })
    } else {
        supervisor::run(pid, sup)
    }
}
