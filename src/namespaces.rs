//! namespaces: a PID and an IPC namespace of the target's own, where the start allows it.
//!
//! **Enforces** (root start with CAP_SYS_ADMIN):
//! - `CLONE_NEWPID` (pid_namespaces(7)): the target sees and names only its own
//!   descendants. prlimit, setpriority, sched_set*, ioprio_set, kill and pidfd_open with
//!   another pid answer ESRCH: the supervisor, the user's shell and every other process of
//!   the same uid have no pid in the target's namespace. The seccomp pid-0 guards stay as
//!   a second layer, and the only layer on an unprivileged start.
//! - `CLONE_NEWIPC` (ipc_namespaces(7)): SysV shared memory, semaphores, message queues
//!   and POSIX message queues (mq_overview(7): each IPC namespace has its own mqueue
//!   filesystem) are private to the target; seccomp then allows them as the profile lists.
//!
//! **How**: unshare(2) before the session step's fork. CLONE_NEWPID moves only the
//! children that follow (unshare(2): "the caller is not moved into the new namespace"), and
//! the first child becomes the namespace's init: when it exits the kernel SIGKILLs the
//! rest, and orphans are re-parented to it. So the target is not that init: the first child
//! forks once more (for `run`, a vfork-style `sys::spawn_vfork`) and stays as a tiny init (reaps every orphan, relays signals; the same
//! supervisor loop as `--init`), and the target runs as pid 2. An init ignores signals it
//! has no handler for (pid_namespaces(7)), which would make SIGTERM a no-op for a target
//! running as pid 1; a blocked signal is never ignored, and the init's loop blocks and
//! relays them.
//!
//! The init also gives the namespace a /proc of its own (a mount namespace, mounts made
//! private, a procfs mounted from inside the PID namespace: proc(5)). With the host's /proc,
//! `/proc/<getpid()>` names another process: OpenClaw records its pid (2, every run) and
//! `/proc/<pid>/stat`'s start time in its gateway lock, and a lock left by a SIGKILLed
//! gateway then looked alive for good. Landlock rules under /proc are reopened by path in
//! the target (src/landlock), since the new procfs has other inodes.
//!
//! **Decided without forking** (the launch path): the plan uses the namespaces on a root
//! start that holds CAP_SYS_ADMIN (capget(2)); a container's default capabilities lack it
//! and degrade to the seccomp guards. Where the capability is held and the kernel still
//! refuses (a seccomp profile, an LSM, a locked /proc), the launch stops with exit 125
//! before exec; `check` tries the namespaces in throwaway children and says so.
//!
//! **Cannot**: an unprivileged start gets no namespaces (both need CAP_SYS_ADMIN; a user namespace would give the target
//! CAP_SYS_ADMIN over new namespaces, which is what the seccomp clone/unshare guards keep
//! out), so there the seccomp guards are the only layer.

use std::io;

use crate::kernel::Kernel;
use crate::session::SessionMode;

/// What the namespace step will do.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NamespacePlan {
    /// unshare(CLONE_NEWPID), fork twice (supervisor, namespace init, target), and a mount
    /// namespace with the PID namespace's own /proc.
    pub pid: bool,
    /// unshare(CLONE_NEWIPC).
    pub ipc: bool,
    /// Why a namespace is not used, for `check` and the launch event.
    pub not_used: Vec<String>,
}

/// The namespaces as `check` shows them.
#[derive(Debug, Clone, serde::Serialize)]
pub struct NamespaceView<'a> {
    pub pid: &'static str,
    pub ipc: &'static str,
    pub not_used: &'a [String],
}

/// What the plan knows when it decides.
pub struct NamespaceInputs {
    pub privileged: bool,
    pub session: SessionMode,
    /// `process.pid_namespace`.
    pub pid_wanted: bool,
    /// `check` and `--dry-run`: also try the namespaces in throwaway children, so the report
    /// can say that `run` would stop here. `run` itself never forks to decide (the launch
    /// path: docs/performance.md).
    pub probe: bool,
}

/// Decide without forking: the namespaces need CAP_SYS_ADMIN in the effective set
/// (unshare(2), mount(2)), which capget(2) answers in one call. A container started with
/// the runtime's default capabilities (Docker, podman, Kubernetes drop CAP_SYS_ADMIN)
/// degrades here, as it did when this was decided by throwaway children. Where the
/// capability is held and the kernel still refuses (a seccomp profile or LSM that denies
/// unshare or mount), the real call in the launch fails and the launch stops with exit 125
/// before exec, so the seccomp IPC guard, compiled for the namespace, never runs without it;
/// `check` probes and says so beforehand.
pub fn prepare(inp: &NamespaceInputs) -> NamespacePlan {
    let mut plan = NamespacePlan::default();
    if !inp.privileged {
        plan.not_used.push("pid and ipc namespaces: not started as root (both need CAP_SYS_ADMIN; clawjail does not create a user namespace for the target); the seccomp pid-0 guards and the refusal of SysV IPC and POSIX message queues apply instead".into());
        return plan;
    }
    if !has_sys_admin() {
        plan.not_used.push("pid and ipc namespaces: CAP_SYS_ADMIN is not in the effective set (a container's default capabilities); the seccomp pid-0 guards and the refusal of SysV IPC and POSIX message queues apply instead".into());
        return plan;
    }
    plan.ipc = true;
    if !inp.pid_wanted {
        plan.not_used.push(
            "pid namespace: process.pid_namespace = false; the seccomp pid-0 guards apply instead"
                .into(),
        );
    } else if inp.session == SessionMode::Keep {
        plan.not_used.push("pid namespace: process.new_session = false keeps the target in place (a PID namespace needs a fork); the seccomp pid-0 guards apply instead".into());
    } else {
        plan.pid = true;
    }
    if inp.probe {
        plan.not_used.extend(probe_refusals(&plan));
    }
    plan
}

/// For `check`: what a launch would meet, tried in throwaway children (never on the launch
/// path). Each line says that `run` would stop with exit 125 and what to change.
fn probe_refusals(plan: &NamespacePlan) -> Vec<String> {
    let mut out = Vec::new();
    if plan.ipc && !crate::sys::unshare_works(libc::CLONE_NEWIPC) {
        out.push(format!("ipc namespace: {REFUSED_HERE} unshare(CLONE_NEWIPC) although CAP_SYS_ADMIN is held (a container's seccomp profile or an LSM); run the launcher with a profile that allows unshare, or without CAP_SYS_ADMIN"));
    }
    if plan.pid && !crate::sys::pid_namespace_with_proc_works() {
        out.push(format!("pid namespace: {REFUSED_HERE} unshare(CLONE_NEWPID | CLONE_NEWNS) or mounting its /proc (a container's seccomp profile, an LSM, or a locked /proc); set process.pid_namespace = false"));
    }
    out
}

/// The start of `check`'s line for a namespace the kernel refuses despite CAP_SYS_ADMIN.
pub const REFUSED_HERE: &str = "`run` would stop with exit 125 before exec: this machine refuses";

/// CAP_SYS_ADMIN in the effective set (capget(2); capabilities(7)).
fn has_sys_admin() -> bool {
    caps::has_cap(
        None,
        caps::CapSet::Effective,
        caps::Capability::CAP_SYS_ADMIN,
    )
    .unwrap_or(false)
}

impl NamespacePlan {
    /// This plan's part of the plan view (`plan::view`): each namespace, and why one is
    /// not used.
    pub fn view(&self) -> NamespaceView<'_> {
        NamespaceView {
            pid: if self.pid {
                "own PID namespace: clawjail forks, stays outside as the supervisor, and a clawjail init (pid 1 inside, with a /proc of the namespace's own) runs the target as pid 2"
            } else {
                "shared with the host (see not_used)"
            },
            ipc: if self.ipc {
                "own IPC namespace: SysV IPC and POSIX message queues are private to the target"
            } else {
                "shared with the host: SysV IPC and POSIX message queues are refused by seccomp unless process.allow_shared_ipc = true"
            },
            not_used: &self.not_used,
        }
    }

    /// The flags for unshare(2).
    fn flags(&self) -> libc::c_int {
        (if self.pid { libc::CLONE_NEWPID } else { 0 })
            | (if self.ipc { libc::CLONE_NEWIPC } else { 0 })
    }
}

/// The namespace step: unshare(2) with the planned flags. Before the session step, whose
/// fork then puts the child into the new PID namespace.
pub fn enter(k: &mut impl Kernel, plan: &NamespacePlan) -> Result<(), (String, io::Error)> {
    let flags = plan.flags();
    if flags == 0 {
        return Ok(());
    }
    k.unshare(nix::sched::CloneFlags::from_bits_truncate(flags)).map_err(|e| {
        (
            format!(
                "unshare({})",
                [(plan.pid, "CLONE_NEWPID"), (plan.ipc, "CLONE_NEWIPC")]
                    .iter()
                    .filter(|(on, _)| *on)
                    .map(|(_, n)| *n)
                    .collect::<Vec<_>>()
                    .join(" | ")
            ) + " (refused although CAP_SYS_ADMIN is held: a seccomp profile or LSM; `clawjail check` says which; process.pid_namespace = false avoids the PID namespace)",
            e,
        )
    })
}

/// In the first child after the session fork, which is pid 1 of the new PID namespace:
/// give the namespace its own /proc (a mount namespace of its own, mounts private so
/// nothing propagates back to the host, a procfs mounted by a process inside the PID
/// namespace so it shows that namespace), then fork once more. This process stays as the namespace's init (the supervisor loop: reap,
/// relay, exit with the target's status); the new child returns and becomes the target.
/// Returns the init's pid as the child sees it (1), for the parent-death check.
pub fn fork_namespace_init(
    k: &mut impl Kernel,
    sup: &crate::supervisor::SupervisorPlan,
) -> Result<libc::pid_t, (String, io::Error)> {
    // Refused here (a locked /proc, an LSM denying mount): the launch stops with exit 125
    // before exec; `check` probes it beforehand.
    mount_own_proc(k).map_err(|(call, e)| {
        (
            format!(
                "{call} in the target's PID namespace (process.pid_namespace = false avoids it)"
            ),
            e,
        )
    })?;
    let init = k.getpid();
    let pid = k
        .fork()
        .map_err(|e| ("fork() of the target in its PID namespace".to_string(), e))?;
    if pid == 0 {
        return Ok(init);
    }
    become_init(sup, pid)
}

/// `fork_namespace_init` for a launch that execs the target right after its last step
/// (`run`, `learn`): the target is started with `sys::spawn_vfork` and runs `target` (the
/// remaining steps and the exec, given the init's pid) in the init's memory while the init
/// waits for its exec. The same process tree and order as the fork, without copying the
/// init's address space only for the target's exec to throw it away (docs/performance.md).
/// Returns only when the mount or the spawn failed, before the target exists.
pub fn spawn_in_namespace(
    k: &mut impl Kernel,
    sup: &crate::supervisor::SupervisorPlan,
    target: impl FnOnce(libc::pid_t) -> i32,
) -> (String, io::Error) {
    if let Err((call, e)) = mount_own_proc(k) {
        return (
            format!(
                "{call} in the target's PID namespace (process.pid_namespace = false avoids it)"
            ),
            e,
        );
    }
    let init = k.getpid();
    match crate::sys::spawn_vfork(|| target(init)) {
        Ok(pid) => become_init(sup, pid),
        Err(e) => (
            "clone(CLONE_VM | CLONE_VFORK) of the target in its PID namespace".to_string(),
            e,
        ),
    }
}

/// The namespace init's life after the target exists: the supervisor loop (reap, relay,
/// exit with the target's status).
fn become_init(sup: &crate::supervisor::SupervisorPlan, target: libc::pid_t) -> ! {
    // The outer supervisor's death must end the namespace: the init dies with it, and the
    // kernel then SIGKILLs the target and everything else inside (pid_namespaces(7)).
    let inner = crate::supervisor::SupervisorPlan {
        die_with_parent: true,
        // The outer supervisor holds the learn job; this init only reaps and relays.
        learn: None,
        ..sup.clone()
    };
    crate::supervisor::run(target, &inner, None, None, None)
}

/// unshare(CLONE_NEWNS), `mount --make-rprivate /`, `mount -t proc proc /proc`.
pub fn mount_own_proc(k: &mut impl Kernel) -> Result<(), (String, io::Error)> {
    use nix::mount::MsFlags;
    k.unshare(nix::sched::CloneFlags::CLONE_NEWNS)
        .map_err(|e| ("unshare(CLONE_NEWNS)".to_string(), e))?;
    k.mount(None, "/", None, MsFlags::MS_REC | MsFlags::MS_PRIVATE)
        .map_err(|e| ("mount(/, MS_REC | MS_PRIVATE)".to_string(), e))?;
    k.mount(
        Some("proc"),
        "/proc",
        Some("proc"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
    )
    .map_err(|e| ("mount(proc, /proc)".to_string(), e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unprivileged_uses_none_and_says_why() {
        let p = prepare(&NamespaceInputs {
            privileged: false,
            session: SessionMode::New,
            pid_wanted: true,
            probe: false,
        });
        assert!(!p.pid && !p.ipc);
        assert!(p.not_used[0].contains("not started as root"));
        assert_eq!(p.flags(), 0);
    }

    #[test]
    fn flags_follow_the_plan() {
        let p = NamespacePlan {
            pid: true,
            ipc: true,
            not_used: vec![],
        };
        assert_eq!(p.flags(), libc::CLONE_NEWPID | libc::CLONE_NEWIPC);
    }
}
