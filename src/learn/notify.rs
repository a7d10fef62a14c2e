//! The learn job of the supervisor: receive the listener from the target, then for each
//! notification decode and record the call, check the notification is still valid
//! (SECCOMP_IOCTL_NOTIF_ID_VALID: the memory read belonged to that call), and reply
//! SECCOMP_USER_NOTIF_FLAG_CONTINUE. It decides nothing. Progress goes to stderr; the
//! `--duration` deadline, Ctrl-C and SIGTERM end the target (SIGTERM, then SIGKILL after a
//! grace period), and the policy is written when the target has exited.

use std::collections::HashMap;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::poll::{PollFd, PollFlags, PollTimeout};
use nix::sys::signal::Signal;

use super::decode::{self, Thread};
use super::record::Recording;
use super::Job;

/// Progress lines on stderr this often.
const PROGRESS: Duration = Duration::from_secs(5);
/// After SIGTERM, how long the target gets before SIGKILL.
const GRACE: Duration = Duration::from_secs(5);
/// Notifications handled per wake-up before the loop looks at signals again.
const BATCH: usize = 256;

/// What the supervisor must do to the target after a `tick`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Relay SIGTERM (the `--duration` deadline).
    Terminate,
    /// SIGKILL (the grace period after SIGTERM is over).
    Kill,
}

/// The run must stop; the reason is kept in the session for `finish`.
#[derive(Debug)]
pub struct Stop;

pub struct Session {
    job: Arc<Job>,
    listener: Option<OwnedFd>,
    rec: Recording,
    started: Instant,
    next_progress: Instant,
    deadline: Option<Instant>,
    kill_at: Option<Instant>,
    abort: Option<String>,
    exes: HashMap<u32, String>,
    ended_by: Option<String>,
}

impl Session {
    pub fn new(job: Arc<Job>) -> Session {
        let now = Instant::now();
        Session {
            deadline: job.duration.map(|d| now + d),
            job,
            listener: None,
            rec: Recording::default(),
            started: now,
            next_progress: now + PROGRESS,
            kill_at: None,
            abort: None,
            exes: HashMap::new(),
            ended_by: None,
        }
    }

    /// The fd the loop polls: the handoff socket until the listener arrives, then it.
    pub fn poll_fd(&self) -> BorrowedFd<'_> {
        match &self.listener {
            Some(l) => l.as_fd(),
            None => self.job.handoff.supervisor.as_fd(),
        }
    }

    /// Milliseconds until `tick` has something to do.
    pub fn timeout(&self) -> PollTimeout {
        let now = Instant::now();
        let next = [Some(self.next_progress), self.deadline, self.kill_at]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or(self.next_progress);
        let ms = next.saturating_duration_since(now).as_millis().min(60_000) as i32;
        PollTimeout::try_from(ms.max(1)).unwrap_or(PollTimeout::NONE)
    }

    /// The polled fd is readable. Err: the run must stop (the reason is kept for `finish`).
    pub fn on_ready(&mut self) -> Result<(), Stop> {
        let Some(owned) = self.listener.take() else {
            return self.take_listener();
        };
        let r = self.drain(owned.as_fd());
        self.listener = Some(owned);
        r
    }

    fn drain(&mut self, listener: BorrowedFd<'_>) -> Result<(), Stop> {
        for _ in 0..BATCH {
            let n = match crate::sys::seccomp_notif_recv(listener) {
                Ok(n) => n,
                // ENOENT: the thread died before we received it.
                Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Ok(()),
                Err(e) if e.raw_os_error() == Some(libc::EINTR) => continue,
                Err(e) => {
                    self.abort = Some(format!("SECCOMP_IOCTL_NOTIF_RECV: {e}"));
                    return Err(Stop);
                }
            };
            self.rec.events += 1;
            if let Err(a) = self.handle(listener, &n) {
                self.abort = Some(a.0);
                return Err(Stop);
            }
            if crate::sys::seccomp_notif_continue(listener, n.id).is_err() {
                // ENOENT: the thread died or was interrupted; nothing to answer.
            }
            let mut fds = [PollFd::new(listener, PollFlags::POLLIN)];
            if !matches!(nix::poll::poll(&mut fds, PollTimeout::ZERO), Ok(n) if n > 0) {
                break;
            }
        }
        Ok(())
    }

    fn handle(
        &mut self,
        listener: BorrowedFd<'_>,
        n: &crate::sys::Notif,
    ) -> Result<(), decode::Abort> {
        let mut th = Thread::new(n.pid);
        let exe = match self.exes.get(&n.pid) {
            Some(e) => e.clone(),
            None => {
                let e = th.exe()?;
                self.exes.insert(n.pid, e.clone());
                e
            }
        };
        let unlisted = u32::try_from(n.nr).is_ok_and(|nr| self.job.unlisted.contains(&nr));
        decode::record(n, unlisted, &mut th, &exe, &mut self.rec)?;
        // The memory we read belonged to this call only if it is still pending.
        if !crate::sys::seccomp_notif_id_valid(listener, n.id) {
            tracing::debug!(id = n.id, "notification no longer valid");
        }
        if matches!(
            u32::try_from(n.nr)
                .ok()
                .and_then(crate::seccomp::syscalls::name),
            Some("execve" | "execveat")
        ) {
            self.exes.remove(&n.pid);
        }
        Ok(())
    }

    fn take_listener(&mut self) -> Result<(), Stop> {
        match super::handoff::recv_listener(&self.job.handoff.supervisor) {
            Ok(fd) => {
                eprintln!(
                    "clawjail learn: recording (listener fd {}); Ctrl-C or --duration ends the run and writes the policy",
                    fd.as_raw_fd()
                );
                self.listener = Some(fd);
                Ok(())
            }
            Err(e) => {
                // The child failed before install (its own error is on stderr); the loop
                // reaps it and exits with its status.
                tracing::debug!("handoff: {e}");
                Err(Stop)
            }
        }
    }

    /// Progress, the deadline and the grace period: what to do to the target, if anything.
    pub fn tick(&mut self) -> Option<Action> {
        let now = Instant::now();
        if now >= self.next_progress {
            self.next_progress = now + PROGRESS;
            eprintln!(
                "clawjail learn: {:.1}s, {} events, {} paths, {} ports, {} new syscalls",
                self.started.elapsed().as_secs_f64(),
                self.rec.events,
                self.rec.paths(),
                self.rec.bind.len() + self.rec.connect.len(),
                self.rec.syscalls.len()
            );
        }
        if self.deadline.is_some_and(|d| now >= d) && self.kill_at.is_none() {
            self.ended_by = Some("--duration".into());
            eprintln!("clawjail learn: --duration reached: SIGTERM to the target");
            self.kill_at = Some(now + GRACE);
            return Some(Action::Terminate);
        }
        if self.kill_at.is_some_and(|k| now >= k) {
            self.kill_at = None;
            self.deadline = None;
            return Some(Action::Kill);
        }
        None
    }

    /// A stop signal reached the supervisor (Ctrl-C, SIGTERM): it is relayed; make sure
    /// the target ends so the policy gets written.
    pub fn on_signal(&mut self, sig: Signal) {
        if matches!(sig, Signal::SIGINT | Signal::SIGTERM | Signal::SIGHUP)
            && self.kill_at.is_none()
        {
            self.ended_by = Some(format!("{sig}"));
            self.kill_at = Some(Instant::now() + GRACE);
        }
    }

    /// The target has exited with `code`: write the policy (unless the run aborted or the
    /// target never started) and return learn's exit code.
    pub fn finish(self, code: i32) -> i32 {
        if let Some(reason) = &self.abort {
            eprintln!("clawjail learn: aborted, no policy written: {reason}");
            return 125;
        }
        if self.listener.is_none() {
            eprintln!("clawjail learn: the target never started (exit {code}); no policy written");
            return if code == 0 { 125 } else { code };
        }
        eprintln!(
            "clawjail learn: target exited ({}) after {:.1}s; {} events",
            match &self.ended_by {
                Some(by) => format!("ended by {by}, status {code}"),
                None => format!("status {code}"),
            },
            self.started.elapsed().as_secs_f64(),
            self.rec.events
        );
        match super::write::write(&self.job, &self.rec) {
            Ok(msg) => {
                eprintln!("{msg}");
                0
            }
            Err(e) => {
                eprintln!("clawjail learn: writing the policy: {e}");
                125
            }
        }
    }
}
