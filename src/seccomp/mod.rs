//! seccomp: one combined BPF filter, installed last before exec (seccomp(2),
//! Documentation/userspace-api/seccomp_filter.rst).
//!
//! **Enforces**: an allowlist (`default`, `strict` or `custom`, plus the policy's `allow`
//! and `deny`); argument guards on clone, ioctl, socket, socketpair, send*, setsockopt and
//! personality; fixed answers for clone3 (ENOSYS) and io_uring_* (EPERM); denials of the
//! calls that reach outside the sandbox ([`guards`]); i386 (`int 0x80`) is killed and x32
//! numbers (bit 30) are refused. Everything is one program: with stacked filters the most
//! severe action wins, and among equal actions the newest filter's errno, so a separate
//! ENOSYS guard for clone3 would turn into EPERM (threads break) and an io_uring EPERM
//! guard into KILL under `action = "kill"` (Node dies at start).
//!
//! **Cannot**: read memory behind pointers (clone3's flags, connect's address, paths); see
//! which file an fd is (Landlock's job); stop what io_uring would do (hence EPERM on it).
//!
//! **Needs**: x86_64 (the only syscall table in this build; elsewhere `prepare` refuses),
//! no_new_privs set before install (step 12 (`no-new-privs`)), Linux >= 4.14 for
//! SECCOMP_RET_LOG and KILL_PROCESS. The plan is compiled while still privileged; `install` is one syscall.
//!
//! `action = "log"` is the learning mode: every call that would be denied (unlisted,
//! policy `deny`, argument guards, the [`guards`] denials) is allowed and logged by the
//! kernel instead. Only the ABI checks (i386 killed, x32 refused) and the fixed answers
//! (clone3 ENOSYS, io_uring EPERM) stay, since programs rely on those answers to fall back.
//! docs/seccomp.md explains how to read the records.

pub mod bpf;
pub mod guards;
pub mod learn;
pub mod linear;
pub mod profiles;
pub mod rules;
/// The syscall name table lives below `policy` (which types `seccomp.allow`/`deny` names
/// with it when the file is read) and `seccomp`: `crate::syscall_table`.
pub use crate::syscall_table as syscalls;
mod view;
pub use view::SeccompView;

use std::collections::BTreeMap;
use std::fmt;
use std::io;

use toml::Spanned;

use crate::policy::{self, PolicyError, SeccompAction, SeccompProfile, Source};
use bpf::{Leaf, Program};
use guards::{Guard, Treatment};
use rules::Rule;

/// Why the seccomp filter cannot be prepared; converted into `PlanError` with `#[from]`.
#[derive(Debug, thiserror::Error)]
pub enum SeccompError {
    /// Boxed: `PolicyError` carries its source snippet, and `PlanError` stays small.
    #[error("{0}")]
    Policy(Box<PolicyError>),
    #[error("{0}")]
    Refused(String),
}

impl From<PolicyError> for SeccompError {
    fn from(e: PolicyError) -> Self {
        SeccompError::Policy(Box::new(e))
    }
}

pub struct SeccompInputs<'a> {
    pub src: &'a Source,
    pub cfg: &'a policy::Seccomp,
    /// The policy settings the guards depend on (AF_UNIX, chown, xattrs, shared IPC).
    pub guards: guards::Options,
}

/// clawjail itself needs these after the filter is in place: execveat starts the target,
/// exit/exit_group end the error path. They are always allowed and cannot be denied.
pub const ALWAYS_ALLOWED: [&str; 3] = ["execveat", "exit", "exit_group"];

/// What the filter answers for one syscall.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Allow,
    /// Allowed when one rule matches, denied (policy action) otherwise.
    AllowIf(Vec<Rule>),
    /// Denied with the policy action.
    Deny,
    /// This errno whatever the policy action.
    Errno(i32),
}

/// One row of the effective table.
#[derive(Debug, Clone)]
pub struct Entry {
    pub nr: u32,
    pub name: &'static str,
    pub verdict: Verdict,
    /// Where the verdict comes from ("profile default", "policy allow", a guard's reason).
    pub from: String,
}

/// The compiled filter, ready to install.
pub struct SeccompPlan {
    profile: SeccompProfile,
    action: SeccompAction,
    /// Every syscall with a verdict other than "unlisted, denied", by number.
    entries: Vec<Entry>,
    program: Program,
    /// The same instructions in the kernel's type, so install does no work but the call.
    kernel_insns: Vec<libc::sock_filter>,
}

impl fmt::Debug for SeccompPlan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SeccompPlan")
            .field("profile", &self.profile)
            .field("action", &self.action)
            .field("entries", &self.entries.len())
            .field("instructions", &self.program.insns.len())
            .finish()
    }
}

impl SeccompPlan {
    /// Readable disassembly for `check --bpf`.
    pub fn disassemble(&self) -> String {
        bpf::disassemble(&self.program, syscalls::name)
    }

    /// seccomp(SECCOMP_SET_MODE_FILTER) on this thread. Must be the last step before exec.
    pub fn install(&self, k: &mut impl crate::kernel::Kernel) -> Result<(), (String, io::Error)> {
        k.seccomp_set_mode_filter(&self.kernel_insns).map_err(|e| {
            (
                format!(
                    "seccomp(SECCOMP_SET_MODE_FILTER, {} instructions)",
                    self.kernel_insns.len()
                ),
                e,
            )
        })
    }

    /// The effective table (for tests, `verify` and the benchmark).
    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// The emitted program.
    pub fn program(&self) -> &[seccompiler::sock_filter] {
        &self.program.insns
    }

    /// The answer the filter gives for a native call: the reference the BPF is tested
    /// against, computed from the table alone.
    pub fn expected(&self, nr: u32, args: &[u64; 6]) -> u32 {
        if nr >= syscalls::X32_SYSCALL_BIT {
            return x32_ret(self.action);
        }
        match self.entries.binary_search_by_key(&nr, |e| e.nr) {
            Ok(i) => match &self.entries[i].verdict {
                Verdict::AllowIf(rules) => match rules.iter().find(|r| r.matches(args)) {
                    Some(r) => r
                        .refuse
                        .map_or(bpf::RET_ALLOW, |e| bpf::RET_ERRNO | (e as u32 & 0xffff)),
                    None => deny_ret(self.action),
                },
                v => ret_for(v, self.action),
            },
            Err(_) => deny_ret(self.action),
        }
    }

    fn count(&self, f: impl Fn(&Verdict) -> bool) -> usize {
        self.entries.iter().filter(|e| f(&e.verdict)).count()
    }
}

/// Build the table from the policy, then compile it. Everything fallible happens here.
pub fn prepare(inp: &SeccompInputs<'_>) -> Result<SeccompPlan, SeccompError> {
    if !syscalls::NATIVE_SUPPORTED {
        return Err(SeccompError::Refused(format!(
            "seccomp: this build has a syscall table for x86_64 only, not {}; refusing to start unfiltered",
            std::env::consts::ARCH
        )));
    }
    let entries = build_table(inp)?;
    compile(inp.cfg.profile.get(), inp.cfg.action.get(), entries)
}

/// Compile a table (sorted by number) into the plan. Pure.
pub fn compile(
    profile: SeccompProfile,
    action: SeccompAction,
    entries: Vec<Entry>,
) -> Result<SeccompPlan, SeccompError> {
    let refuse = |e: bpf::EmitError| SeccompError::Refused(format!("seccomp: {e}"));
    let mut t = bpf::Table::default();
    let deny = deny_ret(action);
    let mut next = 0u32;
    for e in &entries {
        if e.nr > next {
            t.push(next, Leaf::Ret(deny));
        }
        let leaf = match &e.verdict {
            Verdict::AllowIf(rules) => t.block(
                e.name,
                bpf::rule_block(rules, bpf::RET_ALLOW, deny).map_err(refuse)?,
            ),
            v => Leaf::Ret(ret_for(v, action)),
        };
        t.push(e.nr, leaf);
        next = e.nr + 1;
    }
    t.push(next, Leaf::Ret(deny));
    // x32: same arch value, numbers with bit 30 set. seccompiler does not check it
    // (rust-vmm/seccompiler#74); this span does, whatever the allowlist says.
    t.push(syscalls::X32_SYSCALL_BIT, Leaf::Ret(x32_ret(action)));
    let program = t.emit(syscalls::AUDIT_ARCH_X86_64).map_err(refuse)?;
    let kernel_insns = bpf::to_kernel(&program.insns);
    Ok(SeccompPlan {
        profile,
        action,
        entries,
        program,
        kernel_insns,
    })
}

/// Profile names, then the policy's allow and deny, then the guards.
fn build_table(inp: &SeccompInputs<'_>) -> Result<Vec<Entry>, SeccompError> {
    let cfg = inp.cfg;
    let guards: BTreeMap<&str, Guard> = guards::all(&inp.guards)
        .into_iter()
        .map(|g| (g.name, g))
        .collect();
    if cfg.profile.get() == SeccompProfile::Custom && cfg.allow.is_empty() {
        return Err(PolicyError::at(
            inp.src,
            0..0,
            "seccomp-custom-empty",
            "seccomp.allow",
            "profile = \"custom\" allows only what `allow` lists, and it is empty: the target could not run",
        )
        .into());
    }

    let mut allowed: BTreeMap<u32, (&'static str, String)> = BTreeMap::new();
    for name in profiles::names(cfg.profile.get()) {
        if let Some(nr) = syscalls::number(name) {
            allowed.insert(nr, (name, "profile".to_string()));
        }
    }
    let denied_names = resolve_all(&cfg.deny);
    for (name, span) in resolve_all(&cfg.allow) {
        if let Some(g) = guards
            .get(name)
            .filter(|g| !matches!(g.treatment, Treatment::AllowIf(_)))
        {
            return Err(PolicyError::at(
                inp.src,
                span,
                "seccomp-guarded",
                "seccomp.allow",
                match g.unlock {
                    Some(key) => format!(
                        "{name} is {} by this policy ({}); set {key} = true to allow it, not seccomp.allow",
                        guard_answer(g),
                        g.why
                    ),
                    None => format!(
                        "{name} is {} in every profile ({}); it cannot be allowed",
                        guard_answer(g),
                        g.why
                    ),
                },
            )
            .into());
        }
        if let Some((_, dspan)) = denied_names.iter().find(|(d, _)| *d == name) {
            return Err(PolicyError::at(
                inp.src,
                dspan.clone(),
                "seccomp-allow-and-deny",
                "seccomp.deny",
                format!("{name} is in both seccomp.allow and seccomp.deny"),
            )
            .into());
        }
        if let Some(nr) = syscalls::number(name) {
            allowed.insert(nr, (name, "policy allow".to_string()));
        }
    }
    let mut denied: BTreeMap<u32, &'static str> = BTreeMap::new();
    for (name, span) in denied_names {
        if ALWAYS_ALLOWED.contains(&name) {
            return Err(PolicyError::at(
                inp.src,
                span,
                "seccomp-required",
                "seccomp.deny",
                format!("{name} cannot be denied: clawjail needs it after the filter is installed (it starts the target with execveat(fd, \"\", AT_EMPTY_PATH))"),
            )
            .into());
        }
        if let Some(g) = guards
            .get(name)
            .filter(|g| matches!(g.treatment, Treatment::Fixed(_)))
        {
            return Err(PolicyError::at(
                inp.src,
                span,
                "seccomp-guarded",
                "seccomp.deny",
                format!(
                    "{name} always answers {} ({}); it cannot be changed",
                    guard_answer(g),
                    g.why
                ),
            )
            .into());
        }
        if let Some(nr) = syscalls::number(name) {
            denied.insert(nr, name);
        }
    }
    for name in ALWAYS_ALLOWED {
        if let Some(nr) = syscalls::number(name) {
            allowed
                .entry(nr)
                .or_insert((name, "clawjail needs it to exec the target".to_string()));
        }
    }

    let mut table: BTreeMap<u32, Entry> = BTreeMap::new();
    for (&nr, (name, from)) in allowed.iter().filter(|(nr, _)| !denied.contains_key(*nr)) {
        table.insert(
            nr,
            Entry {
                nr,
                name,
                verdict: Verdict::Allow,
                from: from.clone(),
            },
        );
    }
    for (&nr, &name) in &denied {
        table.insert(
            nr,
            Entry {
                nr,
                name,
                verdict: Verdict::Deny,
                from: "policy deny".into(),
            },
        );
    }
    for g in guards.values() {
        let Some(nr) = syscalls::number(g.name) else {
            continue;
        };
        let from = format!("guard: {}", g.why);
        match &g.treatment {
            Treatment::AllowIf(rules) => {
                if let Some(e) = table.get_mut(&nr) {
                    if e.verdict == Verdict::Allow {
                        e.verdict = Verdict::AllowIf(rules.clone());
                        e.from = from;
                    }
                }
            }
            Treatment::Fixed(errno) => {
                table.insert(
                    nr,
                    Entry {
                        nr,
                        name: g.name,
                        verdict: Verdict::Errno(*errno),
                        from,
                    },
                );
            }
            Treatment::Deny => {
                table.insert(
                    nr,
                    Entry {
                        nr,
                        name: g.name,
                        verdict: Verdict::Deny,
                        from,
                    },
                );
            }
        }
    }
    Ok(table.into_values().collect())
}

/// The names and their spans (parsed when the policy was loaded: `policy::Syscall`).
fn resolve_all(
    names: &[Spanned<crate::policy::Syscall>],
) -> Vec<(&'static str, std::ops::Range<usize>)> {
    names.iter().map(|n| (n.get_ref().0, n.span())).collect()
}

/// What a denial returns under each action.
pub fn deny_ret(action: SeccompAction) -> u32 {
    match action {
        SeccompAction::Errno => bpf::RET_ERRNO | libc::EPERM as u32,
        // KILL_PROCESS, not KILL_THREAD: a process with one thread killed keeps running in
        // a state nobody planned for (seccomp(2) "SECCOMP_RET_KILL_PROCESS").
        SeccompAction::Kill => bpf::RET_KILL_PROCESS,
        SeccompAction::Log => bpf::RET_LOG,
    }
}

/// x32 numbers: refused even in learning mode (there is nothing to learn: no x32 call is
/// ever allowed). EPERM rather than the kernel's own ENOSYS, so a test can tell the guard
/// answered; KILL_PROCESS under `kill`.
pub fn x32_ret(action: SeccompAction) -> u32 {
    match action {
        SeccompAction::Kill => bpf::RET_KILL_PROCESS,
        SeccompAction::Errno | SeccompAction::Log => bpf::RET_ERRNO | libc::EPERM as u32,
    }
}

fn ret_for(v: &Verdict, action: SeccompAction) -> u32 {
    match v {
        Verdict::Allow => bpf::RET_ALLOW,
        Verdict::AllowIf(_) | Verdict::Deny => deny_ret(action),
        Verdict::Errno(e) => bpf::RET_ERRNO | (*e as u32 & 0xffff),
    }
}

fn verdict_text(v: &Verdict, action: SeccompAction) -> String {
    match v {
        Verdict::Allow => "allow".into(),
        Verdict::AllowIf(_) => format!(
            "allow if a rule matches, else {}",
            bpf::ret_name(deny_ret(action))
        ),
        Verdict::Deny => bpf::ret_name(deny_ret(action)),
        Verdict::Errno(e) => format!("ERRNO({}) always", crate::sys::errno_name(*e)),
    }
}

fn guard_answer(g: &Guard) -> String {
    match &g.treatment {
        Treatment::Fixed(e) => crate::sys::errno_name(*e),
        _ => "denied".into(),
    }
}

#[cfg(test)]
mod tests;
