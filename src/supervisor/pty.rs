//! The terminal relay: the caller's terminal <-> the master of the target's new pty.
//!
//! The target holds only the pty slave; the supervisor holds the caller's terminal and the
//! master and copies bytes between them with bounded buffers. While the supervisor is in
//! the caller's foreground process group and relays input, the caller's terminal is in raw
//! mode (cfmakeraw(3)), so every key, Ctrl-C, Ctrl-\ and Ctrl-Z included, reaches the
//! pty's own line discipline, which signals the target (its foreground process group).
//! The saved modes are restored before the supervisor stops (Ctrl-Z), on exit and on every
//! error path (a SIGKILL of the supervisor is the one case that leaves the terminal raw).
//!
//! In the background (`clawjail run ... &`, or after `bg`) the supervisor neither reads the
//! caller's terminal nor changes its modes; it rechecks the foreground group on SIGCONT
//! and every `BACKGROUND_RECHECK` (bash's `fg` of a running job sends no SIGCONT).
//! When the target exits, input stops at once, the master is drained for at most
//! `DRAIN_MAX`, and the supervisor exits: a daemon that kept the slave gets EIO/SIGHUP
//! from the hung-up pty, never the caller's terminal.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout};
use nix::sys::termios::{self, SetArg, Termios};

use crate::terminal::Opened;

/// Bytes buffered per direction; a full buffer stops reading its source (the writer
/// blocks in the kernel), so a flood costs the supervisor no memory.
const BUF: usize = 16 * 1024;
/// After the target exits: stop draining when nothing arrived for this long...
const DRAIN_IDLE: Duration = Duration::from_millis(50);
/// ...or after this long in total (a daemon may keep writing to the slave).
const DRAIN_MAX: Duration = Duration::from_millis(300);
/// While in the background, how often to check whether `fg` brought us forward.
pub const BACKGROUND_RECHECK: Duration = Duration::from_millis(200);

/// One direction's bounded buffer.
#[derive(Debug)]
struct Buf {
    data: Vec<u8>,
}

impl Buf {
    fn new() -> Buf {
        Buf {
            data: Vec::with_capacity(BUF),
        }
    }
    fn room(&self) -> usize {
        BUF - self.data.len()
    }
    fn is_empty(&self) -> bool {
        self.data.is_empty()
    }
}

/// Which descriptor a poll entry stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Which {
    MasterIn,
    MasterOut,
    CallerIn,
    CallerOut,
}

/// The relay's state.
#[derive(Debug)]
pub struct Relay {
    master: OwnedFd,
    caller: OwnedFd,
    /// Read the caller's terminal (pty mode with a terminal stdin).
    input: bool,
    to_master: Buf,
    to_caller: Buf,
    /// The caller's modes while raw mode is applied (restored from here).
    saved: Option<Termios>,
    foreground: bool,
    /// Started in the background: the modes copied onto the pty in prepare were the
    /// shell's line-editing modes (readline), not a job's; copy them again when first
    /// brought to the foreground, when the shell has given the terminal back cooked.
    copy_modes_on_fg: Option<bool>,
    caller_closed: bool,
    master_closed: bool,
}

impl Relay {
    /// Take the supervisor's side of the prepared descriptors; the slave and /dev/null are
    /// closed here, so the master reports EIO once the target and its children are gone.
    pub fn new(opened: Opened, input: bool) -> Option<Relay> {
        let pty = opened.pty?;
        let caller = opened.caller?;
        drop(pty.slave);
        drop(opened.null);
        Some(Relay {
            master: pty.master,
            caller: caller.fd,
            input,
            to_master: Buf::new(),
            to_caller: Buf::new(),
            saved: None,
            foreground: false,
            copy_modes_on_fg: None,
            caller_closed: false,
            master_closed: false,
        })
    }

    /// Whether the supervisor's process group is the terminal's foreground group. A
    /// terminal that is not our controlling tty (ENOTTY) has no job control: foreground.
    fn check_foreground(&mut self) -> bool {
        self.foreground = match nix::unistd::tcgetpgrp(self.caller.as_fd()) {
            Ok(pg) => pg == nix::unistd::getpgrp(),
            Err(Errno::ENOTTY) => true,
            Err(_) => false,
        };
        self.foreground
    }

    /// Start, or continue after a stop: take the terminal if we are in the foreground
    /// (raw mode, current size); in the background leave it alone.
    pub fn resume(&mut self) {
        let fg = self.check_foreground();
        let first = self.copy_modes_on_fg.is_none();
        if first {
            self.copy_modes_on_fg = Some(!fg);
        }
        if !fg {
            return;
        }
        if !first && self.copy_modes_on_fg == Some(true) {
            self.copy_modes_on_fg = Some(false);
            if let Ok(t) = termios::tcgetattr(self.caller.as_fd()) {
                // Termios ioctls on a pty master act on its slave (tty_ioctl(4)).
                if let Err(e) = termios::tcsetattr(self.master.as_fd(), SetArg::TCSANOW, &t) {
                    tracing::debug!("copying modes to the pty: {e}");
                }
            }
        }
        if self.input && self.saved.is_none() {
            self.enter_raw();
        }
        self.sync_size();
    }

    fn enter_raw(&mut self) {
        let Ok(saved) = termios::tcgetattr(self.caller.as_fd()) else {
            return;
        };
        let mut raw = saved.clone();
        termios::cfmakeraw(&mut raw);
        // TCSADRAIN: output already written is shown with the old modes first.
        match termios::tcsetattr(self.caller.as_fd(), SetArg::TCSADRAIN, &raw) {
            Ok(()) => self.saved = Some(saved),
            Err(e) => tracing::debug!("raw mode: {e}"),
        }
    }

    /// Put the caller's modes back exactly as they were (idempotent).
    pub fn restore(&mut self) {
        if let Some(saved) = self.saved.take() {
            if let Err(e) = termios::tcsetattr(self.caller.as_fd(), SetArg::TCSADRAIN, &saved) {
                tracing::debug!("restoring the terminal: {e}");
            }
        }
    }

    /// SIGWINCH: the caller's size onto the master; the kernel then signals the pty's
    /// foreground group (ioctl_tty(2) TIOCSWINSZ), so the target needs no relayed signal.
    pub fn sync_size(&mut self) {
        if let Ok(ws) = crate::sys::get_winsize(self.caller.as_fd()) {
            if let Err(e) = crate::sys::set_winsize(self.master.as_fd(), &ws) {
                tracing::debug!("TIOCSWINSZ: {e}");
            }
        }
    }

    /// Poll timeout: in the background, recheck the foreground group now and then.
    pub fn timeout(&self) -> PollTimeout {
        if self.input && !self.foreground && !self.caller_closed {
            PollTimeout::try_from(BACKGROUND_RECHECK).unwrap_or(PollTimeout::NONE)
        } else {
            PollTimeout::NONE
        }
    }

    /// Called after every poll: a background supervisor checks whether it was brought to
    /// the foreground without a SIGCONT.
    pub fn tick(&mut self) {
        if self.input && !self.foreground {
            self.resume();
        }
    }

    /// The descriptors to poll now and for what.
    pub fn poll_fds(&self) -> Vec<(Which, BorrowedFd<'_>, PollFlags)> {
        let mut v = Vec::with_capacity(4);
        if !self.master_closed && self.to_caller.room() > 0 {
            v.push((Which::MasterIn, self.master.as_fd(), PollFlags::POLLIN));
        }
        if !self.master_closed && !self.to_master.is_empty() {
            v.push((Which::MasterOut, self.master.as_fd(), PollFlags::POLLOUT));
        }
        // Only while raw mode is applied, which implies the foreground: a background read
        // would take input meant for the shell.
        if self.input && self.saved.is_some() && !self.caller_closed && self.to_master.room() > 0 {
            v.push((Which::CallerIn, self.caller.as_fd(), PollFlags::POLLIN));
        }
        if !self.caller_closed && !self.to_caller.is_empty() {
            v.push((Which::CallerOut, self.caller.as_fd(), PollFlags::POLLOUT));
        }
        v
    }

    /// Do the I/O poll said is ready.
    pub fn on_ready(&mut self, which: Which, revents: PollFlags) {
        let ready =
            PollFlags::POLLIN | PollFlags::POLLOUT | PollFlags::POLLHUP | PollFlags::POLLERR;
        if !revents.intersects(ready) {
            return;
        }
        match which {
            Which::MasterIn => {
                if fill(&self.master, &mut self.to_caller).is_err() {
                    // EIO: no slave is open any more (the target closed it or is gone).
                    self.master_closed = true;
                }
            }
            Which::MasterOut => {
                if flush(&self.master, &mut self.to_master).is_err() {
                    self.to_master.data.clear();
                }
            }
            Which::CallerIn => {
                if fill(&self.caller, &mut self.to_master).is_err() {
                    // Hangup of the caller's terminal: SIGHUP is relayed separately.
                    self.caller_closed = true;
                }
            }
            Which::CallerOut => {
                if flush(&self.caller, &mut self.to_caller).is_err() {
                    self.caller_closed = true;
                    self.to_caller.data.clear();
                }
            }
        }
    }

    /// The target stopped: give the terminal back, stop like a job, and on continue take
    /// it again (if in the foreground).
    pub fn suspend(&mut self, sig: i32) {
        self.flush_caller_now();
        self.restore();
        super::reaper::suspend_self(sig);
        self.resume();
    }

    /// The target exited: no more input; show what it wrote (bounded by `DRAIN_MAX`);
    /// give the terminal back. The master is closed when the supervisor exits.
    pub fn finish(&mut self) {
        self.input = false;
        self.to_master.data.clear();
        let deadline = Instant::now() + DRAIN_MAX;
        loop {
            self.flush_caller_now();
            let now = Instant::now();
            if self.master_closed || now >= deadline {
                break;
            }
            let wait = (deadline - now).min(DRAIN_IDLE);
            let mut fds = [PollFd::new(self.master.as_fd(), PollFlags::POLLIN)];
            match nix::poll::poll(
                &mut fds,
                PollTimeout::try_from(wait).unwrap_or(PollTimeout::ZERO),
            ) {
                Ok(0) => break, // idle: everything the target wrote has been read
                Ok(_) => {
                    if fill(&self.master, &mut self.to_caller).is_err() {
                        self.master_closed = true;
                    }
                }
                Err(Errno::EINTR) => continue,
                Err(_) => break,
            }
        }
        self.flush_caller_now();
        self.restore();
    }

    /// Write what is buffered for the caller, waiting at most `DRAIN_IDLE` per chunk.
    fn flush_caller_now(&mut self) {
        while !self.caller_closed && !self.to_caller.is_empty() {
            let mut fds = [PollFd::new(self.caller.as_fd(), PollFlags::POLLOUT)];
            match nix::poll::poll(
                &mut fds,
                PollTimeout::try_from(DRAIN_IDLE).unwrap_or(PollTimeout::ZERO),
            ) {
                Ok(0) => break,
                Ok(_) => {
                    if flush(&self.caller, &mut self.to_caller).is_err() {
                        self.caller_closed = true;
                    }
                }
                Err(Errno::EINTR) => continue,
                Err(_) => break,
            }
        }
        if self.caller_closed {
            self.to_caller.data.clear();
        }
    }
}

/// read(2) into the buffer's free room. Ok on data or EAGAIN/EINTR; Err on EOF or error.
fn fill(fd: &OwnedFd, buf: &mut Buf) -> Result<(), Errno> {
    let mut tmp = [0u8; 4096];
    let n = buf.room().min(tmp.len());
    if n == 0 {
        return Ok(());
    }
    match nix::unistd::read(fd.as_fd(), &mut tmp[..n]) {
        Ok(0) => Err(Errno::EIO),
        Ok(got) => {
            buf.data.extend_from_slice(&tmp[..got]);
            Ok(())
        }
        Err(Errno::EAGAIN) | Err(Errno::EINTR) => Ok(()),
        Err(e) => Err(e),
    }
}

/// write(2) from the front of the buffer. Ok on progress or EAGAIN/EINTR.
fn flush(fd: &OwnedFd, buf: &mut Buf) -> Result<(), Errno> {
    if buf.is_empty() {
        return Ok(());
    }
    let chunk = buf.data.len().min(4096);
    match nix::unistd::write(fd.as_fd(), &buf.data[..chunk]) {
        Ok(n) => {
            buf.data.drain(..n);
            Ok(())
        }
        Err(Errno::EAGAIN) | Err(Errno::EINTR) => Ok(()),
        Err(e) => Err(e),
    }
}
