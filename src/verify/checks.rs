//! The battery, derived from the policy (not from hard-coded paths) and the fixtures:
//! enforcement rows for every denial and allowance the policy implies, baseline rows for
//! what no gateway should be able to do, and limit rows for what no policy can enforce.

use std::path::{Path, PathBuf};

use super::fixtures::{Fixtures, PLANTED_ENV};
use super::row::{Expect, Kind};
use landlock::AccessFs;

use crate::identity::Ids;
use crate::policy::{vars::Vars, Loaded, PortSpec};
use crate::probe::Action;

/// Risk names `[risk] accept` understands: each lets one baseline row be ACCEPTED
/// instead of FAIL when the policy allows that action (docs/verify-audit.md).
pub const RISKS: &[(&str, &str)] = &[
    ("ssh-keys", "the target may read the target user's ~/.ssh"),
    (
        "cloud-credentials",
        "the target may read the target user's ~/.aws",
    ),
    ("etc-shadow", "the target may read /etc/shadow"),
    ("ptrace", "seccomp allows ptrace"),
    ("user-namespaces", "seccomp allows creating user namespaces"),
    ("io-uring", "seccomp allows io_uring"),
    ("mount", "seccomp allows mount"),
    ("tiocsti", "seccomp allows ioctl without its TIOCSTI guard"),
    (
        "unix-sockets",
        "network.unix = true: pathname sockets such as docker.sock are reachable",
    ),
    ("setuid-exec", "the exec set contains a setuid binary"),
];

/// One attempt to make, in both children.
#[derive(Debug, Clone)]
pub struct Check {
    pub id: String,
    pub kind: Kind,
    pub attempt: String,
    /// None for a policy-only row, which is never attempted (`skip` is set).
    pub action: Option<Action>,
    /// Arguments; `{PTY}` is replaced by each child's own pty fd.
    pub args: Vec<String>,
    pub expect: Expect,
    pub layer: &'static str,
    /// Run after an exec of `clawjail __verify-exec` (what the target would see).
    pub across_exec: bool,
    /// Run the same attempt as the same uid without confinement.
    pub control: bool,
    /// Baseline: the policy line that allows the action.
    pub policy_allows: Option<String>,
    pub risk: Option<&'static str>,
    pub limit_note: Option<&'static str>,
    /// Why the attempt is not made at all (e.g. the path does not exist).
    pub skip: Option<String>,
    /// Run with fds 0 and 2 on the child's pty (its controlling terminal), which stands
    /// for the caller's terminal; confined, through the terminal step `run` applies.
    pub caller_tty: bool,
}

impl Check {
    fn new(
        id: &str,
        kind: Kind,
        layer: &'static str,
        attempt: String,
        action: impl Into<Option<Action>>,
        args: Vec<String>,
        expect: Expect,
    ) -> Check {
        Check {
            id: id.to_string(),
            kind,
            attempt,
            action: action.into(),
            args,
            expect,
            layer,
            across_exec: false,
            control: true,
            policy_allows: None,
            risk: None,
            limit_note: None,
            skip: None,
            caller_tty: false,
        }
    }

    fn exec(mut self) -> Check {
        self.across_exec = true;
        self
    }

    fn on_caller_tty(mut self) -> Check {
        self.caller_tty = true;
        self
    }

    fn no_control(mut self) -> Check {
        self.control = false;
        self
    }

    fn risk(mut self, r: &'static str) -> Check {
        self.risk = Some(r);
        self
    }

    fn allowed_by(mut self, line: Option<String>) -> Check {
        self.policy_allows = line;
        self
    }
}

/// One expanded filesystem entry and where the policy says it.
#[derive(Debug, Clone)]
pub struct Entry {
    pub path: PathBuf,
    /// e.g. `filesystem.read "~" (policy.toml:9:9)`.
    pub at: String,
}

/// The policy, expanded, as verify needs it.
#[derive(Debug, Clone, Default)]
pub struct PolicyView {
    pub read: Vec<Entry>,
    pub write: Vec<Entry>,
    pub exec: Vec<Entry>,
    pub deny: Vec<Entry>,
    pub connect: Vec<u16>,
    pub bind: Vec<u16>,
    pub unix: Option<String>,
    pub abstract_outside: bool,
    pub signal_outside: bool,
    /// `seccomp.action = "log"` with its location: nothing is denied.
    pub seccomp_log: Option<String>,
    /// `seccomp.allow` entries with their locations.
    pub seccomp_allow: Vec<(String, String)>,
    pub accept: Vec<String>,
    pub home: Option<PathBuf>,
    /// `filesystem.allow_chown = true`, located.
    pub allow_chown: Option<String>,
    /// `filesystem.allow_xattr = true`, located.
    pub allow_xattr: Option<String>,
    /// `process.allow_shared_ipc = true`, located.
    pub allow_shared_ipc: Option<String>,
}

fn at(loaded: &Loaded, span: std::ops::Range<usize>) -> String {
    let (l, c) = loaded.source.line_col(span.start);
    format!("{}:{l}:{c}", loaded.source.origin.display_name())
}

/// The 1-based line of `key` inside `[section]`, for keys the schema does not span.
fn line_of_key(text: &str, section: &str, key: &str) -> Option<usize> {
    let header = format!("[{section}]");
    let mut inside = false;
    for (i, l) in text.lines().enumerate() {
        let t = l.trim();
        if t.starts_with('[') {
            inside = t == header;
        } else if inside && t.split('=').next().map(str::trim) == Some(key) {
            return Some(i + 1);
        }
    }
    None
}

impl PolicyView {
    /// Expand the policy's lists with its variables. Entries that do not expand are
    /// skipped here: `plan::prepare` reports them with their location.
    pub fn new(loaded: &Loaded, vars: &Vars) -> PolicyView {
        let p = &loaded.policy;
        let list = |key: &str, v: &[toml::Spanned<String>]| -> Vec<Entry> {
            v.iter()
                .filter_map(|e| {
                    let raw = e.get_ref().strip_prefix('?').unwrap_or(e.get_ref());
                    let path = vars.expand(raw).ok()?;
                    path.starts_with('/').then(|| Entry {
                        path: PathBuf::from(path),
                        at: format!(
                            "filesystem.{key} {:?} ({})",
                            e.get_ref(),
                            at(loaded, e.span())
                        ),
                    })
                })
                .collect()
        };
        let ports = |v: &[toml::Spanned<PortSpec>]| -> Vec<u16> {
            v.iter()
                .filter_map(|p| match p.get_ref() {
                    PortSpec::Number(n) => u16::try_from(*n).ok(),
                    PortSpec::Text(t) => vars.expand(t).ok()?.parse().ok(),
                })
                .collect()
        };
        let file = loaded.source.origin.display_name();
        let key_at = |section: &str, key: &str| {
            line_of_key(&loaded.source.text, section, key)
                .map(|l| format!("{file}:{l}"))
                .unwrap_or_else(|| file.to_string())
        };
        PolicyView {
            read: list("read", &p.filesystem.read),
            write: list("write", &p.filesystem.write),
            exec: list("exec", &p.filesystem.exec),
            deny: list("deny", &p.filesystem.deny),
            connect: ports(&p.network.connect),
            bind: ports(&p.network.bind),
            unix: p
                .network
                .unix
                .then(|| format!("network.unix = true ({})", key_at("network", "unix"))),
            abstract_outside: p.scope.abstract_unix_outside,
            signal_outside: p.scope.signal_outside,
            seccomp_log: (p.seccomp.action == crate::policy::SeccompAction::Log).then(|| {
                format!(
                    "seccomp.action = \"log\" denies nothing ({})",
                    key_at("seccomp", "action")
                )
            }),
            seccomp_allow: p
                .seccomp
                .allow
                .iter()
                .map(|s| {
                    (
                        s.get_ref().clone(),
                        format!("seccomp.allow {:?} ({})", s.get_ref(), at(loaded, s.span())),
                    )
                })
                .collect(),
            accept: p.risk.accept.iter().map(|a| a.get_ref().clone()).collect(),
            home: vars.get("HOME").map(PathBuf::from),
            allow_chown: p.filesystem.allow_chown.then(|| {
                format!(
                    "filesystem.allow_chown = true ({})",
                    key_at("filesystem", "allow_chown")
                )
            }),
            allow_xattr: p.filesystem.allow_xattr.then(|| {
                format!(
                    "filesystem.allow_xattr = true ({})",
                    key_at("filesystem", "allow_xattr")
                )
            }),
            allow_shared_ipc: p.process.allow_shared_ipc.then(|| {
                format!(
                    "process.allow_shared_ipc = true ({})",
                    key_at("process", "allow_shared_ipc")
                )
            }),
        }
    }

    fn covering<'a>(list: &'a [Entry], path: &Path) -> Option<&'a Entry> {
        list.iter().find(|e| path.starts_with(&e.path))
    }

    /// Under any read/write/exec/deny entry.
    pub fn listed(&self, path: &Path) -> bool {
        [&self.read, &self.write, &self.exec, &self.deny]
            .iter()
            .any(|l| Self::covering(l, path).is_some())
    }

    /// The list entry that names a parent of `path`, for messages only: whether `path` is
    /// reachable is decided by the plan's rules (`Inputs::reachable`), by inode.
    pub fn located(&self, path: &Path) -> Option<&Entry> {
        Self::covering(&self.write, path)
            .or_else(|| Self::covering(&self.read, path))
            .or_else(|| Self::covering(&self.exec, path))
    }

    /// A seccomp line that lets one of `syscalls` through.
    fn seccomp_allows(&self, syscalls: &[&str]) -> Option<String> {
        self.seccomp_log.clone().or_else(|| {
            self.seccomp_allow
                .iter()
                .find(|(n, _)| syscalls.contains(&n.as_str()))
                .map(|(_, at)| at.clone())
        })
    }

    /// Whether `risk` is in `[risk] accept`.
    pub fn accepts(&self, risk: &str) -> bool {
        self.accept.iter().any(|a| a == risk)
    }
}

/// The action that attacks a path: read a regular file (the first found under a
/// directory, as root, three levels deep), else list the directory.
pub fn attack_for(path: &Path) -> Option<(Action, PathBuf)> {
    let meta = std::fs::symlink_metadata(path).ok()?;
    if !meta.is_dir() {
        return Some((Action::Read, path.to_path_buf()));
    }
    Some(match first_file_under(path, 3) {
        Some(f) => (Action::Read, f),
        None => (Action::List, path.to_path_buf()),
    })
}

fn first_file_under(dir: &Path, depth: usize) -> Option<PathBuf> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .ok()?
        .filter_map(|e| e.ok())
        .collect();
    entries.sort_by_key(|e| e.file_name());
    for e in &entries {
        if e.file_type().is_ok_and(|t| t.is_file()) {
            return Some(e.path());
        }
    }
    if depth == 0 {
        return None;
    }
    entries
        .iter()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .find_map(|e| first_file_under(&e.path(), depth - 1))
}

/// A path attack row; the attempt is skipped (INCONCLUSIVE, nothing to protect) when the
/// path does not exist.
fn path_row(id: &str, kind: Kind, label: &str, path: &Path) -> Check {
    match attack_for(path) {
        Some((action, target)) => Check::new(
            id,
            kind,
            "landlock-fs",
            format!("{action} {label} ({})", target.display()),
            action,
            vec![target.display().to_string()],
            Expect::Denied,
        ),
        None => {
            let mut c = Check::new(
                id,
                kind,
                "landlock-fs",
                format!("read {label}"),
                Action::Read,
                vec![path.display().to_string()],
                Expect::Denied,
            );
            c.skip = Some(format!(
                "{} does not exist (nothing to protect)",
                path.display()
            ));
            c
        }
    }
}

/// Everything verify needs to derive the battery.
pub struct Inputs<'a> {
    pub view: &'a PolicyView,
    pub fx: &'a Fixtures,
    pub ids: &'a Ids,
    /// Started as root: ids switch and the bounding set is emptied.
    pub privileged: bool,
    /// The kept capabilities' mask.
    pub keep_mask: u64,
    /// The plan gives the target an IPC namespace of its own.
    pub ipc_namespace: bool,
    /// The Landlock rules `run` applies: every coverage decision is made on them, by inode.
    pub landlock: &'a crate::landlock::LandlockPlan,
}

impl Inputs<'_> {
    /// The policy line that makes `path` readable (to read a file or list a directory)
    /// under the rules `run` applies; None when no rule reaches it. The line is the list
    /// entry naming a parent when there is one, else the rules' own reasons (a name the
    /// policy does not spell: a symlinked entry, the automatic exec chain).
    pub fn reachable(&self, path: &Path) -> Option<String> {
        let g = self.landlock.granted(path);
        if !g.any(AccessFs::ReadFile | AccessFs::ReadDir) {
            return None;
        }
        Some(
            self.view
                .located(path)
                .map(|e| e.at.clone())
                .unwrap_or_else(|| format!("Landlock rule: {}", g.why.join("; "))),
        )
    }

    /// A file can be created in `path`'s directory under the rules `run` applies.
    pub fn writable(&self, path: &Path) -> bool {
        self.landlock.granted(path).any(AccessFs::MakeReg.into())
    }

    /// `path` can be executed under the rules `run` applies.
    pub fn executable(&self, path: &Path) -> bool {
        self.landlock.granted(path).any(AccessFs::Execute.into())
    }
}

/// The whole battery, in display order.
pub fn derive(inp: &Inputs<'_>) -> (Vec<Check>, Vec<PathBuf>) {
    let mut cleanup = Vec::new();
    let mut v = Vec::new();
    v.extend(risk_names(inp.view));
    v.extend(deny_paths(inp));
    v.extend(outside_paths(inp, &mut cleanup));
    v.extend(links(inp, &mut cleanup));
    v.extend(network(inp));
    v.extend(scopes(inp));
    v.extend(allowed(inp, &mut cleanup));
    v.extend(baseline(inp));
    v.extend(isolation(inp));
    v.extend(process_state(inp));
    v.extend(limits(inp));
    (v, cleanup)
}

/// A FAIL row for every `[risk] accept` name verify does not know (a typo accepts nothing).
fn risk_names(view: &PolicyView) -> Vec<Check> {
    view.accept
        .iter()
        .filter(|a| !RISKS.iter().any(|(n, _)| n == a))
        .map(|a| {
            let mut c = Check::new(
                &format!("risk-{a}"),
                Kind::Baseline,
                "policy",
                format!("risk.accept names {a:?}"),
                None,
                vec![],
                Expect::Denied,
            )
            .no_control();
            c.skip = Some("a policy check, nothing to attempt".into());
            c.policy_allows = Some(format!(
                "risk.accept {a:?} is not a known risk name (known: {})",
                RISKS.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", ")
            ));
            c
        })
        .collect()
}

fn deny_paths(inp: &Inputs<'_>) -> Vec<Check> {
    inp.view
        .deny
        .iter()
        .enumerate()
        .map(|(i, e)| {
            path_row(
                &format!("deny-{}", i + 1),
                Kind::Enforcement,
                &e.at,
                &e.path,
            )
        })
        .collect()
}

fn outside_paths(inp: &Inputs<'_>, cleanup: &mut Vec<PathBuf>) -> Vec<Check> {
    let fx = inp.fx;
    let mut v = Vec::new();
    let mut outside = Check::new(
        "read-outside",
        Kind::Enforcement,
        "landlock-fs",
        "read a file outside every list".into(),
        Action::Read,
        vec![fx.outside_file.display().to_string()],
        Expect::Denied,
    );
    let mut write = Check::new(
        "write-outside",
        Kind::Enforcement,
        "landlock-fs",
        "create a file outside the write set".into(),
        Action::CreateFresh,
        vec![fx
            .owned_dir
            .join(format!("written-by-verify-{}", fx.token))
            .display()
            .to_string()],
        Expect::Denied,
    );
    if !fx.scratch_outside {
        let why = "every scratch location is under a policy list".to_string();
        outside.skip = Some(why.clone());
        write.skip = Some(why);
    }
    v.push(outside);
    v.push(write);
    let tmp = PathBuf::from(format!("/tmp/clawjail-verify-{}-created", fx.token));
    if !inp.writable(&tmp) {
        cleanup.push(tmp.clone());
        v.push(Check::new(
            "tmp-create",
            Kind::Enforcement,
            "landlock-fs",
            "create a file in /tmp (not in the write set)".into(),
            Action::CreateFresh,
            vec![tmp.display().to_string()],
            Expect::Denied,
        ));
    }
    let sh = std::fs::canonicalize("/bin/sh").unwrap_or_else(|_| PathBuf::from("/bin/sh"));
    if !inp.executable(Path::new("/bin/sh")) && !inp.executable(&sh) {
        v.push(Check::new(
            "exec-sh",
            Kind::Enforcement,
            "landlock-fs",
            "exec /bin/sh (not in the exec set)".into(),
            Action::Exec,
            vec!["/bin/sh".into(), "-c".into(), "true".into()],
            Expect::Denied,
        ));
    }
    v
}

/// The first directory of the write set that exists (link and write attempts go there).
fn write_dir(view: &PolicyView) -> Option<&Entry> {
    view.write.iter().find(|e| e.path.is_dir())
}

fn links(inp: &Inputs<'_>, cleanup: &mut Vec<PathBuf>) -> Vec<Check> {
    let Some(w) = write_dir(inp.view) else {
        return Vec::new();
    };
    let token = &inp.fx.token;
    let link = w.path.join(format!(".clawjail-verify-{token}-symlink"));
    let hard = w.path.join(format!(".clawjail-verify-{token}-hardlink"));
    cleanup.push(link.clone());
    cleanup.push(hard.clone());
    vec![
        Check::new(
            "symlink-escape",
            Kind::Enforcement,
            "landlock-fs",
            format!(
                "symlink in {} to an outside file, read through it",
                w.path.display()
            ),
            Action::SymlinkRead,
            vec![
                inp.fx.outside_file.display().to_string(),
                link.display().to_string(),
            ],
            Expect::Denied,
        ),
        Check::new(
            "hardlink-escape",
            Kind::Enforcement,
            "landlock-fs",
            format!("hard-link an outside file into {}", w.path.display()),
            Action::Hardlink,
            vec![
                inp.fx.owned_file.display().to_string(),
                hard.display().to_string(),
            ],
            Expect::Denied,
        ),
    ]
}

fn network(inp: &Inputs<'_>) -> Vec<Check> {
    let fx = inp.fx;
    vec![
        Check::new(
            "tcp-connect-unlisted",
            Kind::Enforcement,
            "landlock-net",
            format!(
                "TCP connect 127.0.0.1:{} (verify's listener, not in network.connect)",
                fx.unlisted_connect_port
            ),
            Action::TcpConnect,
            vec!["127.0.0.1".into(), fx.unlisted_connect_port.to_string()],
            Expect::Denied,
        ),
        Check::new(
            "tcp-bind-unlisted",
            Kind::Enforcement,
            "landlock-net",
            format!(
                "TCP bind 127.0.0.1:{} (not in network.bind)",
                fx.unlisted_bind_port
            ),
            Action::TcpBind,
            vec!["127.0.0.1".into(), fx.unlisted_bind_port.to_string()],
            Expect::Denied,
        ),
    ]
}

fn scopes(inp: &Inputs<'_>) -> Vec<Check> {
    let fx = inp.fx;
    let view = inp.view;
    // socket(AF_UNIX) is refused by seccomp unless network.unix; then the scope decides.
    let (abs_expect, abs_layer) = match (view.unix.is_some(), view.abstract_outside) {
        (false, _) => (Expect::Denied, "seccomp"),
        (true, false) => (Expect::Denied, "landlock-scope"),
        (true, true) => (Expect::Allowed, "landlock-scope"),
    };
    let mut v = vec![Check::new(
        "abstract-unix",
        Kind::Enforcement,
        abs_layer,
        format!(
            "connect to verify's abstract unix socket @{}",
            fx.abstract_name
        ),
        Action::AbstractConnect,
        vec![fx.abstract_name.clone()],
        abs_expect,
    )];
    if let Some(pid) = fx.outside_pid {
        v.push(Check::new(
            "signal-outside",
            Kind::Enforcement,
            "landlock-scope",
            format!("SIGCONT to pid {pid} (same uid, outside the sandbox)"),
            Action::Kill,
            vec![pid.to_string(), libc::SIGCONT.to_string()],
            if view.signal_outside {
                Expect::Allowed
            } else {
                Expect::Denied
            },
        ));
    }
    v
}

fn allowed(inp: &Inputs<'_>, cleanup: &mut Vec<PathBuf>) -> Vec<Check> {
    let view = inp.view;
    let mut v = Vec::new();
    if let Some((e, (action, target))) = view
        .read
        .iter()
        .filter(|e| inp.reachable(&e.path).is_some())
        .find_map(|e| attack_for(&e.path).map(|a| (e, a)))
    {
        v.push(Check::new(
            "read-allowed",
            Kind::Enforcement,
            "landlock-fs",
            format!("{action} {} (under {})", target.display(), e.at),
            action,
            vec![target.display().to_string()],
            Expect::Allowed,
        ));
    }
    if let Some(w) = write_dir(view) {
        let f = w
            .path
            .join(format!(".clawjail-verify-{}-write", inp.fx.token));
        cleanup.push(f.clone());
        v.push(Check::new(
            "write-allowed",
            Kind::Enforcement,
            "landlock-fs",
            format!("create a file in {}", w.at),
            Action::CreateFresh,
            vec![f.display().to_string()],
            Expect::Allowed,
        ));
    }
    if let Some(p) = view.connect.iter().copied().find(|p| *p != 0) {
        v.push(Check::new(
            "tcp-connect-listed",
            Kind::Enforcement,
            "landlock-net",
            format!("TCP connect 127.0.0.1:{p} (listed in network.connect)"),
            Action::TcpConnect,
            vec!["127.0.0.1".into(), p.to_string()],
            Expect::Allowed,
        ));
    }
    v
}

fn baseline(inp: &Inputs<'_>) -> Vec<Check> {
    let view = inp.view;
    let fx = inp.fx;
    let mut v = Vec::new();
    if let Some(home) = &view.home {
        for (id, rel, risk) in [
            ("home-ssh", ".ssh", "ssh-keys"),
            ("home-aws", ".aws", "cloud-credentials"),
        ] {
            let p = home.join(rel);
            v.push(
                path_row(id, Kind::Baseline, &format!("~/{rel}"), &p)
                    .risk(risk)
                    .allowed_by(
                        inp.reachable(&p)
                            .map(|at| format!("{at} makes {} reachable", p.display())),
                    ),
            );
        }
    }
    let shadow = Path::new("/etc/shadow");
    v.push(
        path_row("etc-shadow", Kind::Baseline, "/etc/shadow", shadow)
            .risk("etc-shadow")
            .allowed_by(inp.reachable(shadow)),
    );
    v.push(
        Check::new(
            "ptrace-parent",
            Kind::Baseline,
            "seccomp",
            format!("ptrace-attach verify (pid {}, the parent)", fx.verify_pid),
            Action::PtraceAttach,
            vec![fx.verify_pid.to_string()],
            Expect::Denied,
        )
        .risk("ptrace")
        .allowed_by(view.seccomp_allows(&["ptrace"])),
    );
    if let Some(pid) = fx.outside_pid {
        v.push(
            Check::new(
                "ptrace-outside",
                Kind::Baseline,
                "seccomp",
                format!("ptrace-attach pid {pid} (same uid, outside the sandbox)"),
                Action::PtraceAttach,
                vec![pid.to_string()],
                Expect::Denied,
            )
            .risk("ptrace")
            .allowed_by(view.seccomp_allows(&["ptrace"])),
        );
    }
    let sys = |id: &str,
               attempt: &str,
               action: Action,
               args: Vec<String>,
               risk: &'static str,
               calls: &[&str]| {
        Check::new(
            id,
            Kind::Baseline,
            "seccomp",
            attempt.to_string(),
            action,
            args,
            Expect::Denied,
        )
        .risk(risk)
        .allowed_by(view.seccomp_allows(calls))
    };
    v.push(sys(
        "userns",
        "unshare(CLONE_NEWUSER)",
        Action::UnshareUserns,
        vec![],
        "user-namespaces",
        &["unshare", "clone3", "setns"],
    ));
    v.push(sys(
        "io-uring",
        "io_uring_setup",
        Action::IoUringSetup,
        vec![],
        "io-uring",
        &["io_uring_setup", "io_uring_enter", "io_uring_register"],
    ));
    v.push(sys(
        "tiocsti",
        "TIOCSTI on its controlling tty (verify grants a pty)",
        Action::Tiocsti,
        vec!["{PTY}".into()],
        "tiocsti",
        &["ioctl"],
    ));
    v.push(sys(
        "mount",
        "mount tmpfs",
        Action::Mount,
        vec![fx.owned_dir.display().to_string()],
        "mount",
        &["mount", "fsmount", "move_mount", "fsopen"],
    ));
    v.push(Check::new(
        "setuid0",
        Kind::Baseline,
        "identity",
        "setresuid(0, 0, 0)".into(),
        Action::Setuid0,
        vec![],
        Expect::Denied,
    ));
    if let Some(bin) = setuid_binary() {
        let allowed = inp
            .executable(&bin)
            .then(|| format!("the exec set reaches setuid-root {}", bin.display()));
        v.push(
            Check::new(
                "setuid-exec",
                Kind::Baseline,
                "landlock-fs",
                format!("exec setuid-root {} --help", bin.display()),
                Action::Exec,
                vec![bin.display().to_string(), "--help".into()],
                Expect::Denied,
            )
            .risk("setuid-exec")
            .allowed_by(allowed),
        );
    }
    for (id, sock) in [
        ("unix-pathname", fx.unix_socket.clone()),
        ("docker-sock", PathBuf::from("/var/run/docker.sock")),
    ] {
        if id == "docker-sock" && !sock.exists() {
            continue;
        }
        v.push(
            Check::new(
                id,
                Kind::Baseline,
                "seccomp",
                format!("connect to pathname unix socket {}", sock.display()),
                Action::UnixConnect,
                vec![sock.display().to_string()],
                Expect::Denied,
            )
            .risk("unix-sockets")
            .allowed_by(view.unix.clone()),
        );
    }
    v
}

/// What Landlock and its scopes do not cover (docs/isolation.md): file metadata outside
/// the grants, other processes of the same uid, SysV IPC; and the limits that remain.
fn isolation(inp: &Inputs<'_>) -> Vec<Check> {
    let view = inp.view;
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

fn setuid_binary() -> Option<PathBuf> {
    use std::os::unix::fs::MetadataExt;
    [
        "/usr/bin/passwd",
        "/usr/bin/chfn",
        "/bin/su",
        "/usr/bin/newgrp",
    ]
    .iter()
    .map(PathBuf::from)
    .find(|p| std::fs::metadata(p).is_ok_and(|m| m.mode() & 0o4000 != 0 && m.uid() == 0))
}

fn process_state(inp: &Inputs<'_>) -> Vec<Check> {
    let fx = inp.fx;
    let ids = inp.ids;
    let mut v = vec![
        Check::new(
            "leaked-fd",
            Kind::Enforcement,
            "fds",
            format!("read fd {} that verify leaked (after exec)", fx.leaked_fd),
            Action::ReadFd,
            vec![fx.leaked_fd.to_string()],
            Expect::Denied,
        )
        .exec(),
        Check::new(
            "env-secret",
            Kind::Enforcement,
            "env",
            format!("see {PLANTED_ENV} planted in verify's environment (after exec)"),
            Action::EnvNames,
            vec![],
            Expect::EnvAbsent {
                name: PLANTED_ENV.into(),
            },
        )
        .exec(),
        // Terminal isolation (docs/terminal.md): the target must hold no descriptor of
        // the caller's terminal, nor reach it through /dev/tty.
        Check::new(
            "terminal",
            Kind::Baseline,
            "terminal",
            "read/ioctl the caller's terminal: fds 0-2 and /dev/tty, started with fds 0 and 2 on it (after exec)".into(),
            Action::TtyReach,
            vec!["{PTY_DEV}".into()],
            Expect::Denied,
        )
        .exec()
        .on_caller_tty(),
    ];
    let mut groups = ids.groups.clone();
    groups.sort_unstable();
    let groups = groups
        .iter()
        .map(|g| g.to_string())
        .collect::<Vec<_>>()
        .join(" ");
    let mask = format!("{:016x}", inp.keep_mask);
    let mut fields: Vec<(&str, &'static str, String)> = vec![
        ("Uid", "identity", format!("{0} {0} {0} {0}", ids.uid)),
        ("Gid", "identity", format!("{0} {0} {0} {0}", ids.gid)),
        ("Groups", "identity", groups),
        ("CapEff", "caps", mask.clone()),
        ("CapPrm", "caps", mask.clone()),
        ("CapAmb", "caps", mask.clone()),
        ("NoNewPrivs", "nnp", "1".into()),
        ("Seccomp", "seccomp", "2".into()),
    ];
    if inp.privileged {
        fields.push(("CapBnd", "caps", mask));
    }
    for (field, layer, want) in fields {
        v.push(
            Check::new(
                &format!("status-{}", field.to_lowercase()),
                Kind::Enforcement,
                layer,
                format!("/proc/self/status {field} (after exec)"),
                Action::Status,
                vec![],
                Expect::StatusField {
                    field: field.into(),
                    want,
                },
            )
            .exec()
            .no_control(),
        );
    }
    v
}

fn limits(inp: &Inputs<'_>) -> Vec<Check> {
    let fx = inp.fx;
    let mut v = Vec::new();
    let loader = ["/lib64/ld-linux-x86-64.so.2", "/lib/ld-linux-aarch64.so.1"]
        .iter()
        .find(|p| Path::new(p).exists());
    if let Some(ld) = loader {
        let mut c = Check::new(
            "ld-so",
            Kind::Limit,
            "landlock-fs",
            format!("{ld} /bin/true (a readable ELF through the loader)"),
            Action::Exec,
            vec![ld.to_string(), "/bin/true".into()],
            Expect::Observe,
        );
        c.limit_note = Some("Landlock Execute limits execve of files, not code: any readable ELF runs through the dynamic loader; keep /usr/bin out of read");
        v.push(c);
    }
    // Same class, no file at all: a memfd has no path in any Landlock hierarchy, so
    // execveat(memfd, "", AT_EMPTY_PATH) of a copied ELF is not an execve Landlock sees.
    if let Ok(exe) = std::env::current_exe() {
        let mut c = Check::new(
            "memfd-exec",
            Kind::Limit,
            "landlock-fs",
            "copy a readable ELF into a memfd and execveat it (fileless exec)".into(),
            Action::MemfdExec,
            vec![exe.display().to_string(), "--version".into()],
            Expect::Observe,
        );
        c.limit_note = Some("Landlock Execute covers files reached by path; memfd_create + execveat runs code outside the exec set (same class as the loader row)");
        v.push(c);
    }
    let mut udp = Check::new(
        "udp",
        Kind::Limit,
        "landlock-net",
        format!("UDP send to 127.0.0.1:{}", fx.udp_port),
        Action::UdpSend,
        vec!["127.0.0.1".into(), fx.udp_port.to_string()],
        Expect::Observe,
    );
    udp.limit_note = Some(
        "Landlock does not control UDP (DNS included); use nftables or systemd IPAddressDeny=",
    );
    v.push(udp);
    if let Some(p) = inp.view.connect.iter().copied().find(|p| *p != 0) {
        let mut c = Check::new(
            "dest-address",
            Kind::Limit,
            "landlock-net",
            format!("TCP connect 127.0.0.2:{p} (another host, allowed port)"),
            Action::TcpConnect,
            vec!["127.0.0.2".into(), p.to_string()],
            Expect::Observe,
        );
        c.limit_note = Some("Landlock TCP rules match ports, not addresses: any host on an allowed port is reachable (ECONNREFUSED still means the connect went out)");
        v.push(c);
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::{Origin, Source};

    fn view(text: &str) -> PolicyView {
        let loaded =
            crate::policy::load(Source::new(Origin::Flag("p.toml".into()), text.into())).unwrap();
        let mut vars = Vars::new();
        vars.set("HOME", "/home/oc");
        vars.set("STATE_DIR", "/home/oc/.openclaw");
        vars.set("PORT", "18789");
        PolicyView::new(&loaded, &vars)
    }

    #[test]
    fn a_parent_entry_is_named_for_messages() {
        let v = view("version = 1\n[filesystem]\nread = [\"~\"]\ndeny = [\"~/.ssh\"]\n");
        let e = v.located(Path::new("/home/oc/.aws/credentials")).unwrap();
        assert_eq!(e.at, "filesystem.read \"~\" (p.toml:3:9)");
    }

    #[test]
    fn ports_expand_variables() {
        let v = view("version = 1\n[network]\nbind = [\"${PORT}\"]\nconnect = [443]\n");
        assert_eq!(v.bind, [18789]);
        assert_eq!(v.connect, [443]);
    }

    #[test]
    fn seccomp_allowances_are_located() {
        let v = view("version = 1\n[seccomp]\nallow = [\"io_uring_setup\"]\n");
        assert_eq!(
            v.seccomp_allows(&["io_uring_setup"]).as_deref(),
            Some("seccomp.allow \"io_uring_setup\" (p.toml:3:10)")
        );
        let v = view("version = 1\n[seccomp]\naction = \"log\"\n");
        assert!(v.seccomp_allows(&["ptrace"]).unwrap().contains("p.toml:3"));
        let v = view("version = 1\n[network]\nunix = true\n");
        assert_eq!(v.unix.as_deref(), Some("network.unix = true (p.toml:3)"));
    }

    #[test]
    fn unknown_risk_names_fail() {
        let v = view("version = 1\n[risk]\naccept = [\"io-uring\", \"io_uring\"]\n");
        let rows = risk_names(&v);
        assert_eq!(rows.len(), 1);
        assert!(rows[0]
            .policy_allows
            .as_deref()
            .unwrap()
            .contains("\"io_uring\" is not a known"));
        assert!(v.accepts("io-uring"));
    }

    #[test]
    fn attack_prefers_a_file_inside_a_directory() {
        let d = std::env::temp_dir().join(format!("cj-attack-{}", std::process::id()));
        std::fs::create_dir_all(d.join("sub")).unwrap();
        assert_eq!(attack_for(&d), Some((Action::List, d.clone())));
        std::fs::write(d.join("sub/key"), "k").unwrap();
        assert_eq!(attack_for(&d), Some((Action::Read, d.join("sub/key"))));
        assert_eq!(attack_for(&d.join("nope")), None);
        std::fs::remove_dir_all(&d).unwrap();
    }
}
