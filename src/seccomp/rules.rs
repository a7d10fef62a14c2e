//! Argument conditions: our own inspectable form, compiled by seccompiler.
//!
//! seccompiler's `SeccompCondition` keeps its fields private, so `check` could not print it
//! and the tests could not evaluate it. A [`Cond`] carries the same four facts plus a
//! symbolic name for its value; [`Cond::matches`] is the reference meaning that the BPF
//! emitter is tested against, and [`Cond::compile`] hands it to seccompiler's condition
//! compiler (the one part of seccompiler's code generation we use, see `bpf.rs`).

use std::fmt;

use seccompiler::{SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompRule};

/// How much of the 64-bit argument slot is compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Width {
    /// The low 32 bits only. Right for every `int`/`unsigned int` parameter: the kernel
    /// truncates them, so a 64-bit compare could be bypassed by setting high bits
    /// (CVE-2019-10063: `ioctl(fd, TIOCSTI | 1 << 32)`).
    Dword,
    /// All 64 bits.
    Qword,
}

/// The comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Eq,
    Ne,
    /// `(arg & mask) == value`.
    MaskedEq(u64),
}

/// One comparison of one syscall argument, e.g. `arg1 (u32) != TIOCSTI`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cond {
    /// Argument index 0..=5 (seccomp_data.args).
    pub arg: u8,
    pub width: Width,
    pub op: Op,
    pub value: u64,
    /// What the value means, for `check` (e.g. "AF_INET").
    pub what: &'static str,
}

impl Cond {
    /// `argN (u32) == value`.
    pub const fn eq32(arg: u8, value: u64, what: &'static str) -> Cond {
        Cond {
            arg,
            width: Width::Dword,
            op: Op::Eq,
            value,
            what,
        }
    }

    /// `argN (u32) != value`.
    pub const fn ne32(arg: u8, value: u64, what: &'static str) -> Cond {
        Cond {
            arg,
            width: Width::Dword,
            op: Op::Ne,
            value,
            what,
        }
    }

    /// `argN (u32) & mask == value`.
    pub const fn masked32(arg: u8, mask: u64, value: u64, what: &'static str) -> Cond {
        Cond {
            arg,
            width: Width::Dword,
            op: Op::MaskedEq(mask),
            value,
            what,
        }
    }

    /// Always true (`argN & 0 == 0`): the catch-all after the rules that allow, so the
    /// remaining values get a fixed errno instead of the policy action. seccompiler refuses
    /// a rule without conditions, hence a condition that cannot fail.
    pub const fn always(arg: u8, what: &'static str) -> Cond {
        Cond {
            arg,
            width: Width::Dword,
            op: Op::MaskedEq(0),
            value: 0,
            what,
        }
    }

    /// The reference meaning: does a call with these arguments satisfy the condition?
    pub fn matches(&self, args: &[u64; 6]) -> bool {
        let raw = args.get(usize::from(self.arg)).copied().unwrap_or(0);
        let (a, v) = match self.width {
            Width::Dword => (raw & 0xffff_ffff, self.value & 0xffff_ffff),
            Width::Qword => (raw, self.value),
        };
        match self.op {
            Op::Eq => a == v,
            Op::Ne => a != v,
            Op::MaskedEq(m) => {
                let m = if self.width == Width::Dword {
                    m & 0xffff_ffff
                } else {
                    m
                };
                a & m == v & m
            }
        }
    }

    /// The same condition as seccompiler's type, for its condition compiler.
    pub fn compile(&self) -> Result<SeccompCondition, seccompiler::BackendError> {
        let len = match self.width {
            Width::Dword => SeccompCmpArgLen::Dword,
            Width::Qword => SeccompCmpArgLen::Qword,
        };
        let op = match self.op {
            Op::Eq => SeccompCmpOp::Eq,
            Op::Ne => SeccompCmpOp::Ne,
            Op::MaskedEq(m) => SeccompCmpOp::MaskedEq(m),
        };
        SeccompCondition::new(self.arg, len, op, self.value)
    }
}

impl fmt::Display for Cond {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ty = match self.width {
            Width::Dword => "u32",
            Width::Qword => "u64",
        };
        match self.op {
            Op::Eq => write!(
                f,
                "arg{}.{ty} == {} ({:#x})",
                self.arg, self.what, self.value
            ),
            Op::Ne => write!(
                f,
                "arg{}.{ty} != {} ({:#x})",
                self.arg, self.what, self.value
            ),
            Op::MaskedEq(0) => write!(f, "{}", self.what),
            Op::MaskedEq(m) => write!(
                f,
                "arg{}.{ty} & {m:#x} == {:#x} ({})",
                self.arg, self.value, self.what
            ),
        }
    }
}

/// Conditions that must all hold (AND). A syscall's rules are alternatives (OR), tried in
/// order; the first that matches answers: allow, or its fixed errno (`refuse`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub conds: Vec<Cond>,
    /// `Some(errno)`: a match is refused with this errno whatever the policy action — for
    /// argument values programs routinely probe and fall back from.
    pub refuse: Option<i32>,
}

impl Rule {
    /// A rule whose match allows the call.
    pub fn allow(conds: Vec<Cond>) -> Rule {
        Rule {
            conds,
            refuse: None,
        }
    }

    /// A rule whose match gets `errno`, never the policy action (kill/log).
    pub fn refuse(conds: Vec<Cond>, errno: i32) -> Rule {
        Rule {
            conds,
            refuse: Some(errno),
        }
    }

    pub fn matches(&self, args: &[u64; 6]) -> bool {
        self.conds.iter().all(|c| c.matches(args))
    }

    /// seccompiler's rule, whose BPF is "fall through on match, skip the next instruction
    /// otherwise" (seccompiler src/backend/rule.rs).
    pub fn compile(&self) -> Result<SeccompRule, seccompiler::BackendError> {
        let conds = self
            .conds
            .iter()
            .map(Cond::compile)
            .collect::<Result<Vec<_>, _>>()?;
        SeccompRule::new(conds)
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self.conds.iter().map(|c| c.to_string()).collect();
        write!(f, "{}", parts.join(" && "))?;
        match self.refuse {
            Some(e) => write!(f, " => ERRNO({}) always", crate::sys::errno_name(e)),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dword_ignores_high_bits() {
        let c = Cond::eq32(1, 0x5412, "TIOCSTI");
        let mut args = [0u64; 6];
        args[1] = 0x5412 | (1 << 32);
        assert!(c.matches(&args));
        let q = Cond {
            width: Width::Qword,
            ..c
        };
        assert!(
            !q.matches(&args),
            "a 64-bit compare misses the high-bit variant"
        );
    }

    #[test]
    fn masked_eq_zero_means_no_flag_set() {
        let c = Cond::masked32(0, 0x7e02_0000, 0, "no namespace flag");
        let mut args = [0u64; 6];
        args[0] = 0x0001_1000; // CLONE_THREAD-ish flags
        assert!(c.matches(&args));
        args[0] |= 0x1000_0000; // CLONE_NEWUSER
        assert!(!c.matches(&args));
    }
}
