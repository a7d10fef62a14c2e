//! The learning filter for `clawjail learn` (src/learn/): the same table as the base
//! policy's, with the allowlist opened into SECCOMP_RET_USER_NOTIF (seccomp_unotify(2)).
//!
//! What changes, and why:
//! - a call the base profile does not list: USER_NOTIF (the supervisor records it as a
//!   syscall the learned policy must allow, then lets it continue);
//! - an allowed call the learner decodes ([`OBSERVED`]: paths, exec, bind/connect):
//!   USER_NOTIF, also for the matching branch of an argument guard;
//! - every other allowed call: ALLOW, exactly as under `run` (nothing to learn, and the hot
//!   path-free calls such as futex or read stay at full speed);
//! - everything the base denies stays denied, with EPERM: the guards (user namespaces,
//!   ptrace, mount, TIOCSTI, AF_UNIX unless allowed, ...), the fixed answers (clone3 ENOSYS,
//!   io_uring EPERM), the policy's own `seccomp.deny`, a failed argument guard; i386 is
//!   killed and x32 refused, as always.
//!
//! USER_NOTIF ranks below ERRNO and above ALLOW (seccomp(2) precedence), and this is one
//! filter, so nothing stacks. The kernel documents that SECCOMP_USER_NOTIF_FLAG_CONTINUE
//! cannot implement a security policy (arguments may change after the check, TOCTOU;
//! include/uapi/linux/seccomp.h): the supervisor decides nothing, it only records.

use std::io;
use std::os::fd::OwnedFd;

use super::bpf::{self, Block, Leaf, Span};
use super::rules::{Cond, Rule};
use super::{syscalls, SeccompError, SeccompPlan, Verdict};

/// Allowed calls the supervisor decodes: every call Landlock checks by path (open, exec,
/// create, remove, rename, link, truncate), and TCP bind/connect (ports).
pub const OBSERVED: &[&str] = &[
    "open",
    "openat",
    "openat2",
    "creat",
    "execve",
    "execveat",
    "mkdir",
    "mkdirat",
    "mknod",
    "mknodat",
    "unlink",
    "unlinkat",
    "rmdir",
    "rename",
    "renameat",
    "renameat2",
    "link",
    "linkat",
    "symlink",
    "symlinkat",
    "truncate",
    "bind",
    "connect",
];

const EPERM: u32 = bpf::RET_ERRNO | libc::EPERM as u32;

impl SeccompPlan {
    /// The learning filter built from this (base) table. `handoff_fd` is the socket the
    /// target sends the listener on right after install: when the base does not list
    /// `sendmsg`, that one call (arg0 == handoff_fd) is allowed unobserved, since a notified
    /// call made before the supervisor holds the listener would block for ever.
    pub fn for_learning(&self, handoff_fd: i32) -> Result<SeccompPlan, SeccompError> {
        let refuse = |e: bpf::EmitError| SeccompError::Refused(format!("seccomp (learn): {e}"));
        let observed: Vec<u32> = OBSERVED
            .iter()
            .filter_map(|n| syscalls::number(n))
            .collect();
        let sendmsg = syscalls::number("sendmsg");
        let mut spans: Vec<Span> = Vec::new();
        let mut blocks: Vec<Block> = Vec::new();
        let mut push = |start: u32, leaf: Leaf| {
            if let (Some(last), Leaf::Ret(_)) = (spans.last(), &leaf) {
                if last.leaf == leaf {
                    return;
                }
            }
            spans.push(Span { start, leaf });
        };
        let mut next = 0u32;
        for e in &self.entries {
            while next < e.nr {
                let leaf = unlisted_leaf(next, sendmsg, handoff_fd, &mut blocks).map_err(refuse)?;
                push(next, leaf);
                next += 1;
            }
            let notify_or_allow = if observed.contains(&e.nr) {
                bpf::RET_USER_NOTIF
            } else {
                bpf::RET_ALLOW
            };
            let leaf = match &e.verdict {
                Verdict::Allow => Leaf::Ret(notify_or_allow),
                Verdict::AllowIf(rules) => {
                    blocks.push(Block {
                        label: e.name.to_string(),
                        insns: bpf::rule_block(rules, notify_or_allow, EPERM).map_err(refuse)?,
                    });
                    Leaf::Block(blocks.len() - 1)
                }
                Verdict::Deny => Leaf::Ret(EPERM),
                Verdict::Errno(errno) => Leaf::Ret(bpf::RET_ERRNO | (*errno as u32 & 0xffff)),
            };
            push(e.nr, leaf);
            next = e.nr + 1;
        }
        // Numbers above the table up to the x32 bit: unlisted, so notified (and recorded).
        while next < 512 {
            let leaf = unlisted_leaf(next, sendmsg, handoff_fd, &mut blocks).map_err(refuse)?;
            push(next, leaf);
            next += 1;
        }
        push(next, Leaf::Ret(bpf::RET_USER_NOTIF));
        push(syscalls::X32_SYSCALL_BIT, Leaf::Ret(EPERM));
        let program = bpf::emit(syscalls::AUDIT_ARCH_X86_64, &spans, &blocks).map_err(refuse)?;
        let kernel_insns = bpf::to_kernel(&program.insns);
        Ok(SeccompPlan {
            profile: self.profile,
            action: self.action,
            entries: self.entries.clone(),
            program,
            kernel_insns,
        })
    }

    /// Install this filter with SECCOMP_FILTER_FLAG_NEW_LISTENER; the listener goes to
    /// the supervisor. The last step before exec, like `install`.
    pub fn install_listener(
        &self,
        k: &mut impl crate::kernel::Kernel,
    ) -> Result<OwnedFd, (String, io::Error)> {
        k.seccomp_set_mode_filter_listener(&self.kernel_insns)
            .map_err(|e| {
                (
                    format!(
                        "seccomp(SECCOMP_SET_MODE_FILTER, NEW_LISTENER, {} instructions)",
                        self.kernel_insns.len()
                    ),
                    e,
                )
            })
    }

    /// The syscalls the base profile does not list (learned ones are reported as such).
    pub fn unlisted(&self, nr: u32) -> bool {
        self.entries.binary_search_by_key(&nr, |e| e.nr).is_err()
    }
}

/// A number the base table does not list: notified; `sendmsg` on the handoff socket is
/// the one exception (see `for_learning`).
fn unlisted_leaf(
    nr: u32,
    sendmsg: Option<u32>,
    handoff_fd: i32,
    blocks: &mut Vec<Block>,
) -> Result<Leaf, bpf::EmitError> {
    if Some(nr) != sendmsg {
        return Ok(Leaf::Ret(bpf::RET_USER_NOTIF));
    }
    let rule = Rule::allow(vec![Cond::eq32(
        0,
        handoff_fd as u64,
        "the handoff socket (the listener goes to the supervisor)",
    )]);
    blocks.push(Block {
        label: "sendmsg".into(),
        insns: bpf::rule_block(&[rule], bpf::RET_ALLOW, bpf::RET_USER_NOTIF)?,
    });
    Ok(Leaf::Block(blocks.len() - 1))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use crate::policy::{self, Source};

    fn base() -> SeccompPlan {
        let text = "version = 1\n[identity]\nuser = \"nobody\"\n";
        let loaded = policy::load(Source::new(policy::Origin::Embedded, text.into()))
            .unwrap_or_else(|e| panic!("{e}"));
        super::super::prepare(&super::super::SeccompInputs {
            src: &loaded.source,
            cfg: &loaded.policy.seccomp,
            guards: super::super::guards::Options::default(),
        })
        .unwrap_or_else(|e| panic!("{e}"))
    }

    /// Runs the emitted program in the test interpreter for a few calls.
    #[test]
    fn notifies_observed_and_unlisted_keeps_guards() {
        let b = base();
        let l = b.for_learning(7).unwrap_or_else(|e| panic!("{e}"));
        let run = |name: &str, args: [u64; 6]| {
            let nr = syscalls::number(name).unwrap_or_else(|| panic!("{name}"));
            bpf::interp::run(l.program(), nr, syscalls::AUDIT_ARCH_X86_64, &args)
                .unwrap_or_else(|e| panic!("{e}"))
        };
        let z = [0u64; 6];
        assert_eq!(run("openat", z), bpf::RET_USER_NOTIF);
        assert_eq!(run("execve", z), bpf::RET_USER_NOTIF);
        assert_eq!(run("connect", z), bpf::RET_USER_NOTIF);
        assert_eq!(run("futex", z), bpf::RET_ALLOW);
        assert_eq!(run("read", z), bpf::RET_ALLOW);
        assert_eq!(run("clone3", z), bpf::RET_ERRNO | libc::ENOSYS as u32);
        assert_eq!(run("io_uring_setup", z), EPERM);
        assert_eq!(run("ptrace", z), EPERM);
        assert_eq!(run("unshare", z), EPERM);
        let tiocsti = [0, 0x5412, 0, 0, 0, 0];
        assert_eq!(run("ioctl", tiocsti), EPERM);
        // Not in the default profile: learned.
        assert!(b.unlisted(syscalls::number("vhangup").unwrap_or(0)));
        assert_eq!(run("vhangup", z), bpf::RET_USER_NOTIF);
    }
}
