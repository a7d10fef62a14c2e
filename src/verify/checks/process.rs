//! Process state rows: ids, capabilities, no_new_privs, setuid exec, fds, environment.

use super::*;

pub(super) fn setuid_binary() -> Option<PathBuf> {
    use std::os::unix::fs::MetadataExt;
    [
        "/usr/bin/passwd",
        "/usr/bin/chfn",
        "/bin/su",
        "/usr/bin/newgrp",
    ]
    .iter()
    .map(PathBuf::from)
    .find(|p| std::fs::metadata(p).is_ok_and(|m| m.mode() & 0o4000 != 0 && m.uid() == 0))
}

pub(super) fn process_state(inp: &Inputs<'_>) -> Vec<Check> {
    let fx = inp.fx;
    let ids = inp.ids;
    let mut v = vec![
        Check::new(
            "leaked-fd",
            Kind::Enforcement,
            "fds",
            format!("read fd {} that verify leaked (after exec)", fx.leaked_fd),
            Action::ReadFd,
            vec![fx.leaked_fd.to_string()],
            Expect::Denied,
        )
        .exec(),
        Check::new(
            "env-secret",
            Kind::Enforcement,
            "env",
            format!("see {PLANTED_ENV} planted in verify's environment (after exec)"),
            Action::EnvNames,
            vec![],
            Expect::EnvAbsent {
                name: PLANTED_ENV.into(),
            },
        )
        .exec(),
        // Terminal isolation (docs/terminal.md): the target must hold no descriptor of
        // the caller's terminal, nor reach it through /dev/tty.
        Check::new(
            "terminal",
            Kind::Baseline,
            "terminal",
            "read/ioctl the caller's terminal: fds 0-2 and /dev/tty, started with fds 0 and 2 on it (after exec)".into(),
            Action::TtyReach,
            vec!["{PTY_DEV}".into()],
            Expect::Denied,
        )
        .exec()
        .on_caller_tty(),
    ];
    let mut groups = ids.groups.clone();
    groups.sort_unstable();
    let groups = groups
        .iter()
        .map(|g| g.to_string())
        .collect::<Vec<_>>()
        .join(" ");
    let mask = format!("{:016x}", inp.keep_mask);
    let mut fields: Vec<(&str, &'static str, String)> = vec![
        ("Uid", "identity", format!("{0} {0} {0} {0}", ids.uid)),
        ("Gid", "identity", format!("{0} {0} {0} {0}", ids.gid)),
        ("Groups", "identity", groups),
        ("CapEff", "caps", mask.clone()),
        ("CapPrm", "caps", mask.clone()),
        ("CapAmb", "caps", mask.clone()),
        ("NoNewPrivs", "nnp", "1".into()),
        ("Seccomp", "seccomp", "2".into()),
    ];
    if inp.privileged {
        fields.push(("CapBnd", "caps", mask));
    }
    for (field, layer, want) in fields {
        v.push(
            Check::new(
                &format!("status-{}", field.to_lowercase()),
                Kind::Enforcement,
                layer,
                format!("/proc/self/status {field} (after exec)"),
                Action::Status,
                vec![],
                Expect::StatusField {
                    field: field.into(),
                    want,
                },
            )
            .exec()
            .no_control(),
        );
    }
    v
}
