//! Temporary stand-ins for `deny` paths that do not exist on this host.
//!
//! A deny row for an absent path would prove nothing ("nothing to protect"). When verify
//! runs as root, each absent deny path whose nearest existing ancestor belongs to the
//! target user (its home, usually) is created as an empty directory owned by the target,
//! before the plan is built, so the row is a real attempt with a real control. Created
//! with `paths::ensure_dir` (mkdirat/fchown on fds, never through a symlink the target
//! could have planted); exactly the components created are removed again, deepest first,
//! when the guard drops. Nothing is created outside a tree the target already owns.

use std::path::{Path, PathBuf};

use crate::identity::Ids;
use crate::paths::{self, DirOutcome};

/// The directories verify created; removed on drop.
#[derive(Debug, Default)]
pub struct Canaries {
    created: Vec<PathBuf>,
}

impl Canaries {
    /// The paths created, for the report's "verify added" list.
    pub fn created(&self) -> &[PathBuf] {
        &self.created
    }
}

impl Drop for Canaries {
    fn drop(&mut self) {
        for p in self.created.iter().rev() {
            // Only empty directories go: anything the target put there meanwhile stays. By
            // unlinkat on the parent's fd (safe walk): a parent swapped for a link by the
            // target is not followed.
            if let Err(e) = paths::remove_beneath(p, &paths::Trust::for_caller(), true) {
                tracing::warn!("verify: could not remove its canary {}: {e}", p.display());
            }
        }
    }
}

/// The nearest ancestor of `p` that exists, with its owner.
fn nearest_existing(p: &Path) -> Option<(PathBuf, u32)> {
    use std::os::unix::fs::MetadataExt;
    p.ancestors().skip(1).find_map(|a| {
        std::fs::symlink_metadata(a)
            .ok()
            .map(|m| (a.to_path_buf(), m.uid()))
    })
}

/// Create an empty target-owned directory at each absent path under a tree the target owns.
pub fn plant(deny: &[PathBuf], ids: &Ids) -> Canaries {
    let mut c = Canaries::default();
    for p in deny {
        if std::fs::symlink_metadata(p).is_ok() {
            continue;
        }
        match nearest_existing(p) {
            Some((_, owner)) if owner == ids.uid && ids.uid != 0 => {}
            _ => continue,
        }
        match paths::ensure_dir(p, &paths::Trust::new(ids.clone(), Vec::new()), 0o700, true) {
            Ok(DirOutcome::Created { created, .. }) => c.created.extend(created),
            Ok(_) => {}
            Err(e) => tracing::warn!("verify: no canary for {}: {e}", p.display()),
        }
    }
    c
}
