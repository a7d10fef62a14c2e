//! Mount namespace: a private /tmp for the target (`[filesystem] private_tmp = true`).
//!
//! Enforces: names in the shared /tmp that the gateway hard-codes
//! (`/tmp/openclaw-state-locks-<uid>`) and clawjail's own `${TMP}` (`/tmp/clawjail-<uid>`)
//! cannot be squatted by another local user: clawjail enters a new mount namespace
//! (unshare(2) CLONE_NEWNS), turns every mount into a slave of the host's
//! (mount_namespaces(7) "shared subtrees": MS_SLAVE|MS_REC, so nothing mounted here
//! propagates back to the host, while host mounts still reach us), and mounts a fresh
//! tmpfs on /tmp (mode 1777, nosuid, nodev). The fresh /tmp is empty and root-owned, so
//! the directories `create` makes there are the target's and nobody else's, and another
//! user's planted links or FIFOs in the host's /tmp are simply not there.
//!
//! Runs during `open-resources`' first part (launch step `private-tmp`), before any Landlock
//! path fd or `create` directory is opened: the rules must name the private /tmp's inodes,
//! not the host's, which the new mount hides. The namespace belongs to this process (and
//! the target it execs): if the launch fails afterwards, it disappears with it.
//!
//! Cannot: run on an unprivileged start (CAP_SYS_ADMIN is needed; a user namespace would
//! change the target's uid view) or in a container started without CAP_SYS_ADMIN (EPERM).
//! Then /tmp stays shared and `paths::ensure_dir` refuses a squatted name, naming its owner
//! and the fix. A target or env file under /tmp is not visible through the private /tmp.

use std::io;

use nix::mount::{mount, MsFlags};
use nix::sched::{unshare, CloneFlags};

/// What happened to /tmp, for `check` and the launch log.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case", tag = "state")]
pub enum PrivateTmp {
    /// The policy does not ask for it.
    Off,
    /// `check`/dry run on a root start: it would be mounted.
    WouldMount,
    /// A fresh tmpfs is mounted on /tmp in a new mount namespace.
    Private,
    /// Asked for but not possible here: /tmp is the host's (squatting is refused instead).
    Shared { reason: String },
}

/// A mount-namespace call that failed.
#[derive(Debug, thiserror::Error)]
#[error("{call}: {source}")]
pub struct MountError {
    pub call: &'static str,
    pub source: io::Error,
}

fn err(call: &'static str) -> impl FnOnce(nix::Error) -> MountError {
    move |e| MountError {
        call,
        source: e.into(),
    }
}

/// unshare(CLONE_NEWNS), make / a recursive slave, mount a fresh tmpfs on /tmp.
pub fn enter_private_tmp() -> Result<(), MountError> {
    // unshare(2): the calling process gets a copy of the mount table; needs CAP_SYS_ADMIN.
    unshare(CloneFlags::CLONE_NEWNS).map_err(err("unshare(CLONE_NEWNS)"))?;
    // mount_namespaces(7): on systemd hosts / is a shared mount, so the copy is in the
    // host's peer group and our tmpfs would appear on the host's /tmp. MS_SLAVE|MS_REC cuts
    // propagation from us to the host while keeping host mounts visible here.
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_SLAVE | MsFlags::MS_REC,
        None::<&str>,
    )
    .map_err(err("mount(/, MS_SLAVE|MS_REC)"))?;
    mount(
        Some("tmpfs"),
        "/tmp",
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
        Some("mode=1777"),
    )
    .map_err(err("mount(tmpfs, /tmp, nosuid,nodev,mode=1777)"))?;
    Ok(())
}

/// Decide and (with `apply`) do it: only a root start can; a failure falls back to the
/// shared /tmp with the reason (the caller records it as degraded).
pub fn private_tmp(requested: bool, privileged: bool, apply: bool) -> PrivateTmp {
    if !requested {
        return PrivateTmp::Off;
    }
    if !privileged {
        return PrivateTmp::Shared {
            reason: "not started as root (a mount namespace needs CAP_SYS_ADMIN)".into(),
        };
    }
    if !apply {
        return PrivateTmp::WouldMount;
    }
    match enter_private_tmp() {
        Ok(()) => PrivateTmp::Private,
        Err(e) => PrivateTmp::Shared {
            reason: format!("{e} (a container without CAP_SYS_ADMIN?)"),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_root_start_that_applies_mounts() {
        assert_eq!(private_tmp(false, true, true), PrivateTmp::Off);
        assert!(matches!(
            private_tmp(true, false, true),
            PrivateTmp::Shared { .. }
        ));
        assert_eq!(private_tmp(true, true, false), PrivateTmp::WouldMount);
    }
}
