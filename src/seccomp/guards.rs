//! Guards: the part of the filter that every profile gets and no policy can remove.
//!
//! Three kinds (DESIGN.md "Seccomp", research/crates.md §3):
//! - **argument guards**: a syscall the profile allows is allowed only for harmless
//!   arguments (clone without namespace flags, ioctl other than TIOCSTI/TIOCLINUX, ...).
//!   A profile that does not allow the syscall at all still denies it entirely.
//! - **fixed answers**: clone3 -> ENOSYS and io_uring_* -> EPERM, whatever `action` says.
//!   glibc falls back from clone3 to clone on ENOSYS (its flags sit behind a pointer that
//!   seccomp cannot read), and libuv falls back from io_uring on any error; a KILL here
//!   would kill Node at start.
//! - **denials**: calls that cross the sandbox (other processes' memory, namespaces, the
//!   mount table, kernel keyrings, BPF, module loading, clocks). They are denied with the
//!   policy action and cannot be named in `allow`.
//!
//! Every compare of an `int`-typed argument is 32-bit ([`Cond::eq32`]): the kernel
//! truncates it, so a 64-bit compare is bypassed by setting high bits (CVE-2019-10063).

use super::rules::{Cond, Rule};

/// What a guard does with its syscall.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Treatment {
    /// Allowed (if the profile allows the syscall) only when one of the rules matches;
    /// otherwise denied with the policy action.
    AllowIf(Vec<Rule>),
    /// Always this errno, whatever the policy action.
    Fixed(i32),
    /// Always denied with the policy action.
    Deny,
}

/// One guarded syscall.
#[derive(Debug, Clone)]
pub struct Guard {
    pub name: &'static str,
    pub treatment: Treatment,
    /// Why, for `check` and the docs.
    pub why: &'static str,
    /// The policy key that lifts this guard, if one does (named in errors).
    pub unlock: Option<&'static str>,
}

/// The policy settings the guards depend on.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Options {
    /// `network.unix`: allow socket(AF_UNIX).
    pub allow_unix: bool,
    /// `filesystem.allow_chown`: the chown family as the profile lists it.
    pub allow_chown: bool,
    /// `filesystem.allow_xattr`: setting and removing extended attributes.
    pub allow_xattr: bool,
    /// SysV IPC and POSIX message queues: the target has an IPC namespace of its own, or
    /// `process.allow_shared_ipc = true`.
    pub allow_ipc: bool,
}

// Constant values from the uapi headers, spelled out so the table reads on its own.
/// CLONE_NEWNS|NEWCGROUP|NEWUTS|NEWIPC|NEWUSER|NEWPID|NEWNET (include/uapi/linux/sched.h);
/// the same mask as Docker's profile. CLONE_NEWTIME (0x80) overlaps clone()'s exit-signal
/// byte and is only reachable through clone3/unshare, which are closed separately.
pub const CLONE_NAMESPACE_FLAGS: u64 = 0x7e02_0000;
pub const TIOCSTI: u64 = 0x5412;
pub const TIOCLINUX: u64 = 0x541c;
pub const AF_UNIX: u64 = 1;
pub const AF_INET: u64 = 2;
pub const AF_INET6: u64 = 10;
pub const AF_NETLINK: u64 = 16;
pub const NETLINK_ROUTE: u64 = 0;
/// socket(2): the low bits of `type` are the type, the rest are SOCK_NONBLOCK/SOCK_CLOEXEC.
pub const SOCK_TYPE_MASK: u64 = 0xf;
pub const SOCK_STREAM: u64 = 1;
pub const SOCK_DGRAM: u64 = 2;
pub const SOCK_SEQPACKET: u64 = 5;
pub const IPPROTO_TCP: u64 = 6;
pub const MSG_FASTOPEN: u64 = 0x2000_0000;
pub const SOL_TCP: u64 = 6;
pub const TCP_FASTOPEN_CONNECT: u64 = 30;

/// The guards for these policy settings.
pub fn all(o: &Options) -> Vec<Guard> {
    let mut g = argument_guards(o.allow_unix);
    g.extend(fixed_answers());
    g.extend(denials());
    g.extend(mode_guards());
    g.extend(same_uid_guards());
    if !o.allow_chown {
        g.extend(refused(CHOWN, CHOWN_WHY, "filesystem.allow_chown"));
    }
    if !o.allow_xattr {
        g.extend(refused(XATTR_SET, XATTR_WHY, "filesystem.allow_xattr"));
    }
    if !o.allow_ipc {
        g.extend(IPC.iter().map(|name| Guard {
            name,
            treatment: Treatment::Deny,
            why: IPC_WHY,
            unlock: Some("process.allow_shared_ipc"),
        }));
    }
    g
}

/// Every guard any setting can produce (tests, the profile lists' review).
pub fn every_setting() -> Vec<Guard> {
    all(&Options::default())
}

fn allow_if(name: &'static str, why: &'static str, rules: Vec<Vec<Cond>>) -> Guard {
    Guard {
        name,
        treatment: Treatment::AllowIf(rules.into_iter().map(Rule::allow).collect()),
        why,
        unlock: None,
    }
}

/// Allowed when `conds` hold; any other argument gets EPERM whatever the policy action.
/// EPERM, not KILL: programs meet these refusals in ordinary use (`cp -p`, tar, rsync,
/// an `fchmod(fd, 0644)` after a write) and handle EPERM; under `action = "kill"` the
/// real gateway's media writer would otherwise die.
fn allow_if_else_eperm(name: &'static str, why: &'static str, conds: Vec<Cond>) -> Guard {
    let arg = conds.first().map_or(0, |c| c.arg);
    Guard {
        name,
        treatment: Treatment::AllowIf(vec![
            Rule::allow(conds),
            Rule::refuse(vec![Cond::always(arg, "any other value")], libc::EPERM),
        ]),
        why,
        unlock: None,
    }
}

fn refused(
    names: &'static [&'static str],
    why: &'static str,
    unlock: &'static str,
) -> impl Iterator<Item = Guard> {
    names.iter().map(move |name| Guard {
        name,
        treatment: Treatment::Fixed(libc::EPERM),
        why,
        unlock: Some(unlock),
    })
}

/// chmod's mode: group and other bits, and setuid/setgid/sticky (inode(7)).
pub const MODE_GROUP_OTHER_SPECIAL: u64 = 0o7077;
/// fchmod's mode: setuid/setgid/sticky and group/other write.
pub const MODE_SPECIAL_GROUP_OTHER_WRITE: u64 = 0o7022;
/// setpriority(2), getpriority(2): `which`.
pub const PRIO_PROCESS: u64 = 0;
/// ioprio_set(2): `which`.
pub const IOPRIO_WHO_PROCESS: u64 = 1;

const CHOWN: &[&str] = &["chown", "fchown", "lchown", "fchownat"];
const CHOWN_WHY: &str = "Landlock (ABI <= 7) does not mediate chown: without CAP_CHOWN the owner can still give a file outside the grants to one of its groups; EPERM unless filesystem.allow_chown = true";
const XATTR_SET: &[&str] = &[
    "setxattr",
    "lsetxattr",
    "fsetxattr",
    "setxattrat",
    "removexattr",
    "lremovexattr",
    "fremovexattr",
    "removexattrat",
    "file_setattr",
];
const XATTR_WHY: &str = "Landlock (ABI <= 7) does not mediate extended attributes: the owner could set or remove user.* attributes and POSIX ACLs (system.posix_acl_access grants other users read) on files outside the grants; EPERM unless filesystem.allow_xattr = true";
const IPC: &[&str] = &[
    "shmget",
    "shmat",
    "shmdt",
    "shmctl",
    "semget",
    "semop",
    "semtimedop",
    "semctl",
    "msgget",
    "msgsnd",
    "msgrcv",
    "msgctl",
    "mq_open",
    "mq_unlink",
    "mq_timedsend",
    "mq_timedreceive",
    "mq_notify",
    "mq_getsetattr",
];
const IPC_WHY: &str = "SysV IPC and POSIX message queues are shared by every process in the IPC namespace and checked by uid only (another same-uid process's shared memory can be read and overwritten); allowed when the target has an IPC namespace of its own (root start) or process.allow_shared_ipc = true";

/// Mode changes. Landlock (ABI <= 7) does not mediate chmod: the target could make
/// `~/.ssh/id_rsa` (unreadable to itself) 0644 for another local user, by path, through an
/// O_PATH fd with fchmodat2(AT_EMPTY_PATH), or through /proc/self/fd/N. The path calls reach
/// any path, so only owner bits pass. fchmod needs an fd that is not O_PATH (fdget() skips
/// O_PATH files: EBADF), i.e. a file Landlock let the target open: there group/other read
/// and execute may be set (they expose nothing the target cannot read itself; OpenClaw's
/// media writer does `fchmod(fd, 0o644)` and rethrows unless the file ends up
/// group/other-readable), never write or setuid/setgid/sticky.
fn mode_guards() -> Vec<Guard> {
    let path_why = "mode changes by path (chmod, fchmodat, fchmodat2 with AT_EMPTY_PATH on an O_PATH fd, /proc/self/fd/N) reach files outside the grants: owner bits only; group/other and setuid/setgid/sticky get EPERM";
    let owner_only = |arg| {
        vec![Cond::masked32(
            arg,
            MODE_GROUP_OTHER_SPECIAL,
            0,
            "owner bits only",
        )]
    };
    vec![
        allow_if_else_eperm("chmod", path_why, owner_only(1)),
        allow_if_else_eperm("fchmodat", path_why, owner_only(2)),
        allow_if_else_eperm("fchmodat2", path_why, owner_only(2)),
        allow_if_else_eperm(
            "fchmod",
            "an fd that is not O_PATH names a file Landlock let the target open: group/other read/execute may be set there (OpenClaw's media writer needs 0644), never group/other write or setuid/setgid/sticky (EPERM)",
            vec![Cond::masked32(
                1,
                MODE_SPECIAL_GROUP_OTHER_WRITE,
                0,
                "no setuid/setgid/sticky, no group/other write",
            )],
        ),
    ]
}

/// Calls that name another process by pid and work on any process of the same uid (the
/// supervisor, the user's browser and shell on a laptop): only the caller itself (pid 0).
/// `PRIO_USER` with `who == 0` means every process of the uid, so `which` is pinned too.
/// Signals are Landlock's (scope, ABI 6); ptrace, process_vm_*, process_madvise, kcmp and
/// pidfd_getfd are denied outright. The sched_get* readers stay open: glibc's
/// pthread_getattr_np (V8 calls it for every thread's stack) asks sched_getaffinity for
/// its own thread id, which seccomp cannot tell from another pid.
fn same_uid_guards() -> Vec<Guard> {
    let own = "acts on another process of the same uid (the supervisor included); only pid 0, the caller itself; EPERM otherwise";
    let pid0 = |name| allow_if_else_eperm(name, own, vec![Cond::eq32(0, 0, "pid 0 (self)")]);
    let prio = "PRIO_PROCESS with who == 0 only: another pid reaches a same-uid process, and PRIO_USER with who 0 reaches every process of the uid; EPERM otherwise";
    vec![
        pid0("prlimit64"),
        pid0("sched_setaffinity"),
        pid0("sched_setscheduler"),
        pid0("sched_setparam"),
        pid0("sched_setattr"),
        pid0("get_robust_list"),
        allow_if_else_eperm(
            "setpriority",
            prio,
            vec![
                Cond::eq32(0, PRIO_PROCESS, "PRIO_PROCESS"),
                Cond::eq32(1, 0, "who 0 (self)"),
            ],
        ),
        allow_if_else_eperm(
            "getpriority",
            prio,
            vec![
                Cond::eq32(0, PRIO_PROCESS, "PRIO_PROCESS"),
                Cond::eq32(1, 0, "who 0 (self)"),
            ],
        ),
        allow_if_else_eperm(
            "ioprio_set",
            "IOPRIO_WHO_PROCESS with who == 0 only (another pid, a process group or a whole uid otherwise); EPERM otherwise",
            vec![
                Cond::eq32(0, IOPRIO_WHO_PROCESS, "IOPRIO_WHO_PROCESS"),
                Cond::eq32(1, 0, "who 0 (self)"),
            ],
        ),
        allow_if_else_eperm(
            "ioprio_get",
            "IOPRIO_WHO_PROCESS with who == 0 only; EPERM otherwise",
            vec![
                Cond::eq32(0, IOPRIO_WHO_PROCESS, "IOPRIO_WHO_PROCESS"),
                Cond::eq32(1, 0, "who 0 (self)"),
            ],
        ),
    ]
}

/// Argument guards: the syscall stays usable, the dangerous arguments do not.
fn argument_guards(allow_unix: bool) -> Vec<Guard> {
    vec![
        allow_if(
            "clone",
            "no namespace flags: a new user namespace gives CAP_SYS_ADMIN over new mount/net namespaces (Docker allows arg0 & 0x7e020000 == 0)",
            vec![vec![Cond::masked32(0, CLONE_NAMESPACE_FLAGS, 0, "no CLONE_NEW* flag")]],
        ),
        allow_if(
            "ioctl",
            "TIOCSTI pushes input into the controlling tty (CVE-2017-5226), TIOCLINUX does the same on a virtual console (CVE-2023-1523); 32-bit compare (CVE-2019-10063)",
            vec![vec![
                Cond::ne32(1, TIOCSTI, "TIOCSTI"),
                Cond::ne32(1, TIOCLINUX, "TIOCLINUX"),
            ]],
        ),
        socket_guard(allow_unix),
        allow_if(
            "socketpair",
            "only SOCK_STREAM/SOCK_SEQPACKET pairs: a SOCK_DGRAM pair can sendto() any pathname socket (docker.sock, journald), which Landlock below ABI 9 cannot stop",
            vec![
                vec![
                    Cond::eq32(0, AF_UNIX, "AF_UNIX"),
                    Cond::masked32(1, SOCK_TYPE_MASK, SOCK_STREAM, "SOCK_STREAM"),
                ],
                vec![
                    Cond::eq32(0, AF_UNIX, "AF_UNIX"),
                    Cond::masked32(1, SOCK_TYPE_MASK, SOCK_SEQPACKET, "SOCK_SEQPACKET"),
                ],
            ],
        ),
        allow_if(
            "sendto",
            "MSG_FASTOPEN connects without connect(), bypassing Landlock's TCP connect rules (landlock-lsm/linux#41)",
            vec![vec![Cond::masked32(3, MSG_FASTOPEN, 0, "no MSG_FASTOPEN")]],
        ),
        allow_if(
            "sendmsg",
            "MSG_FASTOPEN connects without connect(), bypassing Landlock's TCP connect rules",
            vec![vec![Cond::masked32(2, MSG_FASTOPEN, 0, "no MSG_FASTOPEN")]],
        ),
        allow_if(
            "sendmmsg",
            "MSG_FASTOPEN connects without connect(), bypassing Landlock's TCP connect rules",
            vec![vec![Cond::masked32(3, MSG_FASTOPEN, 0, "no MSG_FASTOPEN")]],
        ),
        allow_if(
            "setsockopt",
            "TCP_FASTOPEN_CONNECT makes the next write() connect, bypassing Landlock's TCP connect rules",
            vec![
                vec![Cond::ne32(1, SOL_TCP, "SOL_TCP")],
                vec![Cond::ne32(2, TCP_FASTOPEN_CONNECT, "TCP_FASTOPEN_CONNECT")],
            ],
        ),
        allow_if(
            "personality",
            "only the harmless personas (Docker's list): READ_IMPLIES_EXEC and ADDR_NO_RANDOMIZE weaken the target's own memory protections",
            [
                (0, "PER_LINUX"),
                (8, "PER_LINUX32"),
                (0x20000, "UNAME26"),
                (0x20008, "PER_LINUX32|UNAME26"),
                (0xffff_ffff, "query"),
            ]
            .into_iter()
            .map(|(v, what)| vec![Cond::eq32(0, v, what)])
            .collect(),
        ),
    ]
}

/// socket(2): TCP and UDP over IPv4/IPv6, route netlink, and AF_UNIX only if the policy
/// allows it. Everything else (AF_PACKET, raw sockets, SCTP, MPTCP, AF_ALG, AF_VSOCK, other
/// netlink families) is denied. Landlock's TCP rules cover plain TCP only: MPTCP
/// (landlock-lsm/linux#54) and SCTP connect to any port, so STREAM sockets must be TCP.
fn socket_guard(allow_unix: bool) -> Guard {
    let mut rules = Vec::new();
    for (family, fname) in [(AF_INET, "AF_INET"), (AF_INET6, "AF_INET6")] {
        for (proto, pname) in [(0, "default protocol"), (IPPROTO_TCP, "IPPROTO_TCP")] {
            rules.push(vec![
                Cond::eq32(0, family, fname),
                Cond::masked32(1, SOCK_TYPE_MASK, SOCK_STREAM, "SOCK_STREAM"),
                Cond::eq32(2, proto, pname),
            ]);
        }
        rules.push(vec![
            Cond::eq32(0, family, fname),
            Cond::masked32(1, SOCK_TYPE_MASK, SOCK_DGRAM, "SOCK_DGRAM"),
        ]);
    }
    rules.push(vec![
        Cond::eq32(0, AF_NETLINK, "AF_NETLINK"),
        Cond::eq32(2, NETLINK_ROUTE, "NETLINK_ROUTE"),
    ]);
    if allow_unix {
        rules.push(vec![Cond::eq32(0, AF_UNIX, "AF_UNIX")]);
        return allow_if(
            "socket",
            "TCP/UDP over IPv4/IPv6, route netlink, AF_UNIX (network.unix = true); no packet, raw, SCTP or MPTCP sockets (MPTCP and SCTP bypass Landlock's TCP rules)",
            rules,
        );
    }
    let mut g = allow_if(
        "socket",
        "TCP/UDP over IPv4/IPv6 and route netlink only; AF_UNIX needs network.unix = true (pathname sockets such as docker.sock and ssh-agent are not covered by Landlock below ABI 9), and without it gets EPERM whatever the action: glibc tries nscd's socket on every user lookup and falls back; no packet, raw, SCTP or MPTCP sockets",
        rules,
    );
    if let Treatment::AllowIf(rules) = &mut g.treatment {
        rules.insert(
            0,
            Rule::refuse(vec![Cond::eq32(0, AF_UNIX, "AF_UNIX")], libc::EPERM),
        );
    }
    g
}

/// Calls with a fixed answer that callers know how to fall back from.
fn fixed_answers() -> Vec<Guard> {
    let uring = "io_uring operations bypass seccomp (and setuid did not apply to the ring, CVE-2024-22017); EPERM, never KILL: libuv probes io_uring at start and falls back";
    vec![
        Guard {
            name: "clone3",
            treatment: Treatment::Fixed(libc::ENOSYS),
            why: "its flags sit behind a pointer that seccomp cannot read; ENOSYS makes glibc fall back to clone, which is guarded",
            unlock: None,
        },
        Guard {
            name: "io_uring_setup",
            treatment: Treatment::Fixed(libc::EPERM),
            why: uring,
            unlock: None,
        },
        Guard {
            name: "io_uring_enter",
            treatment: Treatment::Fixed(libc::EPERM),
            why: uring,
            unlock: None,
        },
        Guard {
            name: "io_uring_register",
            treatment: Treatment::Fixed(libc::EPERM),
            why: uring,
            unlock: None,
        },
    ]
}

/// Calls that are denied in every profile, grouped by what they would reach.
fn denials() -> Vec<Guard> {
    const GROUPS: &[(&[&str], &str)] = &[
        (
            &["ptrace", "process_vm_readv", "process_vm_writev", "process_madvise", "kcmp", "pidfd_getfd"],
            "reach into another process (memory, fds, registers)",
        ),
        (
            &["unshare", "setns"],
            "namespaces: a user namespace hands out CAP_SYS_ADMIN over new namespaces",
        ),
        (
            &["keyctl", "add_key", "request_key"],
            "kernel keyrings are not namespaced and hold other services' secrets",
        ),
        (
            &["bpf", "perf_event_open", "userfaultfd"],
            "large kernel attack surface; userfaultfd stalls kernel copies to widen races",
        ),
        (
            &["mount", "umount2", "fsopen", "fsconfig", "fsmount", "fspick", "move_mount", "open_tree", "open_tree_attr", "mount_setattr", "pivot_root", "chroot"],
            "the mount table and root directory (CVE-2021-41133: the new mount API missed by a denylist)",
        ),
        (
            &["kexec_load", "kexec_file_load", "init_module", "finit_module", "delete_module"],
            "kernel code loading",
        ),
        (
            &["open_by_handle_at", "name_to_handle_at"],
            "file handles bypass path-based checks (Shocker, 2014)",
        ),
        (
            &["acct", "swapon", "swapoff", "reboot", "syslog", "iopl", "ioperm"],
            "host administration",
        ),
        (
            &["settimeofday", "clock_settime", "adjtimex", "clock_adjtime", "sethostname", "setdomainname"],
            "host clock and identity",
        ),
    ];
    GROUPS
        .iter()
        .flat_map(|(names, why)| {
            names.iter().map(move |name| Guard {
                name,
                treatment: Treatment::Deny,
                why,
                unlock: None,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn guard(name: &str, unix: bool) -> Guard {
        let o = Options {
            allow_unix: unix,
            ..Options::default()
        };
        all(&o).into_iter().find(|g| g.name == name).unwrap()
    }

    fn allowed(g: &Guard, args: [u64; 6]) -> bool {
        match &g.treatment {
            Treatment::AllowIf(rules) => rules
                .iter()
                .find(|r| r.matches(&args))
                .is_some_and(|r| r.refuse.is_none()),
            _ => false,
        }
    }

    #[test]
    fn every_guard_names_a_known_syscall_once() {
        let gs = all(&Options {
            allow_unix: true,
            ..Options::default()
        });
        for g in &gs {
            assert!(
                super::super::syscalls::number(g.name).is_some(),
                "{}",
                g.name
            );
        }
        let mut names: Vec<_> = gs.iter().map(|g| g.name).collect();
        names.sort_unstable();
        let n = names.len();
        names.dedup();
        assert_eq!(n, names.len());
    }

    #[test]
    fn socket_families() {
        let s = guard("socket", false);
        let call = |f, t, p| allowed(&s, [f, t, p, 0, 0, 0]);
        assert!(call(AF_INET, SOCK_STREAM | 0x80800, 0));
        assert!(call(AF_INET6, SOCK_STREAM, IPPROTO_TCP));
        assert!(call(AF_INET6, SOCK_DGRAM, 17));
        assert!(call(AF_NETLINK, 3, NETLINK_ROUTE));
        assert!(!call(AF_NETLINK, 3, 9), "NETLINK_AUDIT");
        assert!(!call(AF_INET, SOCK_STREAM, 262), "IPPROTO_MPTCP");
        assert!(!call(AF_INET, SOCK_STREAM, 132), "IPPROTO_SCTP");
        assert!(!call(AF_INET, 3, 1), "SOCK_RAW");
        assert!(!call(17, 3, 0x300), "AF_PACKET");
        assert!(!call(AF_UNIX, SOCK_STREAM, 0));
        // The kernel takes `int family`: high bits do not change the family.
        assert!(call(AF_INET | (1 << 32), SOCK_DGRAM, 0));
        let u = guard("socket", true);
        assert!(allowed(&u, [AF_UNIX, SOCK_DGRAM, 0, 0, 0, 0]));
    }

    #[test]
    fn ioctl_tiocsti_high_bits_are_still_denied() {
        let g = guard("ioctl", false);
        assert!(!allowed(&g, [0, TIOCSTI | (1 << 32), 0, 0, 0, 0]));
        assert!(!allowed(&g, [0, TIOCLINUX, 0, 0, 0, 0]));
        assert!(allowed(&g, [0, 0x541b /* FIONREAD */, 0, 0, 0, 0]));
    }

    #[test]
    fn setsockopt_denies_only_tcp_fastopen_connect() {
        let g = guard("setsockopt", false);
        assert!(!allowed(&g, [0, SOL_TCP, TCP_FASTOPEN_CONNECT, 0, 0, 0]));
        assert!(allowed(&g, [0, SOL_TCP, 1 /* TCP_NODELAY */, 0, 0, 0]));
        assert!(allowed(
            &g,
            [0, 1 /* SOL_SOCKET */, TCP_FASTOPEN_CONNECT, 0, 0, 0]
        ));
    }
}
