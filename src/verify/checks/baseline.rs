//! Baseline rows: what no gateway should be able to do (secrets, ptrace, seccomp guards).

use super::*;

pub(super) fn baseline(inp: &Inputs<'_>) -> Vec<Check> {
    let view = inp.lines;
    let fx = inp.fx;
    let mut v = Vec::new();
    if let Some(home) = &inp.home {
        for (id, rel, risk) in [
            ("home-ssh", ".ssh", "ssh-keys"),
            ("home-aws", ".aws", "cloud-credentials"),
        ] {
            let p = home.join(rel);
            v.push(
                path_row(id, Kind::Baseline, &format!("~/{rel}"), &p)
                    .risk(risk)
                    .allowed_by(
                        inp.reachable(&p)
                            .map(|at| format!("{at} makes {} reachable", p.display())),
                    ),
            );
        }
    }
    let shadow = Path::new("/etc/shadow");
    v.push(
        path_row("etc-shadow", Kind::Baseline, "/etc/shadow", shadow)
            .risk("etc-shadow")
            .allowed_by(inp.reachable(shadow)),
    );
    v.push(
        Check::new(
            "ptrace-parent",
            Kind::Baseline,
            "seccomp",
            format!("ptrace-attach verify (pid {}, the parent)", fx.verify_pid),
            Action::PtraceAttach,
            vec![fx.verify_pid.to_string()],
            Expect::Denied,
        )
        .risk("ptrace")
        .allowed_by(view.seccomp_allows(&["ptrace"])),
    );
    if let Some(pid) = fx.outside_pid {
        v.push(
            Check::new(
                "ptrace-outside",
                Kind::Baseline,
                "seccomp",
                format!("ptrace-attach pid {pid} (same uid, outside the sandbox)"),
                Action::PtraceAttach,
                vec![pid.to_string()],
                Expect::Denied,
            )
            .risk("ptrace")
            .allowed_by(view.seccomp_allows(&["ptrace"])),
        );
    }
    let sys = |id: &str,
               attempt: &str,
               action: Action,
               args: Vec<String>,
               risk: &'static str,
               calls: &[&str]| {
        Check::new(
            id,
            Kind::Baseline,
            "seccomp",
            attempt.to_string(),
            action,
            args,
            Expect::Denied,
        )
        .risk(risk)
        .allowed_by(view.seccomp_allows(calls))
    };
    v.push(sys(
        "userns",
        "unshare(CLONE_NEWUSER)",
        Action::UnshareUserns,
        vec![],
        "user-namespaces",
        &["unshare", "clone3", "setns"],
    ));
    v.push(sys(
        "io-uring",
        "io_uring_setup",
        Action::IoUringSetup,
        vec![],
        "io-uring",
        &["io_uring_setup", "io_uring_enter", "io_uring_register"],
    ));
    v.push(sys(
        "tiocsti",
        "TIOCSTI on its controlling tty (verify grants a pty)",
        Action::Tiocsti,
        vec!["{PTY}".into()],
        "tiocsti",
        &["ioctl"],
    ));
    v.push(sys(
        "mount",
        "mount tmpfs",
        Action::Mount,
        vec![fx.owned_dir.display().to_string()],
        "mount",
        &["mount", "fsmount", "move_mount", "fsopen"],
    ));
    v.push(Check::new(
        "setuid0",
        Kind::Baseline,
        "identity",
        "setresuid(0, 0, 0)".into(),
        Action::Setuid0,
        vec![],
        Expect::Denied,
    ));
    if let Some(bin) = setuid_binary() {
        let allowed = inp
            .executable(&bin)
            .then(|| format!("the exec set reaches setuid-root {}", bin.display()));
        v.push(
            Check::new(
                "setuid-exec",
                Kind::Baseline,
                "landlock-fs",
                format!("exec setuid-root {} --help", bin.display()),
                Action::Exec,
                vec![bin.display().to_string(), "--help".into()],
                Expect::Denied,
            )
            .risk("setuid-exec")
            .allowed_by(allowed),
        );
    }
    for (id, sock) in [
        ("unix-pathname", fx.unix_socket.clone()),
        ("docker-sock", PathBuf::from("/var/run/docker.sock")),
    ] {
        if id == "docker-sock" && !sock.exists() {
            continue;
        }
        v.push(
            Check::new(
                id,
                Kind::Baseline,
                "seccomp",
                format!("connect to pathname unix socket {}", sock.display()),
                Action::UnixConnect,
                vec![sock.display().to_string()],
                Expect::Denied,
            )
            .risk("unix-sockets")
            .allowed_by(view.unix.clone()),
        );
    }
    v
}
