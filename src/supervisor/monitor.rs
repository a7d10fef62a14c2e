//! The pty session's leader, between the supervisor and the target (sudo's "monitor").
//!
//! Why a second process: the target must be able to stop. A process group whose members'
//! parents all live outside its session is *orphaned*, and the kernel discards SIGTSTP,
//! SIGTTIN and SIGTTOU with the default action for it (signal(7); kernel/signal.c
//! `is_current_pgrp_orphaned`). A target that led the pty's session with the supervisor
//! (another session) as its parent would be exactly that, so Ctrl-Z would do nothing. So
//! the forked child leads the pty's session and forks once more: the target runs in a
//! process group of its own inside that session, as the pty's foreground group, with this
//! monitor (same session, other group) as its parent, so it is not orphaned and Ctrl-Z
//! stops it like any shell job.
//!
//! The monitor then confines itself like the supervisor (target ids, no capabilities,
//! no_new_privs, not dumpable), relays the supervisor's signals to the target, reports a
//! stop to the supervisor with one byte on a pipe (it never stops itself: it may be the
//! init of a PID namespace, which cannot stop itself, pid_namespaces(7)), continues the
//! target when the supervisor sends it SIGCONT, and exits with the target's status.

use std::io;
use std::os::fd::{AsFd, OwnedFd, RawFd};

use nix::poll::{PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{killpg, Signal};
use nix::unistd::{getpid, setpgid, Pid};

use super::reaper::{ChildEvent, Reaper};
use super::SupervisorPlan;
use crate::session::SessionOutcome;

/// The byte the monitor writes on the status pipe when the target stopped.
pub const STOPPED: &[u8] = b"S";

/// In the child that leads the pty's session: fork the target. Returns in the target
/// (which waits until it is the pty's foreground group); the monitor never returns.
pub fn fork_target(
    sup: &SupervisorPlan,
    slave_fd: RawFd,
    status: OwnedFd,
) -> Result<SessionOutcome, (String, io::Error)> {
    let (ready_r, ready_w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
        .map_err(|e| ("pipe2(monitor ready)".to_string(), io::Error::from(e)))?;
    let me = getpid();
    let pid = crate::sys::fork().map_err(|e| ("fork() of the target".to_string(), e))?;
    if pid == 0 {
        drop(ready_w);
        drop(status);
        // Both sides call setpgid, so neither order of scheduling leaves a window.
        setpgid(Pid::from_raw(0), Pid::from_raw(0))
            .map_err(|e| ("setpgid(0, 0)".to_string(), io::Error::from(e)))?;
        crate::session::wait_ready(&mut crate::kernel::Real, ready_r)?;
        return Ok(SessionOutcome::Forked {
            supervisor: me.as_raw(),
        });
    }
    drop(ready_r);
    run(pid, sup, slave_fd, ready_w, status)
}

fn run(
    child: libc::pid_t,
    sup: &SupervisorPlan,
    slave_fd: RawFd,
    ready: OwnedFd,
    status: OwnedFd,
) -> ! {
    let mut reaper = Reaper::new(child, true);
    let pgid = Pid::from_raw(child);
    // The target's group becomes the pty's foreground group: the line discipline sends
    // Ctrl-C/Ctrl-\/Ctrl-Z to it. EACCES: the child already exec'd, impossible before ready.
    let fg = setpgid(pgid, pgid)
        .and_then(|()| nix::unistd::tcsetpgrp(crate::sys::std_fd(slave_fd), pgid))
        .map_err(|e| ("setpgid/tcsetpgrp(target)".to_string(), io::Error::from(e)));
    let parent = nix::unistd::getppid();
    let sigfd = match fg.and_then(|()| {
        super::set_up(sup, child, true, Some(ready), None)
            .map_err(|(step, call, e)| (format!("{}: {call}", step.name()), e))
    }) {
        Ok(fd) => fd,
        Err((call, e)) => {
            reaper.kill_child();
            eprintln!("clawjail: monitor: {call}: {e}");
            std::process::exit(125);
        }
    };
    // If the supervisor dies, so does the monitor (and with it the target, whose
    // PDEATHSIG names the monitor). Set after the id switch, which clears it (prctl(2)).
    if crate::sys::set_pdeathsig(libc::SIGKILL).is_err() || nix::unistd::getppid() != parent {
        reaper.kill_child();
        std::process::exit(125);
    }
    loop {
        let mut fds = [PollFd::new(sigfd.as_fd(), PollFlags::POLLIN)];
        match nix::poll::poll(&mut fds, PollTimeout::NONE) {
            Ok(_) | Err(nix::errno::Errno::EINTR) => {}
            Err(e) => {
                eprintln!("clawjail: monitor: poll: {e}");
                reaper.kill_child();
                std::process::exit(125);
            }
        }
        while let Ok(Some(info)) = sigfd.read_signal() {
            let Ok(sig) = Signal::try_from(info.ssi_signo as i32) else {
                continue;
            };
            match sig {
                Signal::SIGCHLD => {
                    for ev in reaper.reap() {
                        match ev {
                            ChildEvent::Exited(code) => {
                                // Take the pty's foreground back before leaving: a session
                                // leader's exit hangs up its terminal's foreground group
                                // (SIGHUP, disassociate_ctty), which would otherwise kill
                                // what the target left running in its group, as no shell
                                // does to a finished command's background children.
                                let me = nix::unistd::getpgrp();
                                if nix::unistd::tcsetpgrp(crate::sys::std_fd(slave_fd), me).is_err()
                                {
                                    tracing::debug!("tcsetpgrp(monitor) failed");
                                }
                                std::process::exit(code)
                            }
                            // Report the stop to the supervisor, which stops the job and
                            // sends us SIGCONT when it is continued.
                            ChildEvent::Stopped(_) => {
                                if nix::unistd::write(&status, STOPPED).is_err() {
                                    tracing::debug!("status: the supervisor is gone");
                                }
                            }
                            ChildEvent::Continued => {}
                        }
                    }
                }
                Signal::SIGCONT => reaper.continue_child(),
                // The pty resizes itself and signals its foreground group.
                Signal::SIGWINCH | Signal::SIGTTIN | Signal::SIGTTOU => {}
                // A stop request relayed by the supervisor (cooked-mode Ctrl-Z): to the
                // target's whole group, as the terminal would send it.
                Signal::SIGTSTP => {
                    if killpg(pgid, Signal::SIGTSTP).is_err() {
                        tracing::debug!("SIGTSTP: target gone");
                    }
                }
                s => reaper.relay(s),
            }
        }
    }
}
