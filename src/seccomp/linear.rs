//! The baseline the benchmark compares against: the same table as one plain seccompiler
//! `SeccompFilter` (a linear JEQ chain in syscall-number order). Not used by `run`.
//!
//! seccompiler has one match action per filter, so the fixed answers cannot be kept:
//! clone3 and io_uring_* fall to the mismatch action (EPERM) here. That changes nothing
//! the benchmark measures; never install this for a target.

use std::collections::BTreeMap;

use seccompiler::{BpfProgram, SeccompAction, SeccompFilter, SeccompRule, TargetArch};

use super::{SeccompPlan, Verdict};

/// The plan's allowlist and argument rules as seccompiler's linear program.
pub fn seccompiler_equivalent(plan: &SeccompPlan) -> Result<BpfProgram, seccompiler::BackendError> {
    let mut rules: BTreeMap<i64, Vec<SeccompRule>> = BTreeMap::new();
    for e in plan.entries() {
        match &e.verdict {
            Verdict::Allow => {
                rules.insert(i64::from(e.nr), Vec::new());
            }
            Verdict::AllowIf(rs) => {
                // The linear chain has one match action (allow): fixed refusals are left
                // to its mismatch action (EPERM), which is the same answer.
                let compiled = rs
                    .iter()
                    .filter(|r| r.refuse.is_none())
                    .map(|r| r.compile())
                    .collect::<Result<Vec<_>, _>>()?;
                rules.insert(i64::from(e.nr), compiled);
            }
            Verdict::Deny | Verdict::Errno(_) => {}
        }
    }
    let filter = SeccompFilter::new(
        rules,
        SeccompAction::Errno(libc::EPERM as u32),
        SeccompAction::Allow,
        TargetArch::x86_64,
    )?;
    filter.try_into()
}
