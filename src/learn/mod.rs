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
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use toml::Spanned;

use crate::cli::{Failure, PolicyArgs};
use crate::plan::{self, PrepareOptions};
use crate::policy::{vars::Vars, Loaded};
use handoff::Handoff;

/// `clawjail learn`.
#[derive(Debug, Args)]
pub struct LearnArgs {
    /// The base policy (default: as for `run`): its identity, env, limits, deny list and
    /// session handling apply while learning; the output keeps them.
    #[command(flatten)]
    pub policy: PolicyArgs,
    /// Write the proposed policy here (default: stdout).
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// End the run after this many seconds (SIGTERM, then SIGKILL 5 s later) and write
    /// the policy. Without it the run ends when the target exits or on Ctrl-C.
    #[arg(long, value_name = "S")]
    pub duration: Option<f64>,
    /// The command to learn.
    #[arg(last = true, required = true, value_name = "CMD")]
    pub command: Vec<OsString>,
}

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
fn learning_policy(base: &Loaded) -> Loaded {
    let mut l = base.clone();
    let fs = &mut l.policy.filesystem;
    let uses_tmp = fs
        .read
        .iter()
        .chain(&fs.write)
        .chain(&fs.exec)
        .any(|v| v.get_ref().contains("${TMP}"));
    let span = 0..0;
    fs.read = Vec::new();
    fs.write = vec![Spanned::new(span.clone(), "/".to_string())];
    fs.exec = vec![Spanned::new(span.clone(), "/".to_string())];
    if uses_tmp && !fs.create.iter().any(|c| c.get_ref() == "${TMP}") {
        fs.create.push(Spanned::new(span, "${TMP}".to_string()));
    }
    l
}

fn expand_all(vars: &Vars, list: &[Spanned<String>]) -> Vec<PathBuf> {
    list.iter()
        .filter_map(|v| {
            let raw = v.get_ref().trim_start_matches('?');
            let raw = match raw.strip_prefix('~') {
                Some(rest) => format!("${{HOME}}{rest}"),
                None => raw.to_string(),
            };
            vars.expand(&raw).ok().map(PathBuf::from)
        })
        .collect()
}

/// `clawjail learn`: prepare like `run`, swap in the learning Landlock and seccomp plans,
/// fork the supervisor with the learn job, apply, exec. The supervisor writes the policy.
pub fn run(a: LearnArgs) -> Result<i32, Failure> {
    crate::cli::init_logging(crate::cli::LogFormat::Text);
    let fail = |code: i32| move |e: &dyn std::fmt::Display| Failure::new(code, e);
    let base = crate::cli::load_policy(a.policy.policy.as_ref()).map_err(|e| fail(125)(&e))?;
    let duration = match a.duration {
        Some(s) if s.is_finite() && s > 0.0 => Some(Duration::from_secs_f64(s)),
        Some(s) => {
            return Err(Failure::new(
                2,
                format!("--duration {s}: expected seconds > 0"),
            ))
        }
        None => None,
    };
    let handoff = Handoff::new().map_err(|e| fail(125)(&format!("socketpair(handoff): {e}")))?;
    let learning = learning_policy(&base);
    let opts = PrepareOptions {
        cli_vars: a.policy.vars.clone(),
        command: Some(a.command.clone()),
        init: false,
        apply: true,
        link_trust_from: Some(base.clone()),
    };
    let mut plan = plan::prepare(&learning, &opts).map_err(|e| {
        let code = match &e {
            plan::PlanError::Target(plan::target::TargetError::NotFound { .. }) => 127,
            _ => 125,
        };
        Failure::new(code, e)
    })?;
    let unlisted: BTreeSet<u32> = (0..512u32)
        .filter(|nr| plan.seccomp.unlisted(*nr))
        .collect();
    plan.seccomp = plan
        .seccomp
        .for_learning(handoff.target_fd())
        .map_err(|e| fail(125)(&e))?;
    plan.landlock.open_network_for_learning();
    // The supervisor must exist: fork even where `run` would exec in place.
    plan.session = crate::session::SessionMode::Init;
    let vars = plan.vars.clone();
    let job = Job {
        handoff,
        out: a.out,
        duration,
        deny: expand_all(&vars, &base.policy.filesystem.deny),
        instance_dirs: expand_all(&vars, &base.policy.filesystem.create),
        home: vars.get("HOME").map(PathBuf::from),
        uid: plan.identity.ids().uid,
        vars,
        base,
        unlisted,
        command: a.command,
    };
    plan.supervisor.learn = Some(Arc::new(job));
    eprintln!(
        "clawjail learn: base policy {} ({}); deny entries enforced, allowlists opened",
        plan.source.file, plan.source.selected_by
    );
    crate::launch::apply(&mut plan).map_err(|e| Failure::new(125, e))?;
    let e = crate::launch::exec(&plan);
    let code = if e.source.kind() == std::io::ErrorKind::NotFound {
        127
    } else {
        126
    };
    Err(Failure::new(code, e))
}
