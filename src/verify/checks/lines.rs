//! The policy lines verify names in its messages, located by the typed policy's spans:
//! switches that lift a guard (`network.unix`, `filesystem.allow_chown`, ...), seccomp
//! allowances and `[risk] accept`. Nothing here is expanded or decides coverage: paths,
//! ports and scopes come from the Plan (`Inputs`), as `run` applies them.

use super::*;
use crate::policy::{Flag, Located};

/// Located policy lines, for messages and risk acceptance.
#[derive(Debug, Clone, Default)]
pub struct PolicyLines {
    /// `network.unix = true`, located.
    pub unix: Option<String>,
    /// `seccomp.action = "log"` with its location: nothing is denied.
    pub seccomp_log: Option<String>,
    /// `seccomp.allow` entries with their locations.
    pub seccomp_allow: Vec<(String, String)>,
    pub accept: Vec<String>,
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
fn line_at<T>(loaded: &Loaded, v: &Located<T>) -> String {
    let file = loaded.source.origin.display_name();
    if v.is_written() {
        format!("{file}:{}", loaded.source.line_col(v.span().start).0)
    } else {
        file.to_string()
    }
}

impl PolicyLines {
    pub fn new(loaded: &Loaded) -> PolicyLines {
        let p = &loaded.policy;
        let on = |key: &str, f: &Flag| {
            f.get()
                .then(|| format!("{key} = true ({})", line_at(loaded, f)))
        };
        PolicyLines {
            unix: on("network.unix", &p.network.unix),
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
                        s.get_ref().to_string(),
                        format!(
                            "seccomp.allow {:?} ({})",
                            s.get_ref().0,
                            at(loaded, s.span())
                        ),
                    )
                })
                .collect(),
            accept: p.risk.accept.iter().map(|a| a.get_ref().clone()).collect(),
            allow_chown: on("filesystem.allow_chown", &p.filesystem.allow_chown),
            allow_xattr: on("filesystem.allow_xattr", &p.filesystem.allow_xattr),
            allow_shared_ipc: on("process.allow_shared_ipc", &p.process.allow_shared_ipc),
        }
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
