//! The one place that orders the steps. Each step is one call into one mechanism module;
//! the comments say why the step sits where it does. `Step::ALL` is the documented order
//! (docs/design.md and `clawjail check` print it from here; a unit test pins it).
//!
//! Everything fallible was done by `plan::prepare`. From `NewSession` on, every failure
//! aborts the launch with exit 125 and the target never runs (fail closed).

use std::fmt;
use std::io;
use std::os::fd::AsFd;

use crate::kernel::{Kernel, Real};
use crate::landlock::LandlockOutcome;
use crate::plan::{IdentityPlan, Plan};
use crate::session::SessionOutcome;

/// The launch steps, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Step {
    ResolvePolicy,
    PrivateTmp,
    OpenResources,
    NewNamespaces,
    DropBoundingSet,
    NewSession,
    EgressNamespace,
    LockSecurebits,
    SetIds,
    SetCapabilitySets,
    LimitsUmaskWorkdir,
    NoNewPrivs,
    Environment,
    CloexecFds,
    ResetSignals,
    LandlockRestrictSelf,
    SeccompFilter,
    Exec,
}

impl Step {
    /// The fixed order (DESIGN.md "Order of operations").
    pub const ALL: [Step; 18] = [
        Step::ResolvePolicy,
        // Before open-resources: the Landlock fds and `create` directories must be the
        // private /tmp's inodes, which the new mount hides the host's behind
        // (mount_namespaces(7), unshare(2) CLONE_NEWNS; run by plan::prepare via mount_ns).
        Step::PrivateTmp,
        Step::OpenResources,
        Step::NewNamespaces,
        // Before the session fork: the bounding set is inherited across fork(2), so one
        // drop serves the supervisor, the namespace init and the target (each re-reads it
        // with PR_CAPBSET_READ and drops whatever is still there: caps::drop_bounding_set).
        // It removes nothing from the effective set, so the unshare calls after it still
        // have CAP_SYS_ADMIN.
        Step::DropBoundingSet,
        Step::NewSession,
        // Runs in the child of the session fork (`[egress]` always forks), before the
        // target exists and while caps are still held: CAP_SYS_ADMIN for unshare and
        // CAP_NET_ADMIN for lo (src/egress/wire.rs).
        Step::EgressNamespace,
        Step::LockSecurebits,
        Step::SetIds,
        Step::SetCapabilitySets,
        Step::LimitsUmaskWorkdir,
        Step::NoNewPrivs,
        Step::Environment,
        Step::CloexecFds,
        Step::ResetSignals,
        Step::LandlockRestrictSelf,
        Step::SeccompFilter,
        Step::Exec,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Step::ResolvePolicy => "resolve-policy",
            Step::PrivateTmp => "private-tmp",
            Step::OpenResources => "open-resources",
            Step::NewNamespaces => "new-namespaces",
            Step::NewSession => "new-session",
            Step::EgressNamespace => "egress-namespace",
            Step::DropBoundingSet => "drop-bounding-set",
            Step::LockSecurebits => "lock-securebits",
            Step::SetIds => "set-ids",
            Step::SetCapabilitySets => "set-capability-sets",
            Step::LimitsUmaskWorkdir => "limits-umask-workdir",
            Step::NoNewPrivs => "no-new-privs",
            Step::Environment => "environment",
            Step::CloexecFds => "cloexec-fds",
            Step::ResetSignals => "reset-signals",
            Step::LandlockRestrictSelf => "landlock-restrict-self",
            Step::SeccompFilter => "seccomp-filter",
            Step::Exec => "exec",
        }
    }

    /// One line on what the step does, for `check`.
    pub fn summary(self) -> &'static str {
        match self {
            Step::ResolvePolicy => "parse the policy; resolve user and groups via NSS (before Landlock hides /etc)",
            Step::PrivateTmp => "unshare(CLONE_NEWNS), / rslave, fresh tmpfs on /tmp (1777, nosuid, nodev) when filesystem.private_tmp; root start only",
            Step::OpenResources => "open the target (O_PATH) and Landlock path fds, read env files, compile the BPF, build argv/envp",
            Step::NewNamespaces => "unshare(CLONE_NEWPID | CLONE_NEWIPC) when the start allows it; a PID namespace makes new-session fork (supervisor, namespace init, target)",
            Step::NewSession => "setsid(), or fork once and leave a supervisor (process-group leader, --init, a PID namespace, a terminal on fds 0-2: the target gets a new pty)",
            Step::EgressNamespace => "[egress] only, in the forked child: unshare(CLONE_NEWNET) with CAP_SYS_ADMIN (otherwise CLONE_NEWUSER|CLONE_NEWNET: unprivileged, the caller's uid/gid mapped; a root start in a container, identity maps), lo up, AnyIP routes, capture and DNS sockets sent to the supervisor's broker (SCM_RIGHTS)",
            Step::DropBoundingSet => "PR_CAPBSET_DROP 0..=cap_last_cap (needs CAP_SETPCAP, so before the uid switch), once, before the session fork that every process inherits it through; each process re-reads it (PR_CAPBSET_READ) and drops what a new user namespace gave back; root start only",
            Step::LockSecurebits => "NOROOT + NO_SETUID_FIXUP off, both locked; KEEP_CAPS only when a cap is kept; root start only",
            Step::SetIds => "setgroups -> setresgid -> setresuid, then prove root cannot be regained; root start only",
            Step::SetCapabilitySets => "P/E/I and ambient = the kept set (usually empty)",
            Step::LimitsUmaskWorkdir => "setrlimit (soft = hard), umask, chdir as the target user",
            Step::NoNewPrivs => "PR_SET_NO_NEW_PRIVS: setuid bits and file caps are ignored from here on",
            Step::Environment => "envp = allowlist only (built in open-resources; finalised here)",
            Step::CloexecFds => "close_range(3, ~0, CLOSE_RANGE_CLOEXEC): Landlock does not restrict fds opened before it",
            Step::ResetSignals => "SIG_DFL for 1..=SIGRTMAX (raw rt_sigaction), empty mask: ignored signals survive execve",
            Step::LandlockRestrictSelf => "landlock_restrict_self: filesystem, TCP and scope rules (log_new_exec)",
            Step::SeccompFilter => "one combined BPF filter, last, so clawjail needs nothing from it but execveat",
            Step::Exec => "execveat(fd, \"\", AT_EMPTY_PATH) of the fd opened in open-resources",
        }
    }
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A step that failed: which step, which call, and the kernel's answer.
#[derive(Debug, thiserror::Error)]
#[error("{step}: {call}: {source}")]
pub struct LaunchError {
    pub step: Step,
    pub call: String,
    #[source]
    pub source: io::Error,
}

fn at(step: Step) -> impl FnOnce((String, io::Error)) -> LaunchError {
    move |(call, source)| LaunchError { step, call, source }
}

/// What the applied steps achieved, for the launch event and `verify`.
#[derive(Debug, Clone)]
pub struct Applied {
    pub session: SessionOutcome,
    pub bounding_dropped: Option<u32>,
    pub landlock: Option<LandlockOutcome>,
    /// The envp of a forked child when it differs from `Plan::envp` (LISTEN_PID).
    pub forked_envp: Option<Vec<std::ffi::CString>>,
}

impl Applied {
    /// The environment the target gets.
    pub fn envp<'a>(&'a self, plan: &'a Plan) -> &'a [std::ffi::CString] {
        self.forked_envp.as_deref().unwrap_or(&plan.envp)
    }
}

/// Apply steps 4..=17. On return the process is fully confined; only exec remains.
/// On a fork (process-group leader, `--init`, a PID namespace) only the child (the target
/// to be) returns here.
pub fn apply(plan: &Plan) -> Result<Applied, LaunchError> {
    apply_with(&mut Real, plan)
}

/// `apply`, then step 18 (exec). Returns only on failure, with `run`'s exit code: 125
/// when a step failed (the target never ran), 127 when exec found no target, 126 when it
/// refused it. In a PID namespace the target is started with `sys::spawn_vfork` (the steps
/// after the init and the exec run in the init's memory: no address space is copied only
/// to be replaced by the exec), and its failure is reported and exited on there, exactly
/// as this function's caller would. The calls and their order are `apply_with`'s (the
/// recording fake pins them with a plain fork).
pub fn apply_and_exec(plan: &Plan) -> (i32, LaunchError) {
    let finish = |session| -> i32 {
        let (code, e) = confine_and_exec(&mut Real, plan, session);
        eprintln!("clawjail: {e}");
        code
    };
    match apply_until(&mut Real, plan, Some(&finish)) {
        Ok(applied) => {
            let e = exec(plan, &applied);
            (exec_code(&e), e)
        }
        Err(e) => (125, e),
    }
}

/// Steps 7..=18 in the target-to-be; returns only on failure (see `apply_and_exec`).
fn confine_and_exec(
    k: &mut impl Kernel,
    plan: &Plan,
    session: SessionOutcome,
) -> (i32, LaunchError) {
    match confine(k, plan, session) {
        Ok(applied) => {
            let e = exec_with(k, plan, &applied);
            (exec_code(&e), e)
        }
        Err(e) => (125, e),
    }
}

/// 127 when the target was not found at exec, else 126 (the shell's convention).
fn exec_code(e: &LaunchError) -> i32 {
    if e.source.kind() == io::ErrorKind::NotFound {
        127
    } else {
        126
    }
}

/// [`apply`] through a [`Kernel`]: `Real` for a launch, the recording fake in the unit
/// tests (src/launch_tests.rs), which pin the exact call order this function makes.
pub fn apply_with(k: &mut impl Kernel, plan: &Plan) -> Result<Applied, LaunchError> {
    apply_until(k, plan, None)
}

/// Steps 4..=6 and the namespace init; then `confine`. With `spawn_target` (the caller
/// execs right after), a PID namespace's target runs it in a `spawn_vfork` child and never
/// returns here.
fn apply_until(
    k: &mut impl Kernel,
    plan: &Plan,
    spawn_target: Option<&dyn Fn(SessionOutcome) -> i32>,
) -> Result<Applied, LaunchError> {
    k.begin_step(Step::NewNamespaces.name());
    // Step 4/18: unshare(2) needs CAP_SYS_ADMIN, so before the bounding set and ids go;
    // before the session fork, because CLONE_NEWPID moves only the children created after
    // it (pid_namespaces(7)): the fork below puts the child into the new namespace.
    crate::namespaces::enter(k, &plan.namespaces).map_err(at(Step::NewNamespaces))?;
    // Step 5/18: PR_CAPBSET_DROP needs CAP_SETPCAP in the effective set, which the uid
    // switch removes (capabilities(7)), so before step 9; before the session fork, because
    // the bounding set is inherited across fork(2): one drop (41 credential commits) instead
    // of one in each of the supervisor, the namespace init and the target. It keeps what
    // the supervisor keeps too (`clawjail learn`); the target drops that below.
    if let IdentityPlan::Switch { .. } = &plan.identity {
        k.begin_step(Step::DropBoundingSet.name());
        let mut keep = plan.caps.keep.clone();
        keep.extend_from_slice(crate::supervisor::bounding_kept(&plan.supervisor));
        crate::caps::drop_bounding_set(k, plan.caps.last_cap, &keep)
            .map_err(at(Step::DropBoundingSet))?;
    }
    // Step 6/18: before the uid switch, so the supervisor (if we fork) can still switch
    // its own ids; setsid(2) EPERM for a process-group leader means fork. A PID namespace
    // always forks (the caller stays outside it), like `--init`; so does a terminal on
    // fds 0-2 (the supervisor relays the target's new pty).
    // With `[egress]` too: the supervisor serves the broker (step egress-namespace runs
    // in the forked child inside `enter_new_session`).
    let mode = if plan.namespaces.pid || plan.supervisor.egress.is_some() {
        crate::session::SessionMode::Init
    } else {
        plan.session
    };
    // With a pty, the forked child already leads the pty's session and forked the target
    // (`supervisor::monitor`); in a PID namespace that monitor is the namespace's init.
    let relayed = plan.terminal.as_ref().is_some_and(|t| t.needs_pty());
    k.begin_step(Step::NewSession.name());
    let mut session = crate::session::enter_new_session(
        k,
        mode,
        &plan.supervisor,
        plan.terminal.as_ref(),
        plan.namespaces.pid,
    )
    .map_err(|(call, source)| {
        let step = if call.starts_with(crate::egress::wire::CALL_PREFIX) {
            Step::EgressNamespace
        } else {
            Step::NewSession
        };
        LaunchError { step, call, source }
    })?;
    if let (true, false, SessionOutcome::Forked { .. }) = (plan.namespaces.pid, relayed, session) {
        // The forked child is pid 1 of the new namespace; the target must not be its init
        // (an init ignores signals it has no handler for, and its exit kills the rest).
        k.begin_step(Step::NewNamespaces.name());
        if let Some(finish) = spawn_target {
            let e = crate::namespaces::spawn_in_namespace(k, &plan.supervisor, |init| {
                finish(SessionOutcome::Forked { supervisor: init })
            });
            return Err(at(Step::NewNamespaces)(e));
        }
        let init = crate::namespaces::fork_namespace_init(k, &plan.supervisor)
            .map_err(at(Step::NewNamespaces))?;
        session = SessionOutcome::Forked { supervisor: init };
    }
    confine(k, plan, session)
}

/// Steps 5 (again) and 8..=17 in the process that will exec (the child after a fork).
fn confine(
    k: &mut impl Kernel,
    plan: &Plan,
    session: SessionOutcome,
) -> Result<Applied, LaunchError> {
    let mut bounding_dropped = None;
    if let IdentityPlan::Switch { ids } = &plan.identity {
        // Step 5/18 again, in the target-to-be: PR_CAPBSET_READ finds nothing left to drop,
        // unless a new user namespace (the egress step in a container) brought back a full
        // bounding set (user_namespaces(7)) or the learn supervisor's caps were kept.
        k.begin_step(Step::DropBoundingSet.name());
        bounding_dropped = Some(
            crate::caps::drop_bounding_set(k, plan.caps.last_cap, &plan.caps.keep)
                .map_err(at(Step::DropBoundingSet))?,
        );
        // Step 8/18: PR_SET_SECUREBITS also needs CAP_SETPCAP. NO_SETUID_FIXUP stays off so
        // step 9 itself clears P/E/ambient; KEEP_CAPS keeps P across it only if a cap is kept.
        k.begin_step(Step::LockSecurebits.name());
        crate::caps::lock_securebits(k, plan.caps.securebits).map_err(at(Step::LockSecurebits))?;
        // Step 9/18: groups and gid first: both need CAP_SETGID, which setresuid removes.
        k.begin_step(Step::SetIds.name());
        crate::identity::set_res_ids(k, ids).map_err(at(Step::SetIds))?;
        crate::identity::assert_root_unrecoverable(k, ids).map_err(at(Step::SetIds))?;
    }
    // PR_SET_PDEATHSIG is cleared by any euid/egid change (prctl(2)), so after step 9.
    k.begin_step(Step::SetIds.name());
    crate::session::die_with_supervisor(k, session).map_err(at(Step::SetIds))?;
    // Step 10/18: set P/E/I to the kept set and raise it as ambient (a cap can be raised into
    // ambient only when it is in P and I). Unprivileged, this clears whatever was there.
    k.begin_step(Step::SetCapabilitySets.name());
    crate::caps::set_process_sets(k, &plan.caps.keep).map_err(at(Step::SetCapabilitySets))?;
    // Step 11/18: after the switch, so chdir is checked against the target's ids and
    // RLIMIT_NPROC against its uid; before Landlock, which might not grant the workdir's parents.
    k.begin_step(Step::LimitsUmaskWorkdir.name());
    crate::limits::set_rlimits(k, &plan.limits).map_err(at(Step::LimitsUmaskWorkdir))?;
    crate::limits::set_umask(k, plan.umask);
    if let Some(dir) = &plan.workdir {
        crate::limits::change_dir(k, dir).map_err(at(Step::LimitsUmaskWorkdir))?;
    }
    // Step 12/18: no_new_privs before Landlock and seccomp, which require it without
    // CAP_SYS_ADMIN (seccomp(2), landlock_restrict_self(2)).
    k.begin_step(Step::NoNewPrivs.name());
    crate::nnp::set_no_new_privs(k).map_err(at(Step::NoNewPrivs))?;
    // Step 13/18: envp was built from the allowlist in prepare; after a fork the socket
    // activation pid must name the child that will exec (kept in `Applied`, the plan is
    // not changed).
    let forked_envp = match session {
        SessionOutcome::Forked { .. } => plan
            .env
            .envp_for_forked_child(std::process::id())
            .map_err(|m| LaunchError {
                step: Step::Environment,
                call: "envp".into(),
                source: io::Error::other(m),
            })?,
        _ => None,
    };
    // Step 14/18: after the last open clawjail needs, before Landlock: fds opened before
    // restrict_self are not restricted by it, so none may reach the target.
    k.begin_step(Step::CloexecFds.name());
    crate::fds::mark_cloexec_from(k, 3 + plan.fds.keep_listen_fds).map_err(at(Step::CloexecFds))?;
    // Step 15/18: ignored dispositions and the mask survive execve (signal(7)).
    k.begin_step(Step::ResetSignals.name());
    crate::signals::reset_dispositions_and_mask(k).map_err(at(Step::ResetSignals))?;
    // Step 16/18: Landlock before seccomp, so the filter need not allow landlock_*; after
    // every open of a path the target must not reach.
    k.begin_step(Step::LandlockRestrictSelf.name());
    let landlock = crate::landlock::restrict_self(k, &plan.landlock)
        .map_err(at(Step::LandlockRestrictSelf))?;
    let applied = Applied {
        session,
        bounding_dropped,
        landlock: Some(landlock),
        forked_envp,
    };
    launch_event(plan, &applied);
    // Step 17/18: last, so clawjail itself needs nothing from the filter but execveat (and
    // write/exit_group on the error path). One combined program: stacked filters let the
    // most severe action win and break the clone3 ENOSYS and io_uring EPERM guards.
    // `clawjail learn`: the same step with SECCOMP_FILTER_FLAG_NEW_LISTENER; the listener
    // goes to the supervisor before exec (a notified call blocks until it holds it).
    k.begin_step(Step::SeccompFilter.name());
    match &plan.supervisor.learn {
        Some(job) => {
            let listener = plan
                .seccomp
                .install_listener(k)
                .map_err(at(Step::SeccompFilter))?;
            job.handoff
                .send_listener(listener)
                .map_err(at(Step::SeccompFilter))?;
        }
        None => plan.seccomp.install(k).map_err(at(Step::SeccompFilter))?,
    }
    Ok(applied)
}

/// Step 18/18: execveat(fd, "", AT_EMPTY_PATH). Returns only on failure.
pub fn exec(plan: &Plan, applied: &Applied) -> LaunchError {
    exec_with(&mut Real, plan, applied)
}

/// [`exec`] through a [`Kernel`] (see [`apply_with`]).
pub fn exec_with(k: &mut impl Kernel, plan: &Plan, applied: &Applied) -> LaunchError {
    k.begin_step(Step::Exec.name());
    let Some(t) = &plan.target else {
        return LaunchError {
            step: Step::Exec,
            call: "execveat".into(),
            source: io::Error::other("no target"),
        };
    };
    let source = k.execveat(t.exec_fd.as_fd(), &t.argv, applied.envp(plan));
    LaunchError {
        step: Step::Exec,
        call: format!("execveat({}, AT_EMPTY_PATH)", t.exec_path.display()),
        source,
    }
}

/// Test support: the non-empty lines between `<!-- NAME:begin -->` and `<!-- NAME:end -->`
/// of a doc, for tests that pin a documented list to the code (steps, supervisor steps).
#[cfg(test)]
#[allow(clippy::unwrap_used)]
pub(crate) fn pinned_list(doc: &str, name: &str) -> Vec<String> {
    doc.split(&format!("<!-- {name}:begin -->"))
        .nth(1)
        .and_then(|b| b.split(&format!("<!-- {name}:end -->")).next())
        .unwrap()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(str::to_string)
        .collect()
}

/// The one structured event at launch: every control applied and every one degraded.
/// Here, not in `report`, so launch does not depend on the renderer (report uses `Step`).
/// Emitted after Landlock (its status is known) and right before seccomp and exec.
/// Every plan field comes from the plan's view (`plan::view`, the parts `check --json`
/// prints); only what the steps achieved (`Applied`) is added here. Nothing is built when
/// INFO is off.
pub(crate) fn launch_event(plan: &Plan, applied: &Applied) {
    use crate::plan::view;
    if !tracing::enabled!(tracing::Level::INFO) {
        return;
    }
    let identity = view::identity(plan);
    let ids = identity.ids();
    let caps = view::capabilities(plan);
    let limits: Vec<String> = view::limits(plan).iter().map(ToString::to_string).collect();
    let env = view::env(plan);
    let env_names: Vec<&str> = env.names.iter().map(|n| n.name).collect();
    let landlock = applied
        .landlock
        .as_ref()
        .map(|l| l.summary.to_string())
        .unwrap_or_else(|| "none".into());
    tracing::info!(
        policy = %plan.source.file,
        policy_selected_by = %plan.source.selected_by,
        policy_sha256 = %plan.source.sha256,
        identity = identity.outcome(),
        uid = ids.uid,
        gid = ids.gid,
        groups = ?ids.groups,
        caps_kept = ?caps.keep,
        bounding_set_dropped = ?applied.bounding_dropped,
        no_new_privs = true,
        rlimits = ?limits,
        umask = %view::umask(plan),
        env_names = ?env_names,
        fds_cloexec_from = view::fds(plan).cloexec_from,
        session = ?applied.session,
        terminal = %view::terminal(plan),
        pid_namespace = plan.namespaces.pid,
        ipc_namespace = plan.namespaces.ipc,
        signals = "reset",
        private_tmp = ?plan.private_tmp,
        landlock = %landlock,
        seccomp = %plan.seccomp.view().short(),
        degraded = ?plan.degraded,
        target = %view::target_exec(plan),
        "clawjail launch"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    /// docs/design.md and README.md list the steps; this keeps both identical to `Step::ALL`.
    #[test]
    fn docs_design_lists_the_steps_in_order() {
        let expected: Vec<String> = Step::ALL
            .iter()
            .map(|s| (s.name(), s.summary()))
            .enumerate()
            .map(|(i, (n, d))| format!("{}. `{n}`: {d}", i + 1))
            .collect();
        assert_eq!(
            pinned_list(include_str!("../docs/design.md"), "steps"),
            expected
        );
        // The README's copy too (it had drifted by a step before it was pinned).
        assert_eq!(pinned_list(include_str!("../README.md"), "steps"), expected);
    }

    /// The order is documented in DESIGN.md and docs/design.md; this pins it.
    #[test]
    fn step_order_is_the_documented_one() {
        let names: Vec<&str> = Step::ALL.iter().map(|s| s.name()).collect();
        assert_eq!(
            names,
            [
                "resolve-policy",
                "private-tmp",
                "open-resources",
                "new-namespaces",
                "drop-bounding-set",
                "new-session",
                "egress-namespace",
                "lock-securebits",
                "set-ids",
                "set-capability-sets",
                "limits-umask-workdir",
                "no-new-privs",
                "environment",
                "cloexec-fds",
                "reset-signals",
                "landlock-restrict-self",
                "seccomp-filter",
                "exec",
            ]
        );
    }
}
