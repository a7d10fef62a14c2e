//! The seccomp part of the plan's one serialisable view (`plan::view::PlanView`): what
//! `check --json` prints under `seccomp` and what the launch event and `verify` summarise.
//! Built in O(1) from the plan; the per-syscall rows are rendered only when serialised, so
//! the launch path pays for none of them.

use serde::{Serialize, Serializer};

use super::{bpf, deny_ret, syscalls, verdict_text, x32_ret, SeccompPlan, Verdict};
use crate::policy::{SeccompAction, SeccompProfile};

/// The effective filter: counts, the answers outside the table, and (serialised lazily)
/// each listed syscall's answer and argument rules.
#[derive(Debug, Clone, Serialize)]
pub struct SeccompView<'a> {
    pub profile: SeccompProfile,
    pub action: SeccompAction,
    /// The answer to a syscall the table does not list.
    pub unlisted: String,
    pub other_abis: String,
    pub learning_mode: bool,
    pub allowed: usize,
    pub with_argument_rules: usize,
    pub bpf_instructions: usize,
    pub bpf_tree_depth: usize,
    pub syscalls: Rows<'a>,
}

/// The table's rows, one string each ("ioctl (16): allow if ...; else ERRNO(EPERM)"):
/// readable in `check`'s text output, where object keys would come out sorted.
#[derive(Debug, Clone, Copy)]
pub struct Rows<'a>(&'a SeccompPlan);

impl Rows<'_> {
    /// Every row, rendered.
    pub fn render(&self) -> Vec<String> {
        let p = self.0;
        p.entries
            .iter()
            .map(|e| {
                let mut row = format!("{} ({}): ", e.name, e.nr);
                match &e.verdict {
                    Verdict::AllowIf(rules) => {
                        let alts: Vec<String> = rules.iter().map(|r| format!("({r})")).collect();
                        row.push_str(&format!(
                            "allow if {}; else {}",
                            alts.join(" || "),
                            bpf::ret_name(deny_ret(p.action))
                        ));
                    }
                    v => row.push_str(&verdict_text(v, p.action)),
                }
                if e.from != "profile" {
                    row.push_str(&format!(" [{}]", e.from));
                }
                row
            })
            .collect()
    }
}

impl Serialize for Rows<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.render())
    }
}

impl SeccompPlan {
    /// This filter's part of the plan view.
    pub fn view(&self) -> SeccompView<'_> {
        SeccompView {
            profile: self.profile,
            action: self.action,
            unlisted: bpf::ret_name(deny_ret(self.action)),
            other_abis: format!(
                "i386 (int 0x80): KILL_PROCESS; x32 (nr >= {:#x}): {}",
                syscalls::X32_SYSCALL_BIT,
                bpf::ret_name(x32_ret(self.action))
            ),
            learning_mode: self.action == SeccompAction::Log,
            allowed: self.count(|v| matches!(v, Verdict::Allow | Verdict::AllowIf(_))),
            with_argument_rules: self.count(|v| matches!(v, Verdict::AllowIf(_))),
            bpf_instructions: self.program.insns.len(),
            bpf_tree_depth: self.program.depth,
            syscalls: Rows(self),
        }
    }
}

impl SeccompView<'_> {
    /// One line for the launch event, e.g. "default profile, action errno, 400 syscalls
    /// allowed (20 with argument rules), 612 BPF instructions".
    pub fn short(&self) -> String {
        format!(
            "{} profile, action {}, {} syscalls allowed ({} with argument rules), {} BPF instructions",
            profile_name(self.profile),
            action_name(self.action),
            self.allowed,
            self.with_argument_rules,
            self.bpf_instructions
        )
    }
}

fn profile_name(p: SeccompProfile) -> &'static str {
    match p {
        SeccompProfile::Default => "default",
        SeccompProfile::Strict => "strict",
        SeccompProfile::Custom => "custom",
    }
}

fn action_name(a: SeccompAction) -> &'static str {
    match a {
        SeccompAction::Errno => "errno",
        SeccompAction::Kill => "kill",
        SeccompAction::Log => "log",
    }
}
