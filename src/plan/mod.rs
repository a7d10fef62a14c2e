//! Plan: everything `run` will apply, resolved against this machine and opened, as plain
//! data (ripgrep's "high args"). `check` renders the same Plan that `run` applies, so the
//! two cannot disagree. Everything fallible happens here, before the first irreversible
//! step: user lookup, variables, env files, the target and its exec chain, Landlock path
//! fds, the BPF program, argv/envp.

pub mod derive;
pub mod target;
pub mod user;
pub mod view;

use std::collections::BTreeMap;
use std::ffi::{CString, OsString};
use std::path::PathBuf;

use caps::Capability;
use nix::sys::resource::Resource;

use crate::egress::EgressPlan;
use crate::env::{self, EnvFrom, EnvPlan};
use crate::identity::Ids;
use crate::landlock::{self, LandlockInputs, LandlockPlan};
use crate::limits::Rlimit;
use crate::namespaces::{self, NamespaceInputs, NamespacePlan};
use crate::paths;
use crate::policy::{self, vars::Vars, LimitKind, LimitValue, Loaded, PolicyError};
use crate::seccomp::{self, SeccompInputs, SeccompPlan};
use crate::session::SessionMode;
use crate::supervisor::SupervisorPlan;
use crate::terminal::TerminalPlan;
use target::TargetPlan;

/// Why a plan could not be built. Nothing irreversible has happened yet.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error("{0}")]
    Policy(#[from] PolicyError),
    #[error("{0}")]
    EnvFile(#[from] env::EnvFileError),
    #[error("{0}")]
    Target(#[from] target::TargetError),
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
    #[error("{0}")]
    Refused(String),
    #[error("{0}")]
    Terminal(#[from] crate::terminal::TerminalError),
    #[error("{0}")]
    Landlock(#[from] crate::landlock::LandlockError),
    #[error("{0}")]
    Seccomp(#[from] crate::seccomp::SeccompError),
    #[error("{0}: not implemented in this build; refusing to start without it")]
    NotImplemented(&'static str),
}

/// How the identity step will behave.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "kebab-case", tag = "mode")]
pub enum IdentityPlan {
    /// Root start: switch to these ids.
    Switch { ids: Ids },
    /// Unprivileged start: the caller's ids are kept.
    Keep { ids: Ids, reason: String },
}

impl IdentityPlan {
    pub fn ids(&self) -> &Ids {
        match self {
            IdentityPlan::Switch { ids } | IdentityPlan::Keep { ids, .. } => ids,
        }
    }
}

/// Capabilities as they will be applied.
#[derive(Debug, Clone)]
pub struct CapsPlan {
    pub keep: Vec<Capability>,
    pub last_cap: u32,
    pub securebits: u32,
}

/// Socket-activation fds kept open (3..3+n).
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct FdPlan {
    pub keep_listen_fds: u32,
}

/// Options from the command line that shape the plan.
#[derive(Debug, Clone, Default)]
pub struct PrepareOptions {
    /// `--var NAME=VALUE`.
    pub cli_vars: Vec<(String, String)>,
    /// The command, when there is one (`run`; optional for `check`).
    pub command: Option<Vec<OsString>>,
    /// `--init`: always fork, the parent is a subreaper PID 1.
    pub init: bool,
    /// false for `check`/`--dry-run`: create nothing on disk.
    pub apply: bool,
    /// `clawjail learn`: decide which symlinks to trust from this policy's write/create
    /// set (the base's), not from the one being prepared (write access to `/`).
    pub link_trust_from: Option<Loaded>,
}

/// Where the policy came from, for the log.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SourceInfo {
    pub file: String,
    pub selected_by: String,
    pub sha256: String,
}

/// Everything `launch::apply` needs, resolved and opened.
#[derive(Debug)]
pub struct Plan {
    pub source: SourceInfo,
    pub privileged: bool,
    pub identity: IdentityPlan,
    pub allow_root: bool,
    pub caps: CapsPlan,
    pub limits: Vec<Rlimit>,
    pub umask: u32,
    pub workdir: Option<PathBuf>,
    pub session: SessionMode,
    pub namespaces: NamespacePlan,
    pub supervisor: SupervisorPlan,
    /// The terminal step; `None` when no fd 0-2 is a terminal.
    pub terminal: Option<TerminalPlan>,
    /// `process.terminal` (verify prepares a terminal step of its own with it).
    pub terminal_mode: crate::policy::TerminalMode,
    pub env: EnvPlan,
    pub envp: Vec<CString>,
    pub fds: FdPlan,
    pub private_tmp: crate::mount_ns::PrivateTmp,
    pub landlock: LandlockPlan,
    pub seccomp: SeccompPlan,
    pub target: Option<TargetPlan>,
    /// `[egress]`, resolved; `None`: destinations are not controlled.
    pub egress: Option<EgressPlan>,
    pub vars: Vars,
    /// Controls that will not be (fully) applied, each with the reason.
    pub degraded: Vec<String>,
}

/// Build the plan. Pure apart from reads (and, with `apply`, the directories the policy
/// asks clawjail to create, which the Landlock step needs to exist).
pub fn prepare(loaded: &Loaded, opts: &PrepareOptions) -> Result<Plan, PlanError> {
    let src = &loaded.source;
    let p = &loaded.policy;
    let privileged = nix::unistd::geteuid().is_root();
    let mut degraded = Vec::new();

    // Identity: from the policy on a root start, the caller's otherwise.
    let (identity, home) = if privileged {
        let u = user::resolve(src, &p.identity)?;
        (IdentityPlan::Switch { ids: u.ids }, u.home)
    } else {
        let u = user::caller();
        let reason = "not started as root: the caller's uid, gid and groups are kept".to_string();
        degraded.push(format!("identity: {reason}"));
        (IdentityPlan::Keep { ids: u.ids, reason }, u.home)
    };
    let ids = identity.ids().clone();
    if !p.identity.allow_root.get() && (ids.uid == 0 || ids.gid == 0 || ids.groups.contains(&0)) {
        let span = p.identity.user.as_ref().map(|u| u.span()).unwrap_or(0..0);
        return Err(PolicyError::at(
            src,
            span,
            "root-target",
            "identity.user",
            format!(
                "the target would run with uid {} gid {} groups {:?}; refusing to exec it as root (uid 0 or gid 0) unless identity.allow_root = true",
                ids.uid, ids.gid, ids.groups
            ),
        )
        .into());
    }

    let vars = build_vars(
        loaded,
        &ids,
        home.as_deref(),
        &opts.cli_vars,
        privileged,
        opts.command.as_deref(),
    )?;
    // Step private-tmp: before any path below is opened, so every fd and created
    // directory under /tmp is the private tmpfs's (see mount_ns).
    let private_tmp =
        crate::mount_ns::private_tmp(p.filesystem.private_tmp.get(), privileged, opts.apply);
    if let crate::mount_ns::PrivateTmp::Shared { reason } = &private_tmp {
        degraded.push(format!(
            "private_tmp: NOT applied, /tmp is the one clawjail was started with ({reason}); names clawjail creates there are refused when someone else owns them"
        ));
    }
    let trust = link_trust(
        opts.link_trust_from.as_ref().unwrap_or(loaded),
        &vars,
        &ids,
        privileged,
    );

    // Capabilities.
    let mut keep = Vec::new();
    for c in &p.capabilities.keep {
        let cap = c.get_ref().0;
        if !privileged {
            return Err(PolicyError::at(
                src,
                c.span(),
                "keep-needs-root",
                "capabilities.keep",
                format!("{cap} can only be kept when clawjail starts as root (it cannot grant what the caller lacks)"),
            )
            .into());
        }
        keep.push(cap);
    }
    let last_cap = crate::caps::read_cap_last_cap().map_err(|source| PlanError::Io {
        what: "reading /proc/sys/kernel/cap_last_cap".into(),
        source,
    })?;
    let caps = CapsPlan {
        securebits: crate::caps::securebits_for(!keep.is_empty()),
        keep,
        last_cap,
    };

    let limits = resolve_limits(loaded, &mut degraded)?;
    let umask = p.process.umask.as_ref().map_or(0o077, |u| u.get_ref().0);
    let workdir = match &p.process.workdir {
        Some(w) => Some(
            w.get_ref()
                .expand_at(src, w.span(), "process.workdir", &vars)?,
        ),
        None => None,
    };

    // Environment, then the target through the target's PATH.
    let (mut env_plan, fds) = build_env(loaded, &vars, &trust)?;
    // egress.proxy_env: the target's proxy variables name the broker's CONNECT proxy.
    if let Some(rules) = &loaded.egress {
        for (name, value) in crate::egress::connect::proxy_env(rules) {
            env_plan.insert(name, value, EnvFrom::Clawjail);
        }
    }
    let envp = env_plan.envp().map_err(PlanError::Refused)?;
    let target = match &opts.command {
        Some(cmd) => {
            let path_var = env_plan
                .get("PATH")
                .unwrap_or(target::DEFAULT_PATH)
                .to_string();
            Some(target::resolve(cmd, &path_var, &trust)?)
        }
        None => None,
    };
    let chain: Vec<target::ChainEntry> =
        target.as_ref().map(|t| t.chain.clone()).unwrap_or_default();

    let session = if opts.init {
        SessionMode::Init
    } else if p.process.new_session.get() {
        SessionMode::New
    } else {
        degraded.push("session: process.new_session = false: the target keeps the caller's session (TIOCSTI is still refused by seccomp)".into());
        SessionMode::Keep
    };
    let namespaces = namespaces::prepare(&NamespaceInputs {
        privileged,
        session,
        pid_wanted: p.process.pid_namespace.get(),
        // `run` decides without throwaway children; `check` also tries them.
        probe: !opts.apply,
    });
    degraded.extend(namespaces.not_used.iter().cloned());
    let mut supervisor = SupervisorPlan {
        ids: matches!(identity, IdentityPlan::Switch { .. }).then(|| ids.clone()),
        last_cap,
        subreaper: opts.init,
        die_with_parent: false,
        learn: None,
        egress: None,
    };

    // Terminal: decided from fds 0-2 now; `run` also opens the pty here, before the first
    // irreversible step. Socket-activation fds are kept open, so none may be a terminal.
    for fd in 3..3 + fds.keep_listen_fds {
        if crate::sys::is_terminal_raw(fd as i32) {
            return Err(PlanError::Refused(format!(
                "socket activation: fd {fd} (LISTEN_FDS) is a terminal; the target must not receive the caller's terminal"
            )));
        }
    }
    let terminal = TerminalPlan::prepare(p.process.terminal.get(), opts.apply)?;
    if terminal.as_ref().is_some_and(|t| t.needs_pty()) && !p.process.new_session.get() {
        tracing::info!("process.new_session = false does not apply: the target leads the session of its new pty");
    }

    let mut landlock = landlock::prepare(&LandlockInputs {
        src,
        fs: &p.filesystem,
        network: &p.network,
        scope: &p.scope,
        kernel: &p.kernel,
        env: &p.env,
        vars: &vars,
        exec_chain: &chain,
        target: &trust,
        apply: opts.apply,
    })?;
    degraded.extend(landlock.degraded());
    let seccomp = seccomp::prepare(&SeccompInputs {
        src,
        cfg: &p.seccomp,
        guards: seccomp::guards::Options {
            allow_unix: p.network.unix.get(),
            allow_chown: p.filesystem.allow_chown.get(),
            allow_xattr: p.filesystem.allow_xattr.get(),
            // An IPC namespace of its own makes SysV IPC and message queues private.
            allow_ipc: p.process.allow_shared_ipc.get() || namespaces.ipc,
        },
    })?;

    let egress = build_egress(loaded, &vars, privileged, &ids)?;
    if let Some(e) = &egress {
        let job = crate::egress::wire::EgressJob {
            rules: e.rules.clone(),
            privileged,
            user_namespace: !privileged || crate::egress::netns::root_needs_user_namespace(),
            uid: nix::unistd::getuid().as_raw(),
            gid: nix::unistd::getgid().as_raw(),
            factory_ids: supervisor.ids.clone(),
            inbound: if opts.apply {
                crate::egress::wire::bind_inbound(&e.inbound).map_err(PlanError::Refused)?
            } else {
                Vec::new()
            },
        };
        // Inside the namespace every TCP destination is a capture listener or nothing;
        // Landlock's connect rule says the same in a second mechanism: the capture ports
        // and DNS over TCP, whatever network.connect lists (docs/egress.md).
        landlock.set_connect_ports(job.landlock_connect_ports());
        supervisor.egress = Some(job);
    }

    Ok(Plan {
        source: SourceInfo {
            file: src.origin.display_name().to_string(),
            selected_by: src.origin.how().to_string(),
            sha256: src.sha256.clone(),
        },
        privileged,
        identity,
        allow_root: p.identity.allow_root.get(),
        caps,
        limits,
        umask,
        workdir,
        session,
        namespaces,
        supervisor,
        terminal,
        terminal_mode: p.process.terminal.get(),
        env: env_plan,
        envp,
        fds,
        landlock,
        seccomp,
        target,
        private_tmp,
        egress,
        vars,
        degraded,
    })
}

/// `[egress]` with its inbound listeners expanded (`127.0.0.1:${PORT}`).
fn build_egress(
    loaded: &Loaded,
    vars: &Vars,
    privileged: bool,
    ids: &crate::identity::Ids,
) -> Result<Option<EgressPlan>, PlanError> {
    let (Some(rules), Some(section)) = (&loaded.egress, &loaded.policy.egress) else {
        return Ok(None);
    };
    let mut inbound = Vec::new();
    for i in &section.inbound {
        let expanded = vars.expand(i.get_ref()).map_err(|m| {
            PolicyError::at(
                &loaded.source,
                i.span(),
                "undefined-variable",
                "egress.inbound",
                m,
            )
        })?;
        let addr = policy::egress::inbound_addr(&loaded.source, i, &expanded)?;
        if !inbound.contains(&addr) {
            inbound.push(addr);
        }
    }
    Ok(Some(EgressPlan {
        rules: rules.clone(),
        inbound,
        namespace: crate::egress::NamespaceCheck::probe(privileged, ids.uid, ids.gid),
    }))
}

/// Variables from the target user, then `[vars]`, then (unprivileged start)
/// `[unprivileged.vars]`, then `--var`: a later layer replaces a name's definition, and
/// every definition is expanded after the ones it refers to (so `--var OPENCLAW_PREFIX=`
/// also moves a `[vars]` value built from `${OPENCLAW_PREFIX}`). A cycle is an error.
pub fn build_vars(
    loaded: &Loaded,
    ids: &Ids,
    home: Option<&str>,
    cli: &[(String, String)],
    privileged: bool,
    command: Option<&[OsString]>,
) -> Result<Vars, PlanError> {
    let mut v = Vars::new();
    v.set("UID", ids.uid.to_string());
    v.set("GID", ids.gid.to_string());
    if let Some(name) = &ids.user_name {
        v.set("USER", name.clone());
    }
    if let Some(h) = home {
        v.set("HOME", h.to_string());
        v.set("STATE_DIR", format!("{h}/.openclaw"));
    }
    v.set("TMP", format!("/tmp/clawjail-{}", ids.uid));
    let mut defs: BTreeMap<&str, VarSource> = BTreeMap::new();
    for (name, def) in &loaded.policy.vars {
        defs.insert(name, VarSource::Policy("vars", def));
    }
    if !privileged {
        for (name, def) in &loaded.policy.unprivileged.vars {
            defs.insert(name, VarSource::Policy("unprivileged.vars", def));
        }
    }
    for (name, value) in cli {
        defs.insert(name, VarSource::Cli(value));
    }
    let mut r = VarResolver {
        loaded,
        ids,
        command,
        defs,
        vars: v,
        done: Vec::new(),
        stack: Vec::new(),
    };
    let names: Vec<&str> = r.defs.keys().copied().collect();
    for name in names {
        r.resolve(name)?;
    }
    Ok(r.vars)
}

/// One definition of a variable.
enum VarSource<'a> {
    /// From the policy: the table it is in, and the definition.
    Policy(&'static str, &'a toml::Spanned<policy::VarDef>),
    /// `--var NAME=VALUE`.
    Cli(&'a str),
}

impl VarSource<'_> {
    fn references(&self) -> Vec<String> {
        use policy::vars::references;
        match self {
            VarSource::Cli(s) => references(s),
            VarSource::Policy(_, d) => match d.get_ref() {
                policy::VarDef::Value(s) => references(s),
                policy::VarDef::Derived(d) => d
                    .openclaw_port
                    .as_deref()
                    .map(references)
                    .unwrap_or_default(),
            },
        }
    }
}

struct VarResolver<'a> {
    loaded: &'a Loaded,
    ids: &'a Ids,
    command: Option<&'a [OsString]>,
    defs: BTreeMap<&'a str, VarSource<'a>>,
    vars: Vars,
    done: Vec<&'a str>,
    stack: Vec<&'a str>,
}

impl<'a> VarResolver<'a> {
    fn resolve(&mut self, name: &str) -> Result<(), PlanError> {
        // Builtins and undefined names have no definition here: `expand` reports the latter.
        let Some((&name, _)) = self.defs.get_key_value(name) else {
            return Ok(());
        };
        if self.done.contains(&name) {
            return Ok(());
        }
        if self.stack.contains(&name) {
            let cycle = format!("{} -> {name}", self.stack.join(" -> "));
            return Err(self.error(
                name,
                "variable-cycle",
                format!("variables refer to each other in a cycle: {cycle}"),
            ));
        }
        self.stack.push(name);
        let refs = self
            .defs
            .get(name)
            .map(VarSource::references)
            .unwrap_or_default();
        for r in refs {
            self.resolve(&r)?;
        }
        let (value, origin) = self.evaluate(name)?;
        self.vars.set(name, value);
        self.vars.set_origin(name, origin);
        self.stack.pop();
        self.done.push(name);
        Ok(())
    }

    fn evaluate(&self, name: &str) -> Result<(String, String), PlanError> {
        let Some(def) = self.defs.get(name) else {
            return Err(PlanError::Refused(format!(
                "variable {name} has no definition"
            )));
        };
        let undefined = |m: String| self.error(name, "undefined-variable", m);
        match def {
            VarSource::Cli(s) => Ok((self.vars.expand(s).map_err(undefined)?, "--var".into())),
            VarSource::Policy(table, d) => match d.get_ref() {
                policy::VarDef::Value(s) => Ok((
                    self.vars.expand(s).map_err(undefined)?,
                    format!("[{table}]"),
                )),
                policy::VarDef::Derived(dv) => {
                    let fail = |m: String| self.error(name, "derive-failed", m);
                    if let Some(w) = &dv.which {
                        let (found, value) =
                            derive::which(w, dv.strip.unwrap_or(0), self.ids).map_err(fail)?;
                        let value = value.display().to_string();
                        return Ok((
                            value,
                            format!(
                                "[{table}]: {w} found in the caller's PATH at {}",
                                found.display()
                            ),
                        ));
                    }
                    let cfg = dv.openclaw_port.as_deref().unwrap_or_default();
                    let cfg = self.vars.expand(cfg).map_err(undefined)?;
                    let (port, how) =
                        derive::openclaw_port(self.command, std::path::Path::new(&cfg))
                            .map_err(fail)?;
                    Ok((
                        port.to_string(),
                        format!("[{table}]: openclaw gateway port from {how}"),
                    ))
                }
            },
        }
    }

    /// An error located at `name`'s definition (policy file:line:col, or `--var`).
    fn error(&self, name: &str, code: &'static str, msg: String) -> PlanError {
        match self.defs.get(name) {
            Some(VarSource::Policy(table, d)) => PolicyError::at(
                &self.loaded.source,
                d.span(),
                code,
                &format!("{table}.{name}"),
                msg,
            )
            .into(),
            _ => PlanError::Refused(format!("--var {name}: {msg}")),
        }
    }
}

/// Which symlinks the walks may follow (`paths::Trust`, docs/symlink-trust.md). On an
/// unprivileged start the policy's write and create directories are resolved first (by
/// inode): a link inside them may have been planted by the confined target on an earlier
/// run, so no later walk follows one. Paths that do not resolve yet are skipped here (they
/// are created fresh, or `landlock::prepare` reports them with a location).
fn link_trust(loaded: &Loaded, vars: &Vars, ids: &Ids, privileged: bool) -> paths::Trust {
    if privileged {
        return paths::Trust::new(ids.clone(), Vec::new());
    }
    let probe = paths::Trust::new(ids.clone(), Vec::new());
    let fs = &loaded.policy.filesystem;
    let writable = fs
        .write
        .iter()
        .map(|v| &v.get_ref().path)
        .chain(fs.create.iter().map(|v| v.get_ref()))
        .filter_map(|t| {
            let p = t.expand(vars).ok()?;
            paths::resolve(&p, &probe).ok()
        })
        .filter(|r| r.meta.is_dir())
        .map(|r| r.meta.id)
        .collect();
    paths::Trust::new(ids.clone(), writable)
}

/// A policy limit is a ceiling. One above the current hard limit cannot be raised once the
/// uid switch has dropped CAP_SYS_RESOURCE (setrlimit(2): EPERM), and the lower hard limit
/// already enforces the ceiling, so clamp to it and say so instead of refusing.
fn clamp_to_hard_limit(
    resource: Resource,
    name: &str,
    value: Option<u64>,
    degraded: &mut Vec<String>,
) -> Option<u64> {
    let Ok((_, hard)) = nix::sys::resource::getrlimit(resource) else {
        return value;
    };
    let wanted = value.unwrap_or(libc::RLIM_INFINITY);
    if hard != libc::RLIM_INFINITY && wanted > hard {
        let shown = value.map_or("unlimited".to_string(), |v| v.to_string());
        degraded.push(format!(
            "limits.{name}: {shown} requested, but the hard limit is {hard} and cannot be raised without CAP_SYS_RESOURCE; {hard} applies (stricter)"
        ));
        return Some(hard);
    }
    value
}

fn resolve_limits(loaded: &Loaded, degraded: &mut Vec<String>) -> Result<Vec<Rlimit>, PlanError> {
    let src = &loaded.source;
    let nr_open: u64 = std::fs::read_to_string("/proc/sys/fs/nr_open")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(1 << 20);
    let mut out = Vec::new();
    for (kind, v) in loaded.policy.limits.iter() {
        let name = kind.key();
        let (min, max) = limit_range(kind, nr_open);
        // The file table needs a finite size: fs.nr_open caps it.
        let nr_open_note = if kind == LimitKind::Nofile {
            " (fs.nr_open)"
        } else {
            ""
        };
        let value = match v.get() {
            LimitValue::Unlimited if kind == LimitKind::Nofile => {
                return Err(PolicyError::at(
                    src,
                    v.span(),
                    "bad-value",
                    "limits.nofile",
                    format!("nofile cannot be unlimited; expected {min} to {max}{nr_open_note}"),
                )
                .into())
            }
            LimitValue::Unlimited => None,
            LimitValue::Value(n) if n < min || n > max => {
                return Err(PolicyError::at(
                    src,
                    v.span(),
                    "bad-value",
                    &format!("limits.{name}"),
                    format!("{name} = {n} is out of range; expected {min} to {max}{nr_open_note}"),
                )
                .into())
            }
            LimitValue::Value(n) => Some(n),
        };
        let resource = crate::limits::resource(kind);
        let value = clamp_to_hard_limit(resource, name, value, degraded);
        out.push(Rlimit {
            resource,
            name,
            value,
        });
    }
    Ok(out)
}

/// The values a limit may take: enough descriptors for a runtime to start, an address
/// space a loader can map, at least one process and one CPU second.
fn limit_range(kind: LimitKind, nr_open: u64) -> (u64, u64) {
    match kind {
        LimitKind::Nofile => (16, nr_open),
        LimitKind::Nproc | LimitKind::Cpu => (1, u64::MAX),
        LimitKind::Core | LimitKind::Fsize => (0, u64::MAX),
        LimitKind::AddressSpace => (1 << 24, u64::MAX),
    }
}

/// The target's environment: pass, then set, then files; socket activation and
/// NOTIFY_SOCKET only when the policy allows them.
fn build_env(
    loaded: &Loaded,
    vars: &Vars,
    trust: &paths::Trust,
) -> Result<(EnvPlan, FdPlan), PlanError> {
    let src = &loaded.source;
    let e = &loaded.policy.env;
    let allow = e.allow_code_loading_vars.get();
    let refuse = |name: &str, span: std::ops::Range<usize>, key: &str| -> Result<(), PlanError> {
        if !allow && env::is_code_loading(name) {
            return Err(PolicyError::at(
                src,
                span,
                "code-loading-env",
                key,
                format!("{name} makes the loader or a runtime load code; refused unless env.allow_code_loading_vars = true"),
            )
            .into());
        }
        Ok(())
    };
    let mut plan = EnvPlan::default();
    for entry in &e.pass {
        let name = entry.get_ref().as_str();
        refuse(name, entry.span(), "env.pass")?;
        match std::env::var(name) {
            Ok(v) => plan.insert(name, v, EnvFrom::Pass),
            Err(_) => plan.missing.push(name.to_string()),
        }
    }
    for (name, value) in &e.set {
        refuse(name, value.span(), &format!("env.set.{name}"))?;
        let v = vars.expand(value.get_ref()).map_err(|m| {
            PolicyError::at(
                src,
                value.span(),
                "undefined-variable",
                &format!("env.set.{name}"),
                m,
            )
        })?;
        plan.insert(name, v, EnvFrom::Set);
    }
    for f in &e.files {
        // A leading `?` marks an optional file (skipped when absent), as in [filesystem].
        let optional = f.get_ref().optional;
        let path = f
            .get_ref()
            .path
            .expand_at(src, f.span(), "env.files", vars)?;
        let path_s = path.display().to_string();
        let entries = match env::read_env_file(&path_s, trust) {
            Err(env::EnvFileError::Open { source, .. })
                if optional && source.kind() == std::io::ErrorKind::NotFound =>
            {
                continue;
            }
            r => r?,
        };
        for (k, v) in entries {
            if !allow && env::is_code_loading(&k) {
                return Err(PlanError::Refused(format!(
                    "env file {path_s}: {k} makes the loader or a runtime load code; refused unless env.allow_code_loading_vars = true"
                )));
            }
            plan.insert(&k, v, EnvFrom::File);
        }
    }
    let mut fds = FdPlan::default();
    if e.socket_activation.get() {
        // sd_listen_fds(3): the fds are ours only when LISTEN_PID names this process.
        let ours = std::env::var("LISTEN_PID")
            .ok()
            .and_then(|p| p.parse::<i32>().ok())
            == Some(std::process::id() as i32);
        let n = std::env::var("LISTEN_FDS")
            .ok()
            .and_then(|n| n.parse::<u32>().ok())
            .unwrap_or(0);
        if ours && n > 0 {
            fds.keep_listen_fds = n;
            plan.insert("LISTEN_FDS", n.to_string(), EnvFrom::Clawjail);
            plan.insert(
                "LISTEN_PID",
                std::process::id().to_string(),
                EnvFrom::Clawjail,
            );
            if let Ok(names) = std::env::var("LISTEN_FDNAMES") {
                plan.insert("LISTEN_FDNAMES", names, EnvFrom::Clawjail);
            }
        }
    }
    if e.notify_socket.get() {
        if let Ok(v) = std::env::var("NOTIFY_SOCKET") {
            plan.insert("NOTIFY_SOCKET", v, EnvFrom::Pass);
        }
    }
    Ok((plan, fds))
}

#[cfg(test)]
mod var_tests {
    use super::*;
    use crate::policy::{Origin, Source};

    fn loaded(text: &str) -> Loaded {
        policy::load(Source::new(Origin::Embedded, text.to_string())).unwrap()
    }

    fn vars(
        l: &Loaded,
        cli: &[(&str, &str)],
        privileged: bool,
        cmd: &[&str],
    ) -> Result<Vars, PlanError> {
        let ids = crate::plan::user::caller().ids;
        let cli: Vec<(String, String)> = cli
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let cmd: Vec<OsString> = cmd.iter().map(OsString::from).collect();
        build_vars(l, &ids, Some("/home/u"), &cli, privileged, Some(&cmd))
    }

    const LAYERED: &str = r#"version = 1
[vars]
MODULES = "${PREFIX}/node_modules"
PREFIX = "/opt/oc"
PORT = "1"
[unprivileged.vars]
PREFIX = "${HOME}/.npm-global"
PORT = { openclaw_port = "${STATE_DIR}/nonexistent.json" }
"#;

    #[test]
    fn unprivileged_table_applies_only_to_unprivileged_starts() {
        let l = loaded(LAYERED);
        let root = vars(&l, &[], true, &["openclaw"]).unwrap();
        assert_eq!(root.get("MODULES"), Some("/opt/oc/node_modules"));
        assert_eq!(root.get("PORT"), Some("1"));
        let laptop = vars(&l, &[], false, &["openclaw", "gateway", "--port", "4242"]).unwrap();
        // MODULES is defined before PREFIX alphabetically and still sees the replaced value.
        assert_eq!(
            laptop.get("MODULES"),
            Some("/home/u/.npm-global/node_modules")
        );
        assert_eq!(laptop.get("PORT"), Some("4242"));
        assert!(laptop
            .origins()
            .any(|(k, v)| k == "PORT" && v.contains("--port in the command")));
    }

    #[test]
    fn cli_var_moves_values_built_from_it() {
        let l = loaded(LAYERED);
        let v = vars(&l, &[("PREFIX", "/srv/oc")], false, &["openclaw"]).unwrap();
        assert_eq!(v.get("MODULES"), Some("/srv/oc/node_modules"));
    }

    #[test]
    fn cycles_and_failed_derivations_are_located_errors() {
        let l = loaded("version = 1\n[vars]\nA = \"${B}\"\nB = \"x${A}\"\n");
        let e = vars(&l, &[], true, &["x"]).unwrap_err().to_string();
        assert!(e.contains("variable-cycle") && e.contains(":3:5"), "{e}");
        let l = loaded(
            "version = 1\n[unprivileged.vars]\nP = { which = \"no-such-program-cj\", strip = 1 }\n",
        );
        let e = vars(&l, &[], false, &["x"]).unwrap_err().to_string();
        assert!(
            e.contains("derive-failed") && e.contains("unprivileged.vars.P"),
            "{e}"
        );
        // Not used on a root start: never computed, no error.
        assert!(vars(&l, &[], true, &["x"]).is_ok());
    }
}
