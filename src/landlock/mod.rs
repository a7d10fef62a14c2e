//! Landlock: filesystem, TCP port and scope rules, applied at step 16
//! (`landlock-restrict-self`) with landlock_restrict_self(2) (kernel
//! Documentation/userspace-api/landlock.rst).
//!
//! Enforces, for the target and everything it execs:
//! - files: only what `[filesystem] read/write/exec` and the automatic exec chain grant
//!   (`rights.rs` says what each list means; `lower.rs` how `deny` and read-under-write
//!   split a parent; `chain.rs` what the target needs to start);
//! - TCP: only the `[network] bind/connect` ports (ABI 4; `net.rs`);
//! - scopes: no abstract unix sockets or signals outside the sandbox unless `[scope]` opts
//!   out (ABI 6);
//! - audit: denials after exec are logged (`log_new_exec`, ABI 7).
//!
//! Cannot: restrict fds opened before restrict_self (step 14 (`cloexec-fds`) marks them
//! close-on-exec); restrict code rather than execve (ld.so runs any readable ELF, an
//! interpreter any readable script); see `LIMITS` for the rest, printed by `check`.
//!
//! Needs: Landlock ABI >= 6 for the default policy under `kernel.landlock = "required"`
//! (`compat.rs`). Paths are resolved and opened in `prepare`, while still privileged, with
//! `paths::resolve` (no symlink the target could have planted is followed); restrict_self
//! only uses those fds. The crate's `restrict_self` also sets no_new_privs (already set at
//! step 12 (`no-new-privs`), so a no-op here).

mod chain;
pub use chain::{ChainEntry, ChainRole};
pub mod compat;
pub mod lower;
pub mod net;
pub mod rights;
mod view;
pub use view::{LandlockView, OutcomeSummary};

use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

use landlock::{
    AccessFs, AccessNet, BitFlags, CompatLevel, Compatible, NetPort, PathBeneath, Ruleset,
    RulesetAttr, RulesetCreatedAttr, RulesetStatus, Scope,
};

use toml::Spanned;

use crate::paths::{self, DirOutcome, PathError};
use crate::policy::{self, vars::Vars, PathEntry, PolicyError, Source};
use compat::{Compat, Feature, Needs, State, Status};
use lower::{Deny, Entry, NodeInfo, Origin, Tree};

/// Why Landlock cannot be prepared; converted into `PlanError` with `#[from]`.
#[derive(Debug, thiserror::Error)]
pub enum LandlockError {
    /// Boxed: `PolicyError` carries its source snippet, and `PlanError` stays small.
    #[error("{0}")]
    Policy(Box<PolicyError>),
    #[error("{0}")]
    Refused(String),
}

impl From<PolicyError> for LandlockError {
    fn from(e: PolicyError) -> Self {
        LandlockError::Policy(Box::new(e))
    }
}

/// What Landlock cannot do, stated in `check` (and docs/landlock.md).
pub const LIMITS: &[&str] = &[
    "Execute limits execve(2) of files, not code: any readable ELF can still be run through the dynamic loader (ld-linux-x86-64.so.2 /path/to/elf), an ELF copied into a memfd runs with execveat(memfd, \"\", AT_EMPTY_PATH) (no path, no rule), and an interpreter runs any script it can read.",
    "TCP rules match ports only: no destination addresses, no UDP, and listen() without bind() auto-binds an ephemeral port even though no bind rule allows it (landlock-lsm/linux#15).",
    "network.bind port 0 allows the whole ephemeral range (net.ipv4.ip_local_port_range).",
    "A split directory (a deny or a read path beneath an allowed parent) has no rule of its own: it cannot be listed, and entries created in it after launch are unreachable.",
    "Other names of a denied inode (hard links planted before launch, bind mounts) are not covered; fs.protected_hardlinks=1 limits planting.",
    "Files opened before restrict_self stay usable (clawjail marks every fd >= 3 close-on-exec first).",
    "Pathname unix sockets are not covered below ABI 9 (seccomp refuses socket(AF_UNIX) unless network.unix = true).",
];

/// Everything Landlock needs from the policy and the resolved plan.
pub struct LandlockInputs<'a> {
    pub src: &'a Source,
    pub fs: &'a policy::Filesystem,
    pub network: &'a policy::Network,
    pub scope: &'a policy::Scope,
    pub kernel: &'a policy::Kernel,
    /// `[env]`: only to see whether `env.set` uses `${TMP}` (then clawjail creates it).
    pub env: &'a policy::Env,
    pub vars: &'a Vars,
    /// The target's exec chain (empty for `check` without a command).
    pub exec_chain: &'a [ChainEntry],
    /// The ids the target will run as (owner of created directories) and which symlinks
    /// the walks may follow (`paths::Trust`).
    pub target: &'a paths::Trust,
    /// false for `check`/`--dry-run`: create nothing, report what would be created.
    pub apply: bool,
}

/// One filesystem rule, opened and ready.
#[derive(Debug)]
struct FsRule {
    /// O_PATH fd; None only in a dry run for a path under a directory not yet created.
    fd: Option<OwnedFd>,
    /// The inode the rule is attached to (None with `fd`).
    id: Option<paths::FileId>,
    path: PathBuf,
    is_dir: bool,
    /// Already masked to the effective ABI and to file rights on files.
    rights: BitFlags<AccessFs>,
    why: Vec<String>,
}

/// What `check` shows besides the rules.
#[derive(Debug, Default)]
struct Report {
    created: Vec<DirOutcome>,
    optional_missing: Vec<view::OptionalMissing>,
    automatic: Vec<view::AutoRule>,
    notes: Vec<String>,
    splits: Vec<lower::Split>,
    deny: Vec<view::DenyEntry>,
}

/// Which `[filesystem]` list an entry is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListKind {
    Read,
    Write,
    Exec,
    Deny,
}

/// One `[filesystem]` entry as `prepare` expanded it, for verify's rows and messages
/// (whether a path is reachable is decided by the rules, by inode: `granted`).
#[derive(Debug, Clone)]
pub struct Listed {
    pub list: ListKind,
    pub path: PathBuf,
    /// e.g. `filesystem.read "~" (policy.toml:9:9)`.
    pub at: String,
}

/// The rules, resolved and opened, ready for restrict_self.
#[derive(Debug)]
pub struct LandlockPlan {
    compat: Compat,
    handled_fs: BitFlags<AccessFs>,
    rules: Vec<FsRule>,
    bind: Vec<u16>,
    connect: Vec<u16>,
    scopes: BitFlags<Scope>,
    report: Report,
    /// Every read/write/exec/deny entry, expanded, in policy order.
    listed: Vec<Listed>,
    /// `network.bind` and `network.connect` as the policy lists them (`connect` may be
    /// replaced by `[egress]`'s capture ports; these stay).
    listed_ports: (Vec<u16>, Vec<u16>),
    /// The pid that opened the rules: `/proc/self` resolved to `/proc/<this>`.
    prepared_by: u32,
    /// `clawjail learn`: TCP is not handled (every port open, recorded by the supervisor).
    tcp_open: bool,
}

impl LandlockPlan {
    /// Replace the TCP connect ports (`[egress]`: the broker's capture ports and 53).
    pub fn set_connect_ports(&mut self, ports: Vec<u16>) {
        self.connect = ports;
    }

    /// The `[filesystem]` entries, expanded, with their locations.
    pub fn listed(&self) -> &[Listed] {
        &self.listed
    }

    /// The TCP ports the rules allow to bind and to connect to (what `run` applies).
    pub fn ports(&self) -> (&[u16], &[u16]) {
        (&self.bind, &self.connect)
    }

    /// The `network.bind` and `network.connect` ports the policy lists, expanded.
    pub fn listed_ports(&self) -> (&[u16], &[u16]) {
        (&self.listed_ports.0, &self.listed_ports.1)
    }

    /// Whether the ruleset asks for `scope` (`[scope]` did not opt out of it).
    pub fn scoped(&self, scope: Scope) -> bool {
        self.scopes.contains(scope)
    }
}

/// What restrict_self achieved.
#[derive(Debug, Clone)]
pub struct LandlockOutcome {
    pub summary: view::OutcomeSummary,
    pub kernel_abi: i32,
    pub effective_abi: i32,
    /// From the policy's point of view.
    pub status: Status,
    /// Features not enforced (best-effort), e.g. tcp, scopes, audit.
    pub dropped: Vec<Feature>,
}

impl LandlockPlan {
    /// `clawjail learn`: handle no TCP access, so every bind/connect reaches the
    /// supervisor's record instead of EACCES (src/learn/). Files and scopes are unchanged.
    pub fn open_network_for_learning(&mut self) {
        self.tcp_open = true;
    }

    /// What the rules grant on `path`, decided as Landlock decides: by inode, a rule on a
    /// directory covering everything beneath it, whatever name reaches it (symlinked policy
    /// entries, other names of the same directory). `path` need not exist: then its nearest
    /// existing ancestor decides (what creating it would need). Used by `verify`, so its
    /// rows test the rules `run` applies, not a second reading of the policy text.
    pub fn granted(&self, path: &Path) -> Granted {
        let chain = inode_chain(path);
        let mut g = Granted::default();
        for r in &self.rules {
            if r.id.is_some_and(|id| chain.contains(&id)) {
                g.rights |= r.rights;
                g.why.extend(r.why.iter().cloned());
            }
        }
        g
    }

    /// Lines for `Plan::degraded`.
    pub fn degraded(&self) -> Vec<String> {
        let c = &self.compat;
        let mut v: Vec<String> = c.override_warning().into_iter().collect();
        for f in c.features.iter().filter(|f| f.state == State::Dropped) {
            v.push(format!(
                "landlock: {} (ABI {}) NOT enforced: effective ABI {} ({})",
                f.feature, f.abi, c.effective_abi, f.what
            ));
        }
        v
    }
}

/// The rights on one path and the rules (their `why`) that give them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Granted {
    pub rights: BitFlags<AccessFs>,
    pub why: Vec<String>,
}

impl Granted {
    pub fn any(&self, rights: BitFlags<AccessFs>) -> bool {
        self.rights.intersects(rights)
    }
}

/// The inodes of `path` (symlinks followed, as the kernel's walk does) and of every
/// directory above it; for a missing path, those of its nearest existing ancestor.
fn inode_chain(path: &Path) -> Vec<paths::FileId> {
    use std::os::unix::fs::MetadataExt;
    let start = path
        .ancestors()
        .find_map(|a| std::fs::canonicalize(a).ok())
        .unwrap_or_else(|| PathBuf::from("/"));
    start
        .ancestors()
        .filter_map(|a| std::fs::metadata(a).ok())
        .map(|m| paths::FileId {
            dev: m.dev(),
            ino: m.ino(),
        })
        .collect()
}

/// Resolve and open every rule while still privileged.
pub fn prepare(inp: &LandlockInputs<'_>) -> Result<LandlockPlan, LandlockError> {
    let needs = Needs {
        refer: !inp.fs.write.is_empty(),
        scopes: !inp.scope.abstract_unix_outside.get() || !inp.scope.signal_outside.get(),
    };
    let compat = decide_compat(inp, needs)?;
    let mut report = Report::default();

    let would_create = create_dirs(inp, &mut report)?;
    let mut pending = Vec::new();
    let mut entries = Vec::new();
    let mut chain_rules = chain::ChainRules::default();
    let mut listed = Vec::new();
    for (list, origin, key, kind) in [
        (
            &inp.fs.read,
            Origin::Read,
            "filesystem.read",
            ListKind::Read,
        ),
        (
            &inp.fs.write,
            Origin::Write,
            "filesystem.write",
            ListKind::Write,
        ),
        (
            &inp.fs.exec,
            Origin::Exec,
            "filesystem.exec",
            ListKind::Exec,
        ),
    ] {
        for v in list {
            let (optional, path) = expand_entry(inp, v, key)?;
            listed.push(listed_entry(inp, kind, key, v, &path));
            match paths::resolve(&path, inp.target) {
                Ok(r) => {
                    if origin == Origin::Exec && r.meta.is_regular() {
                        chain::for_exec_file(&r, inp.target, &mut chain_rules)
                            .map_err(|(p, e)| path_error(inp, v, key, &p, e))?;
                    }
                    entries.push(entry(
                        r,
                        lower::rights_for(origin),
                        origin,
                        format!("{key} {}", v.get_ref()),
                    ));
                }
                Err(PathError::Missing { missing, .. }) if optional => {
                    report.optional_missing.push(view::OptionalMissing {
                        list: key,
                        path: path.display().to_string(),
                        missing: missing.display().to_string(),
                    });
                }
                Err(PathError::Missing { .. })
                    if would_create.iter().any(|w| path.starts_with(w)) =>
                {
                    pending.push(FsRule {
                        fd: None,
                        id: None,
                        path: path.clone(),
                        is_dir: true,
                        rights: rights::effective(
                            lower::rights_for(origin),
                            true,
                            compat.effective_abi,
                        ),
                        why: vec![format!("{key} {}", v.get_ref())],
                    });
                }
                Err(e) => return Err(path_error(inp, v, key, &path, e)),
            }
        }
    }
    chain::for_chain(inp.exec_chain, inp.target, &mut chain_rules).map_err(|(p, e)| {
        LandlockError::Refused(format!("landlock: exec chain: {}: {e}", p.display()))
    })?;
    for a in chain_rules.autos {
        report.automatic.push(view::AutoRule {
            path: a.resolved.path.display().to_string(),
            rights: rights::names(a.rights),
            why: a.why.clone(),
        });
        entries.push(entry(a.resolved, a.rights, Origin::Auto, a.why));
    }
    report.notes.extend(chain_rules.notes);

    let denies = resolve_denies(inp, &mut report, &mut listed)?;
    let lowered = lower::lower(entries, &denies, &mut FdTree).map_err(|e| {
        LandlockError::Refused(format!("{}: landlock: {e}", inp.src.origin.display_name()))
    })?;
    report.splits = lowered.splits;
    let abi = compat.effective_abi;
    let mut rules: Vec<FsRule> = lowered
        .rules
        .into_iter()
        .map(|r| FsRule {
            fd: Some(r.handle),
            id: Some(r.id),
            rights: rights::effective(r.rights, r.is_dir, abi),
            path: r.path,
            is_dir: r.is_dir,
            why: r.why,
        })
        .collect();
    rules.extend(pending);

    let bind = net::ports(inp.src, inp.vars, &inp.network.bind, "network.bind", true)?;
    let connect = net::ports(
        inp.src,
        inp.vars,
        &inp.network.connect,
        "network.connect",
        false,
    )?;
    let mut scopes = BitFlags::<Scope>::empty();
    if !inp.scope.abstract_unix_outside.get() {
        scopes |= Scope::AbstractUnixSocket;
    }
    if !inp.scope.signal_outside.get() {
        scopes |= Scope::Signal;
    }
    if bind.contains(&0) {
        report
            .notes
            .push("network.bind includes port 0: any ephemeral port may be bound".into());
    }
    Ok(LandlockPlan {
        handled_fs: rights::handled_fs(abi),
        compat,
        rules,
        listed_ports: (bind.clone(), connect.clone()),
        bind,
        connect,
        scopes,
        report,
        listed,
        prepared_by: std::process::id(),
        tcp_open: false,
    })
}

/// Kernel ABI, test override, and the required/min_landlock_abi refusals.
fn decide_compat(inp: &LandlockInputs<'_>, needs: Needs) -> Result<Compat, LandlockError> {
    let (kernel_abi, kernel_error) = match crate::sys::landlock_abi_version() {
        Ok(v) => (v, None),
        Err(e) => (
            0,
            Some(crate::sys::errno_name(e.raw_os_error().unwrap_or(0))),
        ),
    };
    let raw = std::env::var(compat::TEST_ABI_ENV).ok();
    let test_override = compat::parse_override(raw.as_deref()).map_err(LandlockError::Refused)?;
    let c = compat::decide(
        inp.kernel.landlock.get(),
        kernel_abi,
        kernel_error,
        test_override,
        needs,
    );
    if let Some(w) = c.override_warning() {
        tracing::warn!("{w}");
    }
    if let Some(min) = &inp.kernel.min_landlock_abi {
        let m = i32::try_from(*min.get_ref()).unwrap_or(i32::MAX);
        if let Some(why) = compat::floor_refusal(&c, m) {
            return Err(PolicyError::at(
                inp.src,
                min.span(),
                "landlock-abi-too-old",
                "kernel.min_landlock_abi",
                why,
            )
            .into());
        }
    }
    if let Some(why) = compat::required_refusal(&c, needs) {
        return Err(LandlockError::Refused(format!(
            "{}: landlock: {why}",
            inp.src.origin.display_name()
        )));
    }
    Ok(c)
}

/// An entry's optional marker and its path, expanded (`PathTemplate::expand_at`).
fn expand_entry(
    inp: &LandlockInputs<'_>,
    v: &Spanned<PathEntry>,
    key: &str,
) -> Result<(bool, PathBuf), LandlockError> {
    let e = v.get_ref();
    Ok((
        e.optional,
        e.path.expand_at(inp.src, v.span(), key, inp.vars)?,
    ))
}

/// An entry as verify names it: `filesystem.read "~" (policy.toml:9:9)`.
fn listed_entry(
    inp: &LandlockInputs<'_>,
    list: ListKind,
    key: &str,
    v: &Spanned<PathEntry>,
    path: &Path,
) -> Listed {
    let (l, c) = inp.src.line_col(v.span().start);
    Listed {
        list,
        path: path.to_path_buf(),
        at: format!(
            "{key} {:?} ({}:{l}:{c})",
            v.get_ref().written(),
            inp.src.origin.display_name()
        ),
    }
}

/// A located error for a path that cannot be used.
fn path_error(
    inp: &LandlockInputs<'_>,
    v: &Spanned<PathEntry>,
    key: &str,
    path: &Path,
    e: PathError,
) -> LandlockError {
    let (code, msg) = match &e {
        PathError::Missing { missing, .. } => (
            "missing-path",
            format!(
                "{} does not exist ({} is missing); mark the entry optional with a leading '?' (\"?{}\") if that is expected",
                path.display(),
                missing.display(),
                v.get_ref().path.as_str()
            ),
        ),
        PathError::UnsafeSymlink { .. } => ("unsafe-symlink", e.to_string()),
        _ => ("unusable-path", e.to_string()),
    };
    PolicyError::at(inp.src, v.span(), code, key, msg).into()
}

fn entry(
    r: paths::Resolved,
    rights: BitFlags<AccessFs>,
    origin: Origin,
    why: String,
) -> Entry<OwnedFd> {
    Entry {
        id: r.meta.id,
        ancestors: r.ancestors,
        is_dir: r.meta.is_dir(),
        path: r.path,
        handle: r.fd,
        rights,
        origin,
        why,
    }
}

/// `deny` entries by inode. A missing one is represented by its deepest existing ancestor,
/// which is then split, so the path stays unreachable if it appears after launch.
fn resolve_denies(
    inp: &LandlockInputs<'_>,
    report: &mut Report,
    listed: &mut Vec<Listed>,
) -> Result<Vec<Deny>, LandlockError> {
    let key = "filesystem.deny";
    let mut out = Vec::new();
    for v in &inp.fs.deny {
        let (_optional, path) = expand_entry(inp, v, key)?;
        listed.push(listed_entry(inp, ListKind::Deny, key, v, &path));
        match paths::resolve(&path, inp.target) {
            Ok(r) => {
                report.deny.push(view::DenyEntry {
                    path: r.path.display().to_string(),
                    exists: true,
                    guarded_by_splitting: None,
                });
                out.push(Deny {
                    id: r.meta.id,
                    ancestors: r.ancestors,
                    path: r.path,
                    exists: true,
                });
            }
            Err(PathError::Missing { missing, .. }) => {
                let parent = missing.parent().unwrap_or(Path::new("/")).to_path_buf();
                let r = paths::resolve(&parent, inp.target)
                    .map_err(|e| path_error(inp, v, key, &parent, e))?;
                report.deny.push(view::DenyEntry {
                    path: path.display().to_string(),
                    exists: false,
                    guarded_by_splitting: Some(r.path.display().to_string()),
                });
                out.push(Deny {
                    id: r.meta.id,
                    ancestors: r.ancestors,
                    path,
                    exists: false,
                });
            }
            Err(e) => return Err(path_error(inp, v, key, &path, e)),
        }
    }
    Ok(out)
}

/// Whether the policy uses `${TMP}` in `[filesystem]` or `env.set` (raw values).
fn uses_tmp(inp: &LandlockInputs<'_>) -> Option<std::ops::Range<usize>> {
    let fs = inp.fs;
    let uses = |s: &str| s.contains("${TMP}");
    fs.read
        .iter()
        .chain(&fs.write)
        .chain(&fs.exec)
        .chain(&fs.deny)
        .find(|v| uses(v.get_ref().path.as_str()))
        .map(|v| v.span())
        .or_else(|| {
            fs.create
                .iter()
                .find(|v| uses(v.get_ref().as_str()))
                .map(|v| v.span())
        })
        .or_else(|| {
            inp.env
                .set
                .values()
                .find(|v| uses(v.get_ref()))
                .map(|v| v.span())
        })
}

/// `[filesystem] create` (and `${TMP}` when used): directories owned by the target, made
/// before the rules are resolved. Returns the paths that a dry run would create.
fn create_dirs(
    inp: &LandlockInputs<'_>,
    report: &mut Report,
) -> Result<Vec<PathBuf>, LandlockError> {
    let key = "filesystem.create";
    let mode = inp.fs.create_mode.as_ref().map_or(0o700, |m| m.get_ref().0);
    let mut targets: Vec<(PathBuf, std::ops::Range<usize>)> = Vec::new();
    for v in &inp.fs.create {
        // A leading '?' is refused when the policy is loaded (policy::validate).
        let p = v.get_ref().expand_at(inp.src, v.span(), key, inp.vars)?;
        targets.push((p, v.span()));
    }
    if let (Some(span), Some(tmp)) = (uses_tmp(inp), inp.vars.get("TMP")) {
        let p = PathBuf::from(tmp);
        if !targets.iter().any(|(t, _)| *t == p) {
            targets.push((p, span));
        }
    }
    let mut would = Vec::new();
    for (path, span) in targets {
        let o = paths::ensure_dir(&path, inp.target, mode, inp.apply).map_err(|e| {
            let code = match e {
                PathError::UnsafeSymlink { .. } => "unsafe-symlink",
                _ => "create-refused",
            };
            PolicyError::at(inp.src, span.clone(), code, key, e.to_string())
        })?;
        if let DirOutcome::WouldCreate { missing, .. } = &o {
            would.extend(missing.iter().cloned());
        }
        if let DirOutcome::Created { .. } = &o {
            tracing::info!(created = %o, "landlock: created directory for the target");
        }
        report.created.push(o);
    }
    Ok(would)
}

/// Directory listings for splits, each child opened beneath its parent's fd.
struct FdTree;

impl Tree<OwnedFd> for FdTree {
    fn children(&mut self, dir: &OwnedFd, path: &Path) -> Result<Vec<(OwnedFd, NodeInfo)>, String> {
        let kids = paths::children(dir, path).map_err(|e| e.to_string())?;
        Ok(kids
            .into_iter()
            .map(|c| {
                let info = NodeInfo {
                    id: c.meta.id,
                    path: c.path,
                    is_dir: c.meta.is_dir(),
                    is_symlink: c.meta.is_symlink(),
                };
                (c.fd, info)
            })
            .collect())
    }
}

fn ll_err(call: impl Into<String>) -> impl FnOnce(landlock::RulesetError) -> (String, io::Error) {
    let call = call.into();
    move |e| (call, io::Error::other(e.to_string()))
}

/// A rule under `/proc/<pid that prepared the plan>` came from `/proc/self` in the policy;
/// any other rule under /proc may name a different procfs now (a PID namespace's).
/// When a forked child is the process being confined (`--init`, the process-group
/// supervisor, `verify`), it must name the child's own /proc entry, not its parent's:
/// reopen `/proc/self/...` here, in the process that will exec. O_PATH|O_CLOEXEC, as
/// PathFd does; a failure aborts the launch (fail closed).
fn reopen_for_this_process(
    prepared_by: u32,
    path: &Path,
) -> Result<Option<std::fs::File>, (String, io::Error)> {
    let me = std::process::id();
    if me == prepared_by {
        return Ok(None);
    }
    let own = match path.strip_prefix(format!("/proc/{prepared_by}")) {
        Ok(rest) => Path::new("/proc/self").join(rest),
        // In a PID namespace the target has a procfs of its own on /proc (src/namespaces.rs):
        // other inodes than the ones opened in prepare, so every rule under /proc is
        // reopened by path (the host's /proc gives the same inode back: harmless).
        Err(_) if path.starts_with("/proc") => path.to_path_buf(),
        Err(_) => return Ok(None),
    };
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_PATH | libc::O_CLOEXEC)
        .open(&own)
        .map(Some)
        .map_err(|e| (format!("open({}) for a /proc/self rule", own.display()), e))
}

/// landlock_create_ruleset(2) + landlock_add_rule(2) + landlock_restrict_self(2) on this
/// thread, with exactly the features `prepare` decided on and `HardRequirement`, so any
/// surprise is an error rather than a silent drop.
pub fn restrict_self(
    k: &mut impl crate::kernel::Kernel,
    plan: &LandlockPlan,
) -> Result<LandlockOutcome, (String, io::Error)> {
    let c = &plan.compat;
    if let Some(w) = c.override_warning() {
        tracing::warn!("{w}");
    }
    for f in c.features.iter().filter(|f| f.state == State::Dropped) {
        tracing::warn!(
            feature = f.feature.name(),
            abi = f.abi,
            effective_abi = c.effective_abi,
            "landlock: {} dropped (needs ABI {}): {}",
            f.feature,
            f.abi,
            f.what
        );
    }
    if c.effective_abi <= 0 {
        // Only reachable under best-effort: required refused in prepare.
        tracing::warn!("landlock: NOT enforced (no usable Landlock ABI)");
        return Ok(outcome(plan, Status::NotEnforced, "not applied"));
    }
    let mut rs = Ruleset::default()
        .set_compatibility(CompatLevel::HardRequirement)
        .handle_access(plan.handled_fs)
        .map_err(ll_err("landlock_create_ruleset(handled_access_fs)"))?;
    if c.enforced(Feature::Tcp) && !plan.tcp_open {
        rs = rs
            .handle_access(AccessNet::BindTcp | AccessNet::ConnectTcp)
            .map_err(ll_err("landlock_create_ruleset(handled_access_net)"))?;
    }
    if c.enforced(Feature::Scopes) && !plan.scopes.is_empty() {
        rs = rs
            .scope(plan.scopes)
            .map_err(ll_err("landlock_create_ruleset(scoped)"))?;
    }
    let mut rc = rs.create().map_err(ll_err("landlock_create_ruleset"))?;
    for r in &plan.rules {
        if r.rights.is_empty() {
            continue;
        }
        let Some(fd) = &r.fd else {
            return Err((
                format!("landlock_add_rule({})", r.path.display()),
                io::Error::other("path was not opened (dry-run plan)"),
            ));
        };
        let reopened = reopen_for_this_process(plan.prepared_by, &r.path)?;
        let fd = reopened.as_ref().map_or(fd.as_fd(), |f| f.as_fd());
        rc = rc
            .add_rule(PathBeneath::new(fd, r.rights))
            .map_err(ll_err(format!("landlock_add_rule({})", r.path.display())))?;
    }
    if c.enforced(Feature::Tcp) && !plan.tcp_open {
        for (ports, access) in [
            (&plan.bind, AccessNet::BindTcp),
            (&plan.connect, AccessNet::ConnectTcp),
        ] {
            for p in ports {
                rc = rc
                    .add_rule(NetPort::new(*p, access))
                    .map_err(ll_err(format!("landlock_add_rule(port {p})")))?;
            }
        }
    }
    if c.enforced(Feature::Audit) {
        rc = rc
            .log_new_exec(true)
            .map_err(ll_err("landlock_restrict_self(LOG_NEW_EXEC_ON)"))?;
    }
    let st = k
        .landlock_restrict_self(rc)
        .map_err(ll_err("landlock_restrict_self"))?;
    if st != RulesetStatus::FullyEnforced {
        return Err((
            "landlock_restrict_self".into(),
            io::Error::other(format!(
                "the kernel did not fully enforce the requested ruleset: {st:?}"
            )),
        ));
    }
    Ok(outcome(plan, c.expected_status(), &format!("{st:?}")))
}

fn outcome(plan: &LandlockPlan, status: Status, crate_status: &str) -> LandlockOutcome {
    let c = &plan.compat;
    let enforced = c.in_state(State::Enforced);
    let dropped = c.dropped();
    let summary = view::OutcomeSummary {
        kernel_abi: c.kernel_abi,
        effective_abi: c.effective_abi,
        status,
        ruleset_status: crate_status.to_string(),
        enforced,
        dropped: dropped.clone(),
        fs_rules: plan.rules.len(),
        tcp_bind: plan.bind.clone(),
        tcp_connect: plan.connect.clone(),
        test_abi_override: c.override_warning(),
    };
    LandlockOutcome {
        summary,
        kernel_abi: c.kernel_abi,
        effective_abi: c.effective_abi,
        status,
        dropped,
    }
}

#[cfg(test)]
mod granted_tests {
    use super::*;

    fn rule(path: &Path, rights: BitFlags<AccessFs>) -> FsRule {
        use std::os::unix::fs::MetadataExt;
        let m = std::fs::metadata(path).unwrap();
        FsRule {
            fd: None,
            id: Some(paths::FileId {
                dev: m.dev(),
                ino: m.ino(),
            }),
            path: path.to_path_buf(),
            is_dir: m.is_dir(),
            rights,
            why: vec![format!("filesystem.read {}", path.display())],
        }
    }

    /// Coverage is by inode: a directory reached by another name (a symlink the policy
    /// does not spell) is covered; a sibling with a common string prefix is not.
    #[test]
    fn coverage_follows_inodes_not_path_prefixes() {
        let base = std::env::temp_dir().join(format!("clawjail-granted-{}", std::process::id()));
        let real = base.join("data");
        std::fs::create_dir_all(real.join("sub")).unwrap();
        std::fs::create_dir_all(base.join("data-other")).unwrap();
        std::os::unix::fs::symlink(&real, base.join("alias")).unwrap();
        let plan = LandlockPlan {
            compat: compat::decide(
                policy::LandlockMode::Required,
                7,
                None,
                None,
                Needs {
                    refer: true,
                    scopes: true,
                },
            ),
            handled_fs: rights::handled_fs(7),
            rules: vec![rule(&real, AccessFs::ReadFile | AccessFs::ReadDir)],
            bind: vec![],
            connect: vec![],
            scopes: BitFlags::empty(),
            report: Report::default(),
            listed: Vec::new(),
            listed_ports: (Vec::new(), Vec::new()),
            prepared_by: std::process::id(),
            tcp_open: false,
        };
        let read = AccessFs::ReadFile | AccessFs::ReadDir;
        assert!(plan.granted(&real.join("sub/missing-file")).any(read));
        assert!(plan.granted(&base.join("alias/sub")).any(read));
        assert!(!plan.granted(&base.join("data-other")).any(read));
        assert!(!plan.granted(&base).any(read));
        assert!(!plan
            .granted(&real.join("sub"))
            .any(AccessFs::MakeReg.into()));
        std::fs::remove_dir_all(&base).unwrap();
    }
}
