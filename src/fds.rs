//! Inherited file descriptors.
//!
//! Enforces: every fd >= 3 is close-on-exec, so nothing clawjail inherited or opened reaches
//! the target. This matters because Landlock does not restrict fds opened before
//! restrict_self (an inherited fd reads an outside file; compare runc's CVE-2024-21626).
//! With socket activation allowed by the policy, fds 3..3+LISTEN_FDS stay open.

use std::io;

use crate::kernel::Kernel;

/// `close_range(first, ~0, CLOSE_RANGE_CLOEXEC)` — close_range(2).
pub fn mark_cloexec_from(k: &mut impl Kernel, first: u32) -> Result<(), (String, io::Error)> {
    k.cloexec_from(first)
        .map_err(|e| (format!("close_range({first}, ~0, CLOSE_RANGE_CLOEXEC)"), e))
}
