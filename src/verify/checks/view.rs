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

/// The 1-based line of `key` inside `[section]`, for keys the schema does not span.
pub(super) fn line_of_key(text: &str, section: &str, key: &str) -> Option<usize> {
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
