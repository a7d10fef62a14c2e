//! The one serialisable view of a `Plan`, shared by `check --json` (and its text form),
//! the launch event and the run record, so the three cannot describe the same plan
//! differently: each field is computed here (or in its mechanism's `view()`) once.
//!
//! `PlanView` borrows from the plan. Its parts are built by the functions below and the
//! mechanisms' `view()`s (`landlock`, `seccomp`, `namespaces`, `egress`); the launch event
//! and the run record take the parts they need without building the rest (the launch
//! path pays for no rule list, no syscall table, no egress probe). Field names are the
//! JSON keys `check --json` has always printed (docs/*.md and tests/it read them).
//!
//! Never a value from the environment: `env` lists names and where each came from.

use std::collections::BTreeMap;

use serde::Serialize;

use super::{IdentityPlan, Plan, SourceInfo};
use crate::egress::EgressView;
use crate::env::EnvFrom;
use crate::landlock::{ChainEntry, LandlockView};
use crate::mount_ns::PrivateTmp;
use crate::namespaces::NamespaceView;
use crate::seccomp::SeccompView;
use crate::session::SessionMode;

/// Everything `run` will apply, as `check --json` prints it (plus `check`'s own
/// `steps`, `cannot_enforce` and `bpf`, added by `report`).
#[derive(Debug, Clone, Serialize)]
pub struct PlanView<'a> {
    pub policy: &'a SourceInfo,
    pub identity: IdentityView<'a>,
    pub capabilities: CapabilitiesView,
    /// Always set (step no-new-privs); here so no reader has to know that.
    pub no_new_privs: bool,
    pub session: &'static str,
    pub terminal: String,
    pub namespaces: NamespaceView<'a>,
    pub limits: Vec<LimitView>,
    pub umask: String,
    pub workdir: Option<String>,
    pub env: EnvView<'a>,
    pub fds: FdsView,
    pub private_tmp: &'a PrivateTmp,
    pub landlock: LandlockView<'a>,
    pub seccomp: SeccompView<'a>,
    pub target: Option<TargetView<'a>>,
    pub egress: EgressView<'a>,
    pub variables: BTreeMap<&'a str, &'a str>,
    pub variable_sources: BTreeMap<&'a str, &'a str>,
    pub degraded: &'a [String],
}

/// The ids the target runs with, and whether clawjail switches to them.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "mode", rename_all = "kebab-case")]
pub enum IdentityView<'a> {
    /// Root start: switch to the policy's user.
    Switch {
        #[serde(flatten)]
        ids: IdsView<'a>,
        allow_root: bool,
    },
    /// Unprivileged start: the caller's ids are kept.
    Keep {
        #[serde(flatten)]
        ids: IdsView<'a>,
        reason: &'a str,
    },
}

/// uid, gid, supplementary groups and the passwd name.
#[derive(Debug, Clone, Serialize)]
pub struct IdsView<'a> {
    pub uid: u32,
    pub gid: u32,
    pub groups: &'a [u32],
    pub user: Option<&'a str>,
}

impl IdentityView<'_> {
    pub fn ids(&self) -> &IdsView<'_> {
        match self {
            IdentityView::Switch { ids, .. } | IdentityView::Keep { ids, .. } => ids,
        }
    }

    /// The launch event's one word (and a half) for the identity step.
    pub fn outcome(&self) -> &'static str {
        match self {
            IdentityView::Switch { .. } => "switched",
            IdentityView::Keep { .. } => "kept (unprivileged start)",
        }
    }
}

/// The capability steps.
#[derive(Debug, Clone, Serialize)]
pub struct CapabilitiesView {
    /// Capability names kept in P/E/I and ambient (usually none).
    pub keep: Vec<String>,
    pub bounding_set: String,
    pub securebits: String,
}

/// One rlimit, soft = hard.
#[derive(Debug, Clone, Serialize)]
pub struct LimitView {
    pub name: &'static str,
    /// A number, or "unlimited".
    pub value: String,
}

impl std::fmt::Display for LimitView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}={}", self.name, self.value)
    }
}

/// The target's environment: names and origins, never values.
#[derive(Debug, Clone, Serialize)]
pub struct EnvView<'a> {
    pub names: Vec<EnvName<'a>>,
    /// `env.pass` names that were not set in clawjail's environment.
    pub missing_pass: &'a [String],
}

#[derive(Debug, Clone, Serialize)]
pub struct EnvName<'a> {
    pub name: &'a str,
    pub from: EnvFrom,
}

/// The fd step.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct FdsView {
    /// close_range(cloexec_from, ~0, CLOSE_RANGE_CLOEXEC).
    pub cloexec_from: u32,
    /// LISTEN_FDS kept open at 3.. (socket activation).
    pub socket_activation_fds: u32,
}

/// The command and what the kernel and interpreters will open to run it.
#[derive(Debug, Clone, Serialize)]
pub struct TargetView<'a> {
    pub command: &'a str,
    pub exec: String,
    pub argv: Vec<String>,
    pub exec_chain: &'a [ChainEntry],
}

impl<'a> PlanView<'a> {
    /// The whole view (`check`). Reads nothing but the plan, except egress's AppArmor
    /// knob (/proc/sys), shown with the namespace it concerns.
    pub fn of(plan: &'a Plan) -> Self {
        PlanView {
            policy: &plan.source,
            identity: identity(plan),
            capabilities: capabilities(plan),
            no_new_privs: true,
            session: session(plan.session),
            terminal: terminal(plan),
            namespaces: plan.namespaces.view(),
            limits: limits(plan),
            umask: umask(plan),
            workdir: plan.workdir.as_ref().map(|w| w.display().to_string()),
            env: env(plan),
            fds: fds(plan),
            private_tmp: &plan.private_tmp,
            landlock: plan.landlock.view(),
            seccomp: plan.seccomp.view(),
            target: target(plan),
            egress: EgressView::of(plan.egress.as_ref()),
            variables: plan
                .vars
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect(),
            variable_sources: plan
                .vars
                .origins()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect(),
            degraded: &plan.degraded,
        }
    }
}

pub fn identity(plan: &Plan) -> IdentityView<'_> {
    let i = plan.identity.ids();
    let ids = IdsView {
        uid: i.uid,
        gid: i.gid,
        groups: &i.groups,
        user: i.user_name.as_deref(),
    };
    match &plan.identity {
        IdentityPlan::Switch { .. } => IdentityView::Switch {
            ids,
            allow_root: plan.allow_root,
        },
        IdentityPlan::Keep { reason, .. } => IdentityView::Keep { ids, reason },
    }
}

pub fn capabilities(plan: &Plan) -> CapabilitiesView {
    CapabilitiesView {
        keep: plan.caps.keep.iter().map(|c| c.to_string()).collect(),
        bounding_set: if plan.privileged {
            format!("drop 0..={} except kept", plan.caps.last_cap)
        } else {
            "kept (unprivileged start cannot drop it; no_new_privs makes it inert)".to_string()
        },
        securebits: if plan.privileged {
            format!("{:#x}", plan.caps.securebits)
        } else {
            "unchanged (needs CAP_SETPCAP)".to_string()
        },
    }
}

pub fn session(mode: SessionMode) -> &'static str {
    match mode {
        SessionMode::Keep => "keep",
        SessionMode::New => "new",
        SessionMode::Init => "init",
    }
}

/// What the terminal step does.
pub fn terminal(plan: &Plan) -> String {
    match &plan.terminal {
        Some(t) => t.describe(),
        None => "none: no terminal on fds 0-2 here (nothing to relay, no fork for it; pipes, files and sockets pass through)".to_string(),
    }
}

pub fn limits(plan: &Plan) -> Vec<LimitView> {
    plan.limits
        .iter()
        .map(|l| LimitView {
            name: l.name,
            value: l.value.map_or("unlimited".to_string(), |v| v.to_string()),
        })
        .collect()
}

pub fn umask(plan: &Plan) -> String {
    format!("{:04o}", plan.umask)
}

pub fn env(plan: &Plan) -> EnvView<'_> {
    EnvView {
        names: plan
            .env
            .names()
            .map(|(name, from)| EnvName { name, from })
            .collect(),
        missing_pass: &plan.env.missing,
    }
}

pub fn fds(plan: &Plan) -> FdsView {
    FdsView {
        cloexec_from: 3 + plan.fds.keep_listen_fds,
        socket_activation_fds: plan.fds.keep_listen_fds,
    }
}

pub fn target(plan: &Plan) -> Option<TargetView<'_>> {
    plan.target.as_ref().map(|t| TargetView {
        command: &t.command,
        exec: exec_path(t),
        argv: t
            .argv
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect(),
        exec_chain: &t.chain,
    })
}

/// The file that is executed, as the launch event and the run record name the target.
pub fn target_exec(plan: &Plan) -> String {
    plan.target.as_ref().map(exec_path).unwrap_or_default()
}

fn exec_path(t: &super::target::TargetPlan) -> String {
    t.exec_path.display().to_string()
}

#[cfg(test)]
#[path = "view_tests.rs"]
mod tests;
