//! Probe actions: attempt one thing and report the kernel's answer exactly.
//!
//! Used by the `clawjail-probe` test binary (one action per process, since confinement is
//! irreversible) and by `clawjail verify` (in a confined child). Each action prints one
//! line: `ok [detail]` or `errno NAME` (e.g. `errno EACCES`), so tests can assert the exact
//! errno instead of "non-zero" (an exit-127 "tool missing" must never count as a denial).
//!
//! Families live in their own files: `core` (ids, fds, env, signals, session),
//! `fs` (files, exec, links), `net` (TCP, unix sockets, scopes), `sys` (syscall guards),
//! `tty` (terminals).

pub mod action;
pub mod core;
pub mod egress;
pub mod fs;
pub mod net;
pub mod sys;
pub mod tty;

use std::io;

/// The result of one attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Ok(String),
    Errno(i32),
    /// The probe could not even set up its attempt (fixture missing, bad arguments).
    Broken(String),
}

impl Outcome {
    pub fn from_io<T>(r: io::Result<T>, detail: impl FnOnce(T) -> String) -> Outcome {
        match r {
            Ok(v) => Outcome::Ok(detail(v)),
            Err(e) => match e.raw_os_error() {
                Some(n) => Outcome::Errno(n),
                None => Outcome::Broken(e.to_string()),
            },
        }
    }

    pub fn from_nix<T>(r: nix::Result<T>, detail: impl FnOnce(T) -> String) -> Outcome {
        match r {
            Ok(v) => Outcome::Ok(detail(v)),
            Err(e) => Outcome::Errno(e as i32),
        }
    }

    pub fn line(&self) -> String {
        match self {
            Outcome::Ok(d) if d.is_empty() => "ok".to_string(),
            Outcome::Ok(d) => format!("ok {d}"),
            Outcome::Errno(n) => format!("errno {}", errno_name(*n)),
            Outcome::Broken(m) => format!("broken {m}"),
        }
    }
}

/// The errno's name lives in `sys` (mechanism modules use it too); re-exported for the
/// probe families.
pub use crate::sys::errno_name;

pub use action::Action;

/// Run one action. `None` only if no family handles it (`every_action_has_a_family`
/// pins that this cannot happen).
pub fn run(action: Action, args: &[String]) -> Option<Outcome> {
    core::run(action, args)
        .or_else(|| fs::run(action, args))
        .or_else(|| net::run(action, args))
        .or_else(|| sys::run(action, args))
        .or_else(|| tty::run(action, args))
}

/// Parse the n-th argument or return a Broken outcome from the caller.
pub fn arg<T: std::str::FromStr>(args: &[String], n: usize) -> Result<T, Outcome> {
    args.get(n)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| Outcome::Broken(format!("missing or bad argument {n}")))
}
