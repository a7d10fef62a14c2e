//! The small parent process that stays behind when clawjail forks (a process-group leader
//! that cannot setsid, or `--init` in a container).
//!
//! It drops to the target uid/gid (so it may still signal the child, and holds nothing
//! worth stealing), keeps no capabilities, sets no_new_privs, relays SIGTERM, SIGINT,
//! SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2 and SIGWINCH to the child, reaps every child it is
//! given (with `--init` it is a subreaper, so orphaned grandchildren come to it), and exits
//! with the child's exit code, or 128+signal when the child was killed.

use std::io;

use nix::sys::signal::{kill, SigSet, SigmaskHow, Signal};
use nix::unistd::Pid;

use crate::identity::Ids;

/// Signals forwarded to the child.
pub const RELAYED: [Signal; 7] = [
    Signal::SIGTERM,
    Signal::SIGINT,
    Signal::SIGHUP,
    Signal::SIGQUIT,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
    Signal::SIGWINCH,
];

/// What the supervisor needs, resolved before the fork.
#[derive(Debug, Clone, Default)]
pub struct SupervisorPlan {
    /// Switch to these ids (root start); `None` keeps the caller's.
    pub ids: Option<Ids>,
    /// cap_last_cap, to drop the bounding set before the switch.
    pub last_cap: u32,
    /// PR_SET_CHILD_SUBREAPER (`--init`).
    pub subreaper: bool,
    /// Die with the parent (PR_SET_PDEATHSIG, set after the drop, which clears it): the
    /// PID namespace's init, whose death takes the target with it (src/namespaces.rs).
    pub die_with_parent: bool,
}

fn wait_set() -> SigSet {
    let mut set = SigSet::empty();
    for s in RELAYED {
        set.add(s);
    }
    set.add(Signal::SIGCHLD);
    set
}

/// Block the relayed signals and SIGCHLD (before fork).
pub fn block_relayed_signals() -> io::Result<()> {
    nix::sys::signal::sigprocmask(SigmaskHow::SIG_BLOCK, Some(&wait_set()), None)
        .map_err(io::Error::from)
}

/// Drop what the supervisor does not need. Same order as the launch (bounding set while
/// CAP_SETPCAP is held, then the ids, then the sets), minus everything the target needs.
fn drop_privileges(plan: &SupervisorPlan) -> Result<(), (String, io::Error)> {
    if let Some(ids) = &plan.ids {
        crate::caps::drop_bounding_set(plan.last_cap, &[])?;
        crate::identity::set_res_ids(ids)?;
    }
    crate::caps::set_process_sets(&[])?;
    crate::nnp::set_no_new_privs()
}

/// Supervise `child` until it exits; never returns.
pub fn run(child: libc::pid_t, plan: &SupervisorPlan) -> ! {
    if let Err((call, e)) = drop_privileges(plan) {
        // The child must not run with a supervisor that kept root.
        // kill(2) on our own child: nothing to report if it already exited.
        if kill(Pid::from_raw(child), Signal::SIGKILL).is_err() {
            tracing::debug!("child already gone");
        }
        eprintln!("clawjail: supervisor: {call}: {e}");
        std::process::exit(125);
    }
    if plan.die_with_parent && crate::sys::set_pdeathsig(libc::SIGKILL).is_err() {
        // Unsupervised otherwise: stop the child rather than leave it running alone.
        if kill(Pid::from_raw(child), Signal::SIGKILL).is_err() {
            tracing::debug!("child already gone");
        }
        std::process::exit(125);
    }
    let set = wait_set();
    loop {
        let sig = match crate::sys::sigwait(&set) {
            Ok(s) => s,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                eprintln!("clawjail: supervisor: sigwaitinfo: {e}");
                std::process::exit(125);
            }
        };
        if sig == libc::SIGCHLD {
            if let Some(code) = reap(child) {
                std::process::exit(code);
            }
        } else if let Ok(s) = Signal::try_from(sig) {
            // ESRCH means the child is already gone; its SIGCHLD follows.
            if kill(Pid::from_raw(child), s).is_err() {
                tracing::debug!(signal = sig, "relay failed: child gone");
            }
        }
    }
}

/// Reap every exited child; return the exit code once `main` has exited.
fn reap(main: libc::pid_t) -> Option<i32> {
    loop {
        match crate::sys::waitpid(-1, libc::WNOHANG) {
            Ok((0, _)) => return None,
            Ok((pid, status)) if pid == main => return Some(exit_code(status)),
            Ok(_) => continue,
            Err(_) => return None, // ECHILD: nothing left to reap
        }
    }
}

/// Shell convention: the exit code, or 128+signal.
pub fn exit_code(status: i32) -> i32 {
    if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else if libc::WIFSIGNALED(status) {
        128 + libc::WTERMSIG(status)
    } else {
        125
    }
}
