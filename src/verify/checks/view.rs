//! The policy as verify names it in messages: expanded list entries with their
//! locations, ports, scope and seccomp allowances. Coverage is never decided here (the
//! plan's Landlock rules decide it, by inode: `Inputs::reachable`).

use super::*;

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

pub(super) fn at(loaded: &Loaded, span: std::ops::Range<usize>) -> String {
    let (l, c) = loaded.source.line_col(span.start);
    format!("{}:{l}:{c}", loaded.source.origin.display_name())
}

/// `file:line` of a key with a default (a boolean, an enum), from its span.
fn line_at<T>(loaded: &Loaded, v: &crate::policy::Located<T>) -> String {
    let file = loaded.source.origin.display_name();
    if v.is_written() {
        format!("{file}:{}", loaded.source.line_col(v.span().start).0)
    } else {
        file.to_string()
    }
}

impl PolicyView {
    /// Expand the policy's lists with its variables. Entries that do not expand are
    /// skipped here: `plan::prepare` reports them with their location.
    pub fn new(loaded: &Loaded, vars: &Vars) -> PolicyView {
        let p = &loaded.policy;
        let list = |key: &str, v: &[toml::Spanned<crate::policy::PathEntry>]| -> Vec<Entry> {
            v.iter()
                .filter_map(|e| {
                    Some(Entry {
                        path: e.get_ref().path.expand(vars).ok()?,
                        at: format!(
                            "filesystem.{key} {:?} ({})",
                            e.get_ref().written(),
                            at(loaded, e.span())
                        ),
                    })
                })
                .collect()
        };
        let ports = |v: &[toml::Spanned<PortSpec>]| -> Vec<u16> {
            v.iter()
                .filter_map(|p| match p.get_ref() {
                    PortSpec::Number(n) => Some(*n),
                    PortSpec::Text(t) => vars.expand(t).ok()?.parse().ok(),
                })
                .collect()
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
                .get()
                .then(|| format!("network.unix = true ({})", line_at(loaded, &p.network.unix))),
            abstract_outside: p.scope.abstract_unix_outside.get(),
            signal_outside: p.scope.signal_outside.get(),
            seccomp_log: (p.seccomp.action.get() == crate::policy::SeccompAction::Log).then(|| {
                format!(
                    "seccomp.action = \"log\" denies nothing ({})",
                    line_at(loaded, &p.seccomp.action)
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
            allow_chown: p.filesystem.allow_chown.get().then(|| {
                format!(
                    "filesystem.allow_chown = true ({})",
                    line_at(loaded, &p.filesystem.allow_chown)
                )
            }),
            allow_xattr: p.filesystem.allow_xattr.get().then(|| {
                format!(
                    "filesystem.allow_xattr = true ({})",
                    line_at(loaded, &p.filesystem.allow_xattr)
                )
            }),
            allow_shared_ipc: p.process.allow_shared_ipc.get().then(|| {
                format!(
                    "process.allow_shared_ipc = true ({})",
                    line_at(loaded, &p.process.allow_shared_ipc)
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
    pub(super) fn seccomp_allows(&self, syscalls: &[&str]) -> Option<String> {
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
