//! The emitted BPF, run by a small interpreter, against the table it was built from: the
//! best evidence that the tree, the trampolines and seccompiler's rule code agree with the
//! rules `check` prints.

use super::bpf::{interp::run, RET_ALLOW, RET_ERRNO, RET_KILL_PROCESS, RET_LOG};
use super::guards::*;
use super::*;
use crate::policy::{Origin, Source};

const ARCH: u32 = syscalls::AUDIT_ARCH_X86_64;

fn plan_for(text: &str) -> Result<SeccompPlan, SeccompError> {
    let src = Source::new(Origin::Flag("p.toml".into()), text.to_string());
    let loaded = crate::policy::load(src).map_err(SeccompError::from)?;
    prepare(&SeccompInputs {
        src: &loaded.source,
        cfg: &loaded.policy.seccomp,
        guards: guards::Options {
            allow_unix: loaded.policy.network.unix.get(),
            allow_chown: loaded.policy.filesystem.allow_chown.get(),
            allow_xattr: loaded.policy.filesystem.allow_xattr.get(),
            allow_ipc: loaded.policy.process.allow_shared_ipc.get(),
        },
    })
}

fn plan(profile: &str, action: &str, unix: bool, extra: &str) -> SeccompPlan {
    let text = format!(
        "version = 1\n[network]\nunix = {unix}\n[seccomp]\nprofile = \"{profile}\"\naction = \"{action}\"\n{extra}"
    );
    match plan_for(&text) {
        Ok(p) => p,
        Err(e) => panic!("{e}"),
    }
}

fn nr(name: &str) -> u32 {
    syscalls::number(name).unwrap()
}

fn answer(p: &SeccompPlan, name: &str, args: [u64; 6]) -> u32 {
    run(p.program(), nr(name), ARCH, &args).unwrap()
}

/// Argument vectors that exercise every guard's edges, plus some noise.
fn interesting_args() -> Vec<[u64; 6]> {
    let mut v = vec![[0u64; 6], [u64::MAX; 6]];
    let values = [
        0,
        1,
        2,
        3,
        5,
        6,
        8,
        10,
        16,
        17,
        30,
        262,
        0x20000,
        0x20008,
        0xffff_ffff,
        TIOCSTI,
        TIOCLINUX,
        TIOCSTI | (1 << 32),
        MSG_FASTOPEN,
        MSG_FASTOPEN | 0x40,
        0x1000_0000,
        0x0001_1200,
        SOCK_STREAM | 0x80800,
        SOCK_DGRAM | 0x80000,
        0o600,
        0o644,
        0o700 | (1 << 32),
        0o4700,
        0o1700,
        0o620,
    ];
    for (i, a) in values.iter().enumerate() {
        for (j, b) in values.iter().enumerate() {
            let c = values[(i * 7 + j * 3) % values.len()];
            v.push([*a, *b, c, *b, 0, 0]);
        }
    }
    v
}

fn check_equivalence(p: &SeccompPlan) {
    let argsets = interesting_args();
    let guarded: Vec<u32> = p
        .entries()
        .iter()
        .filter(|e| matches!(e.verdict, Verdict::AllowIf(_)))
        .map(|e| e.nr)
        .collect();
    let mut numbers: Vec<u32> = (0..=600).collect();
    numbers.extend([
        0x3fff_ffff,
        0x4000_0000,
        0x4000_0000 + 16,
        0x4000_0000 + 520,
        0x7fff_ffff,
        0xffff_ffff,
    ]);
    for n in numbers {
        let sets: &[[u64; 6]] = if guarded.contains(&n) {
            &argsets
        } else {
            &argsets[..2]
        };
        for args in sets {
            let got = run(p.program(), n, ARCH, args).unwrap();
            assert_eq!(got, p.expected(n, args), "nr {n} args {args:x?}");
        }
    }
    // Any other arch: killed before the number is looked at.
    for arch in [3 | 0x4000_0000, 0xc000_00b7, 0] {
        assert_eq!(
            run(p.program(), 0, arch, &[0; 6]).unwrap(),
            RET_KILL_PROCESS
        );
    }
}

#[test]
fn bpf_matches_table_for_every_profile_action_and_unix_setting() {
    for profile in ["default", "strict"] {
        for action in ["errno", "kill", "log"] {
            for unix in [false, true] {
                let p = plan(profile, action, unix, "");
                check_equivalence(&p);
            }
        }
    }
    let p = plan(
        "custom",
        "kill",
        false,
        "allow = [\"read\", \"write\", \"ioctl\", \"socket\"]\n",
    );
    check_equivalence(&p);
}

/// A table that alternates allow/deny over every number forces the most spans, the
/// deepest tree and trampolines, and must still fit the kernel's limit.
#[test]
fn worst_case_table_fits_and_is_correct() {
    let entries: Vec<Entry> = syscalls::X86_64
        .iter()
        .enumerate()
        .map(|(i, &(name, nr))| Entry {
            nr,
            name,
            verdict: match i % 3 {
                0 => Verdict::Allow,
                1 => Verdict::Errno(libc::ENOSYS),
                _ => Verdict::Deny,
            },
            from: "test".into(),
        })
        .collect();
    let p = compile(SeccompProfile::Custom, SeccompAction::Errno, entries).unwrap();
    assert!(p.program().len() < bpf::MAX_INSNS, "{}", p.program().len());
    check_equivalence(&p);
}

#[test]
fn default_program_is_small_and_shallow() {
    let p = plan("default", "errno", false, "");
    let len = p.program().len();
    assert!(len < 600, "default filter is {len} instructions");
    assert!(p.program.depth <= 8, "depth {}", p.program.depth);
}

#[test]
fn guards_answer_as_the_issue_says() {
    let p = plan("default", "errno", false, "");
    let eperm = RET_ERRNO | libc::EPERM as u32;
    let a = |name: &str, args: [u64; 6]| answer(&p, name, args);
    assert_eq!(a("clone", [0x1000_0000 | 17, 0, 0, 0, 0, 0]), eperm);
    assert_eq!(
        a("clone", [0x003d_0f00, 0, 0, 0, 0, 0]),
        RET_ALLOW,
        "pthread_create flags"
    );
    assert_eq!(a("clone3", [0; 6]), RET_ERRNO | libc::ENOSYS as u32);
    assert_eq!(a("unshare", [0x1000_0000, 0, 0, 0, 0, 0]), eperm);
    assert_eq!(a("ioctl", [0, TIOCSTI, 0, 0, 0, 0]), eperm);
    assert_eq!(a("ioctl", [0, TIOCSTI | (1 << 32), 0, 0, 0, 0]), eperm);
    assert_eq!(a("ioctl", [0, 0x541b, 0, 0, 0, 0]), RET_ALLOW);
    assert_eq!(a("io_uring_setup", [0; 6]), eperm);
    assert_eq!(a("socket", [AF_UNIX, SOCK_STREAM, 0, 0, 0, 0]), eperm);
    assert_eq!(a("socket", [17, 3, 0x300, 0, 0, 0]), eperm, "AF_PACKET");
    assert_eq!(a("socket", [AF_INET, 3, 1, 0, 0, 0]), eperm, "raw");
    assert_eq!(
        a("socket", [AF_NETLINK, 3, 9, 0, 0, 0]),
        eperm,
        "NETLINK_AUDIT"
    );
    assert_eq!(
        a("socket", [AF_INET, SOCK_STREAM, 262, 0, 0, 0]),
        eperm,
        "MPTCP"
    );
    assert_eq!(
        a("socket", [AF_INET6, SOCK_STREAM | 0x80800, 6, 0, 0, 0]),
        RET_ALLOW
    );
    assert_eq!(a("socketpair", [AF_UNIX, SOCK_DGRAM, 0, 0, 0, 0]), eperm);
    assert_eq!(
        a("socketpair", [AF_UNIX, SOCK_STREAM | 0x80000, 0, 0, 0, 0]),
        RET_ALLOW
    );
    assert_eq!(a("sendto", [3, 0, 1, MSG_FASTOPEN, 0, 0]), eperm);
    assert_eq!(a("sendto", [3, 0, 1, 0x40, 0, 0]), RET_ALLOW);
    assert_eq!(a("sendmsg", [3, 0, MSG_FASTOPEN, 0, 0, 0]), eperm);
    assert_eq!(
        a("setsockopt", [3, SOL_TCP, TCP_FASTOPEN_CONNECT, 0, 0, 0]),
        eperm
    );
    assert_eq!(
        a("personality", [0x0040_0000, 0, 0, 0, 0, 0]),
        eperm,
        "READ_IMPLIES_EXEC"
    );
    assert_eq!(a("personality", [0xffff_ffff, 0, 0, 0, 0, 0]), RET_ALLOW);
    for n in [
        "ptrace",
        "bpf",
        "perf_event_open",
        "keyctl",
        "add_key",
        "userfaultfd",
        "mount",
        "open_by_handle_at",
        "name_to_handle_at",
        "fsopen",
        "kexec_load",
        "init_module",
        "sethostname",
        "clock_settime",
        "pivot_root",
        "chroot",
        "setns",
    ] {
        assert_eq!(a(n, [0; 6]), eperm, "{n}");
    }
    for n in [
        "read",
        "execve",
        "execveat",
        "getppid",
        "rseq",
        "membarrier",
        "epoll_pwait2",
        "close_range",
    ] {
        assert_eq!(a(n, [0; 6]), RET_ALLOW, "{n}");
    }
    let x32_read = syscalls::X32_SYSCALL_BIT;
    assert_eq!(run(p.program(), x32_read, ARCH, &[0; 6]).unwrap(), eperm);
}

#[test]
fn kill_keeps_the_fixed_answers() {
    let p = plan("default", "kill", false, "");
    assert_eq!(
        answer(&p, "clone3", [0; 6]),
        RET_ERRNO | libc::ENOSYS as u32
    );
    assert_eq!(
        answer(&p, "io_uring_setup", [0; 6]),
        RET_ERRNO | libc::EPERM as u32
    );
    assert_eq!(
        answer(&p, "io_uring_enter", [0; 6]),
        RET_ERRNO | libc::EPERM as u32
    );
    // glibc's nscd probe: socket(AF_UNIX) without network.unix is EPERM, never KILL.
    assert_eq!(
        answer(&p, "socket", [1, 1, 0, 0, 0, 0]),
        RET_ERRNO | libc::EPERM as u32
    );
    // Other refused families still take the policy action.
    assert_eq!(
        answer(&p, "socket", [17, 3, 768, 0, 0, 0]),
        RET_KILL_PROCESS
    );
    assert_eq!(answer(&p, "unshare", [0; 6]), RET_KILL_PROCESS);
    assert_eq!(
        answer(&p, "ioctl", [0, TIOCSTI, 0, 0, 0, 0]),
        RET_KILL_PROCESS
    );
    assert_eq!(
        run(p.program(), syscalls::X32_SYSCALL_BIT, ARCH, &[0; 6]).unwrap(),
        RET_KILL_PROCESS
    );
}

#[test]
fn log_mode_logs_instead_of_denying_but_keeps_fixed_answers_and_abi_checks() {
    let p = plan("default", "log", false, "");
    assert_eq!(answer(&p, "unshare", [0x1000_0000, 0, 0, 0, 0, 0]), RET_LOG);
    assert_eq!(answer(&p, "ioctl", [0, TIOCSTI, 0, 0, 0, 0]), RET_LOG);
    assert_eq!(answer(&p, "acct", [0; 6]), RET_LOG, "unlisted");
    assert_eq!(
        answer(&p, "socket", [1, 1, 0, 0, 0, 0]),
        RET_ERRNO | libc::EPERM as u32,
        "socket(AF_UNIX) keeps its fixed EPERM in log mode"
    );
    assert_eq!(
        answer(&p, "clone3", [0; 6]),
        RET_ERRNO | libc::ENOSYS as u32
    );
    assert_eq!(
        answer(&p, "io_uring_setup", [0; 6]),
        RET_ERRNO | libc::EPERM as u32
    );
    let x32 = run(p.program(), syscalls::X32_SYSCALL_BIT, ARCH, &[0; 6]).unwrap();
    assert_eq!(x32, RET_ERRNO | libc::EPERM as u32);
    assert_eq!(
        run(p.program(), 0, 3 | 0x4000_0000, &[0; 6]).unwrap(),
        RET_KILL_PROCESS
    );
}

#[test]
fn unix_sockets_follow_the_network_setting() {
    let closed = plan("default", "errno", false, "");
    let open = plan("default", "errno", true, "");
    let args = [AF_UNIX, SOCK_STREAM, 0, 0, 0, 0];
    assert_eq!(
        answer(&closed, "socket", args),
        RET_ERRNO | libc::EPERM as u32
    );
    assert_eq!(answer(&open, "socket", args), RET_ALLOW);
}

#[test]
fn policy_allow_and_deny_apply_to_any_profile() {
    let p = plan(
        "strict",
        "errno",
        false,
        "allow = [\"memfd_create\"]\ndeny = [\"execve\"]\n",
    );
    assert_eq!(answer(&p, "memfd_create", [0; 6]), RET_ALLOW);
    assert_eq!(answer(&p, "execve", [0; 6]), RET_ERRNO | libc::EPERM as u32);
    assert_eq!(
        answer(&p, "execveat", [0; 6]),
        RET_ALLOW,
        "clawjail still needs it"
    );
    assert_eq!(
        answer(&p, "timerfd_create", [0; 6]),
        RET_ERRNO | libc::EPERM as u32,
        "not in strict"
    );
    let c = plan("custom", "errno", false, "allow = [\"read\", \"ioctl\"]\n");
    assert_eq!(answer(&c, "read", [0; 6]), RET_ALLOW);
    assert_eq!(
        answer(&c, "ioctl", [0, TIOCSTI, 0, 0, 0, 0]),
        RET_ERRNO | libc::EPERM as u32
    );
    assert_eq!(answer(&c, "write", [0; 6]), RET_ERRNO | libc::EPERM as u32);
    assert_eq!(answer(&c, "execveat", [0; 6]), RET_ALLOW);
}

fn err(extra: &str) -> String {
    let text = format!("version = 1\n[seccomp]\n{extra}");
    match plan_for(&text) {
        Ok(_) => panic!("accepted: {extra}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn policy_errors_point_at_the_name_and_suggest() {
    let e = err("allow = [\"opne\"]\n");
    assert!(e.contains("p.toml:3:10"), "{e}");
    assert!(e.contains("error[unknown-syscall]"), "{e}");
    assert!(e.contains("did you mean \"open\"?"), "{e}");
    let e = err("deny = [\"sendmsgg\"]\n");
    assert!(e.contains("did you mean \"sendmsg\"?"), "{e}");
    let e = err("allow = [\"ptrace\"]\n");
    assert!(e.contains("error[seccomp-guarded]"), "{e}");
    let e = err("allow = [\"io_uring_setup\"]\n");
    assert!(
        e.contains("error[seccomp-guarded]") && e.contains("EPERM"),
        "{e}"
    );
    let e = err("deny = [\"clone3\"]\n");
    assert!(
        e.contains("error[seccomp-guarded]") && e.contains("ENOSYS"),
        "{e}"
    );
    let e = err("deny = [\"execveat\"]\n");
    assert!(e.contains("error[seccomp-required]"), "{e}");
    let e = err("allow = [\"memfd_create\"]\ndeny = [\"memfd_create\"]\n");
    assert!(e.contains("error[seccomp-allow-and-deny]"), "{e}");
    let e = err("profile = \"custom\"\n");
    assert!(e.contains("error[seccomp-custom-empty]"), "{e}");
}

#[test]
fn check_output_names_rules_and_length() {
    let p = plan("default", "errno", false, "");
    let d = serde_json::to_value(p.view()).unwrap();
    assert_eq!(d["bpf_instructions"], p.program().len());
    let rows = d["syscalls"].as_array().unwrap();
    let row = |name: &str| {
        let prefix = format!("{name} (");
        rows.iter()
            .filter_map(|r| r.as_str())
            .find(|r| r.starts_with(&prefix))
            .unwrap()
            .to_string()
    };
    let ioctl = row("ioctl");
    assert!(
        ioctl.contains("allow if (arg1.u32 != TIOCSTI (0x5412)"),
        "{ioctl}"
    );
    assert!(ioctl.contains("else ERRNO(EPERM)"), "{ioctl}");
    assert!(row("clone3").contains("ERRNO(ENOSYS) always"));
    assert!(row("read").ends_with(": allow"));
    let asm = p.disassemble();
    assert!(
        asm.contains("ioctl:") && asm.contains("ret  KILL_PROCESS"),
        "{asm}"
    );
    // Under errno and kill the x32 span answers like its neighbour (unknown numbers) and
    // merges into it; under log it is a boundary of its own (refused, not logged).
    let log = plan("default", "log", false, "").disassemble();
    assert!(log.contains("x32 ABI"), "{log}");
    assert!(p
        .view()
        .short()
        .starts_with("default profile, action errno"));
}

#[test]
fn mode_guards_keep_group_other_and_special_bits_off_paths() {
    for action in ["errno", "kill", "log"] {
        let p = plan("default", action, false, "");
        let eperm = RET_ERRNO | libc::EPERM as u32;
        let a = |name: &str, args: [u64; 6]| answer(&p, name, args);
        // Path calls: owner bits only, whatever the action (EPERM, never kill).
        assert_eq!(a("chmod", [0, 0o600, 0, 0, 0, 0]), RET_ALLOW);
        assert_eq!(a("chmod", [0, 0o700 | (1 << 32), 0, 0, 0, 0]), RET_ALLOW);
        assert_eq!(a("chmod", [0, 0o644, 0, 0, 0, 0]), eperm);
        assert_eq!(a("chmod", [0, 0o4700, 0, 0, 0, 0]), eperm, "setuid");
        assert_eq!(a("chmod", [0, 0o1700, 0, 0, 0, 0]), eperm, "sticky");
        for n in ["fchmodat", "fchmodat2"] {
            assert_eq!(a(n, [3, 0, 0o600, 0x1000, 0, 0]), RET_ALLOW, "{n}");
            assert_eq!(a(n, [3, 0, 0o644, 0x1000, 0, 0]), eperm, "{n}");
            assert_eq!(a(n, [3, 0, 0o604, 0, 0, 0]), eperm, "{n}");
        }
        // fchmod: group/other read may be set (the fd came through Landlock), not write.
        assert_eq!(a("fchmod", [3, 0o644, 0, 0, 0, 0]), RET_ALLOW);
        assert_eq!(a("fchmod", [3, 0o755, 0, 0, 0, 0]), RET_ALLOW);
        assert_eq!(a("fchmod", [3, 0o666, 0, 0, 0, 0]), eperm);
        assert_eq!(a("fchmod", [3, 0o620, 0, 0, 0, 0]), eperm);
        assert_eq!(a("fchmod", [3, 0o2755, 0, 0, 0, 0]), eperm, "setgid");
    }
}

#[test]
fn chown_and_xattr_writes_are_eperm_unless_the_policy_allows_them() {
    let eperm = RET_ERRNO | libc::EPERM as u32;
    let p = plan("default", "kill", false, "");
    for n in [
        "chown",
        "fchown",
        "lchown",
        "fchownat",
        "setxattr",
        "lsetxattr",
        "fsetxattr",
        "setxattrat",
        "removexattr",
        "lremovexattr",
        "fremovexattr",
        "removexattrat",
        "file_setattr",
    ] {
        assert_eq!(answer(&p, n, [0; 6]), eperm, "{n}");
    }
    // Reading xattrs stays as the profile lists it.
    assert_eq!(answer(&p, "getxattr", [0; 6]), RET_ALLOW);
    let text = "version = 1\n[filesystem]\nallow_chown = true\nallow_xattr = true\n";
    let open = plan_for(text).unwrap();
    assert_eq!(answer(&open, "fchownat", [0; 6]), RET_ALLOW);
    assert_eq!(answer(&open, "setxattr", [0; 6]), RET_ALLOW);
    // strict lists fchown only; the key gives back what the profile lists, no more.
    let strict = plan_for(&format!("{text}[seccomp]\nprofile = \"strict\"\n")).unwrap();
    assert_eq!(answer(&strict, "fchown", [0; 6]), RET_ALLOW);
    assert_eq!(answer(&strict, "chown", [0; 6]), eperm);
}

#[test]
fn same_uid_process_calls_only_reach_the_caller() {
    let eperm = RET_ERRNO | libc::EPERM as u32;
    for action in ["errno", "kill"] {
        let p = plan("default", action, false, "");
        let a = |name: &str, args: [u64; 6]| answer(&p, name, args);
        for n in [
            "prlimit64",
            "sched_setaffinity",
            "sched_setscheduler",
            "sched_setparam",
            "sched_setattr",
            "get_robust_list",
        ] {
            assert_eq!(a(n, [0, 1, 0, 0, 0, 0]), RET_ALLOW, "{n} self");
            assert_eq!(a(n, [1234, 1, 0, 0, 0, 0]), eperm, "{n} other");
            assert_eq!(
                a(n, [1 << 32, 1, 0, 0, 0, 0]),
                RET_ALLOW,
                "{n}: pid_t is 32-bit"
            );
        }
        for n in ["setpriority", "getpriority"] {
            assert_eq!(a(n, [PRIO_PROCESS, 0, 5, 0, 0, 0]), RET_ALLOW, "{n}");
            assert_eq!(a(n, [PRIO_PROCESS, 1234, 5, 0, 0, 0]), eperm, "{n}");
            assert_eq!(a(n, [2, 0, 5, 0, 0, 0]), eperm, "{n} PRIO_USER who 0");
            assert_eq!(a(n, [1, 0, 5, 0, 0, 0]), eperm, "{n} PRIO_PGRP who 0");
        }
        for n in ["ioprio_set", "ioprio_get"] {
            assert_eq!(a(n, [IOPRIO_WHO_PROCESS, 0, 0, 0, 0, 0]), RET_ALLOW, "{n}");
            assert_eq!(a(n, [IOPRIO_WHO_PROCESS, 99, 0, 0, 0, 0]), eperm, "{n}");
            assert_eq!(a(n, [3, 0, 0, 0, 0, 0]), eperm, "{n} IOPRIO_WHO_USER");
        }
        // Readers that glibc calls with its own thread ids stay open.
        assert_eq!(a("sched_getaffinity", [1234, 0, 0, 0, 0, 0]), RET_ALLOW);
    }
}

#[test]
fn ipc_is_denied_unless_private_or_allowed() {
    let p = plan("default", "errno", false, "");
    for n in [
        "shmget",
        "shmat",
        "semop",
        "msgsnd",
        "mq_open",
        "mq_timedsend",
    ] {
        assert_eq!(answer(&p, n, [0; 6]), RET_ERRNO | libc::EPERM as u32, "{n}");
    }
    let k = plan("default", "kill", false, "");
    assert_eq!(answer(&k, "shmat", [0; 6]), RET_KILL_PROCESS);
    let open = plan_for("version = 1\n[process]\nallow_shared_ipc = true\n").unwrap();
    assert_eq!(answer(&open, "shmat", [0; 6]), RET_ALLOW);
    assert_eq!(answer(&open, "mq_open", [0; 6]), RET_ALLOW);
}

#[test]
fn keyed_guards_name_their_key_in_errors() {
    let e = err("allow = [\"fchown\"]\n");
    assert!(
        e.contains("error[seccomp-guarded]") && e.contains("filesystem.allow_chown = true"),
        "{e}"
    );
    let e = err("allow = [\"shmget\"]\n");
    assert!(e.contains("process.allow_shared_ipc = true"), "{e}");
}
