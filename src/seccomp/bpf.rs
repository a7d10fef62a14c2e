//! The BPF emitter: arch check, a balanced binary search on the syscall number, then each
//! argument-guarded syscall's rules.
//!
//! Why not seccompiler's `SeccompFilter`: it emits one linear chain (one JEQ block per
//! syscall in number order), so a syscall with argument rules pays for every comparison
//! before it on every call; the kernel's constant-action cache (Linux 5.11,
//! kernel/seccomp.c `seccomp_cache_prepare`) only skips the filter for syscalls whose
//! answer does not depend on arguments. Here the number is found in O(log n) `jge` steps
//! (measured: +33 ns instead of +322 ns for a late syscall, `scripts/bench-seccomp.sh`), and
//! the per-argument compares come from seccompiler's own condition compiler
//! (`BpfProgram::from(SeccompRule)`), so only the layout is ours.
//!
//! Program shape (seccomp_data layout: Documentation/userspace-api/seccomp_filter.rst):
//! ```text
//!   ld  [4]                 arch
//!   jeq #AUDIT_ARCH_X86_64  -> next, else ret KILL_PROCESS (i386 via int 0x80)
//!   ld  [0]                 nr
//!   jge #k  ...             balanced tree over spans of numbers with one answer each;
//!   ...                     the last span, nr >= 0x40000000, is the x32 guard
//!   ret <answer>            constant leaves, or `ja <block>` for a guarded syscall
//! block:                    per guarded syscall: <rule> ret ALLOW ... ret <deny>
//! ```
//! Classic BPF conditional jumps reach at most 255 instructions ahead; a left subtree
//! longer than that gets a one-instruction `ja` trampoline. The kernel accepts at most
//! 4096 instructions (BPF_MAXINSNS).

use std::ops::Range;

use seccompiler::{sock_filter, BpfProgram};

use super::rules::Rule;

/// BPF_LD | BPF_W | BPF_ABS (include/uapi/linux/bpf_common.h: 0x00 | 0x00 | 0x20).
pub const BPF_LD_W_ABS: u16 = 0x20;
pub const BPF_ALU_AND_K: u16 = 0x04 | 0x50;
pub const BPF_JA: u16 = 0x05;
pub const BPF_JEQ_K: u16 = 0x05 | 0x10;
pub const BPF_JGT_K: u16 = 0x05 | 0x20;
pub const BPF_JGE_K: u16 = 0x05 | 0x30;
pub const BPF_JSET_K: u16 = 0x05 | 0x40;
pub const BPF_RET_K: u16 = 0x06;

/// Offsets into `struct seccomp_data` (include/uapi/linux/seccomp.h).
pub const DATA_NR: u32 = 0;
pub const DATA_ARCH: u32 = 4;
pub const DATA_ARGS: u32 = 16;

/// Filter return values (include/uapi/linux/seccomp.h).
pub const RET_KILL_PROCESS: u32 = 0x8000_0000;
pub const RET_KILL_THREAD: u32 = 0;
pub const RET_TRAP: u32 = 0x0003_0000;
pub const RET_ERRNO: u32 = 0x0005_0000;
pub const RET_USER_NOTIF: u32 = 0x7fc0_0000;
pub const RET_TRACE: u32 = 0x7ff0_0000;
pub const RET_LOG: u32 = 0x7ffc_0000;
pub const RET_ALLOW: u32 = 0x7fff_0000;

/// BPF_MAXINSNS (include/uapi/linux/bpf_common.h); seccomp(2) EINVAL above it.
pub const MAX_INSNS: usize = 4096;

/// Where one span of syscall numbers leads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Leaf {
    /// A constant answer (a SECCOMP_RET_* value).
    Ret(u32),
    /// The index of an argument-rule block.
    Block(usize),
}

/// Numbers from `start` up to the next span's start share one leaf.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Span {
    pub start: u32,
    pub leaf: Leaf,
}

/// An argument-rule block and its label (the syscall name) for the disassembly.
#[derive(Debug, Clone)]
pub struct Block {
    pub label: String,
    pub insns: Vec<sock_filter>,
}

/// The spans and blocks of one filter, pushed in syscall-number order: what `compile` and
/// the learning filter both build before `emit`. Neighbours with the same constant answer
/// merge (fewer spans, a shallower tree).
#[derive(Debug, Default)]
pub struct Table {
    pub spans: Vec<Span>,
    pub blocks: Vec<Block>,
}

impl Table {
    /// Numbers from `start` up to the next push lead to `leaf`.
    pub fn push(&mut self, start: u32, leaf: Leaf) {
        if let (Some(last), Leaf::Ret(_)) = (self.spans.last(), &leaf) {
            if last.leaf == leaf {
                return;
            }
        }
        self.spans.push(Span { start, leaf });
    }

    /// Add an argument-rule block; the leaf that jumps to it.
    pub fn block(&mut self, label: &str, insns: Vec<sock_filter>) -> Leaf {
        self.blocks.push(Block {
            label: label.to_string(),
            insns,
        });
        Leaf::Block(self.blocks.len() - 1)
    }

    pub fn emit(&self, arch: u32) -> Result<Program, EmitError> {
        emit(arch, &self.spans, &self.blocks)
    }
}

/// The emitted program and where its parts are, for the disassembly.
#[derive(Debug, Clone)]
pub struct Program {
    pub insns: Vec<sock_filter>,
    pub tree: Range<usize>,
    /// (start index, label) of each block, in program order.
    pub blocks: Vec<(usize, String)>,
    /// The most `jge` steps any syscall number takes to reach its leaf.
    pub depth: usize,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EmitError {
    #[error("the spans must start at syscall number 0 and ascend")]
    BadSpans,
    #[error("a span refers to argument block {0}, which does not exist")]
    NoSuchBlock(usize),
    #[error("the filter needs {0} BPF instructions; the kernel accepts at most 4096")]
    TooLong(usize),
    #[error("seccompiler rejected a rule: {0}")]
    Rule(String),
}

/// The kernel's `struct sock_filter` array for seccomp(2), from seccompiler's
/// instruction type (same fields, a different Rust type).
pub fn to_kernel(insns: &[sock_filter]) -> Vec<libc::sock_filter> {
    insns
        .iter()
        .map(|i| libc::sock_filter {
            code: i.code,
            jt: i.jt,
            jf: i.jf,
            k: i.k,
        })
        .collect()
}

pub fn stmt(code: u16, k: u32) -> sock_filter {
    sock_filter {
        code,
        jt: 0,
        jf: 0,
        k,
    }
}

pub fn jump(code: u16, k: u32, jt: u8, jf: u8) -> sock_filter {
    sock_filter { code, jt, jf, k }
}

/// One argument-guarded syscall: the first rule that matches answers (`on_match`, or the
/// rule's own fixed errno), `otherwise` if none does.
///
/// Each rule is compiled by seccompiler, whose rule code falls through on a match and
/// jumps just past the following instruction on a mismatch; we put `ret on_match` there.
/// seccompiler prefixes every rule with two `ja` that serve its linear chain's "skip this
/// syscall" path (`ja 1; ja <past the chain>`). Nothing here enters a rule at its second
/// instruction, so the prefix is dropped; the condition jumps are relative and unaffected.
pub fn rule_block(
    rules: &[Rule],
    on_match: u32,
    otherwise: u32,
) -> Result<Vec<sock_filter>, EmitError> {
    let mut out = Vec::new();
    for rule in rules {
        let compiled = rule.compile().map_err(|e| EmitError::Rule(e.to_string()))?;
        let bpf: BpfProgram = compiled.into();
        let body = match bpf.as_slice() {
            [first, second, rest @ ..]
                if first.code == BPF_JA && first.k == 1 && second.code == BPF_JA =>
            {
                rest
            }
            all => all,
        };
        out.extend_from_slice(body);
        let answer = rule
            .refuse
            .map_or(on_match, |e| RET_ERRNO | (e as u32 & 0xffff));
        out.push(stmt(BPF_RET_K, answer));
    }
    out.push(stmt(BPF_RET_K, otherwise));
    Ok(out)
}

/// Emit the whole program.
pub fn emit(arch: u32, spans: &[Span], blocks: &[Block]) -> Result<Program, EmitError> {
    validate(spans, blocks.len())?;
    let mut insns = vec![
        stmt(BPF_LD_W_ABS, DATA_ARCH),
        jump(BPF_JEQ_K, arch, 1, 0),
        // A foreign ABI (i386 through int 0x80 on x86_64) has other numbers: never guess.
        stmt(BPF_RET_K, RET_KILL_PROCESS),
        stmt(BPF_LD_W_ABS, DATA_NR),
    ];
    let tree_start = insns.len();
    let mut fixups = Vec::new();
    emit_tree(spans, &mut insns, &mut fixups);
    let tree = tree_start..insns.len();

    let mut starts = Vec::with_capacity(blocks.len());
    let mut labels = Vec::with_capacity(blocks.len());
    for b in blocks {
        starts.push(insns.len());
        labels.push((insns.len(), b.label.clone()));
        insns.extend_from_slice(&b.insns);
    }
    for (at, block) in fixups {
        let target = *starts.get(block).ok_or(EmitError::NoSuchBlock(block))?;
        if let Some(ja) = insns.get_mut(at) {
            ja.k = (target - at - 1) as u32;
        }
    }
    if insns.len() > MAX_INSNS {
        return Err(EmitError::TooLong(insns.len()));
    }
    Ok(Program {
        insns,
        tree,
        blocks: labels,
        depth: depth(spans.len()),
    })
}

fn validate(spans: &[Span], nblocks: usize) -> Result<(), EmitError> {
    if spans.first().map(|s| s.start) != Some(0)
        || spans.windows(2).any(|w| w[0].start >= w[1].start)
    {
        return Err(EmitError::BadSpans);
    }
    for s in spans {
        if let Leaf::Block(i) = s.leaf {
            if i >= nblocks {
                return Err(EmitError::NoSuchBlock(i));
            }
        }
    }
    Ok(())
}

/// `jge` steps on the longest path of a balanced tree over `n` spans.
fn depth(n: usize) -> usize {
    if n <= 1 {
        0
    } else {
        1 + depth(n - n / 2)
    }
}

/// Instructions the subtree over `spans` takes (see `emit_tree`).
fn tree_len(spans: &[Span]) -> usize {
    if spans.len() <= 1 {
        return 1;
    }
    let (left, right) = spans.split_at(spans.len() / 2);
    let l = tree_len(left);
    1 + usize::from(l > 255) + l + tree_len(right)
}

/// Binary search: `jge #first-number-of-right-half`, left half inline after it, right half
/// after the left. Leaves are `ret` or a `ja` to a block (patched once blocks are placed).
fn emit_tree(spans: &[Span], out: &mut Vec<sock_filter>, fixups: &mut Vec<(usize, usize)>) {
    if let [only] = spans {
        match only.leaf {
            Leaf::Ret(k) => out.push(stmt(BPF_RET_K, k)),
            Leaf::Block(i) => {
                fixups.push((out.len(), i));
                out.push(stmt(BPF_JA, 0));
            }
        }
        return;
    }
    let (left, right) = spans.split_at(spans.len() / 2);
    let l = tree_len(left);
    let boundary = right[0].start;
    match u8::try_from(l) {
        Ok(jt) => out.push(jump(BPF_JGE_K, boundary, jt, 0)),
        Err(_) => {
            // Too far for jt: jump to a trampoline right after us that goes the long way.
            out.push(jump(BPF_JGE_K, boundary, 0, 1));
            out.push(stmt(BPF_JA, l as u32));
        }
    }
    emit_tree(left, out, fixups);
    emit_tree(right, out, fixups);
}

/// A readable listing for `check --bpf`: absolute jump targets, decoded loads and returns,
/// syscall names on the tree's boundaries, and a label at each guarded syscall's block.
pub fn disassemble(p: &Program, name_of: impl Fn(u32) -> Option<&'static str>) -> String {
    let mut out = String::new();
    for (i, ins) in p.insns.iter().enumerate() {
        if let Some((_, label)) = p.blocks.iter().find(|(s, _)| *s == i) {
            out.push_str(&format!("{label}:\n"));
        }
        let in_tree = p.tree.contains(&i);
        let target = |off: u8| i + 1 + usize::from(off);
        let line = match ins.code {
            BPF_LD_W_ABS => format!("ld   [{}]{}", ins.k, load_comment(ins.k)),
            BPF_ALU_AND_K => format!("and  #{:#x}", ins.k),
            BPF_JA => format!("ja   {}", i + 1 + ins.k as usize),
            BPF_JEQ_K | BPF_JGT_K | BPF_JGE_K | BPF_JSET_K => {
                let op = match ins.code {
                    BPF_JEQ_K => "jeq ",
                    BPF_JGT_K => "jgt ",
                    BPF_JGE_K => "jge ",
                    _ => "jset",
                };
                let note = if in_tree {
                    match name_of(ins.k) {
                        Some(n) => format!("   ; nr >= {} ({n})", ins.k),
                        None if ins.k == super::syscalls::X32_SYSCALL_BIT => {
                            "   ; x32 ABI".to_string()
                        }
                        None => format!("   ; nr >= {}", ins.k),
                    }
                } else if ins.k == super::syscalls::AUDIT_ARCH_X86_64 {
                    "   ; AUDIT_ARCH_X86_64".to_string()
                } else {
                    String::new()
                };
                format!(
                    "{op} #{:#x}  jt {}  jf {}{note}",
                    ins.k,
                    target(ins.jt),
                    target(ins.jf)
                )
            }
            BPF_RET_K => format!("ret  {}", ret_name(ins.k)),
            other => format!("op {other:#06x} jt {} jf {} k {:#x}", ins.jt, ins.jf, ins.k),
        };
        out.push_str(&format!("{i:5}: {line}\n"));
    }
    out
}

fn load_comment(k: u32) -> String {
    match k {
        DATA_NR => "   ; nr".into(),
        DATA_ARCH => "   ; arch".into(),
        k if (DATA_ARGS..DATA_ARGS + 48).contains(&k) => {
            let arg = (k - DATA_ARGS) / 8;
            let half = if (k - DATA_ARGS).is_multiple_of(8) {
                "low"
            } else {
                "high"
            };
            format!("   ; arg{arg} {half} 32 bits")
        }
        _ => String::new(),
    }
}

/// `ALLOW`, `ERRNO(EPERM)`, `KILL_PROCESS`, ...
pub fn ret_name(k: u32) -> String {
    match k & 0xffff_0000 {
        RET_ALLOW => "ALLOW".into(),
        RET_LOG => "LOG".into(),
        RET_KILL_PROCESS => "KILL_PROCESS".into(),
        RET_KILL_THREAD => "KILL_THREAD".into(),
        RET_TRAP => "TRAP".into(),
        RET_USER_NOTIF => "USER_NOTIF".into(),
        RET_TRACE => format!("TRACE({})", k & 0xffff),
        RET_ERRNO => format!("ERRNO({})", crate::sys::errno_name((k & 0xffff) as i32)),
        _ => format!("{k:#x}"),
    }
}

/// A classic-BPF interpreter for seccomp programs (the subset seccomp accepts and we emit),
/// used by the tests to check the emitted program against the rule table.
#[cfg(test)]
pub mod interp {
    use super::*;

    /// Run `prog` on one `seccomp_data`; the filter's return value.
    pub fn run(prog: &[sock_filter], nr: u32, arch: u32, args: &[u64; 6]) -> Result<u32, String> {
        let word = |off: u32| -> Result<u32, String> {
            match off {
                DATA_NR => Ok(nr),
                DATA_ARCH => Ok(arch),
                8 | 12 => Ok(0),
                o if (DATA_ARGS..DATA_ARGS + 48).contains(&o) && o % 4 == 0 => {
                    let a = args[((o - DATA_ARGS) / 8) as usize];
                    Ok(if (o - DATA_ARGS).is_multiple_of(8) {
                        a as u32
                    } else {
                        (a >> 32) as u32
                    })
                }
                o => Err(format!("bad load offset {o}")),
            }
        };
        let mut acc: u32 = 0;
        let mut pc = 0usize;
        for _ in 0..=prog.len() {
            let ins = prog
                .get(pc)
                .ok_or_else(|| format!("fell off the end at {pc}"))?;
            let cond = |taken: bool| pc + 1 + usize::from(if taken { ins.jt } else { ins.jf });
            pc = match ins.code {
                BPF_LD_W_ABS => {
                    acc = word(ins.k)?;
                    pc + 1
                }
                BPF_ALU_AND_K => {
                    acc &= ins.k;
                    pc + 1
                }
                BPF_JA => pc + 1 + ins.k as usize,
                BPF_JEQ_K => cond(acc == ins.k),
                BPF_JGT_K => cond(acc > ins.k),
                BPF_JGE_K => cond(acc >= ins.k),
                BPF_JSET_K => cond(acc & ins.k != 0),
                BPF_RET_K => return Ok(ins.k),
                op => return Err(format!("unsupported opcode {op:#x} at {pc}")),
            };
        }
        Err("loop".into())
    }
}

#[cfg(test)]
mod tests {
    use super::interp::run;
    use super::*;
    use crate::seccomp::rules::Cond;

    const ARCH: u32 = super::super::syscalls::AUDIT_ARCH_X86_64;

    #[test]
    fn foreign_arch_is_killed() {
        let spans = [Span {
            start: 0,
            leaf: Leaf::Ret(RET_ALLOW),
        }];
        let p = emit(ARCH, &spans, &[]).unwrap();
        assert_eq!(run(&p.insns, 1, ARCH, &[0; 6]).unwrap(), RET_ALLOW);
        let i386 = 3 | 0x4000_0000; // AUDIT_ARCH_I386
        assert_eq!(run(&p.insns, 1, i386, &[0; 6]).unwrap(), RET_KILL_PROCESS);
    }

    /// Every number lands in its span, including across trampolines: 700 alternating spans
    /// make left subtrees far longer than 255 instructions.
    #[test]
    fn long_trees_use_trampolines_and_stay_correct() {
        let spans: Vec<Span> = (0..700u32)
            .map(|i| Span {
                start: i * 3,
                leaf: Leaf::Ret(RET_ERRNO | i),
            })
            .collect();
        let p = emit(ARCH, &spans, &[]).unwrap();
        assert!(
            p.insns.iter().any(|i| i.code == BPF_JA),
            "expected a trampoline"
        );
        for nr in 0..2200u32 {
            let want = RET_ERRNO | (nr / 3).min(699);
            assert_eq!(run(&p.insns, nr, ARCH, &[0; 6]).unwrap(), want, "nr {nr}");
        }
        assert_eq!(p.depth, 10);
    }

    #[test]
    fn blocks_are_reached_and_rules_evaluated() {
        let rule = Rule::allow(vec![Cond::ne32(1, 0x5412, "TIOCSTI")]);
        let block = Block {
            label: "ioctl".into(),
            insns: rule_block(&[rule], RET_ALLOW, RET_ERRNO | 1).unwrap(),
        };
        let spans = [
            Span {
                start: 0,
                leaf: Leaf::Ret(RET_ALLOW),
            },
            Span {
                start: 16,
                leaf: Leaf::Block(0),
            },
            Span {
                start: 17,
                leaf: Leaf::Ret(RET_ERRNO | 1),
            },
        ];
        let p = emit(ARCH, &spans, &[block]).unwrap();
        let mut args = [0u64; 6];
        args[1] = 0x541b;
        assert_eq!(run(&p.insns, 16, ARCH, &args).unwrap(), RET_ALLOW);
        args[1] = 0x5412 | (1 << 32);
        assert_eq!(run(&p.insns, 16, ARCH, &args).unwrap(), RET_ERRNO | 1);
        assert_eq!(run(&p.insns, 15, ARCH, &args).unwrap(), RET_ALLOW);
        assert_eq!(run(&p.insns, 17, ARCH, &args).unwrap(), RET_ERRNO | 1);
        let text = disassemble(&p, |_| None);
        assert!(text.contains("ioctl:"), "{text}");
    }

    #[test]
    fn bad_spans_are_refused() {
        let spans = [Span {
            start: 1,
            leaf: Leaf::Ret(RET_ALLOW),
        }];
        assert_eq!(emit(ARCH, &spans, &[]).unwrap_err(), EmitError::BadSpans);
        let spans = [Span {
            start: 0,
            leaf: Leaf::Block(3),
        }];
        assert_eq!(
            emit(ARCH, &spans, &[]).unwrap_err(),
            EmitError::NoSuchBlock(3)
        );
    }
}
