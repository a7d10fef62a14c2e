//! `clawjail learn [--policy BASE] [--out FILE] [--duration S] -- CMD...`: one run of the
//! target, confined like `run` except for the allowlists, proposes a whole policy
//! (files, TCP ports, syscalls). docs/learn.md says what is recorded and how it becomes
//! rules.
//!
//! Confined while learning: the base policy's identity, env, limits, session handling,
//! capabilities, no_new_privs and seccomp guards stay; Landlock is an allow-all ruleset
//! split around the base `deny` entries (`landlock::lower`), so those stay unreachable;
//! TCP ports are not restricted. Allowed calls that the learner decodes and calls the base
//! profile does not list get SECCOMP_RET_USER_NOTIF (`seccomp::learn`), and the supervisor
//! (`notify`) records them and lets them continue.
//!
//! The command itself (`cli::cmd_learn`) prepares the plan like `run`, swaps in the
//! learning Landlock and seccomp plans and hands a [`Job`] to the supervisor; this tree is
//! what the supervisor runs, below `plan`, `launch` and `cli` (no import reaches back).
//!
//! Modules: `handoff` (listener fd to the supervisor), `decode` (one notification ->
//! accesses), `record` (aggregate), `collapse` (the documented rule), `write` (policy
//! TOML, review block, diff).

pub mod collapse;
pub mod decode;
pub mod handoff;
pub mod notify;
pub mod record;
pub mod write;

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use toml::Spanned;

use crate::policy::{PathEntry, PathTemplate};

use crate::policy::{vars::Vars, Loaded};
use handoff::Handoff;

/// What the supervisor's learn job needs, resolved before the fork.
pub struct Job {
    pub handoff: Handoff,
    pub out: Option<PathBuf>,
    pub duration: Option<Duration>,
    pub base: Loaded,
    pub vars: Vars,
    /// Variables as `run` would define them, for substitution (name, value).
    pub home: Option<PathBuf>,
    pub uid: u32,
    pub deny: Vec<PathBuf>,
    /// Base `create` directories, expanded.
    pub instance_dirs: Vec<PathBuf>,
    /// Syscall numbers the base profile does not list.
    pub unlisted: BTreeSet<u32>,
    pub command: Vec<OsString>,
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Job")
            .field("out", &self.out)
            .field("duration", &self.duration)
            .finish()
    }
}

/// The policy the target runs under while learning: the base with `[filesystem]` opened
/// to `write` + `exec` on `/` (the lowering splits it around every `deny` entry), the
/// base's `create` entries kept (and `${TMP}` when the base uses it).
pub fn learning_policy(base: &Loaded) -> Loaded {
    let mut l = base.clone();
    let fs = &mut l.policy.filesystem;
    let uses_tmp = fs
        .read
        .iter()
        .chain(&fs.write)
        .chain(&fs.exec)
        .any(|v| v.get_ref().path.as_str().contains("${TMP}"));
    let span = 0..0;
    fs.read = Vec::new();
    fs.write = vec![Spanned::new(span.clone(), PathEntry::required("/"))];
    fs.exec = vec![Spanned::new(span.clone(), PathEntry::required("/"))];
    if uses_tmp && !fs.create.iter().any(|c| c.get_ref().as_str() == "${TMP}") {
        fs.create
            .push(Spanned::new(span, PathTemplate("${TMP}".to_string())));
    }
    l
}

pub fn expand_all<'a>(
    vars: &Vars,
    list: impl IntoIterator<Item = &'a crate::policy::PathTemplate>,
) -> Vec<PathBuf> {
    list.into_iter()
        .filter_map(|t| t.expand(vars).ok())
        .collect()
}
