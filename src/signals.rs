//! Signal dispositions and mask.
//!
//! Enforces: the target starts with every signal at SIG_DFL and nothing blocked. Ignored
//! dispositions and the mask survive execve (execve(2), signal(7)); Rust's std ignores
//! SIGPIPE and a shell may leave others ignored, which would leak into the target.
//! Handled signals are reset by execve anyway; ignored ones are not.

use std::io;

use crate::kernel::Kernel;

/// Raw rt_sigaction(sig, SIG_DFL) for 1..=SIGRTMAX except SIGKILL and SIGSTOP, then an
/// empty mask. Raw, because glibc refuses 32 and 33 (see `sys::signal_default`).
pub fn reset_dispositions_and_mask(k: &mut impl Kernel) -> Result<(), (String, io::Error)> {
    for sig in 1..=crate::sys::sigrtmax() {
        if sig == libc::SIGKILL || sig == libc::SIGSTOP {
            continue;
        }
        k.signal_default(sig)
            .map_err(|e| (format!("rt_sigaction({sig}, SIG_DFL)"), e))?;
    }
    k.unblock_all_signals()
        .map_err(|e| ("rt_sigprocmask(SIG_SETMASK, {})".to_string(), e))
}
