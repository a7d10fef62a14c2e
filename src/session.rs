//! Session: the target must not share the caller's controlling terminal, or it could
//! push keystrokes into the caller's shell with TIOCSTI (CVE-2017-5226, bubblewrap#142).
//!
//! - Already a session leader (systemd and runc start services that way): nothing to do.
//! - Otherwise setsid(2). It fails with EPERM for a process-group leader — an interactive
//!   shell job — so then clawjail forks once: the child continues the launch in a session
//!   of its own and the parent becomes the small [`crate::supervisor`].
//! - `--init` always forks, so the parent can be PID 1 (reaper) for a container.
//!
//! - A terminal on fds 0-2 always forks (unless it only needs a /dev/null stdin): the
//!   child leads a new session whose controlling tty is a new pty, the parent relays it
//!   ([`crate::terminal`], [`crate::supervisor::pty`]).
//!
//! The seccomp filter also refuses TIOCSTI/TIOCLINUX whatever happens here.

use std::io;

use crate::kernel::Kernel;
use crate::supervisor::{self, SupervisorPlan};
use crate::terminal::TerminalPlan;

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

/// prctl(PR_SET_PDEATHSIG, SIGKILL) in a forked target-to-be, then check the supervisor is
/// still its parent. After the id switch: any euid/egid change clears PDEATHSIG (prctl(2));
/// if the supervisor died before this, stop rather than run unsupervised. A no-op when
/// the session step did not fork.
pub fn die_with_supervisor(
    k: &mut impl Kernel,
    outcome: SessionOutcome,
) -> Result<(), (String, io::Error)> {
    let SessionOutcome::Forked { supervisor } = outcome else {
        return Ok(());
    };
    k.set_pdeathsig(libc::SIGKILL)
        .map_err(|e| ("prctl(PR_SET_PDEATHSIG, SIGKILL)".to_string(), e))?;
    if k.getppid() != supervisor {
        return Err((
            "getppid()".to_string(),
            io::Error::other("the supervisor exited"),
        ));
    }
    Ok(())
}

/// Run the session step. In the fork case the parent never returns: it supervises the
/// child and exits with the child's status. With a terminal on fds 0-2 (`terminal`), the
/// target must not keep it: when it gets a new pty, clawjail always forks (the supervisor
/// relays the pty) and the child leads the pty's session whatever `mode` says; a plain
/// `/dev/null` stdin needs no fork.
pub fn enter_new_session(
    k: &mut impl Kernel,
    mode: SessionMode,
    sup: &SupervisorPlan,
    terminal: Option<&TerminalPlan>,
    pid_namespace: bool,
) -> Result<SessionOutcome, (String, io::Error)> {
    let relay = terminal.as_ref().is_some_and(|t| t.needs_pty());
    if mode == SessionMode::Init || relay {
        return fork_with_supervisor(k, sup, terminal, pid_namespace);
    }
    let outcome = match mode {
        SessionMode::Keep => SessionOutcome::NotRequested,
        _ => {
            let me = k.getpid();
            if k.getsid().map(|s| s == me).unwrap_or(false) {
                SessionOutcome::AlreadyLeader
            } else {
                match k.setsid() {
                    Ok(()) => SessionOutcome::NewSession,
                    // setsid(2): EPERM when the caller is a process-group leader.
                    Err(e) if e.raw_os_error() == Some(libc::EPERM) => {
                        return fork_with_supervisor(k, sup, terminal, pid_namespace)
                    }
                    Err(e) => return Err(("setsid()".to_string(), e)),
                }
            }
        }
    };
    if let Some(t) = terminal {
        crate::terminal::attach(t, false)?;
    }
    Ok(outcome)
}

/// Fork once: the child continues the launch in a session of its own (with the new pty as
/// its controlling terminal when there is one); the parent becomes the supervisor. The
/// child waits for the supervisor's ready byte before it goes on, so a supervisor that
/// failed its own setup kills a child that has not exec'd yet.
pub fn fork_with_supervisor(
    k: &mut impl Kernel,
    sup: &SupervisorPlan,
    terminal: Option<&TerminalPlan>,
    pid_namespace: bool,
) -> Result<SessionOutcome, (String, io::Error)> {
    if sup.subreaper {
        // Without it, orphaned grandchildren are re-parented to the real PID 1 (or the
        // nearest subreaper), not to clawjail — prctl(2) PR_SET_CHILD_SUBREAPER.
        k.set_child_subreaper()
            .map_err(|e| ("prctl(PR_SET_CHILD_SUBREAPER, 1)".to_string(), e))?;
    }
    let relay = terminal.as_ref().is_some_and(|t| t.needs_pty());
    // Block the supervisor's signals before fork so none is lost between fork and its
    // signalfd; the child clears its mask at the signals step.
    supervisor::reaper::block_signals(k, relay)
        .map_err(|e| ("sigprocmask(SIG_BLOCK, supervisor set)".to_string(), e))?;
    let (ready_r, ready_w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
        .map_err(|e| ("pipe2(ready)".to_string(), io::Error::from(e)))?;
    // With a pty: the monitor reports the target's stops to the supervisor on this pipe.
    let status = if relay {
        Some(
            nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC | nix::fcntl::OFlag::O_NONBLOCK)
                .map_err(|e| ("pipe2(status)".to_string(), io::Error::from(e)))?,
        )
    } else {
        None
    };
    // [egress]: the child sends the sockets it makes inside the target's network namespace
    // to the supervisor over this pair (src/egress/wire.rs).
    let egress = match &sup.egress {
        Some(_) => Some(crate::egress::wire::channel()?),
        None => None,
    };
    let parent = k.getpid();
    let pid = k.fork().map_err(|e| ("fork()".to_string(), e))?;
    if pid == 0 {
        drop(ready_w);
        let status_w = status.map(|(r, w)| {
            drop(r);
            w
        });
        k.setsid()
            .map_err(|e| ("setsid() in the forked child".to_string(), e))?;
        // Step egress-namespace (src/launch.rs): before the target (or the pty monitor that
        // forks it) exists, so every process of the target's tree is born inside.
        if let (Some(job), Some((child_end, sup_end))) = (&sup.egress, egress) {
            drop(sup_end);
            crate::egress::wire::enter_namespace(job, child_end)?;
        }
        let slave = match terminal {
            Some(t) => crate::terminal::attach(t, true)?,
            None => None,
        };
        wait_ready(k, ready_r)?;
        match (slave, status_w) {
            // This child leads the pty's session; the target runs one level down, in a
            // process group the terminal can stop (see `supervisor::monitor`).
            (Some(fd), Some(w)) => {
                // In a PID namespace this child is its pid 1: the monitor is also the
                // namespace's init, with a /proc of the namespace's own (src/namespaces.rs).
                if pid_namespace {
                    crate::namespaces::mount_own_proc(k)?;
                }
                supervisor::monitor::fork_target(sup, fd, w)
            }
            _ => Ok(SessionOutcome::Forked { supervisor: parent }),
        }
    } else {
        drop(ready_r);
        let opened = terminal.and_then(|t| {
            let input = t.relays_input();
            t.opened.borrow_mut().take().map(|o| (o, input))
        });
        let status_r = status.map(|(r, w)| {
            drop(w);
            r
        });
        let egress = egress.map(|(child_end, sup_end)| {
            drop(child_end);
            sup_end
        });
        supervisor::run(pid, sup, opened.zip(status_r), Some(ready_w), egress)
    }
}

/// Block until the supervisor says it is set up; EOF means it failed (and kills us).
pub fn wait_ready(k: &mut impl Kernel, r: std::os::fd::OwnedFd) -> Result<(), (String, io::Error)> {
    use std::os::fd::AsFd;
    let mut b = [0u8; 1];
    loop {
        match k.read(r.as_fd(), &mut b) {
            Ok(1) => return Ok(()),
            Ok(_) => {
                return Err((
                    "read(ready)".to_string(),
                    io::Error::other("the supervisor failed its setup"),
                ))
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(("read(ready)".to_string(), e)),
        }
    }
}
