//! Signals in, waitpid, exit status out.
//!
//! The supervisor relays SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2 and SIGWINCH to
//! the child (systemd and Docker see it as the main process), reaps every child it is given
//! (with `--init` it is a subreaper, so orphaned grandchildren come to it), and exits with
//! the child's exit code, or 128+signal when the child was killed.
//!
//! With a pty relay it also takes part in job control, as a shell job would: when the
//! target stops (Ctrl-Z through the pty), the supervisor stops its own process group with
//! the same signal, so the caller's shell sees a stopped job; `fg`/`bg` continue it, and it
//! continues the target.

use std::io;

use nix::sys::signal::{kill, killpg, SigSet, SigmaskHow, Signal};
use nix::unistd::Pid;

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

/// Job-control signals the supervisor handles itself when it relays a pty. Blocked, so a
/// tty stop signal never stops the supervisor behind the target's back; blocking SIGTTOU
/// also means the kernel would let a background supervisor change the terminal's modes
/// (tty_check_change treats a blocked SIGTTOU as permission), so `pty` checks the
/// foreground process group itself before every mode change.
pub const JOB_CONTROL: [Signal; 4] = [
    Signal::SIGTSTP,
    Signal::SIGTTIN,
    Signal::SIGTTOU,
    Signal::SIGCONT,
];

/// The signals the supervisor reads from its signalfd.
pub fn wait_set(job_control: bool) -> SigSet {
    let mut set = SigSet::empty();
    for s in RELAYED {
        set.add(s);
    }
    if job_control {
        for s in JOB_CONTROL {
            set.add(s);
        }
    }
    set.add(Signal::SIGCHLD);
    set
}

/// Block the supervisor's signals before fork, so none is lost between fork and the
/// signalfd; the child clears its mask at the signals step.
pub fn block_signals(k: &mut impl crate::kernel::Kernel, job_control: bool) -> io::Result<()> {
    k.block_signals(&wait_set(job_control))
}

/// What waitpid reported about the main child.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChildEvent {
    /// Exited or was killed: the supervisor's exit code.
    Exited(i32),
    /// Stopped by this signal.
    Stopped(i32),
    Continued,
}

/// The main child and what is known about it.
#[derive(Debug)]
pub struct Reaper {
    pub child: libc::pid_t,
    /// Report stops and continues (pty relay); without, waitpid only sees exits.
    job_control: bool,
    /// The child is stopped (the supervisor continues it when it is continued itself).
    pub stopped: bool,
}

impl Reaper {
    pub fn new(child: libc::pid_t, job_control: bool) -> Reaper {
        Reaper {
            child,
            job_control,
            stopped: false,
        }
    }

    /// Reap every child that changed state; return what happened to the main one.
    pub fn reap(&mut self) -> Vec<ChildEvent> {
        let flags = if self.job_control {
            libc::WNOHANG | libc::WUNTRACED | libc::WCONTINUED
        } else {
            libc::WNOHANG
        };
        let mut events = Vec::new();
        loop {
            match crate::sys::waitpid(-1, flags) {
                Ok((0, _)) => break,
                Ok((pid, status)) if pid == self.child => {
                    if libc::WIFSTOPPED(status) {
                        self.stopped = true;
                        events.push(ChildEvent::Stopped(libc::WSTOPSIG(status)));
                    } else if libc::WIFCONTINUED(status) {
                        self.stopped = false;
                        events.push(ChildEvent::Continued);
                    } else {
                        events.push(ChildEvent::Exited(exit_code(status)));
                        break;
                    }
                }
                Ok(_) => continue,
                Err(_) => break, // ECHILD: nothing left to reap
            }
        }
        events
    }

    /// Forward a signal. ESRCH means the child is already gone; its SIGCHLD follows.
    pub fn relay(&self, sig: Signal) {
        if kill(Pid::from_raw(self.child), sig).is_err() {
            tracing::debug!(signal = ?sig, "relay failed: child gone");
        }
    }

    /// Continue the target's process group (it leads its own session, so its pgid is its
    /// pid) if it is stopped.
    pub fn continue_child(&mut self) {
        if self.stopped {
            if killpg(Pid::from_raw(self.child), Signal::SIGCONT).is_err() {
                tracing::debug!("SIGCONT: child gone");
            }
            self.stopped = false;
        }
    }

    /// SIGKILL the child (the supervisor cannot serve: fail closed).
    pub fn kill_child(&self) {
        if kill(Pid::from_raw(self.child), Signal::SIGKILL).is_err() {
            tracing::debug!("child already gone");
        }
    }
}

/// Stop the supervisor's own process group with `sig`, as the terminal would have stopped
/// the whole job without clawjail (sudo's suspend_sudo does the same); returns once the
/// supervisor is continued, or at once when the kernel discards the stop (an orphaned
/// process group ignores SIGTSTP/SIGTTIN/SIGTTOU, signal(7)).
pub fn suspend_self(sig: i32) {
    let Ok(sig) = Signal::try_from(sig) else {
        return;
    };
    let sig = if JOB_CONTROL.contains(&sig) || sig == Signal::SIGSTOP {
        sig
    } else {
        Signal::SIGTSTP
    };
    if killpg(nix::unistd::getpgrp(), sig).is_err() {
        tracing::debug!("killpg(own group) failed");
        return;
    }
    if sig != Signal::SIGSTOP {
        // The stop signal is blocked (it is read from the signalfd): unblocking delivers
        // the pending one now with its default action (stop); we return when continued.
        let mut one = SigSet::empty();
        one.add(sig);
        if nix::sys::signal::sigprocmask(SigmaskHow::SIG_UNBLOCK, Some(&one), None).is_ok()
            && nix::sys::signal::sigprocmask(SigmaskHow::SIG_BLOCK, Some(&one), None).is_err()
        {
            tracing::debug!("re-blocking {sig:?} failed");
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
