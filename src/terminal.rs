//! Terminal isolation: the target never receives a descriptor of the caller's terminal.
//!
//! A terminal fd is a read/write/ioctl handle on the caller's keyboard and screen. A target
//! that kept one (or forked a daemon that kept one) could read the next line typed into the
//! caller's shell (a password), change its modes for good (`stty -echo`), or keep writing
//! to it after `run` returned; setsid(2) and the TIOCSTI guard do not stop any of that,
//! because read(2) and tcsetattr(3) on an fd the process already holds need no controlling
//! terminal (n_tty job control only applies to a process's own controlling tty).
//!
//! So when any of fds 0-2 is a terminal (`process.terminal`, docs/terminal.md):
//! - `pty` (default): a new pseudo-terminal replaces every terminal among fds 0-2; the
//!   target leads the pty's session (its controlling tty, so Ctrl-C/Ctrl-\/Ctrl-Z work
//!   through the pty's line discipline) and the supervisor relays the master
//!   (`supervisor::pty`), as sudo's use_pty, `runuser --pty` and `systemd-run --pty` do.
//! - `null-stdin`: stdin becomes /dev/null; a terminal stdout/stderr still goes through a
//!   new pty, relayed output-only: the caller's terminal is never read and its modes are
//!   never changed (daemons started from a shell).
//!
//! Everything fallible (openpty, /dev/null, the supervisor's own handle on the caller's
//! terminal) happens in `prepare`; in the child, `attach` only calls setsid, TIOCSCTTY and
//! dup2 on descriptors that already exist. Non-terminal fds (pipes, files, journald's
//! socket) pass through untouched, and with no terminal on fds 0-2 nothing here runs.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};

use nix::fcntl::{fcntl, FcntlArg, FdFlag, OFlag};
use nix::sys::stat::Mode;

use crate::policy::TerminalMode;

/// What the terminal step will do, decided in `plan::prepare`.
#[derive(Debug)]
pub struct TerminalPlan {
    pub mode: TerminalMode,
    /// Which of fds 0, 1, 2 are terminals (isatty(3) at prepare time).
    pub ttys: [bool; 3],
    /// The descriptors, opened by `run` only (`check` and `--dry-run` open nothing).
    /// A take-once slot: the launch hands them to the supervisor and the target without
    /// changing anything else in the plan (`launch::apply(&Plan)`).
    pub opened: std::cell::RefCell<Option<Opened>>,
}

/// The descriptors the terminal step needs, all close-on-exec.
#[derive(Debug)]
pub struct Opened {
    /// The new pty (absent when only stdin is a terminal and it becomes /dev/null).
    pub pty: Option<PtyPair>,
    /// /dev/null for stdin (`null-stdin` with a terminal stdin).
    pub null: Option<OwnedFd>,
    /// The supervisor's own handle on the caller's terminal.
    pub caller: Option<CallerTty>,
}

/// A new pseudo-terminal: master (non-blocking, stays with the supervisor) and slave (the
/// target's fds 0-2 and controlling terminal).
#[derive(Debug)]
pub struct PtyPair {
    pub master: OwnedFd,
    pub slave: OwnedFd,
}

/// The caller's terminal as the supervisor holds it.
#[derive(Debug)]
pub struct CallerTty {
    pub fd: OwnedFd,
    /// Opened anew through /proc/self/fd/N with O_NONBLOCK: a file description of its own,
    /// so non-blocking I/O never changes the shell's (fcntl(2) flags are per description).
    /// false: a dup of the inherited fd, used in blocking mode after poll(2).
    pub nonblocking: bool,
}

/// Why the terminal step cannot be prepared.
#[derive(Debug, thiserror::Error)]
#[error("terminal: {what}: {source}")]
pub struct TerminalError {
    pub what: String,
    #[source]
    pub source: io::Error,
}

fn terr(what: impl Into<String>) -> impl FnOnce(nix::Error) -> TerminalError {
    let what = what.into();
    move |e| TerminalError {
        what,
        source: e.into(),
    }
}

/// Which of fds 0-2 are terminals.
pub fn terminal_fds() -> [bool; 3] {
    // A closed fd is simply not a terminal (EBADF).
    [0, 1, 2].map(|fd: RawFd| nix::unistd::isatty(crate::sys::std_fd(fd)).unwrap_or(false))
}

impl TerminalPlan {
    /// Decide (and, with `open`, open) the terminal step. `None` when no fd 0-2 is a
    /// terminal: nothing to do, no supervisor needed for it.
    pub fn prepare(mode: TerminalMode, open: bool) -> Result<Option<TerminalPlan>, TerminalError> {
        let ttys = terminal_fds();
        if !ttys.iter().any(|t| *t) {
            return Ok(None);
        }
        let mut plan = TerminalPlan {
            mode,
            ttys,
            opened: std::cell::RefCell::new(None),
        };
        if open {
            plan.opened = std::cell::RefCell::new(Some(plan.open()?));
        }
        Ok(Some(plan))
    }

    /// A pty is needed when the target gets one on any fd.
    pub fn needs_pty(&self) -> bool {
        self.ttys[1] || self.ttys[2] || (self.mode == TerminalMode::Pty && self.ttys[0])
    }

    /// The supervisor reads the caller's terminal (and puts it in raw mode while in the
    /// foreground) only in `pty` mode with a terminal stdin.
    pub fn relays_input(&self) -> bool {
        self.mode == TerminalMode::Pty && self.ttys[0]
    }

    /// The fds the target gets the pty slave on.
    fn slave_fds(&self) -> Vec<RawFd> {
        (0..3)
            .filter(|&i| self.ttys[i as usize] && !(i == 0 && self.mode == TerminalMode::NullStdin))
            .collect()
    }

    /// One line for `check` and the launch log.
    pub fn describe(&self) -> String {
        let fds: Vec<String> = (0..3)
            .filter(|&i| self.ttys[i])
            .map(|i| i.to_string())
            .collect();
        let fds = fds.join(",");
        match (self.needs_pty(), self.relays_input()) {
            (true, true) => format!("pty relay: fds {fds} are a terminal; the target gets a new pty (its controlling tty), the supervisor relays input and output and holds the caller's terminal"),
            (true, false) if self.mode == TerminalMode::NullStdin && self.ttys[0] => format!("pty relay, output only: fds {fds} are a terminal; stdin is /dev/null, terminal output goes through a new pty; the caller's terminal is never read"),
            (true, false) => format!("pty relay, output only: fds {fds} are a terminal (stdin is not); terminal output goes through a new pty"),
            (false, _) => format!("no relay: fd {fds} is a terminal and becomes /dev/null (process.terminal = \"null-stdin\")"),
        }
    }

    fn open(&self) -> Result<Opened, TerminalError> {
        let first = (0..3).find(|&i| self.ttys[i as usize]).unwrap_or(0);
        let caller = if self.needs_pty() {
            Some(open_caller(first, self.relays_input())?)
        } else {
            None
        };
        let pty = if self.needs_pty() {
            Some(open_pty(crate::sys::std_fd(first), !self.relays_input())?)
        } else {
            None
        };
        let null = if self.mode == TerminalMode::NullStdin && self.ttys[0] {
            Some(
                nix::fcntl::open(
                    "/dev/null",
                    OFlag::O_RDONLY | OFlag::O_CLOEXEC | OFlag::O_NOCTTY,
                    Mode::empty(),
                )
                .map_err(terr("open(/dev/null)"))?,
            )
        } else {
            None
        };
        Ok(Opened { pty, null, caller })
    }
}

/// openpty(3) with the caller's termios and window size (what the user sees stays the
/// same: erase/kill characters, IUTF8, size), both ends close-on-exec, the master
/// non-blocking. openpty opens the slave with O_NOCTTY, so clawjail acquires no
/// controlling terminal here. Output-only (the caller's terminal stays in its own cooked
/// mode, which already turns \n into \r\n): no output processing on the pty, or every
/// line would reach the screen as \r\r\n.
fn open_pty(caller: BorrowedFd<'_>, output_only: bool) -> Result<PtyPair, TerminalError> {
    let mut termios = nix::sys::termios::tcgetattr(caller).ok();
    if output_only {
        if let Some(t) = termios.as_mut() {
            t.output_flags.remove(nix::sys::termios::OutputFlags::OPOST);
        }
    }
    let winsize = crate::sys::get_winsize(caller).ok();
    let pair = nix::pty::openpty(winsize.as_ref(), termios.as_ref()).map_err(terr("openpty"))?;
    for fd in [pair.master.as_fd(), pair.slave.as_fd()] {
        fcntl(fd, FcntlArg::F_SETFD(FdFlag::FD_CLOEXEC)).map_err(terr("fcntl(FD_CLOEXEC)"))?;
    }
    let fl = OFlag::from_bits_truncate(
        fcntl(pair.master.as_fd(), FcntlArg::F_GETFL).map_err(terr("fcntl(F_GETFL)"))?,
    );
    fcntl(
        pair.master.as_fd(),
        FcntlArg::F_SETFL(fl | OFlag::O_NONBLOCK),
    )
    .map_err(terr("fcntl(master, O_NONBLOCK)"))?;
    Ok(PtyPair {
        master: pair.master,
        slave: pair.slave,
    })
}

/// The supervisor's handle on the caller's terminal: a new open file description when the
/// tty can be reopened (so O_NONBLOCK stays ours), else a dup used in blocking mode.
fn open_caller(fd: RawFd, read: bool) -> Result<CallerTty, TerminalError> {
    let path = format!("/proc/self/fd/{fd}");
    let acc = if read { OFlag::O_RDWR } else { OFlag::O_WRONLY };
    match nix::fcntl::open(
        path.as_str(),
        acc | OFlag::O_NONBLOCK | OFlag::O_NOCTTY | OFlag::O_CLOEXEC,
        Mode::empty(),
    ) {
        Ok(fd) => Ok(CallerTty {
            fd,
            nonblocking: true,
        }),
        Err(e) => {
            tracing::debug!("reopening the caller's terminal ({path}): {e}; using a dup");
            let dup = crate::sys::std_fd(fd)
                .try_clone_to_owned()
                .map_err(|source| TerminalError {
                    what: format!("dup(fd {fd})"),
                    source,
                })?;
            Ok(CallerTty {
                fd: dup,
                nonblocking: false,
            })
        }
    }
}

/// In the target (after fork or in place), as part of the session step: lead a session
/// whose controlling terminal is the new pty, put the slave (or /dev/null) on the fds that
/// were terminals, and close every other terminal descriptor clawjail held. Only
/// descriptors that exist already are touched; errors name the call. Returns one fd (0-2)
/// that now holds the slave, if any.
pub fn attach(
    plan: &TerminalPlan,
    in_new_session: bool,
) -> Result<Option<RawFd>, (String, io::Error)> {
    let slave_fds = plan.slave_fds();
    let Some(opened) = plan.opened.borrow_mut().take() else {
        return Err((
            "terminal".into(),
            io::Error::other("the terminal step was not prepared"),
        ));
    };
    drop(opened.caller);
    if let Some(null) = opened.null {
        dup_onto(null.as_fd(), 0)?;
    }
    let Some(pty) = opened.pty else {
        return Ok(None);
    };
    if in_new_session {
        // ioctl_tty(2) TIOCSCTTY: a session leader without a controlling tty makes the
        // pty its own, so the pty's line discipline can signal its foreground group
        // (Ctrl-C, Ctrl-\, Ctrl-Z) and /dev/tty names the pty, not the caller's terminal.
        crate::sys::set_controlling_tty(pty.slave.as_fd())
            .map_err(|e| ("ioctl(slave, TIOCSCTTY)".to_string(), e))?;
    }
    for fd in &slave_fds {
        dup_onto(pty.slave.as_fd(), *fd)?;
    }
    Ok(slave_fds.first().copied())
}

/// dup2(from, to): `to` (the caller's terminal) is closed and replaced atomically.
fn dup_onto(from: BorrowedFd<'_>, to: RawFd) -> Result<(), (String, io::Error)> {
    let r = match to {
        0 => nix::unistd::dup2_stdin(from),
        1 => nix::unistd::dup2_stdout(from),
        _ => nix::unistd::dup2_stderr(from),
    };
    r.map_err(|e| (format!("dup2({}, {to})", from.as_raw_fd()), e.into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(mode: TerminalMode, ttys: [bool; 3]) -> TerminalPlan {
        TerminalPlan {
            mode,
            ttys,
            opened: std::cell::RefCell::new(None),
        }
    }

    #[test]
    fn pty_mode_replaces_every_terminal_fd_and_relays_input_only_with_a_terminal_stdin() {
        let p = plan(TerminalMode::Pty, [true, true, true]);
        assert!(p.needs_pty() && p.relays_input());
        assert_eq!(p.slave_fds(), vec![0, 1, 2]);
        // `clawjail run ... | less`: stdin and stderr are the terminal, stdout a pipe.
        let p = plan(TerminalMode::Pty, [true, false, true]);
        assert_eq!(p.slave_fds(), vec![0, 2]);
        // `echo x | clawjail run ...`: output only; the terminal is never read.
        let p = plan(TerminalMode::Pty, [false, true, true]);
        assert!(p.needs_pty() && !p.relays_input());
        assert_eq!(p.slave_fds(), vec![1, 2]);
    }

    #[test]
    fn null_stdin_never_reads_the_terminal() {
        let p = plan(TerminalMode::NullStdin, [true, true, true]);
        assert!(p.needs_pty() && !p.relays_input());
        assert_eq!(p.slave_fds(), vec![1, 2]);
        // Only stdin is a terminal: /dev/null, no pty, no fork.
        let p = plan(TerminalMode::NullStdin, [true, false, false]);
        assert!(!p.needs_pty());
        assert!(p.slave_fds().is_empty());
        assert!(p.describe().contains("/dev/null"));
    }

    #[test]
    fn attach_refuses_an_unprepared_plan() {
        let p = plan(TerminalMode::Pty, [true, true, true]);
        assert!(attach(&p, true).is_err());
    }
}
