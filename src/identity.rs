//! Identity: the target's uid, gid and supplementary groups.
//!
//! Enforces: setgroups -> setresgid -> setresuid with all three ids (a saved uid of 0 would
//! let the target regain root: setresuid(2), CERT POS36-C), then proves that root cannot be
//! regained. Needs CAP_SETUID/CAP_SETGID, so it runs only on a root start; an unprivileged
//! start keeps the caller's ids and says so. glibc's wrappers apply the change to every
//! thread (nptl setxid); clawjail is single-threaded here anyway.

use std::io;

use nix::unistd::{Gid, Uid};

use crate::kernel::Kernel;

/// Ids to switch to.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Ids {
    pub uid: u32,
    pub gid: u32,
    pub groups: Vec<u32>,
    /// The passwd name, when there is one (for messages only).
    pub user_name: Option<String>,
}

/// setgroups(2), setresgid(2), setresuid(2) — in that order, because setgroups and
/// setresgid need CAP_SETGID, which setresuid to a non-zero uid removes.
pub fn set_res_ids(k: &mut impl Kernel, ids: &Ids) -> Result<(), (String, io::Error)> {
    let groups: Vec<Gid> = ids.groups.iter().map(|g| Gid::from_raw(*g)).collect();
    k.setgroups(&groups)
        .map_err(|e| (format!("setgroups({:?})", ids.groups), e))?;
    k.setresgid(Gid::from_raw(ids.gid))
        .map_err(|e| (format!("setresgid({0}, {0}, {0})", ids.gid), e))?;
    k.setresuid(Uid::from_raw(ids.uid))
        .map_err(|e| (format!("setresuid({0}, {0}, {0})", ids.uid), e))?;
    Ok(())
}

/// After the switch: every id is the target's and setresuid(0,0,0) fails.
pub fn assert_root_unrecoverable(
    k: &mut impl Kernel,
    ids: &Ids,
) -> Result<(), (String, io::Error)> {
    let r = k.getresuid().map_err(|e| ("getresuid()".to_string(), e))?;
    let g = k.getresgid().map_err(|e| ("getresgid()".to_string(), e))?;
    let all_uid = [r.real, r.effective, r.saved]
        .iter()
        .all(|u| u.as_raw() == ids.uid);
    let all_gid = [g.real, g.effective, g.saved]
        .iter()
        .all(|x| x.as_raw() == ids.gid);
    if !all_uid || !all_gid {
        return Err((
            "getresuid()/getresgid()".to_string(),
            io::Error::other(format!("ids not fully switched: uid {r:?} gid {g:?}")),
        ));
    }
    if ids.uid != 0 && k.setresuid(Uid::from_raw(0)).is_ok() {
        return Err((
            "setresuid(0, 0, 0)".to_string(),
            io::Error::other("root could be regained after the switch"),
        ));
    }
    Ok(())
}

/// The caller's ids, for an unprivileged start (kept as they are).
pub fn current() -> Ids {
    let groups = nix::unistd::getgroups()
        .map(|g| g.into_iter().map(|g| g.as_raw()).collect())
        .unwrap_or_default();
    Ids {
        uid: nix::unistd::getuid().as_raw(),
        gid: nix::unistd::getgid().as_raw(),
        groups,
        user_name: nix::unistd::User::from_uid(nix::unistd::getuid())
            .ok()
            .flatten()
            .map(|u| u.name),
    }
}
