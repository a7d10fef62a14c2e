//! The supervisor: the one process that stays outside the jail when clawjail forks
//! (a process-group leader that cannot setsid, `--init` in a container, or a terminal on
//! fds 0-2 that the target must not hold). `session::fork_with_supervisor` forks; the
//! parent lands in [`run`], which performs the supervisor's own ordered setup
//! ([`SupervisorStep::ALL`]) and then serves its jobs from one poll(2) loop over a
//! signalfd and, with a terminal, the pty relay. No threads, no async runtime.
//!
//! Jobs: [`reaper`] (signals in, waitpid, exit status out) and [`pty`] (the terminal
//! relay). The supervisor is an attack surface (it parses the target's pty bytes), so it
//! keeps nothing it does not need: the target's uid/gid, no capabilities, no_new_privs,
//! not dumpable (the target, same uid, cannot ptrace it or open /proc/<pid>/fd/N, which
//! would hand it the caller's terminal), bounded buffers.

pub mod monitor;
pub mod pty;
pub mod reaper;

use std::io;
use std::os::fd::{AsFd, OwnedFd};

use nix::poll::{PollFd, PollFlags, PollTimeout};
use nix::sys::signal::Signal;
use nix::sys::signalfd::{SfdFlags, SignalFd};

use crate::identity::Ids;
pub use reaper::{exit_code, RELAYED};
use reaper::{ChildEvent, Reaper};

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
    /// `clawjail learn`: the learn job (listener handoff, recorder, policy writer).
    pub learn: Option<std::sync::Arc<crate::learn::Job>>,
    /// `[egress]`: the child makes the target's network namespace and hands its sockets
    /// over; this supervisor serves the broker (src/egress/wire.rs).
    pub egress: Option<crate::egress::wire::EgressJob>,
}

/// Capabilities the learn supervisor keeps on a root start (everything else is dropped):
/// reading a target that switched uid (non-dumpable until its exec) needs CAP_SYS_PTRACE
/// (ptrace(2) "Ptrace access mode checking"), resolving its paths the DAC ones, ending it
/// CAP_KILL.
const LEARN_CAPS: [caps::Capability; 4] = [
    caps::Capability::CAP_SYS_PTRACE,
    caps::Capability::CAP_DAC_READ_SEARCH,
    caps::Capability::CAP_DAC_OVERRIDE,
    caps::Capability::CAP_KILL,
];

/// What the supervisor keeps in its bounding set, so the launch's one drop before the
/// session fork (src/launch.rs, step drop-bounding-set) leaves it in place: LEARN_CAPS for
/// `clawjail learn` on a root start, else nothing.
pub fn bounding_kept(plan: &SupervisorPlan) -> &'static [caps::Capability] {
    match (&plan.ids, &plan.learn) {
        (Some(_), Some(_)) => &LEARN_CAPS,
        _ => &[],
    }
}

/// The supervisor's own setup, in order (docs/terminal.md lists it; a test pins it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SupervisorStep {
    CloseTargetSide,
    EgressSockets,
    DropPrivileges,
    NoNewPrivs,
    NotDumpable,
    EgressBroker,
    SignalFd,
    Ready,
}

impl SupervisorStep {
    pub const ALL: [SupervisorStep; 8] = [
        SupervisorStep::CloseTargetSide,
        SupervisorStep::EgressSockets,
        SupervisorStep::DropPrivileges,
        SupervisorStep::NoNewPrivs,
        SupervisorStep::NotDumpable,
        SupervisorStep::EgressBroker,
        SupervisorStep::SignalFd,
        SupervisorStep::Ready,
    ];

    pub fn name(self) -> &'static str {
        match self {
            SupervisorStep::CloseTargetSide => "close-target-side",
            SupervisorStep::EgressSockets => "egress-sockets",
            SupervisorStep::DropPrivileges => "drop-privileges",
            SupervisorStep::NoNewPrivs => "no-new-privs",
            SupervisorStep::NotDumpable => "not-dumpable",
            SupervisorStep::EgressBroker => "egress-broker",
            SupervisorStep::SignalFd => "signalfd",
            SupervisorStep::Ready => "ready",
        }
    }

    /// What the step does and why it sits there.
    pub fn summary(self) -> &'static str {
        match self {
            SupervisorStep::CloseTargetSide => "close the pty slave and /dev/null: only the target holds them, so the master reports EIO once the target's side is gone",
            SupervisorStep::DropPrivileges => "root start: bounding set (dropped before the fork and inherited; re-read here, anything left dropped; needs CAP_SETPCAP, so first), then the target's uid/gid/groups (it may still signal the child); then no capability in any set",
            SupervisorStep::NoNewPrivs => "PR_SET_NO_NEW_PRIVS: nothing the supervisor could exec gains privileges",
            SupervisorStep::NotDumpable => "PR_SET_DUMPABLE 0, after the id switch (which resets it): the target, same uid, cannot ptrace the supervisor or open /proc/<pid>/fd (the caller's terminal)",
            SupervisorStep::EgressSockets => "[egress] only: receive the capture and DNS sockets the child made inside the target's network namespace (SCM_RIGHTS); with inbound, fork the socket factory into that namespace (setns needs CAP_SYS_ADMIN on a root start, so before the drop; no thread exists yet)",
            SupervisorStep::EgressBroker => "[egress] only: serve the broker on one thread, started after the drop so it inherits no privilege; if the broker stops, the target is killed (fail closed)",
            SupervisorStep::SignalFd => "signalfd over the signals blocked before fork: none is lost, and they join the one poll loop",
            SupervisorStep::Ready => "one byte to the child, which waits for it before continuing its launch: if any step above failed, the child is killed before it execs (fail closed)",
        }
    }
}

/// Supervise `child` until it exits; never returns. `relay` is the terminal's supervisor
/// side (pty master and the caller's terminal, whether input is relayed) with the read end
/// of the monitor's status pipe; `ready` the write end the child waits on.
pub fn run(
    child: libc::pid_t,
    plan: &SupervisorPlan,
    relay: Option<((crate::terminal::Opened, bool), OwnedFd)>,
    ready: Option<OwnedFd>,
    egress: Option<OwnedFd>,
) -> ! {
    let job_control = relay.is_some();
    let mut reaper = Reaper::new(child, job_control);
    let (relay, status) = match relay {
        Some(((opened, input), status)) => (pty::Relay::new(opened, input), Some(status)),
        None => (None, None),
    };
    let sigfd = match set_up(plan, child, job_control, ready, egress) {
        Ok(fd) => fd,
        Err((step, call, e)) => {
            // The child is blocked before its exec waiting for `ready`: it never runs.
            reaper.kill_child();
            eprintln!("clawjail: supervisor: {}: {call}: {e}", step.name());
            std::process::exit(125);
        }
    };
    if plan.die_with_parent && crate::sys::set_pdeathsig(libc::SIGKILL).is_err() {
        // Unsupervised otherwise: stop the child rather than leave it running alone.
        reaper.kill_child();
        std::process::exit(125);
    }
    let mut learn = plan
        .learn
        .as_ref()
        .map(|job| crate::learn::notify::Session::new(job.clone()));
    let code = serve(&sigfd, &mut reaper, relay, status, learn.as_mut());
    let code = match learn {
        Some(session) => session.finish(code),
        None => code,
    };
    std::process::exit(code);
}

type StepError = (SupervisorStep, String, io::Error);

/// The supervisor's ordered setup (`SupervisorStep::ALL`); the close-target-side step ran
/// in `pty::Relay::new`.
fn set_up(
    plan: &SupervisorPlan,
    child: libc::pid_t,
    job_control: bool,
    ready: Option<OwnedFd>,
    egress: Option<OwnedFd>,
) -> Result<SignalFd, StepError> {
    let at = |step: SupervisorStep| move |(call, e): (String, io::Error)| (step, call, e);
    let egress_step =
        |step: SupervisorStep, call: &'static str| move |e: io::Error| (step, call.to_string(), e);
    let mut egress = match (&plan.egress, egress) {
        (Some(job), Some(chan)) => {
            let at = |c| egress_step(SupervisorStep::EgressSockets, c);
            // The broker is a thread and the factory must not land in the target's PID
            // namespace: a supervisor that made one points its children back at its own
            // first (CAP_SYS_ADMIN, so before the drop).
            crate::egress::wire::allow_threads().map_err(at("setns(own PID namespace)"))?;
            let got = crate::egress::wire::receive(job, &chan).map_err(at("receive"))?;
            Some((job, got))
        }
        _ => None,
    };
    // `clawjail learn` on a root start keeps uid 0 and LEARN_CAPS only (docs/learn.md).
    let keep = bounding_kept(plan);
    if let Some(ids) = &plan.ids {
        // The launch dropped the bounding set before the fork (inherited): this re-reads
        // it and drops only what is left (caps::drop_bounding_set).
        crate::caps::drop_bounding_set(&mut crate::kernel::Real, plan.last_cap, keep)
            .map_err(at(SupervisorStep::DropPrivileges))?;
        if plan.learn.is_none() {
            crate::identity::set_res_ids(&mut crate::kernel::Real, ids)
                .map_err(at(SupervisorStep::DropPrivileges))?;
        }
    }
    crate::caps::set_process_sets(&mut crate::kernel::Real, keep)
        .map_err(at(SupervisorStep::DropPrivileges))?;
    crate::nnp::set_no_new_privs(&mut crate::kernel::Real)
        .map_err(at(SupervisorStep::NoNewPrivs))?;
    nix::sys::prctl::set_dumpable(false).map_err(|e| {
        (
            SupervisorStep::NotDumpable,
            "prctl(PR_SET_DUMPABLE, 0)".to_string(),
            io::Error::from(e),
        )
    })?;
    if let Some((job, got)) = egress.take() {
        crate::egress::wire::start_broker(job, got, child)
            .map_err(egress_step(SupervisorStep::EgressBroker, "spawn"))?;
    }
    let sigfd = SignalFd::with_flags(
        &reaper::wait_set(job_control),
        SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC,
    )
    .map_err(|e| {
        (
            SupervisorStep::SignalFd,
            "signalfd".to_string(),
            io::Error::from(e),
        )
    })?;
    // A child that failed before reading `ready` (its own step error) has closed the
    // pipe: SIGPIPE stays blocked (the write fails with EPIPE instead of killing us) and
    // the loop then reaps the child and exits with its status (125).
    let mut pipe = nix::sys::signal::SigSet::empty();
    pipe.add(Signal::SIGPIPE);
    if pipe.thread_block().is_err() {
        tracing::debug!("blocking SIGPIPE failed");
    }
    // No pipe: a child that does not wait (the PID namespace's init, src/namespaces.rs).
    if let Some(ready) = ready {
        if nix::unistd::write(&ready, b"r").is_err() {
            tracing::debug!("ready: the child is gone");
        }
    }
    Ok(sigfd)
}

/// The one event loop: signals (reaper) and, with a terminal, the relay. Returns the exit
/// code once the main child has exited.
fn serve(
    sigfd: &SignalFd,
    reaper: &mut Reaper,
    mut relay: Option<pty::Relay>,
    mut status: Option<OwnedFd>,
    mut learn: Option<&mut crate::learn::notify::Session>,
) -> i32 {
    if let Some(r) = relay.as_mut() {
        r.resume();
    }
    loop {
        let mut timeout = relay.as_ref().map_or(PollTimeout::NONE, |r| r.timeout());
        if let Some(l) = learn.as_deref() {
            let t = l.timeout();
            if timeout == PollTimeout::NONE || t < timeout {
                timeout = t;
            }
        }
        let (sig_ready, status_ready, io_ready, learn_ready) = {
            let entries = relay.as_ref().map(|r| r.poll_fds()).unwrap_or_default();
            let mut fds: Vec<PollFd<'_>> = Vec::with_capacity(entries.len() + 2);
            fds.push(PollFd::new(sigfd.as_fd(), PollFlags::POLLIN));
            let status_at = status.as_ref().map(|s| {
                fds.push(PollFd::new(s.as_fd(), PollFlags::POLLIN));
                fds.len() - 1
            });
            let learn_at = learn.as_deref().map(|l| {
                fds.push(PollFd::new(l.poll_fd(), PollFlags::POLLIN));
                fds.len() - 1
            });
            let first_io = fds.len();
            fds.extend(entries.iter().map(|(_, fd, ev)| PollFd::new(*fd, *ev)));
            match nix::poll::poll(&mut fds, timeout) {
                Ok(_) => {}
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => {
                    eprintln!("clawjail: supervisor: poll: {e}");
                    return fail(reaper, relay.as_mut());
                }
            }
            let rev = |f: &PollFd<'_>| f.revents().unwrap_or(PollFlags::empty());
            let sig_ready = !rev(&fds[0]).is_empty();
            let status_ready = status_at.is_some_and(|i| !rev(&fds[i]).is_empty());
            let io_ready: Vec<(pty::Which, PollFlags)> = entries
                .iter()
                .zip(&fds[first_io..])
                .map(|((w, _, _), f)| (*w, rev(f)))
                .filter(|(_, r)| !r.is_empty())
                .collect();
            let learn_ready = learn_at.is_some_and(|i| !rev(&fds[i]).is_empty());
            (sig_ready, status_ready, io_ready, learn_ready)
        };
        // Signals first: once the target has exited, no more input may reach its pty.
        if sig_ready {
            if let Some(code) = on_signals(sigfd, reaper, relay.as_mut(), learn.as_deref_mut()) {
                return code;
            }
        }
        if let Some(l) = learn.as_deref_mut() {
            // An Err is kept by the session (`finish` reports it): stop the target.
            if learn_ready && l.on_ready().is_err() {
                return fail(reaper, relay.as_mut());
            }
            match l.tick() {
                Some(crate::learn::notify::Action::Terminate) => reaper.relay(Signal::SIGTERM),
                Some(crate::learn::notify::Action::Kill) => reaper.kill_child(),
                None => {}
            }
        }
        if status_ready && !on_status(&mut status, reaper, relay.as_mut()) {
            status = None;
        }
        if let Some(r) = relay.as_mut() {
            for (which, revents) in io_ready {
                r.on_ready(which, revents);
            }
            r.tick();
        }
    }
}

/// The monitor reported that the target stopped: stop the job like a terminal stop would,
/// and when continued, take the terminal again and continue the monitor (which continues
/// the target). Returns false once the pipe is closed (the monitor exited).
fn on_status(
    status: &mut Option<OwnedFd>,
    reaper: &Reaper,
    relay: Option<&mut pty::Relay>,
) -> bool {
    let Some(fd) = status.as_ref() else {
        return false;
    };
    let mut buf = [0u8; 16];
    match nix::unistd::read(fd, &mut buf) {
        Ok(0) => false,
        Ok(n) => {
            if buf[..n].contains(&monitor::STOPPED[0]) {
                if let Some(r) = relay {
                    r.suspend(libc::SIGTSTP);
                }
                reaper.relay(Signal::SIGCONT);
            }
            true
        }
        Err(nix::errno::Errno::EAGAIN | nix::errno::Errno::EINTR) => true,
        Err(_) => false,
    }
}

/// Drain the signalfd. Returns the exit code when the main child has exited.
fn on_signals(
    sigfd: &SignalFd,
    reaper: &mut Reaper,
    mut relay: Option<&mut pty::Relay>,
    mut learn: Option<&mut crate::learn::notify::Session>,
) -> Option<i32> {
    loop {
        let info = match sigfd.read_signal() {
            Ok(Some(i)) => i,
            Ok(None) => return None,
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => {
                eprintln!("clawjail: supervisor: signalfd: {e}");
                return Some(fail(reaper, relay));
            }
        };
        let Ok(sig) = Signal::try_from(info.ssi_signo as i32) else {
            continue;
        };
        match (sig, relay.as_deref_mut()) {
            (Signal::SIGCHLD, r) => {
                let mut r = r;
                for ev in reaper.reap() {
                    match ev {
                        ChildEvent::Exited(code) => {
                            if let Some(r) = r.as_deref_mut() {
                                r.finish();
                            }
                            return Some(code);
                        }
                        // The monitor was stopped from outside (kill -STOP): stop the job as
                        // a terminal stop would (SIGTSTP) and continue it with us. The
                        // target's own stops arrive on the status pipe (`on_status`).
                        ChildEvent::Stopped(_) => {
                            if let Some(r) = r.as_deref_mut() {
                                r.suspend(libc::SIGTSTP);
                                reaper.continue_child();
                            }
                        }
                        ChildEvent::Continued => {}
                    }
                }
            }
            // The relay resizes the pty; the kernel signals the target's foreground group.
            (Signal::SIGWINCH, Some(r)) => r.sync_size(),
            (Signal::SIGCONT, Some(r)) => {
                r.resume();
                reaper.continue_child();
                // The monitor continues the target only if it is stopped.
                reaper.relay(Signal::SIGCONT);
            }
            // A stop request from outside (a cooked-mode Ctrl-Z, kill -TSTP): pass it to the
            // target; when it stops, SIGCHLD suspends the supervisor with it.
            (Signal::SIGTSTP, Some(_)) => reaper.relay(Signal::SIGTSTP),
            (Signal::SIGTTIN | Signal::SIGTTOU, _) => {}
            (s, _) => {
                if let Some(l) = learn.as_deref_mut() {
                    l.on_signal(s);
                }
                reaper.relay(s)
            }
        }
    }
}

/// The supervisor cannot serve: give the terminal back, stop the target, exit 125.
fn fail(reaper: &Reaper, relay: Option<&mut pty::Relay>) -> i32 {
    if let Some(r) = relay {
        r.restore();
    }
    reaper.kill_child();
    125
}

#[cfg(test)]
mod tests {
    use super::*;

    /// docs/terminal.md lists the supervisor's setup; this keeps it identical to ALL.
    #[test]
    fn docs_list_the_supervisor_steps_in_order() {
        let expected: Vec<String> = SupervisorStep::ALL
            .iter()
            .enumerate()
            .map(|(i, s)| format!("{}. `{}`: {}", i + 1, s.name(), s.summary()))
            .collect();
        assert_eq!(
            crate::launch::pinned_list(include_str!("../../docs/terminal.md"), "supervisor-steps"),
            expected
        );
    }
}
