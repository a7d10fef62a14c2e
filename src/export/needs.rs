//! What clawjail itself needs from an engine, per start mode and per feature.
//!
//! An engine's directives apply to clawjail too, not only to the target: systemd's
//! `SystemCallFilter=` is installed before clawjail runs, a container runtime's seccomp
//! profile before the entrypoint, `User=` decides whether clawjail starts as root. So every
//! export is "the target's rules (from the policy) + these needs". A literal mirror of the
//! policy would refuse clawjail its own `setresuid`, `landlock_*` and `seccomp`.
//!
//! Each [`Need`] names the feature it belongs to, so a feature adds its needs without
//! touching the engines: the egress broker (network namespaces, a DNS and relay listener)
//! will add a `Need` with `unshare`/`setns`, the `net` (and, on an unprivileged start,
//! `user`) namespace, and the address ranges it must keep reachable (docs/export.md,
//! "When egress lands"). The list is checked against a real launch: the `export_systemd_*`
//! integration test runs `clawjail run` under `strace -f` and requires every syscall
//! clawjail makes (every process, up to its exec of the target) to be in the export.

use serde::Serialize;

/// How clawjail is started by the engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Start {
    /// clawjail starts as root and switches to `[identity]` itself (systemd: no `User=`).
    Root,
    /// clawjail starts as the target user (systemd `User=`, Kubernetes `runAsUser`): no uid
    /// switch, every other control still applies.
    User,
}

impl Start {
    pub fn name(self) -> &'static str {
        match self {
            Start::Root => "root",
            Start::User => "user",
        }
    }
}

/// One feature's needs. Every list is what clawjail itself calls or uses before (or, for
/// the supervisor, beside) the target; the target's own needs come from the policy.
#[derive(Debug, Clone, Serialize)]
pub struct Need {
    /// The feature: "launch", "root-start", "supervisor" (later: "egress").
    pub feature: &'static str,
    pub why: &'static str,
    pub syscalls: &'static [&'static str],
    /// Capabilities clawjail needs in its bounding/effective set (root start only).
    pub capabilities: &'static [&'static str],
    /// Paths clawjail writes itself (not the target), `-` = ignored when absent.
    pub write_paths: &'static [&'static str],
    /// Namespace types clawjail creates (systemd `RestrictNamespaces=` names); root start only.
    pub namespaces: &'static [&'static str],
    /// Syscalls clawjail calls with arguments the target's own guard may refuse: the outer
    /// seccomp layer (OCI, Kubernetes) allows them unconditionally, clawjail's own filter
    /// still guards them for the target.
    pub unguarded: &'static [&'static str],
    /// Syscalls the target may never make that the outer seccomp layer allows only with the
    /// flags clawjail passes: `(syscall, argument, the flag bits clawjail uses)`; any other
    /// bit (64-bit compare: these arguments are `unsigned long`) keeps them refused.
    pub flags_only: &'static [(&'static str, u8, u64)],
}

/// Every launch, whatever the start mode: the Rust runtime and glibc start-up, reading the
/// policy, NSS (nscd's socket is tried first: socket+connect on AF_UNIX), resolving paths
/// and the target, Landlock, seccomp, the env, fds, signals and the exec.
const LAUNCH: Need = Need {
    feature: "launch",
    why: "start-up, policy and path resolution, NSS, Landlock, seccomp, env, fds, signals, execveat of the target",
    syscalls: &[
        // process start-up (ld.so, glibc, Rust std)
        "execve", "brk", "mmap", "munmap", "mprotect", "arch_prctl", "set_tid_address",
        "set_robust_list", "rseq", "prlimit64", "getrandom", "sigaltstack", "rt_sigaction",
        "rt_sigprocmask", "rt_sigreturn", "poll", "futex", "sched_getaffinity", "exit_group",
        "exit",
        // files: policy, env files, /proc, /etc, path resolution with O_PATH fds
        "openat", "close", "read", "pread64", "write", "lseek", "fstat", "newfstatat",
        "statx", "fstatfs", "fcntl", "readlinkat", "access", "ioctl", "getcwd",
        // NSS lookups (nscd first)
        "socket", "connect",
        // identity and capability probes
        "getpid", "getppid", "gettid", "getuid", "geteuid", "getgid", "getegid",
        "getgroups", "getresuid", "getresgid", "capget", "capset", "prctl",
        // created directories (filesystem.create) and ${TMP}
        "mkdir", "mkdirat", "fchmod", "fchown", "chdir", "umask",
        // session, fds, the confinement itself and the exec
        "setsid", "getsid", "close_range", "landlock_create_ruleset", "landlock_add_rule",
        "landlock_restrict_self", "seccomp", "execveat",
    ],
    capabilities: &[],
    write_paths: &[],
    namespaces: &[],
    unguarded: &[],
    flags_only: &[],
};

/// A root start: the uid switch, the bounding set, securebits, the run record.
const ROOT_START: Need = Need {
    feature: "root-start",
    why: "switch to [identity] (setgroups/setresgid/setresuid), drop the bounding set, lock securebits, create the target's directories owned by it, leave the run record in /run/clawjail (fchmod 0644: within the target's fchmod guard) and prune stale ones (unlinkat)",
    syscalls: &[
        "setgroups", "setresgid", "setresuid", "chown", "fchownat", "rename", "unlink",
        "unlinkat", "fsync",
    ],
    // The same six as examples/systemd/openclaw-gateway.service, which says why each.
    capabilities: &[
        "CAP_SETUID", "CAP_SETGID", "CAP_SETPCAP", "CAP_CHOWN", "CAP_FOWNER",
        "CAP_DAC_OVERRIDE",
    ],
    write_paths: &["-/run/clawjail"],
    namespaces: &[],
    unguarded: &[],
    flags_only: &[],
};

/// The supervisor (`run --init`, or when clawjail leads a process group): it forks once,
/// relays signals and reaps children for as long as the target runs, unconfined by the
/// policy's seccomp filter, so all of these stay in any outer filter.
const SUPERVISOR: Need = Need {
    feature: "supervisor",
    why: "fork once; the parent relays signals (signalfd), reaps children (--init: as a subreaper PID 1) and exits with the child's status; with a terminal on fds 0-2 it relays a new pty through a monitor that leads the pty's session (docs/terminal.md)",
    syscalls: &[
        "clone", "wait4", "waitid", "kill", "rt_sigtimedwait", "rt_sigsuspend", "getppid",
        "setgroups", "setresgid", "setresuid", "nanosleep", "clock_nanosleep",
        // the signal loop and the ready/status pipes (issue 10's supervisor)
        "signalfd4", "pipe2", "ppoll",
        // the pty relay: the new pty's session and foreground group, the caller's tty
        // reopened, its modes and window size (ioctl is in "launch")
        "dup", "dup3", "getpgrp", "getpgid", "setpgid",
    ],
    capabilities: &[],
    write_paths: &[],
    namespaces: &[],
    unguarded: &[],
    flags_only: &[],
};

// include/uapi/linux/sched.h and include/uapi/linux/mount.h.
const CLONE_NEWNS: u64 = 0x0002_0000;
const CLONE_NEWIPC: u64 = 0x0800_0000;
const CLONE_NEWPID: u64 = 0x2000_0000;
const MS_NOSUID: u64 = 0x2;
const MS_NODEV: u64 = 0x4;
const MS_NOEXEC: u64 = 0x8;
const MS_REC: u64 = 0x4000;
const MS_PRIVATE: u64 = 0x4_0000;
const MS_SLAVE: u64 = 0x8_0000;

/// unshare(2) with the flags clawjail uses and no other (never CLONE_NEWUSER/NEWNET/...).
const UNSHARE_FLAGS: (&str, u8, u64) = ("unshare", 0, CLONE_NEWNS | CLONE_NEWIPC | CLONE_NEWPID);
/// mount(2) with the flags clawjail uses: MS_REC|MS_PRIVATE or MS_REC|MS_SLAVE on /, a
/// procfs or tmpfs with nosuid/nodev/noexec. Never MS_BIND, MS_MOVE, MS_REMOUNT or
/// MS_SHARED; the paths and the filesystem type sit behind pointers seccomp cannot read.
const MOUNT_FLAGS: (&str, u8, u64) = (
    "mount",
    3,
    MS_NOSUID | MS_NODEV | MS_NOEXEC | MS_REC | MS_PRIVATE | MS_SLAVE,
);

/// An IPC namespace for the target (every root start tries it; src/namespaces.rs).
const IPC_NAMESPACE: Need = Need {
    feature: "namespaces",
    why: "an IPC namespace of the target's own on a root start: unshare(CLONE_NEWIPC) when clawjail holds CAP_SYS_ADMIN (without it clawjail falls back to refusing SysV IPC and POSIX mq by seccomp; with it and unshare refused, the launch stops with exit 125)",
    syscalls: &["unshare", "clone", "wait4"],
    capabilities: &["CAP_SYS_ADMIN"],
    write_paths: &[],
    namespaces: &["ipc"],
    unguarded: &[],
    flags_only: &[UNSHARE_FLAGS],
};

/// A PID namespace with its own /proc (`process.pid_namespace`, with a new session).
const PID_NAMESPACE: Need = Need {
    feature: "namespaces",
    why: "a PID namespace of the target's own (process.pid_namespace): unshare(CLONE_NEWPID), the session fork makes the namespace's init, which enters a mount namespace (unshare(CLONE_NEWNS)), makes / rprivate and mounts the namespace's own /proc, then forks the target; refused with CAP_SYS_ADMIN held, the launch stops with exit 125 (`clawjail check` probes it)",
    syscalls: &["unshare", "mount", "clone", "wait4"],
    capabilities: &["CAP_SYS_ADMIN"],
    write_paths: &[],
    namespaces: &["pid", "mnt"],
    unguarded: &[],
    flags_only: &[UNSHARE_FLAGS, MOUNT_FLAGS],
};

/// A private /tmp (`filesystem.private_tmp`; src/mount_ns.rs).
const PRIVATE_TMP: Need = Need {
    feature: "private-tmp",
    why: "filesystem.private_tmp: unshare(CLONE_NEWNS), / made a recursive slave, a fresh tmpfs on /tmp (nosuid, nodev); clawjail falls back to the shared /tmp when the engine refuses",
    syscalls: &["unshare", "mount"],
    capabilities: &["CAP_SYS_ADMIN"],
    write_paths: &[],
    namespaces: &["mnt"],
    unguarded: &[],
    flags_only: &[UNSHARE_FLAGS, MOUNT_FLAGS],
};

/// `filesystem.create_mode` with group/other write or setuid/setgid/sticky: clawjail's own
/// fchmod of the directories it creates is outside the target's fchmod guard.
const CREATE_MODE: Need = Need {
    feature: "create-mode",
    why: "filesystem.create_mode has bits the target's fchmod guard refuses (group/other write, setuid/setgid/sticky): clawjail sets them itself on the directories it creates, so the outer layer allows fchmod unconditionally; clawjail's own filter still guards the target's fchmod",
    syscalls: &["fchmod"],
    capabilities: &[],
    write_paths: &[],
    namespaces: &[],
    unguarded: &["fchmod"],
    flags_only: &[],
};

const CLONE_NEWNET: u64 = 0x4000_0000;
const CLONE_NEWUSER: u64 = 0x1000_0000;

/// The egress broker's syscalls, beside the supervisor's: the child's namespace set-up
/// (netlink for lo and the AnyIP routes, the capture and DNS sockets, SCM_RIGHTS), the
/// broker's tokio runtime (epoll, eventfd, worker threads) and its relay (TCP both ways,
/// UDP DNS), the inbound listeners. Measured against src/egress (netns.rs, wire.rs,
/// broker.rs, relay.rs); systemd's `@system-service` holds all of them.
const EGRESS_SYSCALLS: &[&str] = &[
    "unshare",
    // The socket factory enters the target's namespace (wire.rs namespace_fds); measured
    // by the export_systemd strace test on a root start.
    "setns",
    "socket",
    "socketpair",
    "bind",
    "listen",
    "accept4",
    "connect",
    "getsockname",
    "getpeername",
    "setsockopt",
    "getsockopt",
    "sendmsg",
    "recvmsg",
    "sendto",
    "recvfrom",
    "shutdown",
    "epoll_create1",
    "epoll_ctl",
    "epoll_wait",
    "epoll_pwait",
    "eventfd2",
    "clone",
    "clone3",
    "madvise",
    "sched_yield",
    "write",
    "uname",
];

/// `[egress]` on a root start: clawjail makes the target's network namespace
/// (`unshare(CLONE_NEWNET)`), sets `lo` up with AnyIP routes over netlink (CAP_NET_ADMIN
/// in that namespace, which a root start holds through the initial user namespace) and
/// binds the broker's DNS listener on port 53 inside it and the inbound listeners on the
/// host (CAP_NET_BIND_SERVICE for ports below 1024). docs/egress.md "Mechanism".
const EGRESS_ROOT: Need = Need {
    feature: "egress",
    why: "[egress]: unshare(CLONE_NEWNET) for the target, lo and AnyIP routes over netlink, the broker's capture and DNS (port 53) listeners handed to the supervisor over SCM_RIGHTS, the broker (tokio) and its relay, the inbound listeners",
    syscalls: EGRESS_SYSCALLS,
    capabilities: &["CAP_SYS_ADMIN", "CAP_NET_ADMIN", "CAP_NET_BIND_SERVICE"],
    write_paths: &[],
    namespaces: &["net"],
    unguarded: &[],
    flags_only: &[("unshare", 0, CLONE_NEWNET | CLONE_NEWNS | CLONE_NEWIPC | CLONE_NEWPID)],
};

/// `[egress]` on a user start: `unshare(CLONE_NEWUSER|CLONE_NEWNET)` mapping the caller's
/// one uid and gid (the capabilities it needs there come with the new user namespace).
const EGRESS_USER: Need = Need {
    feature: "egress",
    why: "[egress] on a user start: unshare(CLONE_NEWUSER|CLONE_NEWNET) mapping the caller's uid and gid (uid_map, setgroups, gid_map written under /proc/self), lo and AnyIP routes, the broker's listeners over SCM_RIGHTS, the broker (tokio) and its relay, the inbound listeners",
    syscalls: EGRESS_SYSCALLS,
    capabilities: &[],
    write_paths: &[],
    namespaces: &["net", "user"],
    unguarded: &[],
    flags_only: &[("unshare", 0, CLONE_NEWUSER | CLONE_NEWNET)],
};

/// What in the policy changes clawjail's needs.
#[derive(Debug, Clone, Copy)]
pub struct NeedInputs {
    pub start: Start,
    /// `process.pid_namespace` and `process.new_session` (a PID namespace needs the fork).
    pub pid_namespace: bool,
    /// `filesystem.private_tmp`.
    pub private_tmp: bool,
    /// `filesystem.create_mode`.
    pub create_mode: u32,
    /// The policy has `[egress]`.
    pub egress: bool,
}

impl NeedInputs {
    /// The policy's defaults (pid namespace on, no private /tmp, 0700).
    pub fn defaults(start: Start) -> NeedInputs {
        NeedInputs {
            start,
            pid_namespace: true,
            private_tmp: false,
            create_mode: 0o700,
            egress: false,
        }
    }
}

/// clawjail's own needs for this start mode and policy. The supervisor is always included:
/// clawjail forks on its own when it leads a process group, whatever the engine. The
/// namespaces are a root start's only (they need CAP_SYS_ADMIN), except `[egress]`'s: a
/// user start makes a user and a network namespace for it.
pub fn needs(inp: &NeedInputs) -> Vec<Need> {
    let mut v = vec![LAUNCH, SUPERVISOR];
    if inp.start == Start::Root {
        v.push(ROOT_START);
        v.push(IPC_NAMESPACE);
        if inp.pid_namespace {
            v.push(PID_NAMESPACE);
        }
        if inp.private_tmp {
            v.push(PRIVATE_TMP);
        }
    }
    if inp.egress {
        v.push(match inp.start {
            Start::Root => EGRESS_ROOT,
            Start::User => EGRESS_USER,
        });
    }
    if u64::from(inp.create_mode) & crate::seccomp::guards::MODE_SPECIAL_GROUP_OTHER_WRITE != 0 {
        v.push(CREATE_MODE);
    }
    v
}

/// The namespace types clawjail creates (sorted, deduplicated).
pub fn namespaces(needs: &[Need]) -> Vec<&'static str> {
    let mut v: Vec<&'static str> = needs
        .iter()
        .flat_map(|n| n.namespaces.iter().copied())
        .collect();
    v.sort_unstable();
    v.dedup();
    v
}

/// Every syscall name in `needs`, deduplicated, sorted.
pub fn syscalls(needs: &[Need]) -> Vec<&'static str> {
    let mut v: Vec<&'static str> = needs
        .iter()
        .flat_map(|n| n.syscalls.iter().copied())
        .collect();
    v.sort_unstable();
    v.dedup();
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_need_names_a_known_syscall() {
        for n in needs(&NeedInputs {
            private_tmp: true,
            create_mode: 0o770,
            ..NeedInputs::defaults(Start::Root)
        }) {
            for s in n.syscalls {
                assert!(
                    crate::seccomp::syscalls::number(s).is_some(),
                    "{}: {s}",
                    n.feature
                );
            }
        }
    }

    #[test]
    fn root_start_adds_the_uid_switch_and_its_capabilities() {
        let user = syscalls(&needs(&NeedInputs::defaults(Start::User)));
        let root = syscalls(&needs(&NeedInputs::defaults(Start::Root)));
        assert!(root.contains(&"chown") && !user.contains(&"chown"));
        assert!(needs(&NeedInputs::defaults(Start::User))
            .iter()
            .all(|n| n.capabilities.is_empty()));
        assert!(needs(&NeedInputs::defaults(Start::Root))
            .iter()
            .any(|n| n.capabilities.contains(&"CAP_SETUID")));
    }

    #[test]
    fn only_a_root_start_creates_namespaces_and_the_policy_decides_which() {
        let ns = |inp: NeedInputs| namespaces(&needs(&inp));
        let user = NeedInputs {
            private_tmp: true,
            ..NeedInputs::defaults(Start::User)
        };
        assert!(ns(user).is_empty());
        assert!(!syscalls(&needs(&user)).contains(&"unshare"));
        let root = NeedInputs::defaults(Start::Root);
        assert_eq!(ns(root), ["ipc", "mnt", "pid"]);
        let no_pid = NeedInputs {
            pid_namespace: false,
            ..root
        };
        assert_eq!(ns(no_pid), ["ipc"]);
        assert!(!syscalls(&needs(&no_pid)).contains(&"mount"));
        let tmp = NeedInputs {
            private_tmp: true,
            ..no_pid
        };
        assert_eq!(ns(tmp), ["ipc", "mnt"]);
        assert!(syscalls(&needs(&tmp)).contains(&"mount"));
        // Every flag clawjail passes to unshare and mount is in its flags_only bits.
        let bits = |name: &str| -> u64 {
            needs(&tmp)
                .iter()
                .flat_map(|n| n.flags_only.iter())
                .filter(|(s, _, _)| *s == name)
                .map(|(_, _, b)| *b)
                .fold(0, |a, b| a | b)
        };
        for f in [libc::CLONE_NEWNS, libc::CLONE_NEWIPC, libc::CLONE_NEWPID] {
            assert_eq!(bits("unshare") & f as u64, f as u64);
        }
        assert_eq!(bits("unshare") & libc::CLONE_NEWUSER as u64, 0);
        for f in [
            libc::MS_REC | libc::MS_PRIVATE,
            libc::MS_REC | libc::MS_SLAVE,
            libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
        ] {
            assert_eq!(bits("mount") & f, f);
        }
        assert_eq!(
            bits("mount") & (libc::MS_BIND | libc::MS_MOVE | libc::MS_REMOUNT),
            0
        );
        // A group-writable create_mode takes fchmod out of the outer guard.
        let shared = NeedInputs {
            create_mode: 0o2770,
            ..root
        };
        assert!(needs(&shared)
            .iter()
            .any(|n| n.unguarded.contains(&"fchmod")));
        assert!(!needs(&root).iter().any(|n| n.unguarded.contains(&"fchmod")));
    }

    #[test]
    fn egress_adds_the_network_namespace_and_its_capabilities() {
        let root = NeedInputs {
            egress: true,
            ..NeedInputs::defaults(Start::Root)
        };
        assert_eq!(namespaces(&needs(&root)), ["ipc", "mnt", "net", "pid"]);
        let caps: Vec<&str> = needs(&root)
            .iter()
            .flat_map(|n| n.capabilities.iter().copied())
            .collect();
        for c in ["CAP_SYS_ADMIN", "CAP_NET_ADMIN", "CAP_NET_BIND_SERVICE"] {
            assert!(caps.contains(&c), "{c}");
        }
        let user = NeedInputs {
            egress: true,
            ..NeedInputs::defaults(Start::User)
        };
        assert_eq!(namespaces(&needs(&user)), ["net", "user"]);
        assert!(needs(&user).iter().all(|n| n.capabilities.is_empty()));
        assert!(syscalls(&needs(&user)).contains(&"unshare"));
        for n in needs(&user).iter().chain(&needs(&root)) {
            for s in n.syscalls {
                assert!(crate::seccomp::syscalls::number(s).is_some(), "{s}");
            }
        }
    }
}
