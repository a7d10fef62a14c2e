//! Landlock: filesystem, TCP port and scope rules (kernel Documentation/userspace-api/landlock.rst).
//!
//! NOT IMPLEMENTED YET: `prepare` refuses every policy, so `run` never starts a target
//! without the filesystem rules the policy asks for.

use std::io;

use crate::identity::Ids;
use crate::plan::target::ChainEntry;
use crate::plan::PlanError;
use crate::policy::{self, vars::Vars, Source};

/// Everything Landlock needs from the policy and the resolved plan.
pub struct LandlockInputs<'a> {
    pub src: &'a Source,
    pub fs: &'a policy::Filesystem,
    pub network: &'a policy::Network,
    pub scope: &'a policy::Scope,
    pub kernel: &'a policy::Kernel,
    pub vars: &'a Vars,
    /// The target's exec chain (empty for `check` without a command).
    pub exec_chain: &'a [ChainEntry],
    /// The ids the target will run as (owner of created directories; whose writes count
    /// when deciding which path components could have been swapped for symlinks).
    pub target: &'a Ids,
    /// false for `check`/`--dry-run`: create nothing, report what would be created.
    pub apply: bool,
}

/// The rules, resolved and opened, ready for restrict_self.
#[derive(Debug)]
pub struct LandlockPlan {
    _private: (),
}

/// What restrict_self achieved.
#[derive(Debug, Clone)]
pub struct LandlockOutcome {
    pub summary: serde_json::Value,
}

impl LandlockPlan {
    /// For `check` and the launch log.
    pub fn describe(&self) -> serde_json::Value {
        serde_json::json!({"status": "not implemented"})
    }
}

/// Resolve and open every rule while still privileged.
pub fn prepare(inp: &LandlockInputs<'_>) -> Result<LandlockPlan, PlanError> {
    let _ = (
        inp.fs,
        inp.network,
        inp.scope,
        inp.kernel,
        inp.vars,
        inp.exec_chain,
        inp.target,
        inp.apply,
    );
    Err(PlanError::NotImplemented("landlock"))
}

/// landlock_restrict_self on this thread.
pub fn restrict_self(_plan: &LandlockPlan) -> Result<LandlockOutcome, (String, io::Error)> {
    Err((
        "landlock_restrict_self".into(),
        io::Error::other("not implemented"),
    ))
}
