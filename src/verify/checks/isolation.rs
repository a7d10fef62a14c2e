//! What Landlock and its scopes do not cover (docs/isolation.md): file metadata outside
//! the grants, other processes of the same uid, SysV IPC.

use super::*;

/// What Landlock and its scopes do not cover (docs/isolation.md): file metadata outside
/// the grants, other processes of the same uid, SysV IPC; and the limits that remain.
pub(super) fn isolation(inp: &Inputs<'_>) -> Vec<Check> {
    let view = inp.lines;
    let fx = inp.fx;
    let file = fx.owned_file.display().to_string();
    let mut v = Vec::new();
    for (id, action, how) in [
        ("chmod-outside", Action::Chmod, "chmod"),
        (
            "chmod-opath",
            Action::Fchmodat2Opath,
            "O_PATH open + fchmodat2(AT_EMPTY_PATH)",
        ),
        (
            "chmod-procfd",
            Action::ChmodProcfd,
            "O_PATH open + chmod(/proc/self/fd/N)",
        ),
    ] {
        v.push(Check::new(
            id,
            Kind::Baseline,
            "seccomp",
            format!("{how} 0640 of a target-owned 0600 file outside the grants ({file})"),
            action,
            vec![file.clone(), "640".into()],
            Expect::Denied,
        ));
    }
    let keyed = |id: &str, attempt: String, action: Action, allowed: &Option<String>| {
        Check::new(
            id,
            Kind::Enforcement,
            "seccomp",
            attempt,
            action,
            vec![file.clone()],
            if allowed.is_some() {
                Expect::Allowed
            } else {
                Expect::Denied
            },
        )
    };
    v.push(keyed(
        "chown-outside",
        format!("chown(-1, own gid) of a file outside the grants ({file})"),
        Action::Chown,
        &view.allow_chown,
    ));
    v.push(keyed(
        "setxattr-outside",
        format!("setxattr user.* on a file outside the grants ({file})"),
        Action::Setxattr,
        &view.allow_xattr,
    ));
    if let Some(pid) = fx.outside_pid {
        for (id, action, what) in [
            (
                "prlimit-outside",
                Action::Prlimit,
                "prlimit64 RLIMIT_CORE (set to its own value)",
            ),
            (
                "renice-outside",
                Action::Renice,
                "setpriority PRIO_PROCESS (to its own value)",
            ),
            (
                "affinity-outside",
                Action::SchedSetaffinity,
                "sched_setaffinity (to its own mask)",
            ),
            (
                "ioprio-outside",
                Action::Ioprio,
                "ioprio_set (to its own value)",
            ),
        ] {
            v.push(Check::new(
                id,
                Kind::Baseline,
                "seccomp",
                format!("{what} of pid {pid} (same uid, outside the sandbox)"),
                action,
                vec![pid.to_string()],
                Expect::Denied,
            ));
        }
    }
    v.push(Check::new(
        "prio-user",
        Kind::Baseline,
        "seccomp",
        "getpriority(PRIO_USER, 0): every process of the uid".into(),
        Action::PrioUser,
        vec![],
        Expect::Denied,
    ));
    if let Some(id) = fx.shm_id {
        let (expect, layer) = match (inp.ipc_namespace, &view.allow_shared_ipc) {
            (true, _) => (Expect::Denied, "ipc-namespace"),
            (false, None) => (Expect::Denied, "seccomp"),
            (false, Some(_)) => (Expect::Allowed, "seccomp"),
        };
        v.push(Check::new(
            "sysv-shm-outside",
            Kind::Enforcement,
            layer,
            format!("shmat SysV segment {id} (owned by the target uid, made outside the sandbox)"),
            Action::ShmAttach,
            vec![id.to_string()],
            expect,
        ));
    }
    let mut watch = Check::new(
        "inotify-outside",
        Kind::Limit,
        "landlock-fs",
        format!(
            "inotify_add_watch on {} (outside the grants)",
            fx.owned_dir.display()
        ),
        Action::Inotify,
        vec![fx.owned_dir.display().to_string()],
        Expect::Observe,
    );
    watch.limit_note = Some("Landlock (ABI <= 7) does not mediate inotify: a watch on a directory outside the grants reports the names and timing of what happens in it (never contents); seccomp cannot tell paths apart, and fs.watch needs inotify");
    v.push(watch);
    let mut times = Check::new(
        "utimes-outside",
        Kind::Limit,
        "landlock-fs",
        format!("utimensat(now) on a target-owned file outside the grants ({file})"),
        Action::Utimes,
        vec![file.clone()],
        Expect::Observe,
    );
    times.limit_note = Some("Landlock (ABI <= 7) does not mediate utimes: the owner can set the times of its files outside the grants (timestamps only; no content, mode or owner)");
    v.push(times);
    v
}
