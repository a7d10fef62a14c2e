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
    /// Namespace types clawjail creates (`RestrictNamespaces=`); none today.
    pub namespaces: &'static [&'static str],
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
};

/// A root start: the uid switch, the bounding set, securebits, the run record.
const ROOT_START: Need = Need {
    feature: "root-start",
    why: "switch to [identity] (setgroups/setresgid/setresuid), drop the bounding set, lock securebits, create the target's directories owned by it, leave the run record in /run/clawjail",
    syscalls: &[
        "setgroups", "setresgid", "setresuid", "chown", "fchownat", "rename", "unlink",
        "fsync",
    ],
    // The same six as examples/systemd/openclaw-gateway.service, which says why each.
    capabilities: &[
        "CAP_SETUID", "CAP_SETGID", "CAP_SETPCAP", "CAP_CHOWN", "CAP_FOWNER",
        "CAP_DAC_OVERRIDE",
    ],
    write_paths: &["-/run/clawjail"],
    namespaces: &[],
};

/// The supervisor (`run --init`, or when clawjail leads a process group): it forks once,
/// relays signals and reaps children for as long as the target runs, unconfined by the
/// policy's seccomp filter, so all of these stay in any outer filter.
const SUPERVISOR: Need = Need {
    feature: "supervisor",
    why: "fork once; the parent relays signals, reaps children (--init: as a subreaper PID 1) and exits with the child's status",
    syscalls: &[
        "clone", "wait4", "waitid", "kill", "rt_sigtimedwait", "rt_sigsuspend", "getppid",
        "setgroups", "setresgid", "setresuid", "nanosleep", "clock_nanosleep",
    ],
    capabilities: &[],
    write_paths: &[],
    namespaces: &[],
};

/// clawjail's own needs for this start mode. The supervisor is always included: clawjail
/// forks on its own when it leads a process group, whatever the engine.
pub fn needs(start: Start) -> Vec<Need> {
    let mut v = vec![LAUNCH, SUPERVISOR];
    if start == Start::Root {
        v.push(ROOT_START);
    }
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
        for n in needs(Start::Root) {
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
        let user = syscalls(&needs(Start::User));
        let root = syscalls(&needs(Start::Root));
        assert!(root.contains(&"chown") && !user.contains(&"chown"));
        assert!(needs(Start::User).iter().all(|n| n.capabilities.is_empty()));
        assert!(needs(Start::Root)
            .iter()
            .any(|n| n.capabilities.contains(&"CAP_SETUID")));
    }
}
